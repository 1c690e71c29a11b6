/**
 * How `atoll run` attaches an image's net devices, as every tender receives it: a TAP, or the
 * user-mode link to a gateway process (src/tenders/user) with the ports it publishes. Only the
 * shapes live here, below the tenders and the user-mode network alike; parsing `-p` and choosing
 * the default attachment are src/tenders/user/attach.ts's.
 */

/** The gateway's address on the user-mode link (src/tenders/user/gateway.ts's GATEWAY_ADDRESS), for boot parameters. */
export const USER_GATEWAY_ADDRESS = "10.0.2.2";

export type PublishProtocol = "tcp" | "udp";

/** One `-p [<dev>=]<host port>:<guest port>[/tcp|/udp]`: host 127.0.0.1:<host> to guest <guest>. */
export interface PortMapping {
  readonly hostPort: number;
  readonly guestPort: number;
  /** "tcp" unless the flag says `/udp` (as Docker and Podman spell it). */
  readonly protocol: PublishProtocol;
  /** The net device, when the flag names one (`-p service=8080:80`). */
  readonly device?: string | undefined;
  /** The flag as given, for messages. */
  readonly spec: string;
}

/** A TAP, or the user-mode link to a gateway process with its published ports (src/tenders/user). */
export type NetAttachment =
  | { readonly kind: "tap"; readonly ifname: string; readonly offload?: OffloadMode | undefined }
  | { readonly kind: "user"; readonly publish: readonly PortMapping[] };

/**
 * Which offloads a TAP may grant an image that asks (`--offload`): checksums and TCP segmentation
 * ("all", the default), checksums only, or none (plain MTU-sized frames, as before offloads).
 */
export type OffloadMode = "all" | "checksum" | "none";
export const OFFLOAD_MODES: readonly OffloadMode[] = ["all", "checksum", "none"];

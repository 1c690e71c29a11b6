/**
 * `--net <dev>=user` and `-p/--publish`: parsing (for the CLI, pure) and the default attachment
 * (for the tenders, once the image's declared devices are known): a declared net device without a
 * `--net` gets the user-mode link, and the published ports go to the user-mode device.
 */
import type { Image } from "../../image/format.ts";
import type { NetAttachment, PortMapping } from "../common/attachments.ts";
import { TenderError } from "../common/errors.ts";

function port(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const value = Number(text);
  return value >= 1 && value <= 65535 ? value : undefined;
}

/** Parses a `-p` value; returns the mapping or a one-line reason. */
export function parsePublish(spec: string): PortMapping | string {
  const match = /^(?:([^=:]+)=)?([^=:]*):([^=:/]*)(?:\/(.*))?$/.exec(spec);
  const example = "e.g. -p 8080:80 (host port 8080 to guest port 80) or -p 8053:53/udp";
  if (match === null) return `-p ${spec}: expected [<dev>=]<host port>:<guest port>[/tcp|/udp], ${example}`;
  const [, device, hostText = "", guestText = "", protocolText] = match;
  const hostPort = port(hostText);
  if (hostPort === undefined) return `-p ${spec}: host port '${hostText}' is not a port number from 1 to 65535, ${example}`;
  const guestPort = port(guestText);
  if (guestPort === undefined) return `-p ${spec}: guest port '${guestText}' is not a port number from 1 to 65535, ${example}`;
  if (protocolText !== undefined && protocolText !== "tcp" && protocolText !== "udp") {
    return `-p ${spec}: protocol '${protocolText}' is not tcp or udp (published ports are TCP, or UDP with /udp), ${example}`;
  }
  return { hostPort, guestPort, protocol: protocolText ?? "tcp", device, spec };
}

/**
 * The net attachments to open: the explicit ones, plus the user-mode link for every declared
 * device that has none; the published ports go to their user-mode device. Throws a TenderError
 * for a `-p` that names no user-mode device.
 */
export function resolveNets(image: Image, nets: ReadonlyMap<string, NetAttachment>, publish: readonly PortMapping[]): Map<string, NetAttachment> {
  const { manifest } = image;
  const declared = manifest.net.join(", ") || "none";
  // As checkDevices says it, but before any -p complaint: the --net mistake comes first.
  for (const name of nets.keys()) {
    if (!manifest.net.includes(name)) throw new TenderError(`--net ${name}=...: image '${manifest.name}' declares no net device '${name}' (its net devices: ${declared})`);
  }
  const resolved = new Map<string, NetAttachment>(nets);
  for (const name of manifest.net) if (!resolved.has(name)) resolved.set(name, { kind: "user", publish: [] });
  const users = [...resolved].filter(([, attachment]) => attachment.kind === "user").map(([name]) => name);
  const byDevice = new Map<string, PortMapping[]>();
  for (const mapping of publish) {
    let device = mapping.device;
    if (device === undefined) {
      if (manifest.net.length === 0) throw new TenderError(`-p ${mapping.spec}: image '${manifest.name}' declares no net device to publish a port of`);
      if (users.length !== 1) {
        throw new TenderError(
          users.length === 0
            ? `-p ${mapping.spec}: no net device is on the user-mode link (the others are TAPs); attach one with --net ${manifest.net[0] ?? "<dev>"}=user`
            : `-p ${mapping.spec}: several user-mode net devices (${users.join(", ")}): name one, e.g. -p ${users[0] ?? ""}=${mapping.spec}`,
        );
      }
      device = users[0] as string;
    }
    if (!manifest.net.includes(device)) {
      throw new TenderError(`-p ${mapping.spec}: image '${manifest.name}' declares no net device '${device}' (its net devices: ${declared})`);
    }
    if (resolved.get(device)?.kind !== "user") throw new TenderError(`-p ${mapping.spec}: net device '${device}' is on a TAP; publishing ports needs --net ${device}=user`);
    byDevice.set(device, [...(byDevice.get(device) ?? []), mapping]);
  }
  for (const [device, mappings] of byDevice) resolved.set(device, { kind: "user", publish: mappings });
  return resolved;
}

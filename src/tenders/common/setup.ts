/**
 * What every tender does before an image runs, whatever holds it afterwards: read and verify the
 * image, check its declared devices against the attached ones, open those devices, assemble the
 * command line (the V8 code cache is code-cache.ts). The `node` tender (src/tenders/node/) and the `spt`
 * tender (src/tenders/spt/) share these so that both refuse the same mistakes with the same words.
 */
import { randomBytes } from "node:crypto";
import { closeSync } from "node:fs";
import { ABI_VERSION, ETHERNET_HEADER_ROOM, type CommandLine } from "../../abi/base.ts";
import { NotRegularFileError, openImageFd, readImage, readImageFd } from "../../image/file.ts";
import { decodeImage, ImageError, type Image } from "../../image/format.ts";
import type { CodeCacheRejection } from "./code-cache.ts";
import { USER_GATEWAY_ADDRESS, type NetAttachment, type OffloadMode, type PortMapping } from "./attachments.ts";
import type { HostNetBackend } from "./devices.ts";
import { TenderError } from "./errors.ts";
import { escapeLine } from "./terminal-text.ts";
import { TAP_OFFLOAD_MAX_FRAME, type TapHandle } from "./tap.ts";

/** Milestones of a boot, in ms since the process started (performance.now()), for bench:boot (spt adds its own). */
export interface BootTrace {
  tenderStart: number;
  imageRead: number;
  imageVerified: number;
  devicesOpen: number;
  contextReady: number;
  imageEvaluated: number;
  startCalled: number;
  codeCache: "hit" | "miss" | "off";
  /** Why a cache file was there but not used (deleted, and rebuilt on this miss). */
  codeCacheRejected?: CodeCacheRejection | undefined;
}

/** The attachments and boot parameters of `atoll run`, as both tenders receive them. */
export interface DeviceOptions {
  /** Device name → how to attach it (a declared device without one gets the user-mode link). */
  readonly nets: ReadonlyMap<string, NetAttachment>;
  /** `-p`: host ports published to the user-mode device. */
  readonly publish?: readonly PortMapping[] | undefined;
  /** Device name → "addr/len" or "addr/len@gateway" (already validated). */
  readonly ipv4: ReadonlyMap<string, string>;
  readonly blocks: ReadonlyMap<string, string>;
  readonly pcaps: ReadonlyMap<string, string>;
  readonly log?: string | undefined;
  readonly args: readonly string[];
}

function imageFileError(path: string, error: unknown): TenderError {
  if (error instanceof NotRegularFileError && error.kind !== "a directory") return new TenderError(error.message);
  if (error instanceof ImageError) return new TenderError(`${path}: ${escapeLine(error.message)}`);
  const code = error instanceof Error && "code" in error ? String(error.code) : "";
  if (code === "ENOENT") return new TenderError(`image ${path} does not exist: build one with \`atoll build <appdir>\``);
  if (code === "EISDIR" || error instanceof NotRegularFileError) return new TenderError(`${path} is a directory without atoll.config.ts: give an .atoll image or an appliance directory`);
  return new TenderError(`cannot read image ${path}: ${error instanceof Error ? error.message : String(error)}`);
}

export function readImageFile(path: string): Buffer {
  try {
    return readImage(path);
  } catch (error) {
    throw imageFileError(path, error);
  }
}

/** Opens the image read-only, for a tender that hands the very file it verified to another process. */
export function openImageFile(path: string): { readonly fd: number; readonly bytes: Buffer } {
  let fd: number;
  try {
    fd = openImageFd(path);
  } catch (error) {
    throw imageFileError(path, error);
  }
  try {
    return { fd, bytes: readImageFd(fd) };
  } catch (error) {
    closeSync(fd);
    throw imageFileError(path, error);
  }
}

export function verifyImage(path: string, bytes: Uint8Array): Image {
  try {
    return decodeImage(bytes);
  } catch (error) {
    // The message may quote the image (a manifest's unknown field name): shown escaped.
    if (error instanceof ImageError) throw new TenderError(`${path}: ${escapeLine(error.message)}`);
    throw error;
  }
}

/** Checks that the image's declared devices and the attached ones match exactly. */
export function checkDevices(image: Image, options: Pick<DeviceOptions, "nets" | "ipv4" | "blocks" | "pcaps">): void {
  const { manifest } = image;
  if (manifest.abiVersion !== ABI_VERSION) {
    throw new TenderError(`image '${manifest.name}' speaks base ABI ${manifest.abiVersion}, this tender serves ${ABI_VERSION}: rebuild it with this atoll`);
  }
  const declared = (list: readonly string[]): string => (list.length === 0 ? "none" : list.join(", "));
  for (const name of manifest.net) {
    if (!options.nets.has(name)) {
      throw new TenderError(`image '${manifest.name}' needs net device '${name}': attach it with --net ${name}=tap:<iface>`);
    }
  }
  for (const name of manifest.block) {
    if (!options.blocks.has(name)) {
      throw new TenderError(`image '${manifest.name}' needs block device '${name}': attach it with --block ${name}=<file>`);
    }
  }
  const checkNetFlag = (flag: string, names: Iterable<string>): void => {
    for (const name of names) {
      if (!manifest.net.includes(name)) {
        throw new TenderError(`${flag} ${name}=...: image '${manifest.name}' declares no net device '${name}' (its net devices: ${declared(manifest.net)})`);
      }
    }
  };
  checkNetFlag("--net", options.nets.keys());
  checkNetFlag("--ipv4", options.ipv4.keys());
  checkNetFlag("--pcap", options.pcaps.keys());
  for (const name of options.blocks.keys()) {
    if (!manifest.block.includes(name)) {
      throw new TenderError(`--block ${name}=...: image '${manifest.name}' declares no block device '${name}' (its block devices: ${declared(manifest.block)})`);
    }
  }
}

/** A random locally administered unicast MAC (RFC 7042 §2.1: the U/L bit set, the I/G bit clear). */
export function randomMac(): Uint8Array {
  const mac = new Uint8Array(randomBytes(6));
  mac[0] = ((mac[0] ?? 0) & 0xfe) | 0x02;
  return mac;
}

/** The base's view of a TAP. */
export function tapBackend(tap: TapHandle, options: { offload: OffloadMode } = { offload: "none" }): HostNetBackend {
  const mode = options.offload;
  return {
    fd: tap.fd,
    mtu: tap.mtu,
    read: (buffer) => tap.read(buffer),
    write: (frame) => tap.write(frame),
    close: () => tap.close(),
    offloads:
      mode === "none"
        ? undefined
        : {
            enable: () => {
              if (tap.enableOffloads(mode === "all") !== 0) return 0;
              return mode === "all" ? TAP_OFFLOAD_MAX_FRAME : tap.mtu + ETHERNET_HEADER_ROOM;
            },
            read: (buffer, meta) => tap.readWithMeta(buffer, meta),
            write: (frame, meta) => tap.writeWithMeta(frame, meta),
          },
  };
}

/** Boot parameters from the tender's flags (see CommandLine in src/abi/base.ts). */
export function commandLine(options: Pick<DeviceOptions, "ipv4" | "log" | "args" | "nets">): { args: string[]; params: Record<string, string> } {
  const params: Record<string, string> = {};
  for (const [name, value] of options.ipv4) params[`net.${name}.ipv4`] = value;
  // The user-mode gateway relays published TCP ports with a PROXY protocol v2 header naming the
  // client; only connections from its address may carry one (see src/lib/net/tcp/proxy-header.ts).
  for (const [name, attachment] of options.nets) if (attachment.kind === "user") params[`net.${name}.proxy-protocol`] = USER_GATEWAY_ADDRESS;
  if (options.log !== undefined) params.log = options.log;
  return { args: [...options.args], params };
}

export function frozenCommandLine(options: Pick<DeviceOptions, "ipv4" | "log" | "args" | "nets">): CommandLine {
  const { args, params } = commandLine(options);
  return Object.freeze({ args: Object.freeze(args), params: Object.freeze(params) });
}

/**
 * The host side of an image's devices, as every tender's base sees them: a net device's backend
 * (a TAP or the user-mode link), its capture, a block device's file, and what a frame read means
 * for the base's netRead.
 */
import { Status, type NetFrameMeta } from "../../abi/base.ts";
import type { FileBlockDevice } from "./block.ts";
import { EAGAIN } from "./errors.ts";
import type { PcapWriter } from "./pcap.ts";

/**
 * Thrown by a backend's read when the device's host side is gone for good (the user-mode
 * network's gateway process exited): the tender ends the appliance with one line saying so,
 * rather than handing it an EIO that it would report as a stack trace from deep in its stack.
 */
export class NetDeviceGone extends Error {
  override readonly name = "NetDeviceGone";
}

/** A host-side net backend: a TAP or the user-mode link. */
export interface HostNetBackend {
  /** File descriptor to poll for input. */
  readonly fd: number;
  readonly mtu: number;
  /** Reads one frame: its length, 0 when none is pending, or a negative errno; throws NetDeviceGone when the device is gone for good. */
  read(buffer: Uint8Array): number;
  /** Writes one frame: bytes written or a negative errno. */
  write(frame: Uint8Array): number;
  close(): void;
  /** Checksum and TCP segmentation offloads, on a backend that has them (a vnet-header TAP). */
  readonly offloads?: HostNetOffloads | undefined;
}

export interface HostNetOffloads {
  /** Turns them on for good: returns the largest frame from then on, or 0 when the host refused. */
  enable(): number;
  /** As HostNetBackend.read, filling `meta` (the base ABI's NetFrameMeta). */
  read(buffer: Uint8Array, meta: NetFrameMeta): number;
  /** As HostNetBackend.write, with `meta`. */
  write(frame: Uint8Array, meta: NetFrameMeta): number;
}

export interface HostNet {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly backend: HostNetBackend;
  readonly pcap?: PcapWriter | undefined;
}

export interface HostBlock {
  readonly name: string;
  readonly device: FileBlockDevice;
}

/** Where a frame read's failures go: the base's abort and warn hooks. */
export interface FrameReadHooks {
  readonly onAbort: (reason: string) => never;
  readonly warn: (message: string) => void;
}

/**
 * One backend read of net device `net`, as the base's netRead returns it: the frame's length
 * (> 0), AGAIN when no frame is pending (0 or EAGAIN from the backend), or EIO with a warning for
 * any other failure. A device gone for good (NetDeviceGone) ends the appliance through `onAbort`.
 */
export function readFrame(net: HostNet, read: () => number, hooks: FrameReadHooks): number {
  let n: number;
  try {
    n = read();
  } catch (error) {
    if (error instanceof NetDeviceGone) return hooks.onAbort(`net device '${net.name}': ${error.message}`);
    hooks.warn(`net device '${net.name}': read failed: ${error instanceof Error ? error.message : String(error)}`);
    return Status.EIO;
  }
  if (n === 0 || n === -EAGAIN) return Status.AGAIN;
  if (n < 0) {
    hooks.warn(`net device '${net.name}': read failed (errno ${-n})`);
    return Status.EIO;
  }
  return n;
}

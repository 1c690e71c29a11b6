/**
 * What the bases served from this host share, whether the image holds them directly (the node
 * tender's base.ts) or through sealed gates (the spt tender's sealed.ts): their options, console
 * writes, handle checks and the waiting half of yield.
 */
import { writeSync } from "node:fs";
import { types } from "node:util";
import { ConsoleStream, Status, type CommandLine } from "../../abi/base.ts";
import type { HostBlock, HostNet } from "./devices.ts";
import type { PcapWriter } from "./pcap.ts";
import type { SourcePositions } from "./source-positions.ts";

export interface HostBaseOptions {
  readonly cmdline: CommandLine;
  readonly nets: readonly HostNet[];
  readonly blocks: readonly HostBlock[];
  /** Longest single wait in yield; the inspector needs the event loop to turn now and then. */
  readonly maxWaitNs: number;
  readonly poll: (fds: Int32Array, timeoutNs: number) => number;
  readonly onExit: (code: number) => never;
  readonly onAbort: (reason: string) => never;
  /** Called for host-side I/O failures worth a line on stderr. */
  readonly warn: (message: string) => void;
  /** The image's assets section, served by `assets()`. */
  readonly assets?: Uint8Array | undefined;
  /** Maps image positions in console writes to source positions (absent: written as they are). */
  readonly positions?: SourcePositions | undefined;
}

/** The most bytes one entropy call fills (the base ABI's limit). */
export const MAX_ENTROPY = 65536;

/** yield waits at most this long at once, so that the event loop turns (and signals are handled). */
export const MAX_WAIT_NS = 3_600_000_000_000;

/** Whether `value` is a device handle: an integer from 0 to count - 1. */
export function isHandle(value: unknown, count: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value < count;
}

/**
 * %TypedArray%.prototype's own accessors, taken from the host's realm before any image runs. They
 * read a typed array's internal slots whatever realm it comes from, so a `length`, `byteLength`,
 * `byteOffset` or `buffer` getter that the image defines on an array, on a subclass or on its
 * realm's prototypes is never consulted.
 */
const typedArrayPrototype: unknown = Object.getPrototypeOf(Uint8Array.prototype);
const intrinsicBuffer = typedArrayAccessor("buffer");
const intrinsicByteOffset = typedArrayAccessor("byteOffset");
const intrinsicLength = typedArrayAccessor("length");

/** `get(view)` calls the accessor with `view` as its receiver (bound once: this is on every netRead and netWrite). */
function typedArrayAccessor(name: string): (view: unknown) => unknown {
  const descriptor = typeof typedArrayPrototype === "object" && typedArrayPrototype !== null ? Object.getOwnPropertyDescriptor(typedArrayPrototype, name) : undefined;
  const getter: unknown = descriptor?.get;
  if (typeof getter !== "function") throw new Error(`%TypedArray%.prototype.${name} has no getter`);
  const get: (view: unknown) => unknown = Function.prototype.call.bind(getter);
  return get;
}

/**
 * The bytes of an image's `Uint8Array` (of any realm, a subclass, a Buffer) as a Uint8Array of the
 * host's realm over the same memory, or undefined for anything else (a DataView, another typed
 * array, a Proxy, a detached or out-of-bounds view). Every length and offset the host computes
 * must come from the result, never from the image's object: the image's `length` and
 * `byteLength` can be getters that lie, or change between two reads, and Node's own I/O calls
 * trust them (a lying length once moved a block write 65,024 bytes past a device's end, and made
 * `randomFillSync` fail a C++ assertion).
 */
export function hostBytes(value: unknown): Uint8Array | undefined {
  // isUint8Array reads V8's internal type, so a Proxy or an object faking Symbol.toStringTag fails.
  if (!types.isUint8Array(value)) return undefined;
  const buffer = intrinsicBuffer(value);
  const byteOffset = intrinsicByteOffset(value);
  const length = intrinsicLength(value);
  if (!(types.isArrayBuffer(buffer) || types.isSharedArrayBuffer(buffer)) || typeof byteOffset !== "number" || typeof length !== "number") return undefined;
  try {
    // Throws for a detached buffer (its view's length reads 0, but it has no memory to lend).
    return new Uint8Array(buffer, byteOffset, length);
  } catch {
    return undefined;
  }
}

/** The host file descriptor of a consoleWrite stream (absent: standard output), or undefined for an unknown one. */
export function consoleFd(stream: unknown): number | undefined {
  if (stream === undefined || stream === ConsoleStream.STDOUT) return 1;
  if (stream === ConsoleStream.STDERR) return 2;
  return undefined;
}

/** Writes all of `bytes` to console fd `fd`: OK, or EIO when the host would not take them. */
export function writeConsole(fd: number, bytes: Uint8Array): number {
  let done = 0;
  for (let attempts = 0; done < bytes.length && attempts < 1000; attempts++) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (error) {
      // A non-blocking stdout (a pipe) can say EAGAIN: retry a little, then drop, as a console may.
      if (!(error instanceof Error && "code" in error && error.code === "EAGAIN")) return Status.EIO;
    }
  }
  return done === bytes.length ? Status.OK : Status.EIO;
}

export interface InputWaiterOptions {
  readonly poll: (fds: Int32Array, timeoutNs: number) => number;
  readonly maxWaitNs: number;
  /** The acquired devices' fds (-1 for the others), by handle. */
  readonly pollFds: Int32Array;
  /** Captures to flush before sleeping, so a capture is complete whenever the appliance idles. */
  readonly captures: readonly PcapWriter[];
  readonly monotonic: () => number;
}

/**
 * The waiting half of yield, shared by the tenders: polls the acquired devices until input or the
 * deadline, in event-loop turns. Each turn starts from setImmediate, so the image's pending
 * continuations have drained first (the ABI's promise), and signals and the inspector get the
 * event loop between waits (a wait lasts at most maxWaitNs).
 */
export function inputWaiter(options: InputWaiterOptions): (deadline: number, done: (ready: number) => void) => void {
  const { poll, maxWaitNs, pollFds, captures, monotonic } = options;
  const wait = (deadline: number): number => {
    const timeout = Math.min(deadline - monotonic(), maxWaitNs);
    if (timeout > 0) for (const capture of captures) capture.flush();
    const ready = poll(pollFds, timeout > 0 ? timeout : 0);
    return ready < 0 ? 0 : ready;
  };
  return (deadline, done) => {
    const turn = (): void => {
      const ready = wait(deadline);
      // Woken early (the wait cap, or a signal): let the event loop turn, then wait again.
      if (ready === 0 && monotonic() < deadline) setImmediate(turn);
      else done(ready);
    };
    setImmediate(turn);
  };
}

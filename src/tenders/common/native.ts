/**
 * Loader for the `atoll_native` N-API addon (native/atoll_native.c), which gives the tenders and
 * the user-mode gateway the Linux calls Node lacks: attaching to a TAP device, polling raw fds,
 * the user-mode link's socketpair.
 *
 * The addon lives under the package root's build/Release/ (see src/host/package-root.ts).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { currentFile, packageRoot } from "../../host/package-root.ts";

/** The addon's exports; see native/atoll_native.c for the exact contract of each call. */
export interface NativeAddon {
  /** Attaches to an existing TAP interface; returns a non-blocking, close-on-exec fd. Throws an
   * Error with `code` (errno name) and `syscall` on failure, ENODEV if the interface is absent. */
  tapOpen(name: string, vnetHeader?: boolean): number;
  /** TUNSETOFFLOAD with TUN_F_* flags on a vnet-header TAP: 0 or a negative errno. */
  tapSetOffload(fd: number, flags: number): number;
  /** readv into `head` then `buf`: the bytes that landed in `buf`, or a negative errno (-EIO when shorter than `head`). */
  readv2(fd: number, head: Uint8Array, buf: Uint8Array): number;
  /** writev of `head` then `buf`: the bytes of `buf` written, or a negative errno. */
  writev2(fd: number, head: Uint8Array, buf: Uint8Array): number;
  /** The interface's MTU (SIOCGIFMTU). Throws like tapOpen. */
  ifMtu(name: string): number;
  /** Bytes read into `buf` (honouring its byteOffset/length), or a negative errno (-11 when empty). */
  read(fd: number, buf: Uint8Array): number;
  /** Bytes written, or a negative errno. */
  write(fd: number, buf: Uint8Array): number;
  /** ppoll for POLLIN on up to 32 fds: bit i set when fds[i] is readable or in error, 0 on timeout
   * or signal, a negative errno on failure. `timeoutNs` <= 0 polls without waiting. */
  poll(fds: Int32Array, timeoutNs: number): number;
  /** Closes the fd; throws only on EBADF, which means a double close. */
  close(fd: number): void;
  /** Two connected AF_UNIX sockets keeping message boundaries (default SOCK_SEQPACKET),
   * non-blocking and close-on-exec, with deep send buffers: the user-mode link (src/tenders/user). */
  socketpair(type?: "seqpacket" | "dgram"): [number, number];
  /** ppoll for POLLOUT: 1 when writable, 0 on timeout or signal, a negative errno on failure. */
  waitWritable(fd: number, timeoutNs: number): number;
  /** A libuv poll watcher (the event loop keeps turning): `events` and the callback's argument
   * are bit sets of 1 readable, 2 writable (and 4 error/hangup in the callback). */
  watch(fd: number, events: number, callback: (events: number) => void): WatchHandle;
  /** Changes the watched events; 0 pauses. */
  rewatch(handle: WatchHandle, events: number): void;
  /** Stops the watcher for good (idempotent); the fd stays open. */
  unwatch(handle: WatchHandle): void;
  /**
   * Takes over SIGINT, SIGTERM and SIGHUP for the node tender (once per process; throws when armed
   * twice). The first of them calls `onSignal(signal number)` from the event loop, the orderly
   * path; if the process still exists `graceMs` later (the JS thread was busy), a native thread
   * fsyncs `syncFds`, writes `noteBefore` + the signal's name (SIGTERM) + `noteAfter` to stderr if
   * it takes them at once, and exits with 128 + the signal. A second signal exits at once.
   * JS must not also register process.on for these signals: libuv would replace the handler.
   */
  armStopWatchdog(onSignal: (signal: number) => void, graceMs: number, syncFds: Int32Array, noteBefore: string, noteAfter: string): void;
}

/** An opaque libuv poll watcher from NativeAddon.watch. */
export type WatchHandle = { readonly __watch: unique symbol };

const ADDON_RELATIVE_PATH = join("build", "Release", "atoll_native.node");
const EXPECTED_FUNCTIONS = ["tapOpen", "ifMtu", "read", "write", "poll", "close", "socketpair", "waitWritable", "watch", "rewatch", "unwatch", "tapSetOffload", "readv2", "writev2", "armStopWatchdog"] as const;

let cached: NativeAddon | undefined;

/** Loads the addon once per process; throws a one-line Error saying how to fix a missing build. */
export function loadNative(): NativeAddon {
  if (cached !== undefined) return cached;
  const here = currentFile();
  const root = packageRoot();
  const addonPath = join(root, ADDON_RELATIVE_PATH);
  if (!existsSync(addonPath)) {
    throw new Error(
      `atoll: native addon not built (build/Release/atoll_native.node missing): run \`npm run build:native\` in ${root}`,
    );
  }
  let loaded: unknown;
  try {
    loaded = createRequire(here)(addonPath);
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new Error(`atoll: native addon ${addonPath} failed to load (${reason}): run \`npm run build:native\` in ${root}`);
  }
  // A build from an older checkout would otherwise fail later with "x is not a function".
  const missing = EXPECTED_FUNCTIONS.filter((name) => !hasFunction(loaded, name));
  if (missing.length > 0) {
    throw new Error(
      `atoll: native addon ${addonPath} is out of date (missing ${missing.join(", ")}): run \`npm run build:native\``,
    );
  }
  cached = loaded as NativeAddon;
  return cached;
}

function hasFunction(value: unknown, name: string): boolean {
  return typeof value === "object" && value !== null && typeof Reflect.get(value, name) === "function";
}

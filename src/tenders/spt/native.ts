/**
 * Loader for the `atoll_spt` N-API addon (native/atoll_seccomp.c, native/atoll_heap_limit.cc):
 * namespaces, privileges and the seccomp filter, which Node cannot reach.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { currentFile, packageRoot } from "../../host/package-root.ts";

/** One comparison on a system call argument; values are decimal strings so that 64-bit masks survive JS numbers. */
export interface ArgumentCheck {
  readonly arg: 0 | 1 | 2 | 3 | 4 | 5;
  readonly op: "eq" | "ne" | "lt" | "le" | "ge" | "gt" | "maskedEq";
  readonly value: string;
  /** For maskedEq: the check is (argument & mask) == value. */
  readonly mask?: string;
}

/** Allows `syscall` when every check holds. Several rules for one call are alternatives. */
export interface FilterRule {
  readonly syscall: string;
  readonly checks: readonly ArgumentCheck[];
}

export interface ChildStatus {
  /** Exit status when the child exited, else null. */
  readonly code: number | null;
  /** Number of the signal that killed the child, else null. */
  readonly signal: number | null;
}

/** The addon's exports; see native/atoll_seccomp.c for the exact contract of each call. */
export interface SptAddon {
  /** A connected AF_UNIX stream pair, both ends close-on-exec. */
  socketPair(): [number, number];
  /** Starts `file` with fds[i] as its fd i and no other fd, in new mount/PID/IPC/net namespaces when
   * `isolate`. The child dies with SIGKILL if the calling thread ends. Returns its pid. */
  spawnSealed(file: string, argv: readonly string[], env: readonly string[], fds: Int32Array, isolate: boolean): number;
  /** As spawnSealed, for the user-mode network gateway: with `isolate`, in a new mount namespace
   * only (it keeps the host's network, where it publishes ports). */
  spawnGateway(file: string, argv: readonly string[], env: readonly string[], fds: Int32Array, isolate: boolean): number;
  /** Resolves once the child has ended (waits on a libuv worker thread). */
  waitChild(pid: number): Promise<ChildStatus>;
  /** Warms glibc's malloc, ignores SIGUSR1 (Node's inspector trigger), disables core dumps. */
  prepare(): void;
  /** Replaces the mount namespace's view with one empty read-only tmpfs (needs CAP_SYS_ADMIN). */
  enterEmptyRoot(): void;
  /** Becomes uid:gid with no groups and no capabilities; throws if any capability is left. */
  dropPrivileges(uid: number, gid: number): void;
  /** The allowlist as a BPF program ("bpf") or as libseccomp's readable listing ("pfc"). */
  compileFilter(rules: readonly FilterRule[], format: "bpf" | "pfc"): Buffer;
  /** PR_SET_NO_NEW_PRIVS, then seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC). */
  installFilter(program: Uint8Array): void;
  /** From now on, a V8 heap about to exceed its limit prints `message` and exits with `status`. */
  exitOnHeapLimit(message: string, status: number): void;
  /**
   * From now on, V8 running out of memory prints `outOfMemory` + " [V8: <where>]" and exits with
   * `outOfMemoryStatus`; a V8 fatal error or any SIGABRT prints `fatal` + the reason and exits with
   * `fatalStatus` (instead of Node's report, backtrace and abort()).
   */
  exitOnEngineFailure(outOfMemory: string, outOfMemoryStatus: number, fatal: string, fatalStatus: number): void;
  /** RLIMIT_DATA (soft and hard) of this process, in bytes. */
  limitData(bytes: number): void;
}

const ADDON_RELATIVE_PATH = join("build", "Release", "atoll_spt.node");
const EXPECTED_FUNCTIONS = [
  "socketPair",
  "spawnSealed",
  "spawnGateway",
  "waitChild",
  "prepare",
  "enterEmptyRoot",
  "dropPrivileges",
  "compileFilter",
  "installFilter",
  "exitOnHeapLimit",
  "exitOnEngineFailure",
  "limitData",
] as const;

let cached: SptAddon | undefined;

/** Loads the addon once per process; throws a one-line Error saying how to fix a missing build. */
export function loadSptNative(): SptAddon {
  if (cached !== undefined) return cached;
  const addonPath = join(packageRoot(), ADDON_RELATIVE_PATH);
  if (!existsSync(addonPath)) {
    throw new Error("atoll: the spt tender's addon is not built (build/Release/atoll_spt.node missing): install libseccomp-dev and run `npm run build:native`");
  }
  let loaded: unknown;
  try {
    loaded = createRequire(currentFile())(addonPath);
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new Error(`atoll: the spt tender's addon ${addonPath} failed to load (${reason}): run \`npm run build:native\``);
  }
  const missing = EXPECTED_FUNCTIONS.filter((name) => !hasFunction(loaded, name));
  if (missing.length > 0) {
    throw new Error(`atoll: the spt tender's addon ${addonPath} is out of date (missing ${missing.join(", ")}): run \`npm run build:native\``);
  }
  // Checked just above, function by function: the shape is the one this file declares.
  cached = loaded as SptAddon;
  return cached;
}

function hasFunction(value: unknown, name: string): boolean {
  return typeof value === "object" && value !== null && typeof Reflect.get(value, name) === "function";
}

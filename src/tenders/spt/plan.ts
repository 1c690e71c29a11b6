/**
 * The boot plan: what the launcher tells the appliance process, as one JSON line on the control
 * socket (fd 3), and what the appliance process sends back on the same socket: READY_LINE once it
 * handles signals, then (when asked) the boot trace.
 *
 * The appliance process starts with exactly these fds, placed by the launcher:
 *   0 /dev/null, 1 stdout, 2 stderr, 3 the control socket, 4 the image file (read-only),
 *   5... the devices, in the order the plan lists them (each net's TAP, then its capture file
 *   if any; then each block file), then the code cache's (the authenticated cache file, if any;
 *   then the temporary file a miss writes).
 */
import { readSync } from "node:fs";

/** Set in the appliance process's environment: the number of its control fd. */
export const BOOT_FD_ENV = "ATOLL_SPT_BOOT_FD";
export const CONTROL_FD = 3;
export const IMAGE_FD = 4;
export const FIRST_DEVICE_FD = 5;

/** The unprivileged identity of an isolated appliance process: nobody:nogroup. */
export const APPLIANCE_UID = 65534;
export const APPLIANCE_GID = 65534;

export interface PlannedNet {
  readonly name: string;
  /** The TAP's interface name; "" (no interface has it) for the user-mode link's socket. */
  readonly ifname: string;
  readonly fd: number;
  readonly mtu: number;
  readonly mac: readonly number[];
  /** The capture's ring: one fd per file (opened by the launcher), each capped at maxBytes. */
  readonly pcap?: { readonly path: string; readonly fds: readonly number[]; readonly maxBytes: number } | undefined;
}

export interface PlannedBlock {
  readonly name: string;
  readonly path: string;
  readonly fd: number;
  readonly capacity: number;
}

/**
 * The code cache as the appliance process gets it: it opens no cache file and holds no key (the
 * launcher verified the directory and the MAC).
 */
export interface PlannedCodeCache {
  /** An authenticated cache: its payload (at CODE_CACHE_PAYLOAD_OFFSET) has this length and SHA-256. */
  readonly read?: { readonly fd: number; readonly length: number; readonly sha256: string } | undefined;
  /** The launcher's new temporary file: a miss writes V8's payload there and says CODE_CACHE_WRITTEN_LINE. */
  readonly write: number;
}

export interface BootPlan {
  /** The image's name (its manifest says so; checked again once the image is read). */
  readonly name: string;
  readonly imagePath: string;
  readonly nets: readonly PlannedNet[];
  readonly blocks: readonly PlannedBlock[];
  readonly cmdline: { readonly args: readonly string[]; readonly params: Readonly<Record<string, string>> };
  /** The process runs in namespaces of its own: it must enter an empty root and drop to uid:gid. */
  readonly isolate: boolean;
  readonly uid: number;
  readonly gid: number;
  /** --memory, when given: the V8 heap limit in MiB. */
  readonly memoryMiB?: number | undefined;
  /** The V8 code cache, handed over as fds (code-cache-handoff.ts); absent when caching is off. */
  readonly codeCache?: PlannedCodeCache | undefined;
  /** Send the boot trace back on the control socket. */
  readonly trace: boolean;
  /** The launcher's performance.timeOrigin, so that both processes' milestones share one clock. */
  readonly launcherTimeOrigin: number;
}

/**
 * The appliance process's first line on the control socket: its signal handlers are in place, so a
 * signal the launcher forwards from now on is handled (before, a PID 1 would have ignored it).
 */
export const READY_LINE = "ready";

/** Sent before READY_LINE when the appliance process wrote a code cache into the plan's `write` fd. */
export const CODE_CACHE_WRITTEN_LINE = "code-cache-written";

/** spawnSealed hands the appliance process at most this many fds (MAX_CHILD_FDS in native/atoll_seccomp.c). */
export const MAX_APPLIANCE_FDS = 64;

/** Milestones the appliance process reports, in ms since the launcher started. */
export interface ApplianceTrace {
  applianceStart: number;
  contextReady: number;
  lockedDown: number;
  imageEvaluated: number;
  startCalled: number;
  codeCache: "hit" | "miss" | "off";
}

export class BootPlanError extends Error {
  override readonly name = "BootPlanError";
}

const MAX_PLAN_BYTES = 1 << 20;

/** Reads the plan's line from the control socket (blocking: the launcher writes it right after spawning). */
export function readBootPlan(fd: number): BootPlan {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.alloc(16384);
    const n = readSync(fd, chunk, 0, chunk.length, null);
    if (n === 0) throw new BootPlanError("the launcher closed the control socket before sending the boot plan");
    chunks.push(chunk.subarray(0, n));
    total += n;
    if (chunk.subarray(0, n).includes(0x0a)) break;
    if (total > MAX_PLAN_BYTES) throw new BootPlanError("the boot plan is too long");
  }
  const line = Buffer.concat(chunks).toString("utf8");
  const parsed: unknown = JSON.parse(line.slice(0, line.indexOf("\n")));
  return checkBootPlan(parsed);
}

function field(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null ? Reflect.get(value, key) : undefined;
}

function expect<T>(value: unknown, what: string, check: (value: unknown) => value is T): T {
  if (!check(value)) throw new BootPlanError(`malformed boot plan: ${what}`);
  return value;
}

const isString = (value: unknown): value is string => typeof value === "string";
const isSha256 = (value: unknown): value is string => typeof value === "string" && /^[0-9a-f]{64}$/.test(value);
const isBoolean = (value: unknown): value is boolean => typeof value === "boolean";
const isFd = (value: unknown): value is number => typeof value === "number" && Number.isInteger(value) && value >= FIRST_DEVICE_FD;
const isCount = (value: unknown): value is number => typeof value === "number" && Number.isInteger(value) && value >= 0;
const isList = (value: unknown): value is unknown[] => Array.isArray(value);
const isByteList = (value: unknown): value is number[] =>
  Array.isArray(value) && value.every((item) => typeof item === "number" && Number.isInteger(item) && item >= 0 && item <= 255);
const isFdList = (value: unknown): value is number[] => Array.isArray(value) && value.length > 0 && value.every(isFd);
const isStringList = (value: unknown): value is string[] => Array.isArray(value) && value.every(isString);
const isStringRecord = (value: unknown): value is Record<string, string> =>
  typeof value === "object" && value !== null && !Array.isArray(value) && Object.values(value).every(isString);

/** The launcher and the appliance process run the same atoll; this only guards against surprises. */
function checkBootPlan(value: unknown): BootPlan {
  const nets = expect(field(value, "nets"), "nets", isList).map((net, index): PlannedNet => {
    const pcap = field(net, "pcap");
    return {
      name: expect(field(net, "name"), `nets[${index}].name`, isString),
      ifname: expect(field(net, "ifname"), `nets[${index}].ifname`, isString),
      fd: expect(field(net, "fd"), `nets[${index}].fd`, isFd),
      mtu: expect(field(net, "mtu"), `nets[${index}].mtu`, isCount),
      mac: expect(field(net, "mac"), `nets[${index}].mac`, isByteList),
      pcap:
        pcap === undefined
          ? undefined
          : {
              path: expect(field(pcap, "path"), "pcap.path", isString),
              fds: expect(field(pcap, "fds"), "pcap.fds", isFdList),
              maxBytes: expect(field(pcap, "maxBytes"), "pcap.maxBytes", isCount),
            },
    };
  });
  const blocks = expect(field(value, "blocks"), "blocks", isList).map((block, index): PlannedBlock => ({
    name: expect(field(block, "name"), `blocks[${index}].name`, isString),
    path: expect(field(block, "path"), `blocks[${index}].path`, isString),
    fd: expect(field(block, "fd"), `blocks[${index}].fd`, isFd),
    capacity: expect(field(block, "capacity"), `blocks[${index}].capacity`, isCount),
  }));
  const cmdline = field(value, "cmdline");
  const memory = field(value, "memoryMiB");
  const cache = field(value, "codeCache");
  const cacheRead = field(cache, "read");
  return {
    name: expect(field(value, "name"), "name", isString),
    imagePath: expect(field(value, "imagePath"), "imagePath", isString),
    nets,
    blocks,
    cmdline: { args: expect(field(cmdline, "args"), "cmdline.args", isStringList), params: expect(field(cmdline, "params"), "cmdline.params", isStringRecord) },
    isolate: expect(field(value, "isolate"), "isolate", isBoolean),
    uid: expect(field(value, "uid"), "uid", isCount),
    gid: expect(field(value, "gid"), "gid", isCount),
    memoryMiB: memory === undefined ? undefined : expect(memory, "memoryMiB", isCount),
    codeCache:
      cache === undefined
        ? undefined
        : {
            read:
              cacheRead === undefined
                ? undefined
                : {
                    fd: expect(field(cacheRead, "fd"), "codeCache.read.fd", isFd),
                    length: expect(field(cacheRead, "length"), "codeCache.read.length", isCount),
                    sha256: expect(field(cacheRead, "sha256"), "codeCache.read.sha256", isSha256),
                  },
            write: expect(field(cache, "write"), "codeCache.write", isFd),
          },
    trace: expect(field(value, "trace"), "trace", isBoolean),
    launcherTimeOrigin: expect(field(value, "launcherTimeOrigin"), "launcherTimeOrigin", (item): item is number => typeof item === "number"),
  };
}

/** Parses the appliance process's trace line; undefined when it is not one. */
export function parseApplianceTrace(line: string): ApplianceTrace | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const number = (key: string): number | undefined => {
    const item = field(value, key);
    return typeof item === "number" ? item : undefined;
  };
  const codeCache = field(value, "codeCache");
  const applianceStart = number("applianceStart");
  const contextReady = number("contextReady");
  const lockedDown = number("lockedDown");
  const imageEvaluated = number("imageEvaluated");
  const startCalled = number("startCalled");
  if (applianceStart === undefined || contextReady === undefined || lockedDown === undefined || imageEvaluated === undefined || startCalled === undefined) return undefined;
  if (codeCache !== "hit" && codeCache !== "miss" && codeCache !== "off") return undefined;
  return { applianceStart, contextReady, lockedDown, imageEvaluated, startCalled, codeCache };
}

/**
 * Tender glue for the user-mode link: make the socketpair, start the gateway process on one end
 * (`node build/atoll.cjs __gateway <config>`, the end as its fd 3, a stream socket as its stdin
 * whose end of file tells it the tender is gone), wait for its READY line, and keep the other end.
 *
 * The gateway seals itself before READY (seal.ts): as root (CAP_SYS_ADMIN) it is started in a mount
 * namespace of its own (spawnGateway, from the spt tender's addon) so that it can enter an empty root. An addon
 * built without libseccomp cannot build its filter: the gateway then runs with the rest of its
 * seal and a one-line warning naming the fix, because user-mode networking is the default and the
 * README's first command must work on a machine without libseccomp's headers. An addon that does
 * not load at all seals nothing: the tender refuses, unless ATOLL_GATEWAY_UNSEALED=1 (docs/cli.md).
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../../host/package-root.ts";
import type { PortMapping } from "../common/attachments.ts";
import { TenderError } from "../common/errors.ts";
import type { NativeAddon } from "../common/native.ts";
import { loadSptNative, type SptAddon } from "../spt/native.ts";
import { APPLIANCE_GID, APPLIANCE_UID } from "../spt/plan.ts";
import { CONTROL_ERROR, CONTROL_READY, type GatewayConfig } from "./gateway.ts";
import type { GatewaySeal } from "./seal.ts";

/** Node's boot plus the bundle's load; generous for a loaded machine. */
const READY_TIMEOUT_NS = 15_000_000_000;
/** The explicit opt-in to an unsealed gateway, for hosts whose spt addon does not load. */
export const UNSEALED_ENV = "ATOLL_GATEWAY_UNSEALED";

export interface StartedGateway {
  /** The tender's end of the link: non-blocking, close-on-exec. */
  readonly fd: number;
  readonly pid: number;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error)).replace(/^atoll: /, "");
}

/** What the tender may do for its gateway: the steps of the seal that need privileges. */
export interface TenderPrivileges {
  /** CAP_SYS_ADMIN: a mount namespace of its own and the empty root in it. */
  readonly emptyRoot: boolean;
  /** CAP_SETUID, CAP_SETGID and CAP_SETPCAP: nobody, no groups, an empty bounding set. */
  readonly dropPrivileges: boolean;
}

// Capability numbers (include/uapi/linux/capability.h).
const CAP_SETGID = 6n;
const CAP_SETUID = 7n;
const CAP_SETPCAP = 8n;
const CAP_SYS_ADMIN = 21n;

/**
 * The privileges a process has, from its /proc/<pid>/status (CapEff, the effective set): root on a
 * host has them all; root in a default Docker container lacks CAP_SYS_ADMIN (so no mount
 * namespace) but may still change uids; an ordinary user has none.
 */
export function tenderPrivileges(status: string): TenderPrivileges {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  const effective = hex === undefined ? 0n : BigInt(`0x${hex}`);
  const has = (cap: bigint): boolean => (effective & (1n << cap)) !== 0n;
  return { emptyRoot: has(CAP_SYS_ADMIN), dropPrivileges: has(CAP_SETUID) && has(CAP_SETGID) && has(CAP_SETPCAP) };
}

/**
 * How the gateway of `device` is to seal itself here: in an empty root and as nobody as far as the
 * tender's `privileges` allow, and always filtered when the addon can build a filter. With an
 * addon built without libseccomp it runs unfiltered (still in the empty root as nobody, as root)
 * and the plan carries a one-line warning naming the fix, for stderr: a refusal would break the
 * default network of every `atoll run` on a host without libseccomp-dev (the README's demo among
 * them), for a filter that is defence in depth behind the empty root and the dropped privileges.
 */
export function planGatewaySeal(device: string, spt: Pick<SptAddon, "compileFilter">, privileges: TenderPrivileges): { seal: GatewaySeal; warning?: string } {
  const seal = { ...privileges, uid: APPLIANCE_UID, gid: APPLIANCE_GID, filter: true };
  try {
    // An empty allowlist compiles wherever libseccomp is linked in; without it the addon says so.
    spt.compileFilter([], "bpf");
  } catch (error) {
    return { seal: { ...seal, filter: false }, warning: `atoll: warning: net device '${device}': the user-mode network gateway runs without its seccomp filter: ${firstLine(error).replace(/^atoll: /, "")}` };
  }
  return { seal };
}

function cannotSeal(device: string): string {
  return `net device '${device}': the user-mode network gateway cannot be sealed`;
}

/**
 * Starts the gateway with spawnGateway: in a mount namespace of its own when `emptyRoot`, in a
 * session of its own, dying with this thread, with fds 0 a stream socket whose end of file means
 * the tender is gone (the other end, `aliveEnd`, stays open here and is never read), 1 /dev/null,
 * 2 our stderr, 3 the link, and an empty environment (NODE_OPTIONS must not reach it).
 */
function spawnSealable(spt: SptAddon, argv: readonly string[], link: number, emptyRoot: boolean): { pid: number; aliveEnd: number } {
  const [aliveEnd, gatewayStdin] = spt.socketPair();
  const devNull = openSync("/dev/null", "w");
  try {
    return { pid: spt.spawnGateway(process.execPath, [process.execPath, ...argv], [], Int32Array.from([gatewayStdin, devNull, 2, link]), emptyRoot), aliveEnd };
  } catch (error) {
    closeSync(aliveEnd);
    throw error;
  } finally {
    closeSync(gatewayStdin);
    closeSync(devNull);
  }
}

/** Without the addon (ATOLL_GATEWAY_UNSEALED=1 only): a plain child, its stdin a pipe from us. */
function spawnUnsealed(argv: readonly string[], link: number): { pid: number } {
  const child = spawn(process.execPath, argv, { stdio: ["pipe", "ignore", "inherit", link], env: { ...process.env, NODE_OPTIONS: "" } });
  // A failed spawn shows as end of file on the link; its late 'error' event must not crash us.
  child.on("error", () => undefined);
  // Neither the child nor its stdin pipe may keep the tender alive; the pipe closes when we exit.
  child.unref();
  child.stdin?.on("error", () => undefined);
  if (child.stdin !== null && "unref" in child.stdin && typeof child.stdin.unref === "function") child.stdin.unref();
  if (child.pid === undefined) throw new Error(`cannot run ${process.execPath}`);
  return { pid: child.pid };
}

/** Starts the gateway of net device `device`; throws a one-line TenderError if it cannot. */
export function startGateway(native: NativeAddon, device: string, publish: readonly PortMapping[]): StartedGateway {
  const bundle = join(packageRoot(), "build", "atoll.cjs");
  if (!existsSync(bundle)) throw new TenderError(`the user-mode network gateway needs the CLI bundle (${bundle} is missing): run \`npm run build\``);
  let spt: SptAddon | undefined;
  let plan: { seal: GatewaySeal; warning?: string };
  try {
    spt = loadSptNative();
    plan = planGatewaySeal(device, spt, tenderPrivileges(readFileSync("/proc/self/status", "utf8")));
  } catch (error) {
    if (error instanceof TenderError) throw error;
    // The addon does not load (say, built for another Node major version): nothing can seal the gateway.
    if (process.env[UNSEALED_ENV] !== "1") throw new TenderError(`${cannotSeal(device)}: ${firstLine(error)}; or set ${UNSEALED_ENV}=1 to run it unsealed`);
    plan = {
      seal: { emptyRoot: false, dropPrivileges: false, uid: APPLIANCE_UID, gid: APPLIANCE_GID, filter: false },
      warning: `atoll: warning: net device '${device}': the user-mode network gateway runs unsealed (${UNSEALED_ENV}=1): ${firstLine(error)}`,
    };
  }
  const { seal, warning } = plan;
  if (warning !== undefined) process.stderr.write(`${warning}\n`);
  const config: GatewayConfig = {
    device,
    publish: publish.map(({ hostPort, guestPort, protocol, spec }) => ({ hostPort, guestPort, protocol, spec })),
    verbose: process.env.ATOLL_GATEWAY_DEBUG === "1",
    seal,
  };
  const [tenderEnd, gatewayEnd] = native.socketpair("seqpacket");
  const argv = [bundle, "__gateway", JSON.stringify(config)];
  let gateway: { pid: number; aliveEnd?: number };
  try {
    gateway = spt === undefined ? spawnUnsealed(argv, gatewayEnd) : spawnSealable(spt, argv, gatewayEnd, seal.emptyRoot);
  } catch (error) {
    native.close(tenderEnd);
    throw new TenderError(`net device '${device}': cannot start the user-mode network gateway: ${firstLine(error)}`);
  } finally {
    native.close(gatewayEnd);
  }
  const { pid, aliveEnd } = gateway;

  const fail = (reason: string): never => {
    try {
      // Never 0 or -1 here (spawns that fail throw): those would signal a process group or everyone.
      if (pid > 0) process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
    native.close(tenderEnd);
    if (aliveEnd !== undefined) native.close(aliveEnd);
    throw new TenderError(reason);
  };
  const fds = new Int32Array([tenderEnd]);
  const deadline = performance.now() + READY_TIMEOUT_NS / 1e6;
  const buffer = new Uint8Array(2048);
  for (;;) {
    const left = (deadline - performance.now()) * 1e6;
    if (left <= 0) return fail(`net device '${device}': the user-mode network gateway did not start within ${READY_TIMEOUT_NS / 1e9} s`);
    native.poll(fds, left);
    const n = native.read(tenderEnd, buffer);
    if (n === -11) continue;
    if (n <= 0) return fail(`net device '${device}': the user-mode network gateway exited before it was ready (see the messages above)`);
    const line = new TextDecoder().decode(buffer.subarray(0, n));
    if (line === CONTROL_READY) break;
    if (line.startsWith(CONTROL_ERROR)) return fail(line.slice(CONTROL_ERROR.length));
    return fail(`net device '${device}': the user-mode network gateway said something unexpected: ${JSON.stringify(line.slice(0, 80))}`);
  }
  return { fd: tenderEnd, pid };
}

/**
 * Private network namespaces for integration tests: each test host lives in its own namespace,
 * named after the test process so that parallel runs cannot collide, with addresses only from
 * 198.18.0.0/15 (RFC 2544 benchmarking space) that exist nowhere else. Namespaces and the
 * processes started in them are removed by `destroy`, which tests call from `after`.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";

const COMMAND_TIMEOUT_MS = 60_000;

export function canUseNamespaces(): string | false {
  if (process.getuid?.() !== 0) return "needs root (network namespaces and TAP devices); CI runs as root";
  if (!existsSync("/dev/net/tun")) return "needs /dev/net/tun";
  return false;
}

export function run(command: string, args: readonly string[], options: { timeoutMs?: number; input?: string } = {}): string {
  return execFileSync(command, args, {
    encoding: "utf8",
    timeout: options.timeoutMs ?? COMMAND_TIMEOUT_MS,
    killSignal: "SIGKILL",
    stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    ...(options.input === undefined ? {} : { input: options.input }),
  });
}

export class Netns {
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  constructor(readonly name: string) {
    run("ip", ["netns", "add", name]);
    this.exec(["ip", "link", "set", "lo", "up"]);
    // IPv6 would add router solicitations and MLD reports to every capture; these tests are IPv4.
    this.exec(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
  }

  /** Runs a command in the namespace and returns its stdout; throws on a non-zero exit or timeout. */
  exec(args: readonly string[], options: { timeoutMs?: number; input?: string } = {}): string {
    return run("ip", ["netns", "exec", this.name, ...args], options);
  }

  /** Creates a TAP in the namespace with a Linux-side address, e.g. addTap("tap0", "198.18.0.1/24"). */
  addTap(ifname: string, address: string): void {
    this.exec(["ip", "tuntap", "add", "dev", ifname, "mode", "tap"]);
    this.exec(["ip", "addr", "add", address, "dev", ifname]);
    this.exec(["ip", "link", "set", ifname, "up"]);
  }

  /** Starts a long-running process in the namespace; `destroy` kills it if it is still running. */
  spawn(args: readonly string[]): ChildProcess & { output: () => string; exited: Promise<number | null> } {
    const [command, ...rest] = args;
    if (command === undefined) throw new Error("no command");
    const child = spawn("ip", ["netns", "exec", this.name, command, ...rest], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal === null ? null : 128)))); 
    this.children.add(child);
    child.on("exit", () => this.children.delete(child));
    return Object.assign(child, { output: () => output, exited });
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const child of this.children) child.kill("SIGKILL");
    // Anything else still holding the namespace (a forgotten ping) goes too.
    try {
      const pids = run("ip", ["netns", "pids", this.name]).split("\n").filter(Boolean);
      for (const pid of pids) process.kill(Number(pid), "SIGKILL");
    } catch {
      // The namespace may already be gone.
    }
    try {
      run("ip", ["netns", "del", this.name]);
    } catch {
      // Already deleted.
    }
  }
}

/** Waits until `check` returns true, polling; throws with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

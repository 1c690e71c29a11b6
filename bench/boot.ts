/**
 * `npm run bench:boot [-- --runs N] [--no-net]`: how long an Atoll appliance takes to boot.
 *
 * (a) Process start → image read and verified → the appliance's start called, on the `hello`
 *     appliance: the wall time of `node bin/atoll.cjs run examples/hello/dist/hello.atoll --log quiet`
 *     from spawn to exit, and the tender's own milestones (ATOLL_BOOT_TRACE, ms since the process
 *     started), with the V8 code cache warm and with ATOLL_CODE_CACHE=0. The peer is a bare
 *     `node -e 0` measured the same way in the same iterations (variants are interleaved, so that
 *     drift in the machine's load hits them all alike).
 *
 * (b) Process start → first ICMP echo reply over a TAP, on the `ping` appliance. A private network
 *     namespace (atoll-bench-<pid>) holds a TAP at 198.18.0.1/24 and a probe: a small Python
 *     raw-socket program that sends echo requests to 198.18.0.2 every PROBE_INTERVAL_MS and notes
 *     the CLOCK_MONOTONIC time of the first reply. Each run flushes the namespace's neighbour table
 *     (each boot has a fresh random MAC), starts the probe sending, spawns the appliance with
 *     `ip netns exec`, and takes spawn → first reply: Linux's ARP resolution (answered by the
 *     appliance, or settled by its gratuitous ARP) is part of it. The appliance is then stopped
 *     (SIGTERM, then SIGKILL) and awaited. The namespace goes away at the end, on errors and on
 *     Ctrl-C. Needs root, /dev/net/tun and python3; without them (b) is skipped with the reason.
 *
 * Prints medians with p10/p90 and the ratio of each median to the `node -e 0` median. Timings are
 * what this machine did on this run: report them, do not assert them.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { cleanupOnSignals, fail as failWith, markdownTable, quantile } from "./common.ts";

const ROOT = join(import.meta.dirname, "..");
const ATOLL = join(ROOT, "bin", "atoll.cjs");
const HELLO = join(ROOT, "examples", "hello", "dist", "hello.atoll");
const PING = join(ROOT, "examples", "ping", "dist", "ping.atoll");

const NS = `atoll-bench-${process.pid}`;
const TAP = "tap0";
const HOST_CIDR = "198.18.0.1/24";
const APPLIANCE_CIDR = "198.18.0.2/24";
const APPLIANCE_ADDRESS = "198.18.0.2";
const PROBE_INTERVAL_MS = 1;
const REPLY_TIMEOUT_MS = 15_000;
const CHILD_TIMEOUT_MS = 60_000;

const USAGE = `Usage: npm run bench:boot [-- [--runs N] [--no-net]]

  --runs N    runs of each measurement (default 20, at least 1)
  --no-net    skip (b), the ping appliance over a TAP (which needs root, /dev/net/tun and python3)
`;

interface Options {
  runs: number;
  net: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { runs: 20, net: true };
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] ?? "";
    const runsValue = arg.startsWith("--runs=") ? arg.slice("--runs=".length) : arg === "--runs" ? argv[++index] : undefined;
    if (runsValue !== undefined) {
      const runs = Number(runsValue);
      if (!Number.isInteger(runs) || runs < 1) fail(`--runs takes a whole number of runs (at least 1), not ${JSON.stringify(runsValue)}`);
      options.runs = runs;
    } else if (arg === "--runs") {
      fail("--runs needs a number, e.g. --runs 50");
    } else if (arg === "--no-net") {
      options.net = false;
    } else if (arg === "-h" || arg === "--help") {
      process.stdout.write(USAGE);
      process.exit(0);
    } else {
      fail(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
    }
  }
  return options;
}

function fail(message: string): never {
  return failWith("bench:boot", message);
}

// ---------------------------------------------------------------------------------------------
// Statistics and the table.

interface Row {
  measure: string;
  samples: number[];
}

function printTable(title: string, rows: readonly Row[], peerMedian: number): void {
  const header = ["measure", "median ms", "p10", "p90", "n", "vs node -e 0"];
  const lines = rows.map((row) => {
    const median = quantile(row.samples, 0.5);
    return [
      row.measure,
      median.toFixed(1),
      quantile(row.samples, 0.1).toFixed(1),
      quantile(row.samples, 0.9).toFixed(1),
      String(row.samples.length),
      peerMedian > 0 ? `${(median / peerMedian).toFixed(2)}x` : "",
    ];
  });
  process.stdout.write(`\n${title}\n`);
  process.stdout.write(markdownTable(header, lines));
}

// ---------------------------------------------------------------------------------------------
// Child processes, and cleaning up after them whatever happens.

const live = new Set<ChildProcess>();
let namespaceCreated = false;
let scratch: string | undefined;

function cleanup(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  live.clear();
  if (namespaceCreated) {
    namespaceCreated = false;
    // Deleting the namespace removes the TAP with it (once no process holds the TAP open).
    spawnSync("ip", ["netns", "delete", NS], { stdio: "ignore", timeout: 10_000 });
  }
  if (scratch !== undefined) {
    rmSync(scratch, { recursive: true, force: true });
    scratch = undefined;
  }
}

cleanupOnSignals("bench:boot", cleanup, "\n");

function run(command: string, args: readonly string[]): string {
  return execFileSync(command, args, { cwd: ROOT, encoding: "utf8", timeout: CHILD_TIMEOUT_MS, killSignal: "SIGKILL", stdio: ["ignore", "pipe", "pipe"] });
}

function ms(from: bigint, to: bigint): number {
  return Number(to - from) / 1e6;
}

/** Spawns a process to completion and returns its wall time (spawn → exit, as seen from here). */
function timed(command: string, args: readonly string[], env: NodeJS.ProcessEnv): { wallMs: number; status: number | null; stdout: string; stderr: string } {
  const start = process.hrtime.bigint();
  const result = spawnSync(command, args, { cwd: ROOT, env, encoding: "utf8", timeout: CHILD_TIMEOUT_MS, killSignal: "SIGKILL" });
  const end = process.hrtime.bigint();
  if (result.error !== undefined) throw result.error;
  return { wallMs: ms(start, end), status: result.status, stdout: result.stdout, stderr: result.stderr };
}

// ---------------------------------------------------------------------------------------------
// Preparation.

function ensureBuilt(): void {
  if (!existsSync(join(ROOT, "build", "atoll.cjs")) || !existsSync(join(ROOT, "build", "Release", "atoll_native.node"))) {
    process.stderr.write("bench:boot: atoll is not built, running `npm run build`\n");
    const result = spawnSync("npm", ["run", "build"], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
    if (result.status !== 0) fail("`npm run build` failed");
  }
  for (const [name, image] of [
    ["hello", HELLO],
    ["ping", PING],
  ] as const) {
    if (existsSync(image)) continue;
    process.stderr.write(`bench:boot: building examples/${name}\n`);
    const result = spawnSync(process.execPath, [ATOLL, "build", join("examples", name)], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
    if (result.status !== 0 || !existsSync(image)) fail(`\`atoll build examples/${name}\` failed`);
  }
}

interface BootTrace {
  tenderStart: number;
  imageRead: number;
  startCalled: number;
  codeCache: string;
}

function readTrace(path: string): BootTrace {
  const text = readFileSync(path, "utf8");
  const trace: unknown = JSON.parse(text);
  const number = (key: string): number => {
    const value: unknown = typeof trace === "object" && trace !== null ? Reflect.get(trace, key) : undefined;
    if (typeof value !== "number") throw new Error(`boot trace ${path} has no number ${key}: ${text}`);
    return value;
  };
  const codeCache: unknown = typeof trace === "object" && trace !== null ? Reflect.get(trace, "codeCache") : undefined;
  return { tenderStart: number("tenderStart"), imageRead: number("imageRead"), startCalled: number("startCalled"), codeCache: String(codeCache) };
}

// ---------------------------------------------------------------------------------------------
// (a) hello: process start → start called.

interface BootSamples {
  wall: number[];
  tenderStart: number[];
  startCalled: number[];
  readToStart: number[];
}

function benchHello(runs: number, dir: string): { rows: Row[]; peerMedian: number } {
  const cacheHome = join(dir, "cache");
  const tracePath = join(dir, "trace.json");
  const baseEnv: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: cacheHome };
  delete baseEnv.ATOLL_BOOT_TRACE;
  delete baseEnv.ATOLL_CODE_CACHE;
  delete baseEnv.NODE_OPTIONS;

  const hello = (cache: boolean, tender: "node" | "spt" = "node"): { wallMs: number; trace: BootTrace } => {
    rmSync(tracePath, { force: true });
    const env = { ...baseEnv, ATOLL_BOOT_TRACE: tracePath, ...(cache ? {} : { ATOLL_CODE_CACHE: "0" }) };
    const result = timed(process.execPath, [ATOLL, "run", HELLO, "--tender", tender, "--log", "quiet"], env);
    if (result.status !== 0 || !result.stdout.includes("Hello, world!")) {
      throw new Error(`hello exited ${result.status} (stdout ${JSON.stringify(result.stdout)}, stderr ${JSON.stringify(result.stderr)})`);
    }
    const trace = readTrace(tracePath);
    const expected = cache ? "hit" : "off";
    if (trace.codeCache !== expected) throw new Error(`hello ran with code cache '${trace.codeCache}', expected '${expected}'`);
    return { wallMs: result.wallMs, trace };
  };
  const peer = (): number => {
    const result = timed(process.execPath, ["-e", "0"], baseEnv);
    if (result.status !== 0) throw new Error(`node -e 0 exited ${result.status}`);
    return result.wallMs;
  };
  const peerUserCode = (): number => {
    const result = timed(process.execPath, ["-e", "process.stdout.write(String(performance.now()))"], baseEnv);
    if (result.status !== 0) throw new Error(`node -e performance.now() exited ${result.status}`);
    return Number(result.stdout);
  };

  // Warm-up: fills the code cache (a miss writes it) and the OS's file cache for everything.
  rmSync(tracePath, { force: true });
  timed(process.execPath, [ATOLL, "run", HELLO, "--log", "quiet"], { ...baseEnv, ATOLL_BOOT_TRACE: tracePath });
  timed(process.execPath, [ATOLL, "run", HELLO, "--tender", "spt", "--log", "quiet"], { ...baseEnv, ATOLL_BOOT_TRACE: tracePath });
  for (let index = 0; index < 2; index++) {
    peer();
    hello(true);
    hello(false);
    hello(true, "spt");
  }

  const peerWall: number[] = [];
  const peerReached: number[] = [];
  const warm: BootSamples = { wall: [], tenderStart: [], startCalled: [], readToStart: [] };
  const cold: BootSamples = { wall: [], tenderStart: [], startCalled: [], readToStart: [] };
  // The sealed tender: a launcher process plus the appliance's own Node process (see docs/spt.md).
  const sealed: BootSamples = { wall: [], tenderStart: [], startCalled: [], readToStart: [] };
  const record = (samples: BootSamples, result: { wallMs: number; trace: BootTrace }): void => {
    samples.wall.push(result.wallMs);
    samples.tenderStart.push(result.trace.tenderStart);
    samples.startCalled.push(result.trace.startCalled);
    samples.readToStart.push(result.trace.startCalled - result.trace.imageRead);
  };
  const steps: (() => void)[] = [
    () => peerWall.push(peer()),
    () => record(warm, hello(true)),
    () => record(cold, hello(false)),
    () => record(sealed, hello(true, "spt")),
    () => peerReached.push(peerUserCode()),
  ];
  for (let run = 0; run < runs; run++) {
    // Rotate the order so that no variant always runs right after the same other one.
    for (let step = 0; step < steps.length; step++) steps[(run + step) % steps.length]?.();
    process.stderr.write(`\r(a) hello: ${run + 1}/${runs}`);
  }
  process.stderr.write("\n");

  const rows: Row[] = [
    { measure: "node -e 0: wall (peer)", samples: peerWall },
    { measure: "node -e 0: user code reached (performance.now())", samples: peerReached },
    { measure: "hello, cache warm: wall (spawn → exit)", samples: warm.wall },
    { measure: "hello, cache warm: tenderStart", samples: warm.tenderStart },
    { measure: "hello, cache warm: startCalled", samples: warm.startCalled },
    { measure: "hello, cache warm: image read to start", samples: warm.readToStart },
    { measure: "hello, ATOLL_CODE_CACHE=0: wall (spawn → exit)", samples: cold.wall },
    { measure: "hello, ATOLL_CODE_CACHE=0: tenderStart", samples: cold.tenderStart },
    { measure: "hello, ATOLL_CODE_CACHE=0: startCalled", samples: cold.startCalled },
    { measure: "hello, ATOLL_CODE_CACHE=0: image read to start", samples: cold.readToStart },
    { measure: "hello on spt, cache warm: wall (spawn → exit)", samples: sealed.wall },
    { measure: "hello on spt, cache warm: startCalled", samples: sealed.startCalled },
    { measure: "hello on spt, cache warm: image read to start", samples: sealed.readToStart },
  ];
  return { rows, peerMedian: quantile(peerWall, 0.5) };
}

// ---------------------------------------------------------------------------------------------
// (b) ping over a TAP: process start → first echo reply.

/**
 * The probe, run in the namespace. Commands on stdin, one a line:
 *   go <ident>   send echo requests (ICMP id <ident>) every interval until the first reply with that
 *                id, then print "reply <CLOCK_MONOTONIC ns> <seq> <requests sent>" (or "timeout");
 *                "sending <ns>" is printed once the first request is out.
 *   quit         exit.
 * Replies to earlier idents (queued requests of a previous run) are ignored.
 */
const PROBE = String.raw`
import os, select, socket, struct, sys, time

target = sys.argv[1]
interval_ns = int(float(sys.argv[2]) * 1e6)
timeout_ns = int(float(sys.argv[3]) * 1e6)
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.setblocking(False)

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def echo(ident, seq):
    payload = b"atoll-bench-boot"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload

def drain():
    while True:
        try:
            sock.recv(65536)
        except BlockingIOError:
            return

def probe(ident):
    drain()
    seq = 0
    start = time.monotonic_ns()
    next_send = start
    while True:
        now = time.monotonic_ns()
        if now - start > timeout_ns:
            return "timeout"
        if now >= next_send:
            try:
                sock.sendto(echo(ident, seq & 0xFFFF), (target, 0))
            except OSError:
                pass  # e.g. EHOSTUNREACH while ARP fails: keep trying
            if seq == 0:
                print("sending %d" % time.monotonic_ns(), flush=True)
            seq += 1
            next_send += interval_ns
            if next_send < now:
                next_send = now + interval_ns
        wait = max(0, next_send - time.monotonic_ns()) / 1e9
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            continue
        while True:
            try:
                packet = sock.recv(65536)
            except BlockingIOError:
                break
            received = time.monotonic_ns()
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) < ihl + 8:
                continue
            icmp_type, _, _, reply_ident, reply_seq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
            if icmp_type == 0 and reply_ident == ident:
                return "reply %d %d %d" % (received, reply_seq, seq)

for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "quit":
        break
    if words[0] == "go":
        print(probe(int(words[1]) & 0xFFFF), flush=True)
`;

/** Line reader over a child's stdout: next() resolves to the next line, or rejects on timeout/exit. */
function lines(child: ChildProcess, what: string): { next: (timeoutMs: number) => Promise<string> } {
  const queue: string[] = [];
  const waiters: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  let closed = false;
  if (child.stdout === null) throw new Error(`${what} has no stdout`);
  const reader = createInterface({ input: child.stdout });
  reader.on("line", (line) => {
    const waiter = waiters.shift();
    if (waiter === undefined) queue.push(line);
    else waiter.resolve(line);
  });
  reader.on("close", () => {
    closed = true;
    for (const waiter of waiters.splice(0)) waiter.reject(new Error(`${what} exited`));
  });
  return {
    next: (timeoutMs) => {
      const line = queue.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (closed) return Promise.reject(new Error(`${what} exited`));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
      });
    },
  };
}

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.on("exit", () => live.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** SIGTERM (the tender closes its devices and exits 143), then SIGKILL after a grace period; waits for the exit. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited(child);
  clearTimeout(timer);
}

function netSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root";
  if (!existsSync("/dev/net/tun")) return "needs /dev/net/tun";
  if (spawnSync("ip", ["-V"], { stdio: "ignore" }).status !== 0) return "needs iproute2 (`ip`)";
  if (spawnSync("python3", ["-c", "import socket"], { stdio: "ignore" }).status !== 0) return "needs python3 (for the raw-socket probe)";
  return undefined;
}

function createNamespace(): void {
  run("ip", ["netns", "add", NS]);
  namespaceCreated = true;
  run("ip", ["-n", NS, "link", "set", "lo", "up"]);
  run("ip", ["-n", NS, "tuntap", "add", "dev", TAP, "mode", "tap"]);
  // No IPv6 on the TAP: its router solicitations and DAD would only add frames the appliance ignores.
  spawnSync("ip", ["netns", "exec", NS, "sysctl", "-qw", `net.ipv6.conf.${TAP}.disable_ipv6=1`], { stdio: "ignore" });
  run("ip", ["-n", NS, "addr", "add", HOST_CIDR, "dev", TAP]);
  run("ip", ["-n", NS, "link", "set", TAP, "up"]);
}

async function benchPing(runs: number, dir: string): Promise<Row[]> {
  createNamespace();
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.ATOLL_CODE_CACHE;
  delete env.NODE_OPTIONS;
  env.XDG_CACHE_HOME = join(dir, "cache");
  const tracePath = join(dir, "ping-trace.json");

  const probe = track(
    spawn("ip", ["netns", "exec", NS, "python3", "-u", "-c", PROBE, APPLIANCE_ADDRESS, String(PROBE_INTERVAL_MS), String(REPLY_TIMEOUT_MS)], {
      cwd: ROOT,
      stdio: ["pipe", "pipe", "inherit"],
    }),
  );
  const probeLines = lines(probe, "the probe");
  const command = [process.execPath, ATOLL, "run", PING, "--net", `service=tap:${TAP}`, "--ipv4", `service=${APPLIANCE_CIDR}`, "--log", "quiet"];

  const firstReply: number[] = [];
  const startCalled: number[] = [];
  const peer: number[] = [];
  const oneRun = async (ident: number, warmUp: boolean): Promise<void> => {
    run("ip", ["-n", NS, "neigh", "flush", "dev", TAP]);
    rmSync(tracePath, { force: true });
    probe.stdin?.write(`go ${ident}\n`);
    const sending = await probeLines.next(10_000);
    if (!sending.startsWith("sending ")) throw new Error(`the probe said ${JSON.stringify(sending)}`);
    const spawned = process.hrtime.bigint();
    const appliance = track(spawn("ip", ["netns", "exec", NS, ...command], { cwd: ROOT, env: { ...env, ATOLL_BOOT_TRACE: tracePath }, stdio: ["ignore", "ignore", "pipe"] }));
    let stderr = "";
    appliance.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const answer = await probeLines.next(REPLY_TIMEOUT_MS + 10_000);
      const match = /^reply (\d+) (\d+) (\d+)$/.exec(answer);
      if (match === null) {
        throw new Error(`no echo reply within ${REPLY_TIMEOUT_MS} ms (probe: ${answer}; appliance ${appliance.exitCode === null ? "still running" : `exited ${appliance.exitCode}`}; stderr ${JSON.stringify(stderr)})`);
      }
      if (!warmUp) {
        firstReply.push(ms(spawned, BigInt(match[1] ?? "0")));
        if (existsSync(tracePath)) startCalled.push(readTrace(tracePath).startCalled);
      }
    } finally {
      await stop(appliance);
    }
  };

  try {
    // Warm-up: fills the code cache for the ping image and the OS's caches.
    for (let index = 0; index < 2; index++) await oneRun(60_000 + index, true);
    for (let index = 0; index < runs; index++) {
      const result = timed("ip", ["netns", "exec", NS, process.execPath, "-e", "0"], env);
      if (result.status !== 0) throw new Error(`ip netns exec ${NS} node -e 0 exited ${result.status}`);
      peer.push(result.wallMs);
      await oneRun(index + 1, false);
      process.stderr.write(`\r(b) ping over TAP: ${index + 1}/${runs}`);
    }
    process.stderr.write("\n");
  } finally {
    probe.stdin?.end("quit\n");
    const timer = setTimeout(() => probe.kill("SIGKILL"), 5_000);
    await exited(probe);
    clearTimeout(timer);
  }
  const rows: Row[] = [
    { measure: `ip netns exec + node -e 0: wall (peer in the namespace)`, samples: peer },
    { measure: "ping: spawn → first echo reply (ip netns exec, ARP included)", samples: firstReply },
    { measure: "ping: startCalled (in-process, code cache warm)", samples: startCalled },
  ];
  return rows;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  ensureBuilt();
  scratch = mkdtempSync(join(tmpdir(), "atoll-bench-"));
  process.stdout.write(`bench:boot: ${options.runs} runs each; node ${process.version}, Linux ${release()}\n`);
  process.stdout.write("(code cache in a private XDG_CACHE_HOME, warmed before the runs; variants interleaved)\n");

  const hello = benchHello(options.runs, scratch);
  let ping: Row[] | undefined;
  let skipped: string | undefined;
  if (options.net) {
    skipped = netSkipReason();
    if (skipped === undefined) ping = await benchPing(options.runs, scratch);
  } else {
    skipped = "--no-net";
  }

  printTable("(a) process start → image verified and loaded → start called (examples/hello)", hello.rows, hello.peerMedian);
  if (ping !== undefined) printTable("(b) process start → first ICMP echo reply over TAP (examples/ping)", ping, hello.peerMedian);
  else process.stdout.write(`\n(b) ping over TAP: skipped (${skipped})\n`);
  process.stdout.write(
    "\nwall = spawn → exit as seen by this process; tenderStart/startCalled = ms since the tender's process started (performance.now());\n" +
      "image read to start = startCalled − imageRead (hello's wall also holds its 1 ms sleep and the exit).\n" +
      "first echo reply = spawn → the probe's recv of the first reply (CLOCK_MONOTONIC on both sides), Linux's ARP included.\n" +
      "Ratios: each median over the `node -e 0` wall median.\n",
  );
}

main().then(
  () => cleanup(),
  (error: unknown) => {
    process.stderr.write(`\nbench:boot: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    cleanup();
    process.exit(1);
  },
);

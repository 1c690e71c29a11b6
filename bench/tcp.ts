/**
 * `npm run bench:tcp [-- --seconds S] [--reps N] [--workers W] [--profile]`: TCP bulk throughput
 * in both directions and connections per second, Atoll over a TAP beside Linux over a veth pair,
 * in the same run, with the same client and sink programs on both sides.
 *
 * - Atoll: a private namespace (atoll-bench-tcp-a-<pid>) with tap0 at 198.18.0.1/24 and the
 *   echo-server fixture (examples/echo's services: discard on 9, echo on 7) at 198.18.0.2 on the
 *   node tender; and tap1 at 198.18.1.1/24 for the tcp-client fixture at 198.18.1.2, which sends
 *   to a Linux discard sink (tcp_tool.py serve 9000) in the same namespace. Two more echo-servers
 *   run with fewer offloads (tap3 at 198.18.5.2 with `--offload service=checksum`, tap4 at
 *   198.18.6.2 with `--offload service=none`), and the tcp-client fixture runs in those modes too,
 *   so that the table shows what checksum offload and segmentation offload each gain.
 * - Linux: two namespaces (atoll-bench-tcp-lc-<pid>, -ls-<pid>) joined by a veth pair,
 *   198.18.2.1/24 ↔ 198.18.2.2/24, the server side running tcp_tool.py serve 9 7 (discard: a thread
 *   per connection reading into one buffer, the fastest sink Python has; echo: asyncio).
 *   With ethtool, a second pair (198.18.3.0/24) has TSO, GSO and GRO off: Linux moving MTU-sized
 *   frames one by one, as it must through a TAP without IFF_VNET_HDR.
 *
 * Measurements (test/net/tcp-linux/fixtures/tcp_tool.py on Linux's side):
 * - Linux → X: `send` writes for S seconds to X's discard port, half-closes, and waits for the
 *   sink to close: bytes delivered / time.
 * - X → Linux: Atoll's sender is the tcp-client fixture (`send` mode, S seconds, 64 KiB writes);
 *   Linux's is tcp_tool.py `send`; the sink is tcp_tool.py's discard either way.
 * - Connections per second: `cps` runs W concurrent loops of connect, 32-byte request, read the
 *   echo, close, for S seconds, against Atoll's echo (port 7) and tcp_tool.py's (one asyncio event
 *   loop, as the appliance has one event loop). The client namespaces reuse TIME-WAIT ports
 *   (tcp_tw_reuse) so that tens of thousands of connections do not run out of ephemeral ports.
 *
 * Each repetition measures every row, alternating the order, and the table shows medians (and the
 * range) over the repetitions, with the tender's CPU use (user + system time over wall time) in
 * the bulk rows. `--profile` then runs each bulk direction once more with the tender under
 * `node --cpu-prof` and under `strace -c -f`, and prints the functions with the most self time and
 * the system calls. Needs root, /dev/net/tun, python3 (and strace for --profile). The namespaces
 * and the processes in them go away at the end, on errors and on Ctrl-C. Figures are what this
 * machine did on this run: report them, do not assert them.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import { ATOLL } from "../test/helpers/cli.ts";
import { Netns } from "../test/helpers/netns.ts";
import {
  TCP_TOOL,
  applianceCounters,
  buildImages,
  resultLine,
  skipReason,
  start,
  startAppliance,
  tool,
  waitForOutput,
  type Images,
  type Process,
} from "../test/net/tcp-linux/fixtures/lab.ts";
import { cleanupOnSignals, fail as failWith, markdownTable, median, parseNumericOptions, runBench, vethPair } from "./common.ts";

const USAGE = `Usage: npm run bench:tcp [-- [--seconds S] [--reps N] [--workers W] [--profile]]

  --seconds S   seconds of each measurement (default 3)
  --reps N      repetitions; the table shows medians (default 5)
  --workers W   concurrent connect/request/close loops for connections per second (default 8)
  --profile     also profile the tender under bulk load (node --cpu-prof, strace -c -f)
`;

interface Options {
  seconds: number;
  reps: number;
  workers: number;
  profile: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  let profile = false;
  const limits = { seconds: [0.5, 600], reps: [1, 100], workers: [1, 512] } as const;
  const numbers = parseNumericOptions("bench:tcp", argv, { seconds: 3, reps: 5, workers: 8 }, limits, USAGE, {
    fractional: ["seconds"],
    flags: { "--profile": () => (profile = true) },
  });
  return { ...numbers, profile };
}

function fail(message: string): never {
  return failWith("bench:tcp", message);
}

// ---- the setups ------------------------------------------------------------------------------------

const namespaces: Netns[] = [];
let workDir = "";

function cleanup(): void {
  for (const ns of namespaces.splice(0)) ns.destroy();
  if (workDir !== "") rmSync(workDir, { recursive: true, force: true });
  workDir = "";
}

cleanupOnSignals("bench:tcp", cleanup);

function namespace(suffix: string): Netns {
  const ns = new Netns(`atoll-bench-tcp-${suffix}-${process.pid}`);
  namespaces.push(ns);
  return ns;
}

/**
 * A client namespace for tens of thousands of short connections: the connections/s loops close
 * first, so each leaves a TIME-WAIT on the client for 60 s, and the default 28 000 ephemeral ports
 * run out within a repetition or two. Reusing TIME-WAIT ports for new outgoing connections is safe
 * with timestamps (RFC 7323 PAWS), which both Atoll and Linux negotiate.
 */
function forManyConnections(ns: Netns): void {
  ns.exec(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535"]);
}

type OffloadMode = "all" | "checksum" | "none";

interface AtollSide {
  ns: Netns;
  /** The echo-server with all offloads (tap0, 198.18.0.2). */
  server: Process;
  /** The same with checksum offload only (tap3, 198.18.5.2) and with none (tap4, 198.18.6.2). */
  servers: Record<OffloadMode, { process: Process; address: string }>;
  images: Images;
}

async function setUpAtoll(images: Images): Promise<AtollSide> {
  const ns = namespace("a");
  forManyConnections(ns);
  ns.addTap("tap0", "198.18.0.1/24");
  ns.addTap("tap1", "198.18.1.1/24");
  ns.addTap("tap2", "198.18.4.1/24");
  ns.addTap("tap3", "198.18.5.1/24");
  ns.addTap("tap4", "198.18.6.1/24");
  const server = startAppliance(ns, images.server, { ipv4: "198.18.0.2/24", log: "warn" });
  const checksumOnly = startAppliance(ns, images.server, { tap: "tap3", ipv4: "198.18.5.2/24", log: "warn", offload: "checksum" });
  const plain = startAppliance(ns, images.server, { tap: "tap4", ipv4: "198.18.6.2/24", log: "warn", offload: "none" });
  const sink = start(ns, ["python3", TCP_TOOL, "serve", "9000"]);
  await waitForOutput(sink, "ready");
  // The fixture logs at "warn": wait until it answers instead of for its banner.
  for (const address of ["198.18.0.2", "198.18.5.2", "198.18.6.2"]) await applianceCounters(ns, address);
  const servers = {
    all: { process: server, address: "198.18.0.2" },
    checksum: { process: checksumOnly, address: "198.18.5.2" },
    none: { process: plain, address: "198.18.6.2" },
  };
  return { ns, server, servers, images };
}

interface LinuxSide {
  client: Netns;
  /** The server's address on the veth with offloads, and on the one without (undefined: no ethtool). */
  target: string;
  targetNoOffload: string | undefined;
}

async function setUpLinux(): Promise<LinuxSide> {
  const client = namespace("lc");
  const server = namespace("ls");
  forManyConnections(client);
  const pairs: [string, string, string, string][] = [["veth0", "veth1", "198.18.2.1", "198.18.2.2"]];
  const ethtool = spawnSync("sh", ["-c", "command -v ethtool"]).status === 0;
  if (ethtool) pairs.push(["veth2", "veth3", "198.18.3.1", "198.18.3.2"]);
  for (const [near, far, nearAddress, farAddress] of pairs) {
    vethPair(client, server, near, far, nearAddress, farAddress);
  }
  if (ethtool) {
    client.exec(["ethtool", "-K", "veth2", "tso", "off", "gso", "off", "gro", "off"]);
    server.exec(["ethtool", "-K", "veth3", "tso", "off", "gso", "off", "gro", "off"]);
  }
  const sink = start(server, ["python3", TCP_TOOL, "serve", "9", "7"]);
  await waitForOutput(sink, "ready");
  return { client, target: "198.18.2.2", targetNoOffload: ethtool ? "198.18.3.2" : undefined };
}

// ---- measurements --------------------------------------------------------------------------------

/** CPU seconds a process has used in user and in system mode, from /proc/<pid>/stat; NaN once it is gone. */
function cpuTimes(pid: number): { user: number; system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
  } catch {
    return { user: NaN, system: NaN };
  }
}

interface Sample {
  value: number;
  /** The tender's CPU use over the measurement (1 = one core busy), when measured. */
  cpu?: number;
  /** The share of that spent in the kernel (system time: system calls, and the work they do). */
  system?: number;
}

/** The CPU use between two cpuTimes readings over `wall` seconds. */
function cpuUse(before: { user: number; system: number }, after: { user: number; system: number }, wall: number): Pick<Sample, "cpu" | "system"> {
  const user = after.user - before.user;
  const system = after.system - before.system;
  if (!Number.isFinite(user + system) || wall <= 0) return {};
  return { cpu: (user + system) / wall, system: user + system > 0 ? system / (user + system) : 0 };
}

async function sendTo(ns: Netns, address: string, port: string, seconds: number, tenderPid?: number): Promise<Sample> {
  const before = tenderPid === undefined ? undefined : cpuTimes(tenderPid);
  const started = performance.now();
  const result = await tool<{ gbps: number }>(ns, ["send", address, port, String(seconds)], (seconds + 60) * 1000);
  const wall = (performance.now() - started) / 1000;
  return { value: result.gbps, ...(tenderPid === undefined || before === undefined ? {} : cpuUse(before, cpuTimes(tenderPid), wall)) };
}

/** Starts the tcp-client fixture sending to Linux's sink for `seconds`; `result` settles when it exits. */
function startAtollSender(atoll: AtollSide, seconds: number, nodeArgs: readonly string[] = [], offload: OffloadMode = "all"): { pid: number; result: Promise<Sample> } {
  const args = [
    process.execPath, ...nodeArgs, ATOLL, "run", atoll.images.client, "--net", "service=tap:tap1", "--ipv4", "service=198.18.1.2/24", "--offload", `service=${offload}`,
    "--log", "warn", "--", "198.18.1.1", "9000", `${seconds}s`, "send",
  ];
  const client = start(atoll.ns, args);
  // The CPU time the process has used, sampled until it exits (its whole life: boot included).
  let used = { user: 0, system: 0 };
  const sampler = setInterval(() => {
    const now = cpuTimes(client.pid);
    if (!Number.isNaN(now.user)) used = now;
  }, 50);
  const startedAt = performance.now();
  const result = client.exited.then((status) => {
    clearInterval(sampler);
    if (status !== 0) throw new Error(`the Atoll sender exited ${status}:\n${client.output()}`);
    const line = resultLine<{ gbps: number; ms: number }>(client.output());
    return { value: line.gbps, ...cpuUse({ user: 0, system: 0 }, used, (performance.now() - startedAt) / 1000) };
  });
  return { pid: client.pid, result };
}

function atollSends(atoll: AtollSide, seconds: number, nodeArgs: readonly string[] = [], offload: OffloadMode = "all"): Promise<Sample> {
  return startAtollSender(atoll, seconds, nodeArgs, offload).result;
}

async function connectionsPerSecond(ns: Netns, address: string, options: Options, tenderPid?: number): Promise<Sample> {
  const before = tenderPid === undefined ? undefined : cpuTimes(tenderPid);
  const started = performance.now();
  const result = await tool<{ cps: number; errors: number }>(ns, ["cps", address, "7", String(options.seconds), String(options.workers)], (options.seconds + 60) * 1000);
  const wall = (performance.now() - started) / 1000;
  if (result.errors > 0) process.stderr.write(`bench:tcp: ${result.errors} failed connections against ${address}\n`);
  return { value: result.cps, ...(tenderPid === undefined || before === undefined ? {} : cpuUse(before, cpuTimes(tenderPid), wall)) };
}

type Row =
  | "linuxToAtoll"
  | "linuxToAtollChecksum"
  | "linuxToAtollPlain"
  | "linuxToLinux"
  | "linuxToLinuxNoOffload"
  | "atollToLinux"
  | "atollToLinuxChecksum"
  | "atollToLinuxPlain"
  | "cpsAtoll"
  | "cpsLinux";

// ---- profiling --------------------------------------------------------------------------------------

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** Self time by function from a .cpuprofile: the top `count`, as [name, share of samples]. */
function topFunctions(file: string, count: number): [string, number][] {
  const profile = JSON.parse(readFileSync(file, "utf8")) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, index) => {
    const node = byId.get(id);
    if (node === undefined) return;
    const delta = profile.timeDeltas[index] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === "" ? "" : ` ${url.replace(/^.*\/(build|src|node_modules)\//, "$1/")}:${lineNumber + 1}`;
    const key = `${functionName === "" ? "(anonymous)" : functionName}${where}`;
    self.set(key, (self.get(key) ?? 0) + delta);
    total += delta;
  });
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, time]) => [name, time / total]);
}

function straceSummary(output: string, count: number): string[] {
  const lines = output.split("\n");
  const header = lines.findIndex((line) => line.includes("% time") && line.includes("syscall"));
  if (header < 0) return [`(no strace summary: ${output.trim().split("\n").at(-1) ?? ""})`];
  return lines.slice(header, header + 2 + count).filter((line) => line.trim() !== "");
}

async function profile(atoll: AtollSide, options: Options): Promise<void> {
  const dir = join(workDir, "profiles");
  const seconds = Math.max(options.seconds, 3);
  const print = (title: string, file: string | undefined): void => {
    process.stdout.write(`\n${title}\n`);
    if (file === undefined) {
      process.stdout.write("  (no profile written)\n");
      return;
    }
    for (const [name, share] of topFunctions(file, 20)) process.stdout.write(`  ${(share * 100).toFixed(1).padStart(5)}%  ${name}\n`);
  };
  const newest = (sub: string): string | undefined => {
    try {
      const files = readdirSync(join(dir, sub)).filter((name) => name.endsWith(".cpuprofile"));
      return files.length === 0 ? undefined : join(dir, sub, files.sort().at(-1) as string);
    } catch {
      return undefined;
    }
  };

  // Linux → Atoll, the receiver under --cpu-prof (a second echo-server on tap2, 198.18.4.2).
  const profiled = start(atoll.ns, [
    process.execPath, "--cpu-prof", `--cpu-prof-dir=${join(dir, "rx")}`, ATOLL, "run", atoll.images.server,
    "--net", "service=tap:tap2", "--ipv4", "service=198.18.4.2/24", "--log", "warn",
  ]);
  await applianceCounters(atoll.ns, "198.18.4.2");
  const rx = await sendTo(atoll.ns, "198.18.4.2", "9", seconds, profiled.pid);
  await profiled.stop(10_000);
  const use = (sample: Sample): string =>
    sample.cpu === undefined ? "" : `, tender CPU ${(sample.cpu * 100).toFixed(0)}% (sys ${((sample.system ?? 0) * 100).toFixed(0)}%)`;
  print(`Profile: Linux → Atoll at ${rx.value.toFixed(3)} Gbit/s under --cpu-prof${use(rx)} (tender self time, top 20)`, newest("rx"));

  // Atoll → Linux, the sender under --cpu-prof.
  const tx = await atollSends(atoll, seconds, ["--cpu-prof", `--cpu-prof-dir=${join(dir, "tx")}`]);
  print(`Profile: Atoll → Linux at ${tx.value.toFixed(3)} Gbit/s under --cpu-prof${use(tx)} (tender self time, top 20)`, newest("tx"));

  if (spawnSync("sh", ["-c", "command -v strace"]).status !== 0) {
    process.stdout.write("\n(strace not installed: no system call counts)\n");
    return;
  }
  // System calls of the receiving tender (the benchmark's own echo-server) during a bulk send.
  const before = (await applianceCounters(atoll.ns, "198.18.0.2"))["net.service"] ?? {};
  const strace = start(atoll.ns, ["timeout", "-s", "INT", String(seconds), "strace", "-c", "-f", "-p", String(atoll.server.pid)]);
  const rxUnderStrace = await sendTo(atoll.ns, "198.18.0.2", "9", seconds - 0.5);
  await strace.exited;
  const afterCounters = (await applianceCounters(atoll.ns, "198.18.0.2"))["net.service"] ?? {};
  const frames = (afterCounters.rxFrames ?? 0) - (before.rxFrames ?? 0) + (afterCounters.txFrames ?? 0) - (before.txFrames ?? 0);
  process.stdout.write(`\nSystem calls: receiving tender, Linux → Atoll at ${rxUnderStrace.value.toFixed(3)} Gbit/s under strace, ${frames} frames in and out\n`);
  for (const line of straceSummary(strace.output(), 12)) process.stdout.write(`  ${line}\n`);

  // System calls of a sending tender, attached once it has booted.
  const sender = startAtollSender(atoll, seconds);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const straceTx = start(atoll.ns, ["timeout", "-s", "INT", String(seconds - 1), "strace", "-c", "-f", "-p", String(sender.pid)]);
  await straceTx.exited;
  const txUnderStrace = await sender.result;
  process.stdout.write(`\nSystem calls: sending tender, Atoll → Linux at ${txUnderStrace.value.toFixed(3)} Gbit/s (whole run, partly under strace)\n`);
  for (const line of straceSummary(straceTx.output(), 12)) process.stdout.write(`  ${line}\n`);
}

// ---- main -----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const skip = skipReason(options.profile ? ["python3", "strace"] : ["python3"]);
  if (skip !== false) fail(`cannot run: ${skip}`);
  workDir = mkdtempSync(join(tmpdir(), "atoll-bench-tcp-"));
  const images = buildImages(workDir);
  const atoll = await setUpAtoll(images);
  const linux = await setUpLinux();
  const samples: Record<Row, Sample[]> = {
    linuxToAtoll: [],
    linuxToAtollChecksum: [],
    linuxToAtollPlain: [],
    linuxToLinux: [],
    linuxToLinuxNoOffload: [],
    atollToLinux: [],
    atollToLinuxChecksum: [],
    atollToLinuxPlain: [],
    cpsAtoll: [],
    cpsLinux: [],
  };
  const toAtoll = (mode: OffloadMode) => (): Promise<Sample> => sendTo(atoll.ns, atoll.servers[mode].address, "9", options.seconds, atoll.servers[mode].process.pid);
  const measure: Record<Row, () => Promise<Sample | undefined>> = {
    linuxToAtoll: toAtoll("all"),
    linuxToAtollChecksum: toAtoll("checksum"),
    linuxToAtollPlain: toAtoll("none"),
    linuxToLinux: () => sendTo(linux.client, linux.target, "9", options.seconds),
    linuxToLinuxNoOffload: async () => (linux.targetNoOffload === undefined ? undefined : sendTo(linux.client, linux.targetNoOffload, "9", options.seconds)),
    atollToLinux: () => atollSends(atoll, options.seconds),
    atollToLinuxChecksum: () => atollSends(atoll, options.seconds, [], "checksum"),
    atollToLinuxPlain: () => atollSends(atoll, options.seconds, [], "none"),
    cpsAtoll: () => connectionsPerSecond(atoll.ns, "198.18.0.2", options, atoll.server.pid),
    cpsLinux: () => connectionsPerSecond(linux.client, linux.target, options),
  };
  const order = Object.keys(measure) as Row[];
  process.stdout.write(
    `bench:tcp: ${options.reps} repetitions of ${options.seconds} s per measurement, ${options.workers} workers for connections/s; ` +
      `${cpus().length} × ${cpus()[0]?.model ?? "?"}, Linux ${release()}, load ${loadavg().map((value) => value.toFixed(2)).join(" ")}\n`,
  );
  for (let rep = 0; rep < options.reps; rep++) {
    const rows = rep % 2 === 0 ? order : [...order].reverse();
    for (const row of rows) {
      const sample = await measure[row]();
      if (sample !== undefined) samples[row].push(sample);
    }
    process.stdout.write(`  repetition ${rep + 1}/${options.reps} done\n`);
  }

  const summary = (row: Row, digits: number): { median: number; text: string; cpu: string } => {
    const values = samples[row].map((sample) => sample.value);
    if (values.length === 0) return { median: NaN, text: "—", cpu: "" };
    const finite = (pick: (sample: Sample) => number | undefined): number[] =>
      samples[row].map(pick).filter((value): value is number => value !== undefined && Number.isFinite(value));
    const cpuValues = finite((sample) => sample.cpu);
    const systemValues = finite((sample) => sample.system);
    const m = median(values);
    const range = values.length > 1 ? ` (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})` : "";
    const cpu = cpuValues.length === 0 ? "" : `${(median(cpuValues) * 100).toFixed(0)}%${systemValues.length === 0 ? "" : ` (sys ${(median(systemValues) * 100).toFixed(0)}%)`}`;
    return { median: m, text: `${m.toFixed(digits)}${range}`, cpu };
  };
  const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${((a / b) * 100).toFixed(1)}%` : "—");
  const l2a = summary("linuxToAtoll", 3);
  const a2l = summary("atollToLinux", 3);
  const l2l = summary("linuxToLinux", 3);
  const l2lNoOffload = summary("linuxToLinuxNoOffload", 3);
  const cpsA = summary("cpsAtoll", 0);
  const cpsL = summary("cpsLinux", 0);
  const header = ["measurement", "Atoll (TAP)", "tender CPU", "Linux (veth)", "Atoll / Linux", "Linux (veth, no TSO/GSO/GRO)", "Atoll / that"];
  const bulkRow = (label: string, atollRow: Row): string[] => {
    const measured = summary(atollRow, 3);
    return [label, measured.text, measured.cpu, l2l.text, ratio(measured.median, l2l.median), l2lNoOffload.text, ratio(measured.median, l2lNoOffload.median)];
  };
  const rows: string[][] = [
    ["bulk Linux → X, Gbit/s", l2a.text, l2a.cpu, l2l.text, ratio(l2a.median, l2l.median), l2lNoOffload.text, ratio(l2a.median, l2lNoOffload.median)],
    ["bulk X → Linux, Gbit/s", a2l.text, a2l.cpu, l2l.text, ratio(a2l.median, l2l.median), l2lNoOffload.text, ratio(a2l.median, l2lNoOffload.median)],
    ["connections/s (connect, 32 B echo, close)", cpsA.text, cpsA.cpu, cpsL.text, ratio(cpsA.median, cpsL.median), "", ""],
  ];
  process.stdout.write(`\nMedians over ${options.reps} repetitions (range in parentheses); the goal is ≥ 60% of veth in each direction.\n`);
  process.stdout.write(markdownTable(header, rows, "left"));
  // What each offload gains: the same bulk measurements with the TAP granting less (--offload).
  const offloadRows: string[][] = [
    bulkRow("Linux → X, checksum offload only", "linuxToAtollChecksum"),
    bulkRow("Linux → X, no offloads", "linuxToAtollPlain"),
    bulkRow("X → Linux, checksum offload only", "atollToLinuxChecksum"),
    bulkRow("X → Linux, no offloads", "atollToLinuxPlain"),
  ];
  process.stdout.write("\nAtoll with fewer offloads (atoll run --offload service=checksum|none), same run:\n");
  process.stdout.write(markdownTable(header, offloadRows, "left"));
  const gain = (from: Row, to: Row): string => {
    const a = summary(from, 3).median;
    const b = summary(to, 3).median;
    return Number.isFinite(a) && Number.isFinite(b) && a > 0 ? `${(b / a).toFixed(2)}×` : "—";
  };
  process.stdout.write(
    `Gains: checksum offload (none → checksum) ${gain("linuxToAtollPlain", "linuxToAtollChecksum")} Linux → Atoll, ${gain("atollToLinuxPlain", "atollToLinuxChecksum")} Atoll → Linux; ` +
      `segmentation offload (checksum → all) ${gain("linuxToAtollChecksum", "linuxToAtoll")} Linux → Atoll, ${gain("atollToLinuxChecksum", "atollToLinux")} Atoll → Linux.\n`,
  );
  process.stdout.write(
    "\nX → Linux: Atoll's sender is the tcp-client fixture, Linux's tcp_tool.py; Linux → Linux is the same measurement in both rows.\n" +
      "Tender CPU: user + system time of the tender process over the measurement's wall time (100% = one core); sys: the\n" +
      "share in the kernel (TAP reads and writes, and the Linux stack's own work on the frames the tender writes).\n",
  );
  if (options.profile) await profile(atoll, options);
}

runBench("bench:tcp", main, cleanup, "stack");

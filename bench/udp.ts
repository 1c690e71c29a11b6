/**
 * `npm run bench:udp [-- --seconds S] [--reps N] [--size B] [--window W] [--pings N]`: UDP echo
 * round trips per second and ping latency to the Atoll echo appliance over a TAP, beside the same
 * against a Linux peer over a veth, in the same run.
 *
 * - Atoll: a private namespace (atoll-bench-udp-a-<pid>) with tap0 at 198.18.0.1/24 and
 *   examples/echo (built into a temporary directory) at 198.18.0.2 on the node tender.
 * - Linux: two namespaces (atoll-bench-udp-lc-<pid>, atoll-bench-udp-ls-<pid>) joined by a veth
 *   pair, 198.18.1.1/24 and 198.18.1.2/24; the server namespace runs a Python UDP echo on port 7
 *   (test/net/linux/fixtures/udp-echo-server.py: one socket, a recvfrom/sendto loop, no fork per
 *   datagram), and its kernel answers ping.
 * - The client, the same on both sides (test/net/linux/fixtures/udp-echo-client.py), runs in the
 *   namespace on Linux's side of each link: for S seconds it keeps one datagram of B bytes in
 *   flight (round trips/s and the median round-trip time), then W at once (pipelined round
 *   trips/s). Ping: `ping -c N -i 0.002` (median and mean of the replies' times).
 *
 * Each repetition measures both sides one after the other, alternating which goes first, and the
 * table shows medians over the repetitions. Needs root, /dev/net/tun, python3 and ping. The
 * namespaces and the processes in them go away at the end, on errors and on Ctrl-C. Timings are
 * what this machine did on this run (two shared cores, most likely): report them, do not assert them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../test/helpers/cli.ts";
import { Netns } from "../test/helpers/netns.ts";
import {
  APPLIANCE_ADDRESS,
  APPLIANCE_CIDR,
  HOST_CIDR,
  buildAppliance,
  python,
  script,
  skipReason,
  startAppliance,
  tryExec,
  waitFor,
  waitForPing,
  type RunningAppliance,
} from "../test/net/linux/fixtures/lab.ts";
import { cleanupOnSignals, fail as failWith, markdownTable, median, parseNumericOptions, runBench, vethPair } from "./common.ts";

const USAGE = `Usage: npm run bench:udp [-- [--seconds S] [--reps N] [--size B] [--window W] [--pings N]]

  --seconds S   seconds of each round-trip measurement (default 2)
  --reps N      repetitions; the table shows medians (default 5)
  --size B      UDP payload bytes, 8 to 1472 (default 64)
  --window W    datagrams in flight for the pipelined measurement (default 16)
  --pings N     pings per latency measurement, 2 ms apart (default 200)
`;

interface Options {
  seconds: number;
  reps: number;
  size: number;
  window: number;
  pings: number;
}

function parseOptions(argv: readonly string[]): Options {
  const defaults: Options = { seconds: 2, reps: 5, size: 64, window: 16, pings: 200 };
  const limits: Record<keyof Options, [number, number]> = { seconds: [0.2, 600], reps: [1, 100], size: [8, 1472], window: [1, 1024], pings: [2, 100_000] };
  return parseNumericOptions("bench:udp", argv, defaults, limits, USAGE, { fractional: ["seconds"] });
}

function fail(message: string): never {
  return failWith("bench:udp", message);
}

// ---- the two setups -------------------------------------------------------------------------------

const LINUX_CLIENT = "198.18.1.1";
const LINUX_SERVER = "198.18.1.2";
const ECHO_PORT = "7";

const namespaces: Netns[] = [];
let appliance: RunningAppliance | undefined;
let echoServer: ReturnType<Netns["spawn"]> | undefined;
let workDir = "";

function cleanup(): void {
  if (appliance !== undefined) {
    try {
      process.kill(appliance.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    appliance = undefined;
  }
  echoServer?.kill("SIGKILL");
  echoServer = undefined;
  for (const ns of namespaces.splice(0)) ns.destroy();
  if (workDir !== "") rmSync(workDir, { recursive: true, force: true });
  workDir = "";
}

cleanupOnSignals("bench:udp", cleanup);

interface Side {
  name: string;
  /** Where the client and ping run. */
  client: Netns;
  target: string;
}

async function setUpAtoll(): Promise<Side> {
  const image = buildAppliance(join(ROOT, "examples", "echo"), workDir);
  const ns = new Netns(`atoll-bench-udp-a-${process.pid}`);
  namespaces.push(ns);
  ns.addTap("tap0", HOST_CIDR);
  appliance = startAppliance(ns, image, { ipv4: APPLIANCE_CIDR, log: "warn" });
  await waitForPing(ns, APPLIANCE_ADDRESS, appliance);
  return { name: "Atoll (TAP)", client: ns, target: APPLIANCE_ADDRESS };
}

async function setUpLinux(): Promise<Side> {
  const client = new Netns(`atoll-bench-udp-lc-${process.pid}`);
  namespaces.push(client);
  const server = new Netns(`atoll-bench-udp-ls-${process.pid}`);
  namespaces.push(server);
  vethPair(client, server, "veth0", "veth1", LINUX_CLIENT, LINUX_SERVER);
  const started = server.spawn(["python3", "-u", script("udp-echo-server.py"), ECHO_PORT, LINUX_SERVER]);
  echoServer = started;
  await waitFor("the Linux UDP echo server", () => started.output().includes("ready") || started.exitCode !== null, 10_000);
  if (started.exitCode !== null) throw new Error(`the Linux echo server exited: ${started.output()}`);
  await waitForPing(client, LINUX_SERVER);
  return { name: "Linux (veth)", client, target: LINUX_SERVER };
}

// ---- measurements -------------------------------------------------------------------------------------

interface EchoResult {
  received: number;
  timeouts: number;
  late: number;
  mismatched: number;
  round_trips_per_second: number;
  rtt_us_median: number | null;
}

function roundTrips(side: Side, options: Options, window: number): EchoResult {
  const result: EchoResult = python(
    side.client,
    "udp-echo-client.py",
    [side.target, ECHO_PORT, "--seconds", String(options.seconds), "--size", String(options.size), "--window", String(window), "--timeout", "0.5"],
    (options.seconds + 30) * 1000,
  );
  if (result.mismatched > 0) throw new Error(`${side.name}: ${result.mismatched} echoes differed from what was sent`);
  return result;
}

interface PingResult {
  medianMs: number;
  meanMs: number;
  lost: number;
}

function pingLatency(side: Side, options: Options): PingResult {
  const { output } = tryExec(side.client, ["ping", "-n", "-c", String(options.pings), "-i", "0.002", "-W", "1", side.target], options.pings * 1000 + 30_000);
  const times = [...output.matchAll(/time=([\d.]+) ms/g)].map((match) => Number(match[1]));
  const summary = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//.exec(output);
  if (times.length === 0 || summary === null) throw new Error(`${side.name}: ping gave no times:\n${output}`);
  return { medianMs: median(times), meanMs: Number(summary[1]), lost: options.pings - times.length };
}

interface Sample {
  lockstep: number;
  pipelined: number;
  udpRttUs: number;
  pingMedianMs: number;
  pingMeanMs: number;
  /** Echoes not back within 0.5 s (some may have come later: `late`), pings unanswered. */
  timeouts: number;
  late: number;
  pingsLost: number;
}

function measure(side: Side, options: Options): Sample {
  const lockstep = roundTrips(side, options, 1);
  const pipelined = roundTrips(side, options, options.window);
  const ping = pingLatency(side, options);
  return {
    lockstep: lockstep.round_trips_per_second,
    pipelined: pipelined.round_trips_per_second,
    udpRttUs: lockstep.rtt_us_median ?? NaN,
    pingMedianMs: ping.medianMs,
    pingMeanMs: ping.meanMs,
    timeouts: lockstep.timeouts + pipelined.timeouts,
    late: lockstep.late + pipelined.late,
    pingsLost: ping.lost,
  };
}

// ---- main -----------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const missing = skipReason("python3", "ping");
  if (missing !== false) fail(`cannot run: ${missing}`);
  workDir = mkdtempSync(join(tmpdir(), "atoll-bench-udp-"));
  process.stdout.write(
    `bench:udp: ${options.reps} repetitions; UDP echo of ${options.size}-byte datagrams for ${options.seconds} s (1, then ${options.window} in flight); ping -c ${options.pings} -i 0.002\n` +
      `machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? "cpu"}, Linux ${release()}, node ${process.version}, load average ${loadavg().map((load) => load.toFixed(2)).join(" ")}\n` +
      `Atoll: examples/echo on the node tender over a TAP; Linux: a python3 recvfrom/sendto echo (kernel ping) over a veth pair\n\n`,
  );
  const atoll = await setUpAtoll();
  const linux = await setUpLinux();
  // A short warm-up of both, unmeasured: JIT, ARP, caches.
  roundTrips(atoll, { ...options, seconds: 0.5 }, 1);
  roundTrips(linux, { ...options, seconds: 0.5 }, 1);

  const samples = new Map<Side, Sample[]>([[atoll, []], [linux, []]]);
  for (let rep = 0; rep < options.reps; rep++) {
    const order = rep % 2 === 0 ? [atoll, linux] : [linux, atoll];
    for (const side of order) samples.get(side)?.push(measure(side, options));
    const [a, l] = [samples.get(atoll)?.at(-1), samples.get(linux)?.at(-1)];
    process.stdout.write(
      `rep ${rep + 1}/${options.reps}: round trips/s ${Math.round(a?.lockstep ?? 0)} vs ${Math.round(l?.lockstep ?? 0)}, pipelined ${Math.round(a?.pipelined ?? 0)} vs ${Math.round(l?.pipelined ?? 0)}, ping median ${a?.pingMedianMs.toFixed(3)} vs ${l?.pingMedianMs.toFixed(3)} ms\n`,
    );
  }

  const column = (side: Side, pick: (sample: Sample) => number): number => median((samples.get(side) ?? []).map(pick));
  const rows: [string, (sample: Sample) => number, (value: number) => string][] = [
    [`UDP echo round trips/s, 1 in flight (${options.size} B)`, (s) => s.lockstep, (v) => Math.round(v).toLocaleString("en")],
    [`UDP echo round trips/s, ${options.window} in flight`, (s) => s.pipelined, (v) => Math.round(v).toLocaleString("en")],
    ["UDP echo round-trip time, median (µs)", (s) => s.udpRttUs, (v) => v.toFixed(1)],
    ["ping latency, median (ms)", (s) => s.pingMedianMs, (v) => v.toFixed(3)],
    ["ping latency, mean (ms)", (s) => s.pingMeanMs, (v) => v.toFixed(3)],
    ["UDP echoes not back in 0.5 s (sum of reps)", (s) => s.timeouts, (v) => String(v)],
    ["  of which came back later", (s) => s.late, (v) => String(v)],
    ["pings unanswered (sum of reps)", (s) => s.pingsLost, (v) => String(v)],
  ];
  const sums = new Set(rows.slice(-3).map(([label]) => label));
  const table: string[][] = [];
  for (const [label, pick, format] of rows) {
    const total = (side: Side): number => (samples.get(side) ?? []).reduce((sum, sample) => sum + pick(sample), 0);
    const a = sums.has(label) ? total(atoll) : column(atoll, pick);
    const l = sums.has(label) ? total(linux) : column(linux, pick);
    table.push([label, format(a), format(l), sums.has(label) || l === 0 ? "-" : `${(a / l).toFixed(2)}×`]);
  }
  process.stdout.write(`\nmedians over ${options.reps} repetitions (ratio: Atoll / Linux)\n`);
  process.stdout.write(markdownTable(["measure", atoll.name, linux.name, "ratio"], table));
}

runBench("bench:udp", main, cleanup);

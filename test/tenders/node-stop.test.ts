/**
 * Issue #12, finding 9: SIGINT, SIGTERM and SIGHUP stop the node tender within a bound even while
 * the appliance never yields (a busy loop, endless microtasks, a write blocked on a stalled
 * stdout), with 128 + the signal; an idle appliance still stops through the orderly path (devices
 * closed, the capture complete, nothing on stderr); a second signal ends it at once.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { encodeImage } from "../../src/image/format.ts";
import { ATOLL, ROOT } from "../helpers/cli.ts";

/** The tender's grace period (STOP_GRACE_MS in src/tenders/node/tender.ts, documented in docs/cli.md). */
const GRACE_MS = 2000;
/** Slack for a machine shared with other test runs: process start-up and exit, scheduling. */
const SLACK_MS = 1500;

const dir = mkdtempSync(join(tmpdir(), "atoll-node-stop-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `text` (ASCII) to stderr from a raw image, then runs `rest`. */
const SAY = `const say = (s, stream) => base.consoleWrite(new Uint8Array([...s].map((c) => c.charCodeAt(0))), stream ?? 2);`;

function image(name: string, body: string, devices: { net?: string[]; block?: string[] } = {}): string {
  const path = join(dir, `${name}.atoll`);
  const code = `({ start(base) { ${SAY} ${body} } })`;
  writeFileSync(path, encodeImage({ manifest: { name, net: devices.net ?? [], block: devices.block ?? [], builtBy: "atoll 0.1.0", buildTime: "2026-12-01T00:00:00.000Z", abiVersion: 1 }, code }));
  return path;
}

const BUSY_LOOP = image("busy-loop", `say("running\\n"); for (;;) {}`);
const MICROTASKS = image("microtasks", `say("running\\n"); const f = () => Promise.resolve().then(f); f();`);
/** Writes 64 KiB to stdout forever: with a stdout nobody reads, the write blocks (or fails, and it tries again). */
const STALLED_STDOUT = image("stalled-stdout", `say("running\\n"); const chunk = new Uint8Array(65536).fill(120); for (;;) base.consoleWrite(chunk, 1);`);

interface Stopped {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  /** From the first signal to the process's exit. */
  readonly ms: number;
  readonly stderr: string;
}

/**
 * Runs `atoll run <args>`, waits for "running" on its stderr, sends `signals` (the second one
 * `gapMs` after the first), and resolves when it has exited; a tender still alive after 15 s is
 * SIGKILLed, so that a failure never leaves a process behind.
 */
function runAndSignal(args: readonly string[], signals: readonly NodeJS.Signals[], options: { stdout?: number; gapMs?: number; beforeSignal?: (pid: number) => void } = {}): Promise<Stopped> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ATOLL, "run", ...args], { cwd: ROOT, stdio: ["ignore", options.stdout ?? "ignore", "pipe"], env: { ...process.env, ATOLL_CODE_CACHE: "0" } });
    let stderr = "";
    let signalledAt = 0;
    const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.stderr?.on("data", (chunk: Buffer) => {
      const before = stderr;
      stderr += chunk.toString();
      if (!before.includes("running\n") && stderr.includes("running\n") && child.pid !== undefined) {
        options.beforeSignal?.(child.pid);
        signalledAt = performance.now();
        const [first, second] = signals;
        if (first !== undefined) child.kill(first);
        if (second !== undefined) setTimeout(() => child.kill(second), options.gapMs ?? 200);
      }
    });
    child.on("error", reject);
    child.on("close", (status, signal) => {
      clearTimeout(killer);
      resolve({ status, signal, ms: signalledAt === 0 ? Number.NaN : performance.now() - signalledAt, stderr });
    });
  });
}

const STATUS: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

function assertStoppedByWatchdog(result: Stopped, signal: NodeJS.Signals, name: string): void {
  assert.equal(result.signal, null, `${name}: died of ${String(result.signal)} instead of exiting; stderr: ${result.stderr}`);
  assert.equal(result.status, STATUS[signal], `${name} after ${signal}: ${result.stderr}`);
  // The JS thread never got to its handler: the watchdog ended it, after the grace period.
  assert.ok(result.ms >= GRACE_MS - 50 && result.ms < GRACE_MS + SLACK_MS, `${name} after ${signal}: stopped in ${Math.round(result.ms)} ms`);
  assert.match(result.stderr, new RegExp(`^atoll: appliance '${name}' did not stop within 2 s of ${signal}: ended without closing its devices`, "m"));
}

for (const [name, path] of [["busy-loop", BUSY_LOOP], ["microtasks", MICROTASKS]] as const) {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${name}: ${signal} stops the busy appliance within ${GRACE_MS} ms + slack, exit ${STATUS[signal]}`, async () => {
      assertStoppedByWatchdog(await runAndSignal([path], [signal]), signal, name);
    });
  }
}

test("busy-loop: SIGHUP stops it too, exit 129", async () => {
  assertStoppedByWatchdog(await runAndSignal([BUSY_LOOP], ["SIGHUP"]), "SIGHUP", "busy-loop");
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`stalled-stdout: ${signal} stops an appliance blocked writing to a stdout nobody reads`, async () => {
    const fifo = join(dir, `stdout-${signal}.fifo`);
    execFileSync("mkfifo", [fifo]);
    // The read end is held open (so writes do not fail with EPIPE) and never read: the pipe fills.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, constants.O_WRONLY);
    try {
      assertStoppedByWatchdog(await runAndSignal([STALLED_STDOUT], [signal], { stdout: writer }), signal, "stalled-stdout");
    } finally {
      closeSync(writer);
      closeSync(reader);
    }
  });
}

test("a second signal ends a busy appliance at once, with 128 + the second signal", async () => {
  const result = await runAndSignal([BUSY_LOOP], ["SIGTERM", "SIGINT"], { gapMs: 200 });
  assert.equal(result.status, 130, result.stderr);
  assert.ok(result.ms < 200 + SLACK_MS, `stopped in ${Math.round(result.ms)} ms`);
  assert.ok(result.ms < GRACE_MS, `the second signal did not wait for the grace period: ${Math.round(result.ms)} ms`);
  assert.doesNotMatch(result.stderr, /did not stop/);
});

/** The children of `pid` (the user-mode network's gateway, here). */
function childrenOf(pid: number): number[] {
  const tasks = join("/proc", String(pid), "task");
  const found: number[] = [];
  for (const task of existsSync(tasks) ? execFileSync("ls", [tasks], { encoding: "utf8" }).split("\n").filter(Boolean) : []) {
    const children = join(tasks, task, "children");
    if (existsSync(children)) for (const child of readFileSync(children, "utf8").split(" ").filter(Boolean)) found.push(Number(child));
  }
  return found;
}

/** Whether `pid` is still a live (not zombie) process. */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** Frames in a classic pcap file, checking that every record is whole. */
function pcapRecords(bytes: Buffer): number {
  assert.ok(bytes.length >= 24, "the capture has its global header");
  assert.equal(bytes.readUInt32LE(0), 0xa1b2c3d4);
  let offset = 24;
  let records = 0;
  while (offset < bytes.length) {
    assert.ok(offset + 16 <= bytes.length, `a cut record header at ${offset}`);
    const captured = bytes.readUInt32LE(offset + 8);
    offset += 16 + captured;
    assert.ok(offset <= bytes.length, `a cut record at ${offset}`);
    records++;
  }
  return records;
}

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  test(`idle: ${signal} takes the orderly path: exit ${STATUS[signal]} at once, nothing on stderr, capture complete, gateway gone`, async () => {
    // Sends three broadcast frames (captured as they go), writes a block, then waits for input that never comes.
    const idle = image(
      `idle-${signal.toLowerCase()}`,
      `const net = base.netAcquire("service"); const disk = base.blockAcquire("disk");
       for (let i = 0; i < 3; i++) { const frame = new Uint8Array(60); frame.fill(0xff, 0, 6); frame.set(net.mac, 6); frame[12] = 0x88; frame[13] = 0xb5; frame[14] = i; base.netWrite(net.handle, frame); }
       base.blockWrite(disk.handle, 0, new Uint8Array(512).fill(0x5a));
       const wait = () => base.yield(base.clockMonotonic() + 3600e9).then(wait);
       say("running\\n"); wait();`,
      { net: ["service"], block: ["disk"] },
    );
    const pcap = join(dir, `idle-${signal}.pcap`);
    const disk = join(dir, `idle-${signal}.img`);
    writeFileSync(disk, new Uint8Array(4096));
    let gateways: number[] = [];
    const result = await runAndSignal([idle, "--pcap", `service=${pcap}`, "--block", `disk=${disk}`], [signal], { beforeSignal: (pid) => (gateways = childrenOf(pid)) });
    assert.equal(result.status, STATUS[signal], result.stderr);
    assert.ok(result.ms < GRACE_MS, `the orderly path took ${Math.round(result.ms)} ms`);
    assert.equal(result.stderr.replace("running\n", ""), "");
    assert.ok(pcapRecords(readFileSync(pcap)) >= 3, "the three frames were captured");
    assert.deepEqual(new Uint8Array(readFileSync(disk)).subarray(0, 512), new Uint8Array(512).fill(0x5a));
    assert.ok(gateways.length > 0, "the user-mode gateway was running");
    const deadline = Date.now() + 5000;
    while (gateways.some(alive) && Date.now() < deadline) await new Promise((done) => setTimeout(done, 50));
    assert.deepEqual(gateways.filter(alive), [], "the gateway ended with the tender");
  });
}

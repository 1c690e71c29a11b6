/**
 * What the sealed user-mode network gateway actually calls, measured: `strace -f -c` attached to it
 * (after its lockdown, so that setup is not counted) while TCP and UDP traffic goes through every
 * path it has (fixtures/gateway.ts), and through its exit (SIGTERM to the gateway alone: it ends
 * after its grace period through Node's exit path). Every call counted must be on its allowlist
 * (src/tenders/user/allowlist.ts), and the traffic must have been relayed intact while traced.
 *
 * Tracing does not weaken the filter (seccomp runs after the tracer's syscall-entry stop since
 * Linux 4.8): a call the filter refuses still kills the gateway, and the traffic would fail.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";

import { GATEWAY_ALLOWED_SYSCALLS } from "../../../src/tenders/user/allowlist.ts";
import { waitFor } from "../../helpers/netns.ts";
import { exercise, startEcho } from "./fixtures/gateway.ts";

const ROUNDS = 20;
const strace = ["/usr/bin/strace", "/bin/strace"].find((path) => existsSync(path));
const scratch = mkdtempSync(join(tmpdir(), "atoll-gateway-strace-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Syscall names and counts from `strace -c` output (the table between the dashed rules). */
function parseSummary(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  const lines = text.split("\n");
  const start = lines.findIndex((line) => line.startsWith("------"));
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith("------")) break;
    const columns = line.trim().split(/\s+/);
    const name = columns.at(-1);
    const calls = Number(columns[3]);
    if (name !== undefined && Number.isInteger(calls)) counts.set(name, calls);
  }
  return counts;
}

test("strace -f -c: under TCP and UDP traffic and through its exit, the gateway makes only allowlisted calls", { skip: strace === undefined ? "needs strace (apt-get install strace)" : false, timeout: 120_000 }, async (t) => {
  const run = await startEcho("node");
  try {
    const threads = readdirSync(`/proc/${run.gateway}/task`).length;
    const summaryPath = join(scratch, "summary.txt");
    const tracer = spawn(strace ?? "strace", ["-f", "-c", "-o", summaryPath, "-p", String(run.gateway)], { stdio: ["ignore", "ignore", "pipe"] });
    let tracerErr = "";
    tracer.stderr.setEncoding("utf8").on("data", (chunk: string) => (tracerErr += chunk));
    const traced = new Promise<number | null>((resolve) => tracer.on("close", (code) => resolve(code)));
    await waitFor("strace to attach", () => tracerErr.includes("attached"), 10_000);

    await exercise(run, ROUNDS);
    // Alone, the gateway outlives a SIGTERM by its grace period, then exits through Node's exit path.
    process.kill(run.gateway, "SIGTERM");
    assert.equal(await traced, 0, tracerErr);
    assert.equal(await run.exited, 255, run.output());
    assert.match(run.output(), /the user-mode network gateway \(pid \d+\) exited/);

    const counts = parseSummary(readFileSync(summaryPath, "utf8"));
    t.diagnostic(`strace -f -c of the gateway (${threads} threads), ${ROUNDS} rounds of traffic and exit:`);
    for (const [name, calls] of [...counts].sort((a, b) => b[1] - a[1])) t.diagnostic(`  ${name.padEnd(16)} ${calls}`);
    assert.ok((counts.get("accept4") ?? 0) >= ROUNDS * 10, "the connections were accepted by the traced process");
    const outside = [...counts.keys()].filter((name) => name !== "total" && !GATEWAY_ALLOWED_SYSCALLS.includes(name));
    assert.deepEqual(outside, [], "calls outside the allowlist");
  } finally {
    await run.stop();
  }
});

/**
 * What the sealed user-mode network gateway actually calls, measured: `strace -f -c` attached to it
 * (after its lockdown, so that setup is not counted) while TCP and UDP traffic goes through every
 * path it has (fixtures/gateway.ts: the echo example, and the website for a guest that closes
 * first), and through its exit (SIGTERM to the gateway alone: it ends
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
import { exampleImage } from "../../helpers/cli.ts";
import { exercise, httpCloses, startEcho } from "./fixtures/gateway.ts";

const ROUNDS = 20;
const HTTP_REQUESTS = 20;
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

interface Trace {
  readonly attached: () => boolean;
  readonly done: Promise<{ code: number | null; stderr: string }>;
  readonly summary: string;
}

/** `strace -f -c` attached to `pid`, its summary written to `summary`. */
function trace(pid: number, summary: string): Trace {
  const tracer = spawn(strace ?? "strace", ["-f", "-c", "-o", summary, "-p", String(pid)], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  tracer.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return { attached: () => stderr.includes("attached"), done: new Promise((resolve) => tracer.on("close", (code) => resolve({ code, stderr }))), summary };
}

test("strace -f -c: under TCP and UDP traffic and through its exit, the gateway makes only allowlisted calls", { skip: strace === undefined ? "needs strace (apt-get install strace)" : false, timeout: 120_000 }, async (t) => {
  // The echo example for TCP both ways, refusals, resets and UDP; the website for a guest that
  // closes first (after each response): the gateway then half-closes towards the client.
  const echo = await startEcho("node");
  const website = await startEcho("node", { image: exampleImage("website"), guestPort: 80, ready: "serving" }).catch(async (error: unknown) => {
    await echo.stop();
    throw error;
  });
  try {
    const threads = readdirSync(`/proc/${echo.gateway}/task`).length;
    const traces = [trace(echo.gateway, join(scratch, "echo.txt")), trace(website.gateway, join(scratch, "website.txt"))];
    await waitFor("strace to attach", () => traces.every((item) => item.attached()), 10_000);

    await exercise(echo, ROUNDS);
    assert.deepEqual(await httpCloses(website, HTTP_REQUESTS), Array.from({ length: HTTP_REQUESTS }, () => 200));
    // Alone, a gateway outlives a SIGTERM by its grace period, then exits through Node's exit path.
    for (const run of [echo, website]) process.kill(run.gateway, "SIGTERM");
    for (const item of traces) {
      const { code, stderr } = await item.done;
      assert.equal(code, 0, stderr);
    }
    for (const run of [echo, website]) {
      assert.equal(await run.exited, 255, run.output());
      assert.match(run.output(), /the user-mode network gateway \(pid \d+\) exited/);
    }

    const counts = new Map<string, number>();
    for (const item of traces) for (const [name, calls] of parseSummary(readFileSync(item.summary, "utf8"))) counts.set(name, (counts.get(name) ?? 0) + calls);
    t.diagnostic(`strace -f -c of two gateways (${threads} threads each): ${ROUNDS} rounds of echo traffic, ${HTTP_REQUESTS} HTTP requests with Connection: close, and exit:`);
    for (const [name, calls] of [...counts].sort((a, b) => b[1] - a[1])) t.diagnostic(`  ${name.padEnd(16)} ${calls}`);
    assert.ok((counts.get("accept4") ?? 0) >= ROUNDS * 10 + HTTP_REQUESTS, "the connections were accepted by the traced processes");
    assert.ok((counts.get("shutdown") ?? 0) >= 1, "a half-close towards a client was traced");
    const outside = [...counts.keys()].filter((name) => name !== "total" && !GATEWAY_ALLOWED_SYSCALLS.includes(name));
    assert.deepEqual(outside, [], "calls outside the allowlist");
  } finally {
    await echo.stop();
    await website.stop();
  }
});

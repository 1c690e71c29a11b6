/**
 * What the sealed appliance process actually calls, measured: `strace -f -c` attached to it while
 * a ping flood runs against the ping appliance, through the end of the appliance (SIGTERM). Every
 * call strace counts must be on the allowlist (src/tenders/spt/allowlist.ts).
 *
 * strace attaches after lockdown, so the count covers exactly the locked-down life of the process
 * and not the setup before it. Tracing does not weaken the filter: since Linux 4.8 seccomp runs
 * after the tracer's syscall-entry stop, so a call strace shows and the filter refuses still kills
 * the process, and the test would see both. Attaching interrupts a wait in progress, which the
 * kernel resumes with restart_syscall (allowed for that reason, as for signals).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ALLOWED_SYSCALLS } from "../../../src/tenders/spt/allowlist.ts";
import { ATOLL, exampleImage } from "../../helpers/cli.ts";
import { canUseNamespaces, Netns, waitFor } from "../../helpers/netns.ts";
import { cleanupScratch, scratchDir } from "./fixtures/harness.ts";

const FLOOD_PINGS = 10_000;

function skipReason(): string | false {
  const namespaces = canUseNamespaces();
  if (namespaces !== false) return namespaces;
  const strace = ["/usr/bin/strace", "/bin/strace"].find((path) => existsSync(path));
  return strace === undefined ? "needs strace (apt-get install strace)" : false;
}

const skip = skipReason();
let ns: Netns | undefined;

before(() => {
  if (skip !== false) return;
  ns = new Netns(`atoll-spt-strace-${process.pid}`);
  ns.addTap("tap0", "198.18.0.1/24");
});

after(() => {
  ns?.destroy();
  cleanupScratch();
});

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

test("strace -f -c: under a ping flood and through its exit, the appliance makes only allowlisted calls", { skip }, async (t) => {
  assert.ok(ns !== undefined);
  const launcher = ns.spawn([process.execPath, ATOLL, "run", exampleImage("ping"), "--tender", "spt", "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2/24"]);
  await waitFor("the appliance to start", () => launcher.output().includes("answering ARP and ping"));
  assert.ok(launcher.pid !== undefined);
  const children = readFileSync(`/proc/${launcher.pid}/task/${launcher.pid}/children`, "utf8").trim().split(/\s+/);
  const appliance = Number(children[0]);
  assert.ok(Number.isInteger(appliance) && appliance > 0, `appliance process of ${launcher.pid}: ${children.join(" ")}`);
  const threads = readdirSync(`/proc/${appliance}/task`).length;

  const summaryPath = join(scratchDir(), "strace-summary.txt");
  const strace = spawn("strace", ["-f", "-c", "-o", summaryPath, "-p", String(appliance)], { stdio: ["ignore", "ignore", "pipe"] });
  let straceErr = "";
  strace.stderr.setEncoding("utf8").on("data", (chunk: string) => (straceErr += chunk));
  const straceDone = new Promise<number | null>((resolve) => strace.on("close", (code) => resolve(code)));
  try {
    await waitFor("strace to attach", () => straceErr.includes("attached"), 10_000);
    const flood = ns.exec(["ping", "-f", "-c", String(FLOOD_PINGS), "-s", "1000", "-W", "1", "198.18.0.2"], { timeoutMs: 120_000 });
    const received = Number(/(\d+) received/.exec(flood)?.[1]);
    assert.ok(received >= FLOOD_PINGS * 0.99, `the appliance answered ${received} of ${FLOOD_PINGS} pings while traced:\n${flood}`);
  } finally {
    launcher.kill("SIGTERM");
  }
  assert.equal(await launcher.exited, 143, launcher.output());
  assert.equal(await straceDone, 0, straceErr);

  const counts = parseSummary(readFileSync(summaryPath, "utf8"));
  t.diagnostic(`strace -f -c of the appliance process (${threads} threads), ${FLOOD_PINGS} pings and exit:`);
  for (const [name, calls] of [...counts].sort((a, b) => b[1] - a[1])) t.diagnostic(`  ${name.padEnd(16)} ${calls}`);
  assert.ok((counts.get("write") ?? 0) >= FLOOD_PINGS, "the replies were written through the traced process");
  const outside = [...counts.keys()].filter((name) => name !== "total" && !ALLOWED_SYSCALLS.includes(name));
  assert.deepEqual(outside, [], "calls outside the allowlist");
});

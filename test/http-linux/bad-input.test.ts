/**
 * examples/website (node tender, 198.18.0.2:80 on a TAP in a private namespace) against bad input
 * from raw Python sockets (fixtures/bad-input.py): malformed request lines, oversized heads, CR/LF
 * injection, smuggling attempts (CL+TE, duplicate or malformed Content-Length, obfuscated
 * Transfer-Encoding, bad chunk sizes), a too-large body, timeouts; each gets its status and a
 * close, and a smuggled second request is never answered. Then 200 slowloris connections (a byte
 * every 2 s) get 408 when the headers timeout (10 s) ends, while curl keeps being served.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { APPLIANCE_ADDRESS, BASE_URL, FIXTURES, curl, execSplit, siteFile, skipReason, startWebsite, type Lab } from "./fixtures/site.ts";

const skip = skipReason("curl", "python3", "ping");
const SCRIPT = join(FIXTURES, "bad-input.py");
let lab: Lab | undefined;

before(async () => {
  if (skip !== false) return;
  lab = await startWebsite("atoll-http-bad");
});

after(async () => {
  await lab?.destroy();
});

interface CaseResult {
  statuses: number[];
  closed: boolean;
  seconds: number | null;
  error: string | null;
  head: string;
}

/** Each case's expected statuses (one response, then the close); a list of choices where the RFCs allow either. */
const EXPECTED: Record<string, number | readonly number[]> = {
  good: 200,
  "no-target": 400,
  "extra-token": 400,
  "bad-method-char": 400,
  "double-space": 400,
  "lowercase-version": 400,
  "version-2": 505,
  garbage: 400,
  "missing-host": 400,
  "two-hosts": 400,
  "long-request-line": 414,
  "huge-header": 431,
  "many-headers": 431,
  "bare-cr-in-value": 400,
  "bare-lf-line": 400,
  "bare-lf-everywhere": 400,
  "nul-in-value": 400,
  "space-before-colon": 400,
  "obs-fold": 400,
  "crlf-in-target": 400,
  "cl-and-te": 400,
  "te-and-cl": 400,
  "duplicate-cl": 400,
  "cl-list": 400,
  "cl-sign": 400,
  "cl-hex": 400,
  "te-obfuscated": [400, 501],
  "te-not-last": [400, 501],
  "te-twice": 400,
  "te-in-http10": 400,
  "te-space-before-colon": 400,
  "chunk-size-bad": 400,
  "chunk-size-negative": 400,
  "chunk-size-overflow": [400, 413],
  "chunk-size-too-big": 413,
  "chunk-no-crlf": 400,
  "chunk-size-space": 400,
  "chunk-lf-only": 400,
  "body-too-large": 413,
  "expect-unknown": 417,
  connect: 501,
  idle: 408,
  "partial-head": 408,
};

test("malformed, oversized, injected and smuggled requests: the right status, then the server closes", { skip, timeout: 60_000 }, async () => {
  assert.ok(lab !== undefined);
  const started = performance.now();
  const run = await execSplit(lab.ns, ["python3", SCRIPT, APPLIANCE_ADDRESS, "80", "cases"], { timeoutMs: 40_000 });
  assert.equal(run.status, 0, run.stderr);
  const results = JSON.parse(run.stdout) as Record<string, CaseResult>;
  const wrong: string[] = [];
  for (const [name, expected] of Object.entries(EXPECTED)) {
    const result = results[name];
    const allowed = typeof expected === "number" ? [expected] : expected;
    if (result === undefined) wrong.push(`${name}: not run`);
    else if (result.statuses.length !== 1 || !allowed.includes(result.statuses[0] ?? 0)) {
      wrong.push(`${name}: statuses ${JSON.stringify(result.statuses)}, expected one of ${JSON.stringify(allowed)} (${JSON.stringify(result.head.slice(0, 60))}, ${result.error ?? ""})`);
    } else if (!result.closed) wrong.push(`${name}: ${result.statuses[0]} but the connection stayed open`);
  }
  assert.deepEqual(wrong, []);
  // Every error response says it closes.
  for (const [name, result] of Object.entries(results)) {
    if (name !== "good" && name !== "partial-body") assert.match(result.head, /\r\nConnection: close\r\n/i, name);
  }
  // The timeouts fire on time: idle 5 s, headers 10 s (DEFAULT_TIMEOUTS).
  assert.ok((results.idle?.seconds ?? 0) >= 4.5 && (results.idle?.seconds ?? 99) < 7, `idle: ${results.idle?.seconds}s`);
  assert.ok((results["partial-head"]?.seconds ?? 0) >= 9.5 && (results["partial-head"]?.seconds ?? 99) < 12, `partial head: ${results["partial-head"]?.seconds}s`);
  // A body that stops coming: the echo had started its answer (200, chunked), which is cut short
  // (no last chunk) when the body timeout (10 s) ends.
  const partial = results["partial-body"];
  assert.ok(partial !== undefined);
  assert.deepEqual(partial.statuses, [200]);
  assert.ok(partial.closed, "closed after the body timeout");
  assert.ok((partial.seconds ?? 0) >= 9.5, `partial body: ${partial.seconds}s`);
  assert.ok(performance.now() - started < 30_000);
  // The appliance is still fine.
  const check = await curl(lab.ns, [`${BASE_URL}/`]);
  assert.ok(check.stdoutBytes.equals(siteFile("index.html")), check.stderr);
});

test("200 slowloris connections get 408 at the headers timeout while curl keeps being served", { skip, timeout: 60_000 }, async () => {
  assert.ok(lab !== undefined);
  const slow = execSplit(lab.ns, ["python3", SCRIPT, APPLIANCE_ADDRESS, "80", "slowloris", "200", "14"], { timeoutMs: 40_000 });
  const served: string[] = [];
  const started = performance.now();
  // A normal client every 500 ms during the attack (which ends at the 10 s headers timeout).
  while (performance.now() - started < 9000) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const result = await curl(lab.ns, ["-o", "/dev/null", "-w", "%{http_code}", `${BASE_URL}/css/site.css`], 5000);
    served.push(result.status === 0 ? result.stdout : `curl failed (${result.status}): ${result.stderr.trim()}`);
  }
  const run = await slow;
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { connections: number; refused: number; statuses: Record<string, number>; closed: number; open_at_end: number; first_answer_s: number };
  assert.ok(served.length >= 10, `only ${served.length} curl runs`);
  assert.deepEqual(served.filter((status) => status !== "200"), [], "curl during the slowloris");
  assert.equal(result.connections, 200);
  assert.deepEqual(result.statuses, { 408: 200 }, JSON.stringify(result));
  assert.equal(result.open_at_end, 0);
  assert.ok(result.first_answer_s >= 9.5, `the first 408 came at ${result.first_answer_s}s, before the 10 s headers timeout`);
});

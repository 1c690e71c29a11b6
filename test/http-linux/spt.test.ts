/**
 * examples/website under the sealed tender (`atoll run --tender spt`: the appliance in its own
 * process behind a seccomp allowlist) against Linux over a TAP in a private namespace, the key
 * checks of website.test.ts: GET byte for byte (the baked assets reach the sealed process),
 * keep-alive over one connection, compressed and range requests, a chunked upload echoed back,
 * and a short wrk run without errors.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BASE_URL, curl, execSplit, headerValue, parseWrk, siteFile, skipReason, startWebsite, statusLines, type Lab } from "./fixtures/site.ts";

const skip = skipReason("curl", "wrk", "ping");
let lab: Lab | undefined;
let dir = "";

before(async () => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-http-spt-"));
  lab = await startWebsite("atoll-http-spt", { tender: "spt" });
});

after(async () => {
  await lab?.destroy();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

function ns(): Lab["ns"] {
  assert.ok(lab !== undefined);
  return lab.ns;
}

test("spt: GET and keep-alive: four URLs over one connection, bodies byte for byte", { skip, timeout: 30_000 }, async () => {
  const result = await curl(ns(), ["-v", `${BASE_URL}/`, `${BASE_URL}/css/site.css`, `${BASE_URL}/images/atoll.svg`, `${BASE_URL}/no-such-page`]);
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(statusLines(result.stderr), [200, 200, 200, 404]);
  assert.equal(result.stderr.match(/Re-using existing connection/g)?.length, 3, result.stderr);
  const expected = Buffer.concat(["index.html", "css/site.css", "images/atoll.svg", "404.html"].map(siteFile));
  assert.ok(result.stdoutBytes.equals(expected), "the bodies are the files");
});

test("spt: gzip, a range, and If-None-Match", { skip, timeout: 30_000 }, async () => {
  const gzip = await curl(ns(), ["-v", "--compressed", "-H", "Accept-Encoding: gzip", `${BASE_URL}/css/site.css`]);
  assert.equal(headerValue(gzip.stderr, "content-encoding"), "gzip");
  assert.ok(gzip.stdoutBytes.equals(siteFile("css/site.css")));
  const range = await curl(ns(), ["-v", "-r", "5-24", `${BASE_URL}/index.html`]);
  assert.deepEqual(statusLines(range.stderr), [206]);
  assert.ok(range.stdoutBytes.equals(siteFile("index.html").subarray(5, 25)));
  const etag = headerValue(range.stderr, "etag") ?? "";
  const cached = await curl(ns(), ["-v", "-H", `If-None-Match: ${etag}`, `${BASE_URL}/index.html`]);
  assert.deepEqual(statusLines(cached.stderr), [304]);
});

test("spt: a chunked upload to POST /echo comes back byte for byte", { skip, timeout: 60_000 }, async () => {
  const payload = randomBytes(400 * 1024);
  const file = join(dir, "upload.bin");
  writeFileSync(file, payload);
  const result = await curl(ns(), ["-v", "-H", "Transfer-Encoding: chunked", "--data-binary", `@${file}`, `${BASE_URL}/echo`]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /^> Transfer-Encoding: chunked\r?$/m);
  assert.deepEqual(statusLines(result.stderr), [200]);
  assert.ok(result.stdoutBytes.equals(payload), "echoed byte for byte");
});

test("spt: wrk -c 100 -t 2 -d 3s: no socket error, no non-2xx answer", { skip, timeout: 60_000 }, async () => {
  const run = await execSplit(ns(), ["wrk", "-c", "100", "-t", "2", "-d", "3s", `${BASE_URL}/`], { timeoutMs: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  const wrk = parseWrk(run.stdout);
  assert.deepEqual(wrk.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 }, wrk.output);
  assert.equal(wrk.non2xx, 0, wrk.output);
  assert.ok(wrk.requests > 500, wrk.output);
  assert.ok(lab !== undefined);
  assert.equal(await lab.appliance.stop(), 143, "SIGTERM ends the sealed appliance with 143");
});

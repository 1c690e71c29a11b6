/**
 * examples/website on the node tender against Linux clients over a TAP in a private namespace
 * (the appliance at 198.18.0.2:80): curl with keep-alive (several URLs over one connection),
 * content coding (gzip, br), ranges, conditional requests, HEAD, a chunked upload echoed back,
 * redirects and the 404 page; then wrk with 100 connections: no socket error, no non-2xx answer,
 * and the appliance still answers afterwards.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "../helpers/netns.ts";
import { BASE_URL, curl, execSplit, headerValue, parseWrk, siteFile, skipReason, startWebsite, statusLines, type Lab } from "./fixtures/site.ts";

const skip = skipReason("curl", "wrk", "ping");
let lab: Lab | undefined;
let dir = "";

before(async () => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-http-website-"));
  lab = await startWebsite("atoll-http-web");
});

after(async () => {
  await lab?.destroy();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

function ns(): Lab["ns"] {
  assert.ok(lab !== undefined);
  return lab.ns;
}

test("keep-alive: three URLs in one curl invocation share one connection, bodies byte for byte", { skip, timeout: 30_000 }, async () => {
  const paths = ["/", "/css/site.css", "/images/atoll.svg", "/docs/"];
  const result = await curl(ns(), ["-v", ...paths.map((path) => `${BASE_URL}${path}`)]);
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(statusLines(result.stderr), [200, 200, 200, 200]);
  assert.equal(result.stderr.match(/Re-using existing connection/g)?.length, 3, result.stderr);
  assert.equal(result.stderr.match(/Connected to /g)?.length, 1, "one TCP connection");
  const expected = Buffer.concat(["index.html", "css/site.css", "images/atoll.svg", "docs/index.html"].map(siteFile));
  assert.ok(result.stdoutBytes.equals(expected), "the bodies are the files");
  assert.match(result.stderr, /^< content-type: text\/css; charset=utf-8\r?$/im);
  assert.match(result.stderr, /^< content-type: image\/svg\+xml\r?$/im);
});

test("keep-alive responses are not held back (Nagle + the client's delayed ACK would add ~40 ms to each)", { skip, timeout: 30_000 }, async () => {
  // index.html's response is one full segment and a partial one: the case Nagle's algorithm holds.
  const urls = Array.from({ length: 12 }, () => ["-o", "/dev/null", `${BASE_URL}/`]).flat();
  const result = await curl(ns(), ["-w", "%{time_total}\\n", ...urls]);
  assert.equal(result.status, 0, result.stderr);
  const times = result.stdout.trim().split("\n").map(Number);
  assert.equal(times.length, 12);
  const later = times.slice(1).sort((a, b) => a - b);
  const median = later[later.length >> 1] ?? NaN;
  assert.ok(median < 0.02, `keep-alive requests took ${times.map((time) => `${(time * 1000).toFixed(1)} ms`).join(", ")}`);
});

test("content coding: gzip and br are chosen by Accept-Encoding and decode to the file", { skip, timeout: 30_000 }, async () => {
  const supportsBr = /\bbrotli\b/.test((await execSplit(ns(), ["curl", "-V"])).stdout);
  const codings = supportsBr ? ["gzip", "br"] : ["gzip"];
  for (const coding of codings) {
    const result = await curl(ns(), ["-v", "--compressed", "-H", `Accept-Encoding: ${coding}`, `${BASE_URL}/css/site.css`]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(headerValue(result.stderr, "content-encoding"), coding);
    assert.equal(headerValue(result.stderr, "vary"), "Accept-Encoding");
    assert.match(headerValue(result.stderr, "etag") ?? "", new RegExp(`-${coding}"$`));
    assert.ok(Number(headerValue(result.stderr, "content-length")) < siteFile("css/site.css").length, "smaller than the file");
    assert.ok(result.stdoutBytes.equals(siteFile("css/site.css")), `${coding} decodes to the file`);
  }
  // curl's own --compressed list (deflate, gzip, br, zstd): br when curl has it.
  const preferred = await curl(ns(), ["-v", "--compressed", `${BASE_URL}/`]);
  assert.equal(headerValue(preferred.stderr, "content-encoding"), supportsBr ? "br" : "gzip");
  assert.ok(preferred.stdoutBytes.equals(siteFile("index.html")));
  // No Accept-Encoding: identity.
  const plain = await curl(ns(), ["-v", `${BASE_URL}/`]);
  assert.equal(headerValue(plain.stderr, "content-encoding"), undefined);
  assert.equal(Number(headerValue(plain.stderr, "content-length")), siteFile("index.html").length);
});

test("ranges: one range → 206 with Content-Range and exactly those bytes; unsatisfiable → 416", { skip, timeout: 30_000 }, async () => {
  const file = siteFile("index.html");
  for (const [spec, first, last] of [["10-99", 10, 99], ["-50", file.length - 50, file.length - 1], ["1000-", 1000, file.length - 1]] as const) {
    const result = await curl(ns(), ["-v", "-r", spec, `${BASE_URL}/index.html`]);
    assert.deepEqual(statusLines(result.stderr), [206], spec);
    assert.equal(headerValue(result.stderr, "content-range"), `bytes ${first}-${last}/${file.length}`);
    assert.ok(result.stdoutBytes.equals(file.subarray(first, last + 1)), `the bytes of ${spec}`);
  }
  const beyond = await curl(ns(), ["-v", "-r", `${file.length + 10}-`, `${BASE_URL}/index.html`]);
  assert.deepEqual(statusLines(beyond.stderr), [416]);
  assert.equal(headerValue(beyond.stderr, "content-range"), `bytes */${file.length}`);
});

test("conditional requests: If-None-Match with the ETag → 304 without a body; If-Match mismatch → 412", { skip, timeout: 30_000 }, async () => {
  const first = await curl(ns(), ["-v", "-o", "/dev/null", `${BASE_URL}/images/atoll.svg`]);
  const etag = headerValue(first.stderr, "etag");
  assert.match(etag ?? "", /^"[A-Za-z0-9_-]{43}"$/);
  const again = await curl(ns(), ["-v", "-H", `If-None-Match: ${etag}`, `${BASE_URL}/images/atoll.svg`]);
  assert.deepEqual(statusLines(again.stderr), [304]);
  assert.equal(again.stdoutBytes.length, 0);
  assert.equal(headerValue(again.stderr, "etag"), etag);
  const weak = await curl(ns(), ["-v", "-H", `If-None-Match: "nope", W/${etag}`, `${BASE_URL}/images/atoll.svg`]);
  assert.deepEqual(statusLines(weak.stderr), [304], "weak comparison");
  const changed = await curl(ns(), ["-v", "-H", `If-None-Match: "something-else"`, `${BASE_URL}/images/atoll.svg`]);
  assert.deepEqual(statusLines(changed.stderr), [200]);
  const ifMatch = await curl(ns(), ["-v", "-H", `If-Match: "something-else"`, `${BASE_URL}/images/atoll.svg`]);
  assert.deepEqual(statusLines(ifMatch.stderr), [412]);
});

test("HEAD: GET's fields, Content-Length included, and no body (the connection stays usable)", { skip, timeout: 30_000 }, async () => {
  const result = await curl(ns(), ["-v", "-I", `${BASE_URL}/css/site.css`, "-I", `${BASE_URL}/`]);
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(statusLines(result.stderr), [200, 200]);
  assert.match(result.stderr, /Re-using existing connection/);
  const lengths = [...result.stdout.matchAll(/^content-length: (\d+)\r?$/gim)].map((match) => Number(match[1]));
  assert.deepEqual(lengths, [siteFile("css/site.css").length, siteFile("index.html").length]);
  assert.ok(!result.stdout.includes("<html"), "no body");
});

test("a chunked upload to POST /echo comes back byte for byte; a plain one and one with Expect: 100-continue too; GET /echo → 405", { skip, timeout: 60_000 }, async () => {
  const payload = randomBytes(600 * 1024);
  const file = join(dir, "upload.bin");
  writeFileSync(file, payload);
  const chunked = await curl(ns(), ["-v", "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: application/x-test", "--data-binary", `@${file}`, `${BASE_URL}/echo`]);
  assert.equal(chunked.status, 0, chunked.stderr);
  assert.match(chunked.stderr, /^> Transfer-Encoding: chunked\r?$/m, "curl sent it chunked");
  assert.deepEqual(statusLines(chunked.stderr), [200]);
  assert.equal(headerValue(chunked.stderr, "content-type"), "application/x-test");
  assert.equal(chunked.stdoutBytes.length, payload.length);
  assert.ok(chunked.stdoutBytes.equals(payload), "echoed byte for byte");

  const sized = await curl(ns(), ["-v", "--data-binary", `@${file}`, `${BASE_URL}/echo`]);
  assert.deepEqual(statusLines(sized.stderr), [200]);
  assert.ok(sized.stdoutBytes.equals(payload), "a Content-Length upload, echoed");

  // Expect: 100-continue: the 100 comes at once (curl would otherwise wait 1 s before sending).
  const expect = await curl(ns(), ["-v", "-H", "Expect: 100-continue", "-w", "%{time_total}", "-o", join(dir, "expect.out"), "--data-binary", `@${file}`, `${BASE_URL}/echo`]);
  assert.deepEqual(statusLines(expect.stderr), [100, 200], expect.stderr);
  assert.ok(readFileSync(join(dir, "expect.out")).equals(payload), "echoed after 100 Continue");
  assert.ok(Number(expect.stdout) < 0.9, `the upload with Expect took ${expect.stdout} s`);

  const get = await curl(ns(), ["-v", `${BASE_URL}/echo`]);
  assert.deepEqual(statusLines(get.stderr), [405]);
  assert.equal(headerValue(get.stderr, "allow"), "POST");
});

test("an upload over the 1 MiB body limit → 413", { skip, timeout: 60_000 }, async () => {
  const file = join(dir, "big.bin");
  writeFileSync(file, randomBytes(2 << 20));
  const result = await curl(ns(), ["-v", "-o", "/dev/null", "--data-binary", `@${file}`, `${BASE_URL}/echo`]);
  assert.deepEqual(statusLines(result.stderr), [413], result.stderr);
});

test("404 page, directory redirect, directory index, 405 for POST to a file", { skip, timeout: 30_000 }, async () => {
  const missing = await curl(ns(), ["-v", `${BASE_URL}/no-such-page`]);
  assert.deepEqual(statusLines(missing.stderr), [404]);
  assert.ok(missing.stdoutBytes.equals(siteFile("404.html")), "the site's 404.html");
  assert.equal(headerValue(missing.stderr, "content-type"), "text/html; charset=utf-8");

  const redirect = await curl(ns(), ["-v", `${BASE_URL}/docs?x=1`]);
  assert.deepEqual(statusLines(redirect.stderr), [301]);
  assert.match(headerValue(redirect.stderr, "location") ?? "", /\/docs\/\?x=1$/);
  const followed = await curl(ns(), ["-L", `${BASE_URL}/docs`]);
  assert.ok(followed.stdoutBytes.equals(siteFile("docs/index.html")));

  const post = await curl(ns(), ["-v", "-d", "x=1", `${BASE_URL}/index.html`]);
  assert.deepEqual(statusLines(post.stderr), [405]);
  assert.equal(headerValue(post.stderr, "allow"), "GET, HEAD");
});

test("the access log names the client as a dotted quad, with the request line, status and size", { skip, timeout: 30_000 }, async () => {
  assert.ok(lab !== undefined);
  const appliance = lab.appliance;
  const result = await curl(ns(), ["-o", "/dev/null", `${BASE_URL}/images/atoll.svg?from=access-log-test`]);
  assert.equal(result.status, 0, result.stderr);
  const line = `INFO  http.access: 198.18.0.1 - - [`;
  const request = `"GET /images/atoll.svg?from=access-log-test HTTP/1.1" 200 ${siteFile("images/atoll.svg").length}`;
  await waitFor("the access log line", () => appliance.output().split("\n").some((text) => text.includes(line) && text.includes(request)), 5000);
});

test("wrk -c 100 -t 2 -d 5s: no socket error, no non-2xx answer, and the appliance answers afterwards", { skip, timeout: 60_000 }, async () => {
  const result = await execSplit(ns(), ["wrk", "-c", "100", "-t", "2", "-d", "5s", "--latency", `${BASE_URL}/`], { timeoutMs: 40_000 });
  assert.equal(result.status, 0, result.stderr);
  const wrk = parseWrk(result.stdout);
  assert.deepEqual(wrk.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 }, wrk.output);
  assert.equal(wrk.non2xx, 0, wrk.output);
  assert.ok(wrk.requests > 1000, `only ${wrk.requests} requests:\n${wrk.output}`);
  const after = await curl(ns(), [`${BASE_URL}/`]);
  assert.equal(after.status, 0, after.stderr);
  assert.ok(after.stdoutBytes.equals(siteFile("index.html")));
});

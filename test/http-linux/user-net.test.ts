/**
 * The website through user-mode networking (`-p`, the default --net: no root, no TAP): the same
 * curl checks as over a TAP (keep-alive, --compressed, ranges, conditional requests, HEAD, a
 * chunked upload to the echo route) and wrk -c 100 with no socket errors and no non-2xx answers.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ATOLL, exampleImage, ROOT } from "../helpers/cli.ts";
import { waitFor } from "../helpers/netns.ts";
import { parseWrk } from "./fixtures/site.ts";

const run = promisify(execFile);
const missing = ["curl", "wrk"].filter((tool) => !["/usr/bin", "/bin", "/usr/local/bin"].some((dir) => existsSync(join(dir, tool))));
const skip = missing.length > 0 ? `needs ${missing.join(" and ")} (apt-get install ${missing.join(" ")})` : false;

let appliance: ChildProcess | undefined;
let output = "";
let base = "";
let dir = "";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function curl(args: readonly string[]): Promise<string> {
  const { stdout, stderr } = await run("curl", ["-sS", "--max-time", "20", ...args], { encoding: "latin1", maxBuffer: 1 << 26 });
  return stdout + stderr;
}

before(async () => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-user-web-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  appliance = spawn(process.execPath, [ATOLL, "run", exampleImage("website"), "-p", `${port}:80`], { stdio: ["ignore", "pipe", "pipe"] });
  appliance.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  appliance.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  // Up once the guest has its DHCP lease and answers through the published port.
  await waitFor("the website through -p", () => /serving \d+ files/.test(output), 20_000);
});

after(async () => {
  if (appliance !== undefined && appliance.exitCode === null) {
    const exited = new Promise((resolve) => appliance?.once("exit", resolve));
    appliance.kill("SIGTERM");
    const timer = setTimeout(() => appliance?.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

const index = (): Buffer => readFileSync(join(ROOT, "examples", "website", "public", "index.html"));

test("curl through -p: keep-alive, compression, ranges, conditional requests, HEAD", { skip }, async () => {
  const keepAlive = await curl(["-v", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", `${base}/`, `${base}/css/site.css`, `${base}/images/atoll.svg`]);
  assert.equal((keepAlive.match(/Re-using existing connection/g) ?? []).length, 2, keepAlive);

  const gzip = await curl(["-D", "-", "-H", "Accept-Encoding: gzip", "--compressed", `${base}/`]);
  assert.match(gzip, /content-encoding: gzip/i);
  assert.ok(gzip.includes(index().toString("latin1")), "the decompressed page is the file");

  const range = await curl(["-D", "-", "-r", "10-99", `${base}/`]);
  assert.match(range, /^HTTP\/1\.1 206/m);
  assert.match(range, new RegExp(`content-range: bytes 10-99/${index().length}`, "i"));
  assert.ok(range.endsWith(index().subarray(10, 100).toString("latin1")));

  const etag = /etag: (".*")/i.exec(await curl(["-D", "-", "-o", "/dev/null", `${base}/`]))?.[1];
  assert.ok(etag !== undefined);
  assert.match(await curl(["-D", "-", "-H", `If-None-Match: ${etag}`, `${base}/`]), /^HTTP\/1\.1 304/m);

  const head = await curl(["-I", `${base}/`]);
  assert.match(head, /^HTTP\/1\.1 200/m);
  assert.match(head, new RegExp(`content-length: ${index().length}`, "i"));
});

test("curl through -p: a chunked upload comes back from the echo route", { skip }, async () => {
  const upload = join(dir, "upload.bin");
  const data = Buffer.alloc(300 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  writeFileSync(upload, data);
  const echoed = join(dir, "echoed.bin");
  await curl(["-H", "Transfer-Encoding: chunked", "--data-binary", `@${upload}`, "-o", echoed, `${base}/echo`]);
  assert.ok(readFileSync(echoed).equals(data));
});

test("wrk -c 100 through -p: no socket errors, no non-2xx", { skip }, async () => {
  const { stdout } = await run("wrk", ["-t", "2", "-c", "100", "-d", "5s", `${base}/`], { timeout: 60_000 });
  const result = parseWrk(stdout);
  assert.ok(result.requests > 0, stdout);
  assert.deepEqual(result.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 }, stdout);
  assert.equal(result.non2xx, 0, stdout);
});

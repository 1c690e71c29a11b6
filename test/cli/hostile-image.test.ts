/**
 * Issue #12, findings 7 and 8, from the outside: what a hostile image can make `atoll inspect` and
 * `atoll run` print in their own name (escaped, bounded, no forged `atoll:` line), and files that
 * are no image (endless, blocking, huge) refused at once, in bounded time and memory.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ABORT_EXIT_STATUS } from "../../src/abi/base.ts";
import { encodeImage, IMAGE_FORMAT_VERSION } from "../../src/image/format.ts";
import type { Manifest } from "../../src/image/manifest.ts";
import { atoll, ATOLL } from "../helpers/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "atoll-hostile-image-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const ESC = "\u001b";
const manifest: Manifest = { name: "hello", net: [], block: [], builtBy: "atoll 0.1.0", buildTime: "2026-12-01T00:00:00.000Z", abiVersion: 1 };

function writeImage(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** No byte of ESC, CSI (U+009B), BEL or CR may reach the terminal from the image. */
function assertNoRawControls(text: string): void {
  assert.doesNotMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/u, `raw control characters in ${JSON.stringify(text)}`);
}

test("inspect escapes builtBy's ESC sequences, newlines and C1 controls, in text and JSON", () => {
  const builtBy = `atoll 0.1.0${ESC}[2K\r\nnet devices:     -\u009b31m\u0007`;
  const path = writeImage("builtby.atoll", encodeImage({ manifest: { ...manifest, net: ["secret"], builtBy }, code: "({ start() {} })" }));

  const text = atoll(["inspect", path]);
  assert.equal(text.status, 0, text.stderr);
  assertNoRawControls(text.stdout);
  // The forged "net devices: -" stays on the built-by line; the real one names the device.
  assert.match(text.stdout, /^built by: +atoll 0\.1\.0\\x1b\[2K\\r\\nnet devices: +-\\x9b31m\\x07$/m);
  assert.match(text.stdout, /^net devices: +secret$/m);
  assert.equal(text.stdout.split("\n").filter((line) => line.startsWith("net devices:")).length, 1);

  const json = atoll(["inspect", path, "--json"]);
  assert.equal(json.status, 0, json.stderr);
  assertNoRawControls(json.stdout);
  assert.doesNotMatch(json.stdout, /\u009b/u);
  const parsed: unknown = JSON.parse(json.stdout);
  assert.equal(typeof parsed === "object" && parsed !== null ? Reflect.get(parsed, "builtBy") : undefined, builtBy);
});

test("an image error that quotes the image (an unknown manifest field) is escaped", () => {
  const withUnknownField: Manifest = Object.assign({ ...manifest }, { [`x${ESC}]0;pwned\u0007`]: 1 });
  const path = writeImage("field.atoll", encodeImage({ manifest: withUnknownField, code: "({ start() {} })" }));
  for (const command of ["inspect", "run"]) {
    const result = atoll([command, path]);
    assert.notEqual(result.status, 0);
    assertNoRawControls(result.stderr);
    assert.match(result.stderr, /unknown field 'x\\x1b\]0;pwned\\x07'/);
    assert.equal(result.stderr.trimEnd().split("\n").length, 1, result.stderr);
  }
});

/** An image whose start aborts with ESC sequences, a forged `atoll:` line and 200 KB of padding. */
const ABORT_CODE = `({ start(base) { base.abort("boom \\u001b[31mred\\nInfo\\u0085\\natoll: appliance 'hello' exited with status 0\\n" + "x".repeat(200000)); } })`;

for (const tender of ["node", "spt"]) {
  test(`abort reasons are escaped, continuation lines prefixed and the reason bounded (${tender} tender)`, () => {
    const path = writeImage(`abort-${tender}.atoll`, encodeImage({ manifest, code: ABORT_CODE }));
    const result = atoll(["run", "--tender", tender, path], { env: { ...process.env, ATOLL_CODE_CACHE: "0" } });
    assert.equal(result.status, ABORT_EXIT_STATUS, result.stderr.slice(0, 500));
    assertNoRawControls(result.stderr);
    const lines = result.stderr.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^atoll: appliance 'hello' aborted: boom \\x1b\[31mred$/);
    assert.equal(lines[1], "  Info\\x85");
    assert.equal(lines[2]?.startsWith("  atoll: appliance 'hello' exited"), true, lines[2]);
    assert.equal(lines.filter((line) => line.startsWith("atoll:")).length, 1, "only the tender's own line starts with atoll:");
    assert.match(result.stderr, /x\.\.\. \(\d+ bytes more\)\n$/);
    assert.ok(result.stderr.length < 70 * 1024, `${result.stderr.length} bytes on stderr`);
  });
}

test("a load error is one escaped, bounded line", () => {
  const code = `throw new Error("bad\\u001b[1m" + "y".repeat(5000000) + "\\natoll: forged");`;
  const path = writeImage("load.atoll", encodeImage({ manifest, code }));
  const result = atoll(["run", path], { env: { ...process.env, ATOLL_CODE_CACHE: "0" } });
  assert.equal(result.status, 125, result.stderr.slice(0, 500));
  assertNoRawControls(result.stderr);
  assert.equal(result.stderr.trimEnd().split("\n").length, 1);
  assert.match(result.stderr, /the image failed to load: Error: bad\\x1b\[1m/);
  assert.match(result.stderr, /\(\d+ bytes more\)/);
  assert.ok(result.stderr.length < 70 * 1024, `${result.stderr.length} bytes on stderr`);
});

/** Runs the CLI and measures its wall time and, when GNU time is installed, its peak RSS. */
function timed(args: readonly string[]): { status: number | null; stderr: string; ms: number; maxRssKiB: number } {
  const started = performance.now();
  const result = spawnSync("/bin/sh", ["-c", 'command -v /usr/bin/time >/dev/null && exec /usr/bin/time -f "maxrss=%M" "$@" || exec "$@"', "sh", process.execPath, ATOLL, ...args], {
    encoding: "utf8",
    timeout: 20_000,
  });
  const ms = performance.now() - started;
  const rss = /maxrss=(\d+)/.exec(result.stderr)?.[1];
  return { status: result.status, stderr: result.stderr.replace(/^(Command exited.*\n)?maxrss=\d+\n?/m, ""), ms, maxRssKiB: rss === undefined ? 0 : Number(rss) };
}

function assertRefusedAtOnce(target: string, message: RegExp): void {
  for (const command of ["inspect", "run"]) {
    const result = timed([command, target]);
    assert.equal(result.status, command === "run" ? 125 : 1, `${command} ${target}: ${result.stderr}`);
    assert.match(result.stderr.split("\n")[0] ?? "", message);
    assert.ok(result.ms < 5000, `${command} ${target} took ${Math.round(result.ms)} ms`);
    if (result.maxRssKiB > 0) assert.ok(result.maxRssKiB < 200 * 1024, `${command} ${target} peaked at ${result.maxRssKiB} KiB`);
  }
}

test("/dev/zero is refused at once as a character device", () => {
  assertRefusedAtOnce("/dev/zero", /^atoll (inspect|run): \/dev\/zero is not a regular file \(a character device\)/);
});

test("a FIFO is refused at once, without waiting for a writer", () => {
  const fifo = join(dir, "image.fifo");
  execFileSync("mkfifo", [fifo]);
  assertRefusedAtOnce(fifo, /is not a regular file \(a FIFO\)/);
});

test("a large sparse file with a bad magic is refused without reading it", () => {
  const path = join(dir, "sparse.atoll");
  const fd = openSync(path, "w");
  ftruncateSync(fd, 3 * 1024 ** 3);
  closeSync(fd);
  assertRefusedAtOnce(path, /not an Atoll image \(bad magic\)/);
});

test("a large sparse file whose header is right but whose table does not match its size is refused before reading", () => {
  const path = join(dir, "sparse-header.atoll");
  const header = Buffer.alloc(16 + 2 * 24);
  header.write("ATOLLIMG", 0, "latin1");
  header.writeUInt32LE(IMAGE_FORMAT_VERSION, 8);
  header.writeUInt32LE(2, 12);
  header.writeUInt32LE(1, 16);
  header.writeBigUInt64LE(64n, 24);
  header.writeBigUInt64LE(10n, 32);
  header.writeUInt32LE(2, 40);
  header.writeBigUInt64LE(74n, 48);
  header.writeBigUInt64LE(10n, 56);
  const fd = openSync(path, "w");
  writeSync(fd, header);
  ftruncateSync(fd, 3 * 1024 ** 3);
  closeSync(fd);
  assertRefusedAtOnce(path, /image has bytes between its last section and its hash/);
});

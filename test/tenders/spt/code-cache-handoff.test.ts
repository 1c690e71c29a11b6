/**
 * The spt launcher's side of the code cache (code-cache-handoff.ts), without an appliance process:
 * how the fds are numbered in the plan, that a cache is signed only when the appliance process
 * said it wrote one before "ready", and that an appliance process that never got to "ready" leaves
 * nothing behind.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { decodeImage, encodeImage } from "../../../src/image/format.ts";
import { codeCacheFileName, readHandedPayload, writeHandedPayload } from "../../../src/tenders/common/code-cache.ts";
import { CodeCacheHandoff } from "../../../src/tenders/spt/code-cache-handoff.ts";

const home = mkdtempSync(join(tmpdir(), "atoll-handoff-"));
after(() => rmSync(home, { recursive: true, force: true }));
// openCodeCache reads the process's environment, as `atoll run` does.
process.env.XDG_CACHE_HOME = home;
delete process.env.ATOLL_CODE_CACHE;
const dir = join(home, "atoll");

const image = decodeImage(
  encodeImage({ manifest: { name: "hello", net: [], block: [], builtBy: "atoll 0.1.0", buildTime: "2026-12-01T00:00:00.000Z", abiVersion: 1 }, code: "({ start() {} })" }),
);
const flags = ["--no-warnings"];
const payload = Buffer.from("not really V8's, but the launcher never looks inside");
const name = codeCacheFileName({ imageSha256: image.sha256, variant: "spt-m64", flags });

function prepare(): CodeCacheHandoff {
  const warnings: string[] = [];
  const handoff = CodeCacheHandoff.prepare(image, flags, 64, 10, (line) => warnings.push(line));
  assert.deepEqual(warnings, []);
  assert.ok(handoff !== undefined);
  return handoff;
}

const temporaries = (): string[] => readdirSync(dir).filter((entry) => entry.endsWith(".tmp"));

test("a miss: one fd to write into; signed and renamed on ready after code-cache-written; then a hit hands over the payload's hash", () => {
  const miss = prepare();
  assert.equal(miss.fds.length, 1);
  assert.deepEqual(miss.plan(7), { write: 7 });
  assert.equal(temporaries().length, 1);
  const [writeFd] = miss.fds;
  assert.equal(writeHandedPayload(writeFd ?? -1, payload), true);
  miss.markWritten();
  miss.settle();
  assert.deepEqual(temporaries(), []);
  assert.ok(readdirSync(dir).includes(name));
  assert.equal(miss.rejection("miss"), undefined);

  const hit = prepare();
  assert.equal(hit.fds.length, 2);
  const planned = hit.plan(7);
  assert.equal(planned.write, 8);
  assert.equal(planned.read?.fd, 7);
  assert.equal(planned.read?.length, payload.length);
  const [readFd] = hit.fds;
  assert.deepEqual(readHandedPayload(readFd ?? -1, planned.read?.length ?? 0, planned.read?.sha256 ?? ""), payload);
  assert.equal(hit.rejection("hit"), undefined);
  assert.equal(hit.rejection("miss"), "v8", "authenticated, and still a miss: V8 refused it");
  hit.settle();
  assert.deepEqual(temporaries(), [], "a hit removes the unused temporary file");
});

test("an appliance process that never said ready: its temporary file is removed unsigned, even if it said it wrote", () => {
  rmSync(join(dir, name));
  const handoff = prepare();
  const [writeFd] = handoff.fds;
  assert.equal(writeHandedPayload(writeFd ?? -1, payload), true);
  handoff.markWritten();
  handoff.abandon();
  handoff.settle();
  assert.deepEqual(temporaries(), []);
  assert.ok(!readdirSync(dir).includes(name));
});

test("without two fds to spare in the appliance process, no cache", () => {
  assert.equal(CodeCacheHandoff.prepare(image, flags, 64, 1, () => assert.fail("no warning expected")), undefined);
});

/**
 * Issue #12, finding 3, from the outside, on both tenders: a symbolic link planted as the cache
 * file is not written through, a cache directory someone else could write is refused with one
 * warning line and the appliance still runs, and a damaged cache (or another image's) never
 * reaches V8 (before this, a flipped byte killed both tenders with SIGTRAP in V8's deserializer,
 * spt's appliance process still as root): the appliance runs normally and the next run hits the
 * good cache it wrote. Whether V8 got a cache shows in ATOLL_BOOT_TRACE (`codeCache`,
 * `codeCacheRejected`).
 */
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { decodeImage, encodeImage } from "../../src/image/format.ts";
import { CODE_CACHE_PAYLOAD_OFFSET, codeCacheFileName } from "../../src/tenders/common/code-cache.ts";
import { atoll, exampleImage } from "../helpers/cli.ts";

const isRoot = process.getuid?.() === 0;
const scratch = mkdtempSync(join(tmpdir(), "atoll-cli-code-cache-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let made = 0;
function freshDir(): string {
  const dir = join(scratch, `d${made++}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

const GREETING = "Hello, world! (from an Atoll appliance)\n";
const hello = exampleImage("hello");
const helloSha = decodeImage(readFileSync(hello)).sha256;
/** The same appliance built at another time: another image, another SHA-256. */
const twin = (() => {
  const image = decodeImage(readFileSync(hello));
  const path = join(scratch, "twin.atoll");
  writeFileSync(path, encodeImage({ manifest: { ...image.manifest, buildTime: "2000-01-01T00:00:00.000Z" }, code: image.code, sourceMap: image.sourceMap, assets: image.assets }));
  return { path, sha: decodeImage(readFileSync(path)).sha256 };
})();

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  trace: Record<string, unknown>;
}

function run(tender: string, cacheHome: string, image = hello): Run {
  const tracePath = join(scratch, "trace.json");
  rmSync(tracePath, { force: true });
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: cacheHome, ATOLL_BOOT_TRACE: tracePath };
  delete env.ATOLL_CODE_CACHE;
  const result = atoll(["run", image, "--tender", tender, "--log", "quiet"], { env });
  const trace: unknown = existsSync(tracePath) ? JSON.parse(readFileSync(tracePath, "utf8")) : {};
  return { ...result, trace: typeof trace === "object" && trace !== null ? Object.fromEntries(Object.entries(trace)) : {} };
}

/** A normal run: the greeting, status 0, nothing on stderr (no SIGTRAP or SIGSEGV line). */
function assertRanNormally(result: Run, what: string): void {
  assert.equal(result.stderr, "", `${what}: stderr`);
  assert.equal(result.status, 0, what);
  assert.equal(result.stdout, GREETING, what);
}

function cacheName(tender: string, sha = helloSha): string {
  return codeCacheFileName({ imageSha256: sha, variant: tender === "spt" ? "spt" : "", flags: [] });
}

for (const tender of ["node", "spt"]) {
  describe(`${tender} tender`, () => {
    test("a valid cache is used: a miss writes it (0600, in a 0700 directory), the next run hits", () => {
      const home = freshDir();
      const first = run(tender, home);
      assertRanNormally(first, "first run");
      assert.equal(first.trace.codeCache, "miss");
      assert.equal(first.trace.codeCacheRejected, undefined);
      const dir = join(home, "atoll");
      assert.equal(statSync(dir).mode & 0o7777, 0o700);
      assert.equal(statSync(join(dir, cacheName(tender))).mode & 0o7777, 0o600);
      assert.equal(statSync(join(dir, "key")).mode & 0o7777, 0o600);
      assert.deepEqual(readdirSync(dir).sort(), [cacheName(tender), "key"].sort(), "no temporary file is left");
      const second = run(tender, home);
      assertRanNormally(second, "second run");
      assert.equal(second.trace.codeCache, "hit");
    });

    test("a symbolic link planted as the cache file, to a root-owned 0600 file, is not followed", () => {
      const home = freshDir();
      const dir = join(home, "atoll");
      mkdirSync(dir, { mode: 0o700 });
      const target = join(freshDir(), "shadow");
      writeFileSync(target, "root's secret\n", { mode: 0o600 });
      const before = statSync(target);
      const link = join(dir, cacheName(tender));
      symlinkSync(target, link);
      const result = run(tender, home);
      assertRanNormally(result, "with the link");
      assert.equal(result.trace.codeCache, "miss");
      assert.equal(result.trace.codeCacheRejected, "not-a-file");
      assert.equal(readFileSync(target, "utf8"), "root's secret\n");
      const afterwards = statSync(target);
      assert.deepEqual([afterwards.mode, afterwards.uid, afterwards.size, afterwards.mtimeMs], [before.mode, before.uid, before.size, before.mtimeMs]);
      assert.equal(lstatSync(link).isFile(), true, "the link was replaced by a cache of ours");
      assert.equal(run(tender, home).trace.codeCache, "hit");
    });

    test("a cache directory writable by others is refused with one warning line; the appliance runs, without a cache", () => {
      const home = freshDir();
      const dir = join(home, "atoll");
      mkdirSync(dir, { mode: 0o700 });
      chmodSync(dir, 0o777);
      const target = join(freshDir(), "shadow");
      writeFileSync(target, "root's secret\n", { mode: 0o600 });
      symlinkSync(target, join(dir, cacheName(tender)));
      const result = run(tender, home);
      assert.equal(result.stderr, `atoll: no code cache: ${dir} is writable by group and others (mode 0777); fix it, or set ATOLL_CODE_CACHE=0\n`);
      assert.equal(result.status, 0);
      assert.equal(result.stdout, GREETING);
      assert.equal(result.trace.codeCache, "off");
      assert.equal(readFileSync(target, "utf8"), "root's secret\n");
      assert.deepEqual(readdirSync(dir), [cacheName(tender)], "nothing was written there (not even a key)");
    });

    test("a cache directory owned by another uid is refused with one warning line", { skip: isRoot ? false : "needs root to chown" }, () => {
      const home = freshDir();
      const dir = join(home, "atoll");
      mkdirSync(dir, { mode: 0o700 });
      chownSync(dir, 65534, 65534);
      const result = run(tender, home);
      assert.equal(result.stderr, `atoll: no code cache: ${dir} belongs to uid 65534, not to uid ${process.geteuid?.() ?? 0} that runs atoll; fix it, or set ATOLL_CODE_CACHE=0\n`);
      assert.equal(result.status, 0);
      assert.equal(result.stdout, GREETING);
      assert.equal(result.trace.codeCache, "off");
      assert.deepEqual(readdirSync(dir), []);
    });

    test("a damaged cache, or another image's under this one's name, is rejected before V8 sees it and rewritten", () => {
      const home = freshDir();
      const dir = join(home, "atoll");
      assertRanNormally(run(tender, home), "making the cache");
      const path = join(dir, cacheName(tender));
      const good = readFileSync(path);
      assertRanNormally(run(tender, home, twin.path), "making the twin's cache");
      const twinCache = readFileSync(join(dir, cacheName(tender, twin.sha)));
      const damages: [string, () => void, string][] = [
        [
          "bytes flipped all over the payload (this crashed V8 before)",
          () => {
            const bytes = Buffer.from(good);
            for (let index = CODE_CACHE_PAYLOAD_OFFSET + 24; index < bytes.length; index += 97) bytes[index] = (bytes[index] ?? 0) ^ 0xff;
            writeFileSync(path, bytes);
          },
          "unauthenticated",
        ],
        ["truncated to half", () => truncateSync(path, Math.floor(good.length / 2)), "unauthenticated"],
        ["truncated into the header", () => truncateSync(path, 20), "malformed"],
        ["the twin image's valid cache renamed to this one's name", () => writeFileSync(path, twinCache), "unauthenticated"],
      ];
      for (const [what, damage, reason] of damages) {
        writeFileSync(path, good);
        damage();
        const damaged = run(tender, home);
        assertRanNormally(damaged, what);
        assert.equal(damaged.trace.codeCache, "miss", what);
        assert.equal(damaged.trace.codeCacheRejected, reason, what);
        const rewritten = run(tender, home);
        assertRanNormally(rewritten, `${what}: the next run`);
        assert.equal(rewritten.trace.codeCache, "hit", `${what}: the next run hits the cache the damaged run wrote`);
      }
    });
  });
}

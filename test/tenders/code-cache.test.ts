/**
 * The code cache store on its own (issue #12, finding 3): which directories it refuses and why,
 * what it does with a planted symbolic link, FIFO or foreign file, and that only a payload whose
 * MAC verifies for this image, runtime and flags comes out of it. The tenders' side is in
 * test/cli/code-cache.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  ancestorProblem,
  cacheDirectoryProblem,
  cacheFileProblem,
  CODE_CACHE_PAYLOAD_OFFSET,
  codeCacheDirectory,
  codeCacheFileName,
  CodeCacheStore,
  openCodeCache,
  readHandedPayload,
  writeHandedPayload,
  type CodeCacheBinding,
  type CodeCacheRuntime,
} from "../../src/tenders/common/code-cache.ts";

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const euid = process.geteuid?.() ?? 0;
const scratch = mkdtempSync(join(tmpdir(), "atoll-code-cache-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let made = 0;
/** A fresh directory under the private scratch one (0700, ours). */
function freshDir(): string {
  const dir = join(scratch, `d${made++}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

const binding: CodeCacheBinding = { imageSha256: "ab".repeat(32), variant: "", flags: [] };
const runtime: CodeCacheRuntime = { node: "v20.20.2", v8: "11.3.244.8-node.33", arch: "x64" };
const payload = Buffer.from(Array.from({ length: 5000 }, (_, index) => (index * 7) & 0xff));

function openStore(dir: string, using: CodeCacheRuntime = runtime): CodeCacheStore {
  const opened = CodeCacheStore.open(dir, using);
  assert.equal(opened.kind, "store", opened.kind === "unusable" ? opened.problem : "");
  if (opened.kind !== "store") throw new Error("unreachable");
  return opened.store;
}

function problemOf(dir: string): string {
  const opened = CodeCacheStore.open(dir, runtime);
  if (opened.kind === "store") {
    opened.store.close();
    return "";
  }
  return opened.problem;
}

/** Writes a valid cache for `bound` into `dir` and returns its path. */
function storeOne(dir: string, bound: CodeCacheBinding = binding, using: CodeCacheRuntime = runtime): string {
  const store = openStore(dir, using);
  try {
    assert.equal(store.write(bound, payload), true);
  } finally {
    store.close();
  }
  return join(dir, codeCacheFileName(bound, using));
}

function readBack(dir: string, bound: CodeCacheBinding = binding, using: CodeCacheRuntime = runtime): ReturnType<CodeCacheStore["read"]> {
  const store = openStore(dir, using);
  try {
    const read = store.read(bound);
    if (read.kind === "authenticated") closeSync(read.fd);
    return read;
  } finally {
    store.close();
  }
}

const DIR = 0o040000;
const FILE = 0o100000;
const LINK = 0o120000;

test("the cache directory itself: ours, a real directory, writable by us alone", () => {
  assert.equal(cacheDirectoryProblem({ uid: 1000, mode: DIR | 0o700 }, 1000), undefined);
  assert.equal(cacheDirectoryProblem({ uid: 1000, mode: DIR | 0o755 }, 1000), undefined);
  assert.equal(cacheDirectoryProblem({ uid: 1000, mode: LINK | 0o777 }, 1000), "is a symbolic link");
  assert.equal(cacheDirectoryProblem({ uid: 1000, mode: FILE | 0o600 }, 1000), "is not a directory");
  assert.equal(cacheDirectoryProblem({ uid: 1001, mode: DIR | 0o700 }, 1000), "belongs to uid 1001, not to uid 1000 that runs atoll");
  assert.equal(cacheDirectoryProblem({ uid: 0, mode: DIR | 0o700 }, 1000), "belongs to uid 0, not to uid 1000 that runs atoll");
  assert.equal(cacheDirectoryProblem({ uid: 1000, mode: DIR | 0o777 }, 1000), "is writable by group and others (mode 0777)");
  assert.equal(cacheDirectoryProblem({ uid: 1000, mode: DIR | 0o770 }, 1000), "is writable by its group (mode 0770)");
  assert.equal(cacheDirectoryProblem({ uid: 1000, mode: DIR | 0o1703 }, 1000), "is writable by others (mode 01703)", "sticky does not help the directory itself");
});

test("directories above it: root's or ours, and sticky when others may write them", () => {
  assert.equal(ancestorProblem({ uid: 0, mode: DIR | 0o755 }, 1000), undefined);
  assert.equal(ancestorProblem({ uid: 1000, mode: DIR | 0o700 }, 1000), undefined);
  assert.equal(ancestorProblem({ uid: 0, mode: DIR | 0o1777 }, 1000), undefined, "/tmp");
  assert.match(String(ancestorProblem({ uid: 0, mode: DIR | 0o777 }, 1000)), /^is writable by group and others and not sticky \(mode 0777\)/);
  assert.match(String(ancestorProblem({ uid: 0, mode: DIR | 0o775 }, 1000)), /^is writable by its group and not sticky \(mode 0775\)/);
  assert.match(String(ancestorProblem({ uid: 1001, mode: DIR | 0o755 }, 1000)), /^belongs to uid 1001, who could replace the cache directory/);
});

test("files in it: regular, ours, writable by us alone", () => {
  assert.equal(cacheFileProblem({ uid: 5, mode: FILE | 0o600 }, 5), undefined);
  assert.equal(cacheFileProblem({ uid: 5, mode: LINK | 0o777 }, 5), "not-a-file");
  assert.equal(cacheFileProblem({ uid: 5, mode: 0o010000 | 0o600 }, 5), "not-a-file", "a FIFO");
  assert.equal(cacheFileProblem({ uid: 6, mode: FILE | 0o600 }, 5), "foreign");
  assert.equal(cacheFileProblem({ uid: 5, mode: FILE | 0o666 }, 5), "foreign");
});

test("where: $XDG_CACHE_HOME/atoll if absolute, else ~/.cache/atoll; ATOLL_CODE_CACHE=0 is off", () => {
  assert.equal(codeCacheDirectory({ XDG_CACHE_HOME: "/var/c", HOME: "/home/u" }), "/var/c/atoll");
  assert.equal(codeCacheDirectory({ HOME: "/home/u" }), "/home/u/.cache/atoll");
  assert.equal(codeCacheDirectory({ XDG_CACHE_HOME: "", HOME: "/home/u" }), "/home/u/.cache/atoll");
  assert.equal(codeCacheDirectory({ XDG_CACHE_HOME: "relative/c", HOME: "/home/u" }), "/home/u/.cache/atoll", "the XDG spec: a relative path is ignored");
  assert.equal(codeCacheDirectory({ XDG_CACHE_HOME: "/var/c", ATOLL_CODE_CACHE: "0" }), undefined);
  assert.equal(codeCacheFileName(binding, runtime), `v8-${"ab".repeat(16)}-v20.20.2-x64.bin`);
  assert.equal(codeCacheFileName({ ...binding, variant: "spt-m64" }, runtime), `v8-${"ab".repeat(16)}-v20.20.2-x64-spt-m64.bin`);
  assert.throws(() => codeCacheFileName({ ...binding, imageSha256: "../../etc/passwd" }, runtime), /not a SHA-256/);
  assert.throws(() => codeCacheFileName({ ...binding, variant: "../x" }, runtime), /bad code cache variant/);
});

test("a new directory is made 0700 with a 0600 32-byte key; a valid cache round-trips and is 0600", () => {
  const dir = join(freshDir(), "deeper", "atoll");
  const path = storeOne(dir);
  assert.equal(statSync(dir).mode & 0o7777, 0o700);
  assert.equal(statSync(join(dir, "..")).mode & 0o7777, 0o700);
  const key = statSync(join(dir, "key"));
  assert.equal(key.mode & 0o7777, 0o600);
  assert.equal(key.size, 32);
  assert.equal(statSync(path).mode & 0o7777, 0o600);
  assert.equal(statSync(path).size, CODE_CACHE_PAYLOAD_OFFSET + payload.length);
  const read = readBack(dir);
  assert.equal(read.kind, "authenticated");
  if (read.kind === "authenticated") assert.deepEqual(read.payload, payload);
  assert.deepEqual(
    readdirSync(dir).sort(),
    ["key", codeCacheFileName(binding, runtime)].sort(),
    "no temporary file is left behind",
  );
  // The key is made once: a second store reads it.
  const keyBytes = readFileSync(join(dir, "key"));
  storeOne(dir);
  assert.deepEqual(readFileSync(join(dir, "key")), keyBytes);
});

describe("a cache is given out only if its MAC verifies; anything else is deleted", () => {
  test("a flipped byte in the payload, the MAC or the magic", () => {
    for (const offset of [CODE_CACHE_PAYLOAD_OFFSET + 100, CODE_CACHE_PAYLOAD_OFFSET - 1, 0]) {
      const dir = freshDir();
      const path = storeOne(dir);
      const bytes = readFileSync(path);
      bytes[offset] = (bytes[offset] ?? 0) ^ 0x01;
      writeFileSync(path, bytes);
      const read = readBack(dir);
      assert.deepEqual(read, { kind: "rejected", reason: offset === 0 ? "malformed" : "unauthenticated" }, `byte ${offset}`);
      assert.equal(existsSync(path), false, "the bad file is deleted");
      assert.equal(readBack(dir).kind, "absent");
    }
  });

  test("truncated: into the payload, to the header, to nothing", () => {
    for (const [length, reason] of [
      [CODE_CACHE_PAYLOAD_OFFSET + 10, "unauthenticated"],
      [CODE_CACHE_PAYLOAD_OFFSET, "malformed"],
      [0, "malformed"],
    ] as const) {
      const dir = freshDir();
      const path = storeOne(dir);
      truncateSync(path, length);
      assert.deepEqual(readBack(dir), { kind: "rejected", reason }, `truncated to ${length}`);
    }
  });

  test("a valid cache of another image, variant, flags or V8, renamed to this one's name", () => {
    const others: [CodeCacheBinding, CodeCacheRuntime][] = [
      [{ ...binding, imageSha256: "cd".repeat(32) }, runtime],
      [{ ...binding, variant: "spt" }, runtime],
      [{ ...binding, flags: ["--max-old-space-size=64"] }, runtime],
      [binding, { ...runtime, v8: "11.3.244.9-node.34" }],
    ];
    for (const [other, otherRuntime] of others) {
      const dir = freshDir();
      const otherPath = storeOne(dir, other, otherRuntime);
      const path = join(dir, codeCacheFileName(binding, runtime));
      if (otherPath !== path) writeFileSync(path, readFileSync(otherPath));
      assert.deepEqual(readBack(dir), { kind: "rejected", reason: "unauthenticated" }, JSON.stringify([other, otherRuntime]));
    }
  });

  test("a cache signed with another directory's key", () => {
    const dir = freshDir();
    const elsewhere = freshDir();
    writeFileSync(join(dir, codeCacheFileName(binding, runtime)), readFileSync(storeOne(elsewhere)));
    // The directory has no key yet: it gets its own, which did not sign that file.
    assert.deepEqual(readBack(dir), { kind: "rejected", reason: "unauthenticated" });
  });
});

describe("planted files are never followed", () => {
  test("a symbolic link as the cache file, to a 0600 file: not read, replaced by the next write, the target unchanged", () => {
    const dir = freshDir();
    const target = join(freshDir(), "shadow");
    writeFileSync(target, "secret\n", { mode: 0o600 });
    const path = join(dir, codeCacheFileName(binding, runtime));
    openStore(dir).close();
    symlinkSync(target, path);
    assert.deepEqual(readBack(dir), { kind: "rejected", reason: "not-a-file" });
    symlinkSync(target, path);
    storeOne(dir);
    assert.equal(readFileSync(target, "utf8"), "secret\n");
    assert.equal(statSync(target).mode & 0o7777, 0o600);
    assert.equal(lstatSync(path).isFile(), true, "the link itself was replaced");
    assert.equal(readBack(dir).kind, "authenticated");
  });

  test("a FIFO as the cache file is refused without blocking", () => {
    const dir = freshDir();
    openStore(dir).close();
    const path = join(dir, codeCacheFileName(binding, runtime));
    execFileSync("mkfifo", [path]);
    assert.deepEqual(readBack(dir), { kind: "rejected", reason: "not-a-file" });
    assert.equal(existsSync(path), false);
  });

  test("a cache file writable by others, or (as root) owned by another uid, is foreign", () => {
    const dir = freshDir();
    const path = storeOne(dir);
    chmodSync(path, 0o666);
    assert.deepEqual(readBack(dir), { kind: "rejected", reason: "foreign" });
    if (isRoot) {
      storeOne(dir);
      chownSync(path, NOBODY, NOBODY);
      assert.deepEqual(readBack(dir), { kind: "rejected", reason: "foreign" });
    }
  });

  test("the key: a symbolic link, a FIFO, a wrong size or mode make the directory unusable", () => {
    const target = join(freshDir(), "shadow");
    writeFileSync(target, "x".repeat(32), { mode: 0o600 });
    const linked = freshDir();
    symlinkSync(target, join(linked, "key"));
    assert.match(problemOf(linked), /\/key is a symbolic link: remove it$/);
    assert.equal(readFileSync(target, "utf8"), "x".repeat(32));
    const fifo = freshDir();
    execFileSync("mkfifo", [join(fifo, "key")]);
    assert.match(problemOf(fifo), /\/key is not a regular file: remove it$/);
    const short = freshDir();
    writeFileSync(join(short, "key"), "short", { mode: 0o600 });
    assert.match(problemOf(short), /\/key is not a 32-byte key \(5 bytes\): remove it$/);
    const open = freshDir();
    writeFileSync(join(open, "key"), "x".repeat(32), { mode: 0o600 });
    chmodSync(join(open, "key"), 0o666);
    assert.match(problemOf(open), new RegExp(`/key is not private to uid ${euid} \\(owner ${euid}, mode 0666\\): remove it$`));
  });
});

describe("directories that are refused, each with its reason", () => {
  test("the directory is a symbolic link, or a file", () => {
    const real = freshDir();
    const link = join(freshDir(), "atoll");
    symlinkSync(real, link);
    assert.equal(problemOf(link), `${link} is a symbolic link`);
    const file = join(freshDir(), "atoll");
    writeFileSync(file, "");
    assert.match(problemOf(file), new RegExp(`^(cannot create ${file} \\(EEXIST\\)|${file} is not a directory)$`));
  });

  test("the directory is writable by group or others", () => {
    const dir = freshDir();
    chmodSync(dir, 0o777);
    assert.equal(problemOf(dir), `${dir} is writable by group and others (mode 0777)`);
    chmodSync(dir, 0o730);
    assert.equal(problemOf(dir), `${dir} is writable by its group (mode 0730)`);
    chmodSync(dir, 0o755);
    assert.equal(problemOf(dir), "");
  });

  test("the directory belongs to another uid", { skip: isRoot ? false : "needs root to chown" }, () => {
    const dir = freshDir();
    chownSync(dir, NOBODY, NOBODY);
    assert.equal(problemOf(dir), `${dir} belongs to uid ${NOBODY}, not to uid ${euid} that runs atoll`);
  });

  test("a directory above it is writable by others and not sticky, or belongs to another uid", () => {
    const parent = freshDir();
    const dir = join(parent, "atoll");
    chmodSync(parent, 0o777);
    assert.equal(problemOf(dir), `${parent} (above ${dir}) is writable by group and others and not sticky (mode 0777), so they could replace the cache directory`);
    chmodSync(parent, 0o1777);
    assert.equal(problemOf(dir), "", "sticky, as /tmp");
    chmodSync(parent, 0o700);
    if (isRoot) {
      chownSync(parent, NOBODY, NOBODY);
      assert.equal(problemOf(dir), `${parent} (above ${dir}) belongs to uid ${NOBODY}, who could replace the cache directory`);
      chownSync(parent, euid, euid);
    }
    // Refused before anything is made: root leaves no directory where another user rules.
    const open = freshDir();
    chmodSync(open, 0o777);
    const deep = join(open, "a", "b", "atoll");
    assert.equal(problemOf(deep), `${open} (above ${deep}) is writable by group and others and not sticky (mode 0777), so they could replace the cache directory`);
    assert.deepEqual(readdirSync(open), [], "nothing was created");
  });

  test("a symbolic link on the way is checked where it points, and where it is", () => {
    const open = freshDir();
    chmodSync(open, 0o777);
    const real = join(open, "real");
    mkdirSync(real, { mode: 0o700 });
    const via = join(freshDir(), "via");
    symlinkSync(real, via);
    assert.match(problemOf(join(via, "atoll")), new RegExp(`^${open} \\(above ${via}/atoll\\) is writable by group and others and not sticky`));
    const linkHome = freshDir();
    chmodSync(linkHome, 0o777);
    const safe = freshDir();
    symlinkSync(safe, join(linkHome, "via"));
    assert.match(problemOf(join(linkHome, "via", "atoll")), new RegExp(`^${linkHome} \\(above ${linkHome}/via/atoll\\) is writable`));
  });

  test("openCodeCache: off without a word under ATOLL_CODE_CACHE=0; one warning line naming the directory otherwise", () => {
    const lines: string[] = [];
    assert.equal(openCodeCache((line) => lines.push(line), { ATOLL_CODE_CACHE: "0", XDG_CACHE_HOME: "/nonexistent" }), undefined);
    assert.equal(lines.length, 0);
    const home = freshDir();
    mkdirSync(join(home, "atoll"), { mode: 0o700 });
    chmodSync(join(home, "atoll"), 0o777);
    assert.equal(openCodeCache((line) => lines.push(line), { XDG_CACHE_HOME: home }), undefined);
    assert.deepEqual(lines, [`atoll: no code cache: ${home}/atoll is writable by group and others (mode 0777); fix it, or set ATOLL_CODE_CACHE=0`]);
  });
});

test("writes: no partial file is ever visible; stale temporary files and the oldest caches are pruned", () => {
  const dir = freshDir();
  const store = openStore(dir);
  try {
    const pending = store.create(binding);
    assert.ok(pending !== undefined);
    const names = readdirSync(dir).filter((name) => name.endsWith(".tmp"));
    assert.equal(names.length, 1);
    assert.equal(statSync(join(dir, names[0] ?? "")).mode & 0o7777, 0o600);
    assert.equal(existsSync(join(dir, codeCacheFileName(binding, runtime))), false, "nothing under the final name until commit");
    assert.equal(pending.commit(), false, "no payload: nothing to commit");
    assert.deepEqual(readdirSync(dir), ["key"]);
    const discarded = store.create(binding);
    discarded?.discard();
    assert.deepEqual(readdirSync(dir), ["key"]);

    const old = Date.now() / 1000 - 7200;
    writeFileSync(join(dir, "v8-x.bin.1.ffff.tmp"), "left by a crash");
    utimesSync(join(dir, "v8-x.bin.1.ffff.tmp"), old, old);
    writeFileSync(join(dir, "v8-y.bin.2.ffff.tmp"), "being written now");
    for (let index = 0; index < 70; index++) {
      const path = join(dir, `v8-${index.toString(16).padStart(32, "0")}-v20.20.2-x64.bin`);
      writeFileSync(path, "old");
      utimesSync(path, old + index, old + index);
    }
    assert.equal(store.write(binding, payload), true);
  } finally {
    store.close();
  }
  const left = readdirSync(dir);
  assert.equal(left.filter((name) => name.endsWith(".bin")).length, 64);
  assert.ok(left.includes(codeCacheFileName(binding, runtime)));
  assert.ok(!left.includes(`v8-${"0".repeat(32)}-v20.20.2-x64.bin`), "the oldest go first");
  assert.ok(!left.includes("v8-x.bin.1.ffff.tmp"));
  assert.ok(left.includes("v8-y.bin.2.ffff.tmp"), "a fresh temporary file may be another tender's write in progress");
});

test("the appliance process's side: the handed payload must hash to what the launcher verified", () => {
  const dir = freshDir();
  const store = openStore(dir);
  try {
    const pending = store.create(binding);
    assert.ok(pending !== undefined);
    assert.equal(writeHandedPayload(pending.fd, payload), true);
    assert.equal(writeHandedPayload(pending.fd, new Uint8Array(0)), false);
    assert.equal(pending.commit(), true);
    const read = store.read(binding);
    assert.equal(read.kind, "authenticated");
    if (read.kind !== "authenticated") return;
    try {
      assert.deepEqual(readHandedPayload(read.fd, payload.length, read.sha256), payload);
      assert.equal(readHandedPayload(read.fd, payload.length, "00".repeat(32)), undefined);
      assert.equal(readHandedPayload(read.fd, payload.length + 1, read.sha256), undefined, "past the end");
      assert.equal(readHandedPayload(read.fd, 0, read.sha256), undefined);
    } finally {
      closeSync(read.fd);
    }
  } finally {
    store.close();
  }
});

/**
 * V8 code caches that a tender can trust (issue #12, finding 3).
 *
 * V8 deserializes a code cache without checking it: a flipped byte crashes the process (SIGTRAP in
 * the deserializer, measured on Node 20), and a crafted one is worse. A cache is also a file the
 * tender writes, possibly as root. So, before a cache is used or written:
 *
 * - **The directory is verified** (`CodeCacheStore.open`): opened with O_NOFOLLOW|O_DIRECTORY, it
 *   must be owned by the effective uid and writable by nobody else; every directory its path goes
 *   through (the real path of each prefix) must be owned by root or by the same uid and, when
 *   others may write it, sticky (as /tmp), so that no other user can swap what it holds. All later
 *   file work goes through the opened directory (/proc/self/fd/N), not through the path again.
 *   When the check fails there is no cache, and one warning line says which directory and why.
 * - **Contents are authenticated**: a cache file is MAGIC, then HMAC-SHA-256 over (the runtime:
 *   Node and V8 versions and architecture; the tender and the flags that change compiled code; the
 *   image's SHA-256; the payload), then the payload V8 made. The key is 32 random bytes in the
 *   directory (`key`, 0600), made once per user. V8 only ever sees a payload whose MAC verified;
 *   another file is deleted and the cache rebuilt.
 * - **Files are never followed or half-written**: reads open with O_NOFOLLOW|O_NONBLOCK and accept
 *   only a private regular file of ours; writes create a temporary name with
 *   O_CREAT|O_EXCL|O_NOFOLLOW (mode 0600) and rename(2) it into place, which replaces a planted
 *   symbolic link instead of writing through it.
 *
 * The spt tender's appliance process holds no key: its launcher verifies and hands it the payload
 * (see src/tenders/spt/code-cache-handoff.ts), and `readHandedPayload`/`writeHandedPayload` are the
 * appliance process's only part.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import {
  closeSync,
  constants,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { escapeLine } from "./terminal-text.ts";

/** "ATOLLCC" and the format's version; a file without it is not one of ours (or an older atoll's). */
const MAGIC = Buffer.from("ATOLLCC\u0001", "latin1");
const MAC_BYTES = 32;
/** Where V8's payload starts in a cache file: after MAGIC and the MAC. */
export const CODE_CACHE_PAYLOAD_OFFSET = MAGIC.length + MAC_BYTES;
/** Larger payloads are neither read nor written (V8's caches of real images are a few MiB at most). */
export const MAX_CODE_CACHE_PAYLOAD = 128 * 1024 * 1024;
const KEY_NAME = "key";
const KEY_BYTES = 32;
/** Code caches kept at most; older ones go when a new one is written (only on a cache miss). */
const MAX_CODE_CACHES = 64;
/** A temporary file this old was left by a tender that died while writing it. */
const STALE_TEMPORARY_MS = 60 * 60 * 1000;
const CACHE_FILE = /^v8-[0-9a-f]{32}-[A-Za-z0-9._-]+\.bin$/;
const TEMPORARY_FILE = /\.tmp$/;

// File type and permission bits of st_mode (<sys/stat.h>).
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_ISVTX = 0o1000;
const GROUP_OR_OTHER_WRITE = 0o022;

/** Why a cache file was not given to V8. */
export type CodeCacheRejection =
  /** A symbolic link, FIFO, directory...: never opened through. */
  | "not-a-file"
  /** Owned by another uid, or writable by group or others. */
  | "foreign"
  /** Too short or too large, or without MAGIC. */
  | "malformed"
  /** The MAC does not verify: damaged, truncated, or made for another image, runtime or flags. */
  | "unauthenticated"
  /** Authenticated, but V8 still rejected it (the tender reports this one; the store cannot know). */
  | "v8";

/** What a cache is made for: V8 rejects (or worse) a cache made by another V8, for other code or under other flags. */
export interface CodeCacheBinding {
  /** The image's SHA-256, 64 hex digits. */
  readonly imageSha256: string;
  /** Part of the file name telling the tender's variants apart ("" for the node tender, "spt", "spt-m64"). */
  readonly variant: string;
  /** The V8/Node flags the code is compiled under, bound by the MAC. */
  readonly flags: readonly string[];
}

/** The engine a cache is made by. */
export interface CodeCacheRuntime {
  readonly node: string;
  readonly v8: string;
  readonly arch: string;
}

export function currentRuntime(): CodeCacheRuntime {
  return { node: process.version, v8: process.versions.v8, arch: process.arch };
}

/** The parts of a stat the checks read (tests fabricate them). */
export interface OwnerAndMode {
  readonly uid: number;
  readonly mode: number;
}

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8)}`;

function writers(mode: number): string {
  const group = (mode & 0o020) !== 0;
  const others = (mode & 0o002) !== 0;
  return group && others ? "group and others" : group ? "its group" : "others";
}

/** Why `stat` (of the cache directory itself, not followed) is not one to keep caches in, or undefined. */
export function cacheDirectoryProblem(stat: OwnerAndMode, euid: number): string | undefined {
  const type = stat.mode & S_IFMT;
  if (type === S_IFLNK) return "is a symbolic link";
  if (type !== S_IFDIR) return "is not a directory";
  if (stat.uid !== euid) return `belongs to uid ${stat.uid}, not to uid ${euid} that runs atoll`;
  if ((stat.mode & GROUP_OR_OTHER_WRITE) !== 0) return `is writable by ${writers(stat.mode)} (mode ${octal(stat.mode)})`;
  return undefined;
}

/**
 * Why a directory the cache directory's path goes through lets another user replace what it
 * holds, or undefined. Root and the user may own it; others may write it only when it is sticky
 * (then they cannot rename or remove entries they do not own: /tmp's mode 1777).
 */
export function ancestorProblem(stat: OwnerAndMode, euid: number): string | undefined {
  if (stat.uid !== 0 && stat.uid !== euid) return `belongs to uid ${stat.uid}, who could replace the cache directory`;
  if ((stat.mode & GROUP_OR_OTHER_WRITE) !== 0 && (stat.mode & S_ISVTX) === 0) {
    return `is writable by ${writers(stat.mode)} and not sticky (mode ${octal(stat.mode)}), so they could replace the cache directory`;
  }
  return undefined;
}

/** Why a file found in the cache directory is not to be read (key or cache), or undefined. */
export function cacheFileProblem(stat: OwnerAndMode, euid: number): "not-a-file" | "foreign" | undefined {
  if ((stat.mode & S_IFMT) !== S_IFREG) return "not-a-file";
  if (stat.uid !== euid || (stat.mode & GROUP_OR_OTHER_WRITE) !== 0) return "foreign";
  return undefined;
}

/**
 * The cache directory `atoll run` uses: `$XDG_CACHE_HOME/atoll` when that is an absolute path (the
 * XDG Base Directory spec says to ignore a relative one), else `~/.cache/atoll`; undefined when
 * ATOLL_CODE_CACHE=0 turns caching off.
 */
export function codeCacheDirectory(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.ATOLL_CODE_CACHE === "0") return undefined;
  const xdg = env.XDG_CACHE_HOME;
  const home = env.HOME !== undefined && env.HOME !== "" ? env.HOME : homedir();
  const base = xdg !== undefined && xdg !== "" && isAbsolute(xdg) ? xdg : join(home, ".cache");
  return join(base, "atoll");
}

/** The cache file's name for an image under a runtime and tender variant. */
export function codeCacheFileName(binding: CodeCacheBinding, runtime: CodeCacheRuntime = currentRuntime()): string {
  if (!/^[0-9a-f]{64}$/.test(binding.imageSha256)) throw new Error(`not a SHA-256: ${binding.imageSha256}`);
  if (!/^[a-z0-9-]*$/.test(binding.variant)) throw new Error(`bad code cache variant: ${binding.variant}`);
  const variant = binding.variant === "" ? "" : `-${binding.variant}`;
  return `v8-${binding.imageSha256.slice(0, 32)}-${runtime.node}-${runtime.arch}${variant}.bin`;
}

/** HMAC-SHA-256 over MAGIC, the binding (length-prefixed, so that no field can run into the payload) and the payload. */
export function codeCacheMac(key: Uint8Array, binding: CodeCacheBinding, runtime: CodeCacheRuntime, payload: Uint8Array): Buffer {
  const bound = Buffer.from(JSON.stringify([runtime.node, runtime.v8, runtime.arch, binding.variant, binding.flags, binding.imageSha256]), "utf8");
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bound.length);
  return createHmac("sha256", key).update(MAGIC).update(length).update(bound).update(payload).digest();
}

function errorCode(error: unknown): string {
  return error instanceof Error && "code" in error ? String(error.code) : error instanceof Error ? error.message : String(error);
}

/** Reads exactly `length` bytes at `position`; fewer means the file shrank. */
function readExactly(fd: number, length: number, position: number): Buffer | undefined {
  // Its own allocation: V8 wants cached data aligned, and a pooled slice may not be.
  const bytes = Buffer.allocUnsafeSlow(length);
  for (let done = 0; done < length; ) {
    const n = readSync(fd, bytes, done, length - done, position + done);
    if (n === 0) return undefined;
    done += n;
  }
  return bytes;
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Gone already, or a directory someone made under that name: it is never read either way.
  }
}

function isSymbolicLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const CREATE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Every directory that resolving `path`'s parents goes through: the real path of each prefix, and their parents. */
function directoriesAbove(path: string): string[] {
  const seen = new Set<string>();
  for (let prefix = dirname(path); ; prefix = dirname(prefix)) {
    for (let real = realpathSync.native(prefix); ; real = dirname(real)) {
      seen.add(real);
      if (dirname(real) === real) break;
    }
    if (dirname(prefix) === prefix) break;
  }
  return [...seen];
}

/** The first directory above `path` that fails `ancestorProblem`, as the warning says it (`directory` names the cache directory). */
function problemAbove(path: string, directory: string, euid: number): string | undefined {
  try {
    for (const above of directoriesAbove(path)) {
      const problem = ancestorProblem(statSync(above), euid);
      if (problem !== undefined) return `${above} (above ${directory}) ${problem}`;
    }
  } catch (error) {
    return `cannot check the directories above ${directory} (${errorCode(error)})`;
  }
  return undefined;
}

function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export type CodeCacheRead =
  | { readonly kind: "absent" }
  | { readonly kind: "rejected"; readonly reason: CodeCacheRejection }
  /** `fd` stays open, read-only, on the file the payload was read from: the caller closes it. */
  | { readonly kind: "authenticated"; readonly payload: Buffer; readonly fd: number; readonly sha256: string };

export type CodeCacheOpen = { readonly kind: "store"; readonly store: CodeCacheStore } | { readonly kind: "unusable"; readonly problem: string };

/**
 * The store `atoll run` uses, or undefined when caching is off (ATOLL_CODE_CACHE=0) or the
 * directory fails its checks: then `warn` gets one line naming the directory and why.
 */
export function openCodeCache(warn: (line: string) => void, env: NodeJS.ProcessEnv = process.env): CodeCacheStore | undefined {
  const directory = codeCacheDirectory(env);
  if (directory === undefined) return undefined;
  const opened = CodeCacheStore.open(directory);
  if (opened.kind === "store") return opened.store;
  warn(`atoll: no code cache: ${escapeLine(opened.problem)}; fix it, or set ATOLL_CODE_CACHE=0`);
  return undefined;
}

/** A verified cache directory and its key. Not for the appliance process: it holds the key. */
export class CodeCacheStore {
  private constructor(
    /** The directory's path, for messages. */
    readonly path: string,
    private readonly directoryFd: number,
    /** Where file names are resolved: the opened directory itself (/proc/self/fd/N), not its path. */
    private readonly base: string,
    private readonly key: Buffer,
    private readonly euid: number,
    private readonly runtime: CodeCacheRuntime,
  ) {}

  /**
   * Creates (0700) and verifies the directory, and loads or makes its key. A problem is one
   * phrase for the warning line; caching is then off for this run.
   */
  static open(path: string, runtime: CodeCacheRuntime = currentRuntime()): CodeCacheOpen {
    const euid = process.geteuid?.() ?? 0;
    const unusable = (problem: string): CodeCacheOpen => ({ kind: "unusable", problem });
    const absolute = resolve(path);
    // Checked before anything is made, too: root must not leave directories where another user rules.
    let existing = absolute;
    while (!pathExists(existing) && dirname(existing) !== existing) existing = dirname(existing);
    if (existing !== absolute) {
      const early = problemAbove(join(existing, "child"), absolute, euid);
      if (early !== undefined) return unusable(early);
    }
    try {
      mkdirSync(absolute, { recursive: true, mode: 0o700 });
    } catch (error) {
      return unusable(`cannot create ${absolute} (${errorCode(error)})`);
    }
    let fd: number;
    try {
      fd = openSync(absolute, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    } catch (error) {
      const code = errorCode(error);
      // With O_DIRECTORY, Linux reports a symbolic link as ENOTDIR rather than ELOOP.
      if (code === "ELOOP" || code === "ENOTDIR") return unusable(`${absolute} ${isSymbolicLink(absolute) ? "is a symbolic link" : "is not a directory"}`);
      return unusable(`cannot open ${absolute} (${code})`);
    }
    const fail = (problem: string): CodeCacheOpen => {
      closeQuietly(fd);
      return unusable(problem);
    };
    const own = cacheDirectoryProblem(fstatSync(fd), euid);
    if (own !== undefined) return fail(`${absolute} ${own}`);
    const above = problemAbove(absolute, absolute, euid);
    if (above !== undefined) return fail(above);
    let base = absolute;
    try {
      // The same directory, by the fd: renaming or replacing the path from now on changes nothing.
      readlinkSync(`/proc/self/fd/${fd}`);
      base = `/proc/self/fd/${fd}`;
    } catch {
      // No /proc: the verified path, which only root and this user can change, is used.
    }
    const key = loadKey(base, euid);
    if (typeof key === "string") return fail(`${join(absolute, KEY_NAME)} ${key}`);
    return { kind: "store", store: new CodeCacheStore(absolute, fd, base, key, euid, runtime) };
  }

  /** Reads and authenticates the cache for `binding`; a file that is not a valid cache is deleted. */
  read(binding: CodeCacheBinding): CodeCacheRead {
    const file = join(this.base, codeCacheFileName(binding, this.runtime));
    let fd: number;
    try {
      fd = openSync(file, READ_FLAGS);
    } catch (error) {
      const code = errorCode(error);
      if (code === "ENOENT") return { kind: "absent" };
      // ELOOP: a symbolic link (O_NOFOLLOW); anything else that cannot be opened is not a cache either.
      unlinkQuietly(file);
      return { kind: "rejected", reason: "not-a-file" };
    }
    const reject = (reason: CodeCacheRejection): CodeCacheRead => {
      closeQuietly(fd);
      unlinkQuietly(file);
      return { kind: "rejected", reason };
    };
    try {
      const stat = fstatSync(fd);
      const problem = cacheFileProblem(stat, this.euid);
      if (problem !== undefined) return reject(problem);
      const length = stat.size - CODE_CACHE_PAYLOAD_OFFSET;
      if (length <= 0 || length > MAX_CODE_CACHE_PAYLOAD) return reject("malformed");
      const header = readExactly(fd, CODE_CACHE_PAYLOAD_OFFSET, 0);
      if (header === undefined || !header.subarray(0, MAGIC.length).equals(MAGIC)) return reject("malformed");
      const payload = readExactly(fd, length, CODE_CACHE_PAYLOAD_OFFSET);
      if (payload === undefined) return reject("malformed");
      const expected = codeCacheMac(this.key, binding, this.runtime, payload);
      if (!timingSafeEqual(expected, header.subarray(MAGIC.length))) return reject("unauthenticated");
      return { kind: "authenticated", payload, fd, sha256: createHash("sha256").update(payload).digest("hex") };
    } catch {
      return reject("malformed");
    }
  }

  /** A new, empty temporary file for `binding`'s cache (O_EXCL|O_NOFOLLOW, 0600); undefined if it cannot be made. */
  create(binding: CodeCacheBinding): PendingCodeCache | undefined {
    const name = codeCacheFileName(binding, this.runtime);
    const temporary = join(this.base, `${name}.${process.pid}.${randomBytes(8).toString("hex")}.tmp`);
    try {
      const fd = openSync(temporary, CREATE_FLAGS, 0o600);
      return new PendingCodeCache(fd, temporary, join(this.base, name), (payload) => codeCacheMac(this.key, binding, this.runtime, payload), () => this.prune());
    } catch {
      // A full disk or a read-only directory only costs the next boot its cache.
      return undefined;
    }
  }

  /** Writes a cache for `binding` in one go (the node tender); false if it could not. */
  write(binding: CodeCacheBinding, payload: Uint8Array): boolean {
    if (payload.length === 0 || payload.length > MAX_CODE_CACHE_PAYLOAD) return false;
    const pending = this.create(binding);
    if (pending === undefined) return false;
    try {
      pending.writePayload(payload);
    } catch {
      pending.discard();
      return false;
    }
    return pending.commit();
  }

  /** Keeps the newest MAX_CODE_CACHES - 1 caches (room for the one being written) and removes stale temporary files. */
  private prune(): void {
    const now = Date.now();
    const caches: { path: string; mtime: number }[] = [];
    for (const name of readdirSync(this.base)) {
      const path = join(this.base, name);
      let stat;
      try {
        stat = lstatSync(path);
      } catch {
        continue;
      }
      if (CACHE_FILE.test(name)) caches.push({ path, mtime: stat.mtimeMs });
      else if (TEMPORARY_FILE.test(name) && now - stat.mtimeMs > STALE_TEMPORARY_MS) unlinkQuietly(path);
    }
    caches.sort((a, b) => b.mtime - a.mtime);
    for (const stale of caches.slice(MAX_CODE_CACHES - 1)) unlinkQuietly(stale.path);
  }

  close(): void {
    closeQuietly(this.directoryFd);
  }
}

/** Loads the directory's key, making it on first use; a string says what is wrong with it. */
function loadKey(base: string, euid: number): Buffer | string {
  const path = join(base, KEY_NAME);
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, READ_FLAGS);
    } catch (error) {
      const code = errorCode(error);
      if (code === "ELOOP") return "is a symbolic link: remove it";
      if (code !== "ENOENT" || attempt > 0) return `cannot be read (${code})`;
      const made = makeKey(base, path);
      if (made !== undefined) return made;
      continue;
    }
    try {
      const stat = fstatSync(fd);
      const problem = cacheFileProblem(stat, euid);
      if (problem === "not-a-file") return "is not a regular file: remove it";
      if (problem === "foreign") return `is not private to uid ${euid} (owner ${stat.uid}, mode ${octal(stat.mode)}): remove it`;
      if (stat.size !== KEY_BYTES) return `is not a ${KEY_BYTES}-byte key (${stat.size} bytes): remove it`;
      const key = readExactly(fd, KEY_BYTES, 0);
      return key ?? "shrank while being read";
    } finally {
      closeQuietly(fd);
    }
  }
  return "cannot be read";
}

/**
 * Makes the key under a temporary name and links it into place: link(2) fails if another tender
 * made one meanwhile, so every reader sees a whole key, and the first one made wins.
 */
function makeKey(base: string, path: string): string | undefined {
  const temporary = join(base, `${KEY_NAME}.${process.pid}.${randomBytes(8).toString("hex")}.tmp`);
  let fd: number;
  try {
    fd = openSync(temporary, CREATE_FLAGS, 0o600);
  } catch (error) {
    return `cannot be made (${errorCode(error)})`;
  }
  try {
    writeAll(fd, randomBytes(KEY_BYTES), 0);
    closeSync(fd);
    linkSync(temporary, path);
  } catch (error) {
    closeQuietly(fd);
    if (errorCode(error) !== "EEXIST") {
      unlinkQuietly(temporary);
      return `cannot be made (${errorCode(error)})`;
    }
  }
  unlinkQuietly(temporary);
  return undefined;
}

/** A cache being written: V8's payload goes in at CODE_CACHE_PAYLOAD_OFFSET, then `commit` signs it and renames it into place. */
export class PendingCodeCache {
  private settled = false;

  constructor(
    /** Read-write, on the temporary file; the spt launcher hands a copy to the appliance process. */
    readonly fd: number,
    private readonly temporary: string,
    private readonly final: string,
    private readonly mac: (payload: Uint8Array) => Buffer,
    private readonly prune: () => void,
  ) {}

  /** Writes the payload (the node tender; spt's appliance process writes through its copy of `fd`). */
  writePayload(payload: Uint8Array): void {
    writeAll(this.fd, payload, CODE_CACHE_PAYLOAD_OFFSET);
  }

  /**
   * Signs the payload now in the file and renames the file into place; false (and the file
   * removed) when there is none, it is too large, or the disk refused.
   */
  commit(): boolean {
    if (this.settled) return false;
    this.settled = true;
    try {
      const length = fstatSync(this.fd).size - CODE_CACHE_PAYLOAD_OFFSET;
      if (length <= 0 || length > MAX_CODE_CACHE_PAYLOAD) throw new Error("no payload");
      const payload = readExactly(this.fd, length, CODE_CACHE_PAYLOAD_OFFSET);
      if (payload === undefined) throw new Error("the payload shrank");
      writeAll(this.fd, Buffer.concat([MAGIC, this.mac(payload)]), 0);
      closeSync(this.fd);
      this.prune();
      renameSync(this.temporary, this.final);
      return true;
    } catch {
      closeQuietly(this.fd);
      unlinkQuietly(this.temporary);
      return false;
    }
  }

  /** Removes the temporary file (a cache hit, or the appliance process never wrote it). */
  discard(): void {
    if (this.settled) return;
    this.settled = true;
    closeQuietly(this.fd);
    unlinkQuietly(this.temporary);
  }
}

/**
 * The appliance process's read: the payload at CODE_CACHE_PAYLOAD_OFFSET of a file the launcher
 * authenticated, given to V8 only if it still hashes to what the launcher verified.
 */
export function readHandedPayload(fd: number, length: number, sha256: string): Buffer | undefined {
  if (!Number.isInteger(length) || length <= 0 || length > MAX_CODE_CACHE_PAYLOAD) return undefined;
  try {
    const payload = readExactly(fd, length, CODE_CACHE_PAYLOAD_OFFSET);
    if (payload === undefined || createHash("sha256").update(payload).digest("hex") !== sha256) return undefined;
    return payload;
  } catch {
    return undefined;
  }
}

/** The appliance process's write: V8's payload into the launcher's temporary file; false if it could not. */
export function writeHandedPayload(fd: number, payload: Uint8Array): boolean {
  if (payload.length === 0 || payload.length > MAX_CODE_CACHE_PAYLOAD) return false;
  try {
    writeAll(fd, payload, CODE_CACHE_PAYLOAD_OFFSET);
    return true;
  } catch {
    return false;
  }
}

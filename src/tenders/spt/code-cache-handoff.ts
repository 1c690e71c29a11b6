/**
 * The spt tender's V8 code cache, on the launcher's side.
 *
 * The appliance process is PID 1 of fresh namespaces and still root when it compiles the image
 * (the only moment it could open a file): it must not be the one that opens cache files, follows
 * a path someone else could change, or holds the key that makes a cache trusted (after lockdown it
 * runs the image, and a V8 bug there would otherwise give the image the key to every cache). So
 * the launcher, running as the user who ran `atoll run`, does all the file work through
 * code-cache.ts:
 *
 * - before the appliance process starts: verify the directory, read and authenticate the cache,
 *   and create the temporary file a miss is written into; both are handed over as fds, with the
 *   payload's length and SHA-256 in the boot plan (the appliance process checks that hash before
 *   V8 sees a byte: the file cannot be swapped between the two processes' reads);
 * - when the appliance process says CODE_CACHE_WRITTEN_LINE (before "ready", so before any image
 *   code has run): sign what it wrote and rename it into place; otherwise remove the temporary file.
 */
import { closeSync } from "node:fs";
import type { Image } from "../../image/format.ts";
import { openCodeCache, type CodeCacheBinding, type CodeCacheRead, type CodeCacheRejection, type CodeCacheStore, type PendingCodeCache } from "../common/code-cache.ts";
import type { PlannedCodeCache } from "./plan.ts";

export class CodeCacheHandoff {
  private written = false;
  private settled = false;
  private readFdClosed = false;

  private constructor(
    private readonly store: CodeCacheStore,
    private readonly cached: CodeCacheRead,
    private readonly pending: PendingCodeCache,
  ) {}

  /**
   * Prepares the hand-over, or undefined when caching is off, the directory failed its checks
   * (`warn` got the line), or the appliance process has no two fds left for it.
   */
  static prepare(image: Image, applianceFlags: readonly string[], memoryMiB: number | undefined, fdsLeft: number, warn: (line: string) => void): CodeCacheHandoff | undefined {
    if (fdsLeft < 2) return undefined;
    const store = openCodeCache(warn);
    if (store === undefined) return undefined;
    // A cache of its own: V8 rejects caches made under other flags, and the appliance process's differ.
    const binding: CodeCacheBinding = { imageSha256: image.sha256, variant: memoryMiB === undefined ? "spt" : `spt-m${memoryMiB}`, flags: applianceFlags };
    const cached = store.read(binding);
    const pending = store.create(binding);
    if (pending === undefined) {
      if (cached.kind === "authenticated") closeSync(cached.fd);
      store.close();
      return undefined;
    }
    return new CodeCacheHandoff(store, cached, pending);
  }

  /** The launcher's fds to hand over, in the order `plan` numbers them. */
  get fds(): number[] {
    return this.cached.kind === "authenticated" ? [this.cached.fd, this.pending.fd] : [this.pending.fd];
  }

  /** The boot plan's entry, the fds numbered from `firstFd` in the appliance process. */
  plan(firstFd: number): PlannedCodeCache {
    if (this.cached.kind !== "authenticated") return { write: firstFd };
    return { read: { fd: firstFd, length: this.cached.payload.length, sha256: this.cached.sha256 }, write: firstFd + 1 };
  }

  /** After the spawn: the appliance process has its own copy of the cache file's fd. */
  spawned(): void {
    if (this.cached.kind !== "authenticated" || this.readFdClosed) return;
    // Once only: the number may belong to another file after it is closed.
    this.readFdClosed = true;
    try {
      closeSync(this.cached.fd);
    } catch {
      // Already closed.
    }
  }

  /** The appliance process wrote V8's payload into the temporary file. */
  markWritten(): void {
    this.written = true;
  }

  /** On "ready": signs and renames a written cache, or removes the temporary file; once. */
  settle(): void {
    this.finish(this.written);
  }

  /**
   * The appliance process never said "ready" (it could not be started, or died first): what it
   * may have written is removed unsigned, whatever it said.
   */
  abandon(): void {
    this.finish(false);
  }

  private finish(commit: boolean): void {
    if (this.settled) return;
    this.settled = true;
    this.spawned();
    if (commit) this.pending.commit();
    else this.pending.discard();
    this.store.close();
  }

  /** Why a cache that was there went unused, given what the appliance process reported. */
  rejection(applianceCodeCache: "hit" | "miss" | "off"): CodeCacheRejection | undefined {
    if (this.cached.kind === "rejected") return this.cached.reason;
    // Authenticated, and still a miss: V8 refused it (or the file changed under the appliance process's read).
    if (this.cached.kind === "authenticated" && applianceCodeCache === "miss") return "v8";
    return undefined;
  }
}

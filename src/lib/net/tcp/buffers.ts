/**
 * The byte buffers of a connection, as rings over one Uint8Array each, allocated on first use
 * (a half-open connection costs no buffer memory) and grown by doubling, from 4 KiB up to their
 * capacity, as more is held at once: a connection that exchanges a few kilobytes costs tens of
 * kilobytes, not the half megabyte of two full buffers (1000 such connections took 350 MB).
 *
 * - SendBuffer holds what the application wrote and the peer has not acknowledged: the
 *   retransmission queue is the buffer itself, so a retransmission may be cut differently from
 *   the original (after a path MTU change, for instance).
 * - ReceiveBuffer holds in-order data the application has not read and, past it, out-of-order
 *   data at its place in the window: a gap filled later makes it readable without a copy.
 */

/**
 * The first allocation of a buffer (or its capacity, when smaller). 4 KiB holds a request line
 * and headers; a connection that holds a few bytes and goes silent (the flood of issue #12) costs
 * no more, and a bulk transfer doubles past it in a few steps.
 */
const INITIAL_STORAGE = 4 * 1024;

/** A ring of at least `needed` bytes (doubling from `old`'s length, at most `capacity`) with `old`'s `keep` bytes from `head` at 0. */
function grown(old: Uint8Array | undefined, head: number, keep: number, needed: number, capacity: number): Uint8Array {
  let size = old === undefined ? INITIAL_STORAGE : old.length * 2;
  while (size < needed) size *= 2;
  const storage = new Uint8Array(Math.min(size, capacity));
  if (old !== undefined && keep > 0) {
    const first = Math.min(keep, old.length - head);
    storage.set(old.subarray(head, head + first), 0);
    if (first < keep) storage.set(old.subarray(0, keep - first), first);
  }
  return storage;
}

export class SendBuffer {
  private storage: Uint8Array | undefined;
  /** Index of the oldest byte held. */
  private head = 0;
  /** Bytes held: unacknowledged and unsent. */
  length = 0;

  constructor(private currentCapacity: number) {}

  /** The most it holds; memory follows what it holds. */
  get capacity(): number {
    return this.currentCapacity;
  }

  /** Lets it hold up to `capacity` from now on; never shrinks. */
  grow(capacity: number): void {
    if (capacity > this.currentCapacity) this.currentCapacity = capacity;
  }

  get free(): number {
    return this.capacity - this.length;
  }

  /** Bytes of memory the buffer holds now. */
  get allocated(): number {
    return this.storage?.length ?? 0;
  }

  /** Copies as much of source[start, end) as fits; returns how many bytes were taken. */
  append(source: Uint8Array, start: number, end: number): number {
    const count = Math.min(end - start, this.capacity - this.length);
    if (count <= 0) return 0;
    let storage = this.storage;
    if (storage === undefined || storage.length < this.length + count) {
      storage = this.storage = grown(storage, this.head, this.length, this.length + count, this.capacity);
      this.head = 0;
    }
    const size = storage.length;
    let tail = this.head + this.length;
    if (tail >= size) tail -= size;
    const first = Math.min(count, size - tail);
    storage.set(source.subarray(start, start + first), tail);
    if (first < count) storage.set(source.subarray(start + first, start + count), 0);
    this.length += count;
    return count;
  }

  /** Drops the `count` oldest bytes (acknowledged by the peer). */
  release(count: number): void {
    const n = Math.min(count, this.length);
    this.length -= n;
    this.head += n;
    const size = this.storage?.length ?? 0;
    if (this.head >= size) this.head -= size;
    if (this.length === 0) this.head = 0;
  }

  /** Copies `count` bytes starting `offset` bytes after the oldest into `into` at `at`. */
  copyOut(offset: number, count: number, into: Uint8Array, at: number): void {
    const storage = this.storage;
    if (storage === undefined || count <= 0) return;
    const size = storage.length;
    let from = this.head + offset;
    if (from >= size) from -= size;
    const first = Math.min(count, size - from);
    into.set(storage.subarray(from, from + first), at);
    if (first < count) into.set(storage.subarray(0, count - first), at + first);
  }

  /** Frees the memory (a closed connection keeps no buffer). */
  dispose(): void {
    this.storage = undefined;
    this.head = 0;
    this.length = 0;
  }
}

export class ReceiveBuffer {
  private storage: Uint8Array | undefined;
  /** Index of the oldest unread byte. */
  private head = 0;
  /** In-order bytes the application has not read. */
  readable = 0;

  /**
   * `size` is what the window may offer; `slack` is extra room for the rounding of a scaled
   * window, which can offer up to 2^scale - 1 bytes more than the free space (RFC 7323 §2.3).
   */
  constructor(
    private currentSize: number,
    private readonly slack: number,
  ) {}

  /** What the window may offer in all (readable bytes included). */
  get size(): number {
    return this.currentSize;
  }

  /** Lets the window offer up to `size` from now on; never shrinks (memory follows as data arrives). */
  grow(size: number): void {
    if (size > this.currentSize) this.currentSize = size;
  }

  get capacity(): number {
    return this.size + this.slack;
  }

  /** Bytes of memory the buffer holds now. */
  get allocated(): number {
    return this.storage?.length ?? 0;
  }

  /** Free space by the configured size: the most the window may offer beyond the readable bytes. */
  get free(): number {
    return Math.max(0, this.size - this.readable);
  }

  /** Room for data `offset` bytes past the readable bytes: how much of a segment there can be kept. */
  roomAt(offset: number): number {
    return Math.max(0, this.capacity - this.readable - offset);
  }

  /**
   * Copies source[start, end) to its place `offset` bytes past the readable bytes (0: the next
   * in-order byte). The caller has checked `roomAt`.
   */
  place(offset: number, source: Uint8Array, start: number, end: number): void {
    const count = end - start;
    if (count <= 0) return;
    let storage = this.storage;
    const needed = this.readable + offset + count;
    if (storage === undefined || storage.length < needed) {
      // Everything placed so far lies within the old ring's length from the head (in order or not).
      storage = this.storage = grown(storage, this.head, storage?.length ?? 0, needed, this.capacity);
      this.head = 0;
    }
    const size = storage.length;
    let at = this.head + this.readable + offset;
    while (at >= size) at -= size;
    const first = Math.min(count, size - at);
    storage.set(source.subarray(start, start + first), at);
    if (first < count) storage.set(source.subarray(start + first, end), 0);
  }

  /** Makes `count` more placed bytes readable (the receive sequence advanced over them). */
  commit(count: number): void {
    this.readable += count;
  }

  /** Takes up to `max` readable bytes as a new array, or undefined when there are none. */
  read(max: number): Uint8Array | undefined {
    const count = Math.min(max, this.readable);
    const storage = this.storage;
    if (count <= 0 || storage === undefined) return undefined;
    const out = new Uint8Array(count);
    const size = storage.length;
    const first = Math.min(count, size - this.head);
    out.set(storage.subarray(this.head, this.head + first));
    if (first < count) out.set(storage.subarray(0, count - first), first);
    this.head += count;
    if (this.head >= size) this.head -= size;
    this.readable -= count;
    return out;
  }

  /** Copies up to `into.length` readable bytes into `into` and consumes them; returns how many (0: none). */
  readInto(into: Uint8Array): number {
    const count = Math.min(into.length, this.readable);
    const storage = this.storage;
    if (count <= 0 || storage === undefined) return 0;
    const size = storage.length;
    const first = Math.min(count, size - this.head);
    into.set(storage.subarray(this.head, this.head + first));
    if (first < count) into.set(storage.subarray(0, count - first), first);
    this.head += count;
    if (this.head >= size) this.head -= size;
    this.readable -= count;
    return count;
  }

  /** Drops every readable byte (data that arrives after the application closed). */
  discardReadable(): void {
    const size = this.storage?.length ?? 0;
    this.head += this.readable;
    while (size > 0 && this.head >= size) this.head -= size;
    this.readable = 0;
  }

  dispose(): void {
    this.storage = undefined;
    this.head = 0;
    this.readable = 0;
  }
}

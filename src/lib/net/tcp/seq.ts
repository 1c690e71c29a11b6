/**
 * Sequence number arithmetic (RFC 9293 §3.4): sequence numbers live modulo 2^32, and "a < b"
 * means that b lies less than 2^31 ahead of a. Every comparison in the stack goes through these
 * functions, so that nothing breaks when a connection's sequence space wraps.
 *
 * Sequence numbers are plain numbers holding unsigned 32-bit values; `(a - b) | 0` is their
 * signed distance, exact for any two such values.
 */

/** `a + n` modulo 2^32 (n may be negative). */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** The signed distance from `b` to `a`: positive when a is ahead of b. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

export function seqMax(a: number, b: number): number {
  return seqGt(a, b) ? a : b;
}

export function seqMin(a: number, b: number): number {
  return seqLt(a, b) ? a : b;
}

/** low ≤ x < high, modulo 2^32. */
export function seqInRange(x: number, low: number, high: number): boolean {
  return ((x - low) | 0) >= 0 && ((x - high) | 0) < 0;
}

/**
 * A set of disjoint, non-adjacent ranges [start, end) of sequence space, kept sorted: the
 * receiver's out-of-order data and the sender's SACK scoreboard. The ranges must all lie within
 * 2^31 of one another, which windows guarantee. Sizes are small (bounded by the caller), so the
 * operations are linear scans over two parallel arrays, which allocate only when they grow.
 */
export class SeqRangeSet {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  get size(): number {
    return this.starts.length;
  }

  start(index: number): number {
    return this.starts[index] ?? 0;
  }

  end(index: number): number {
    return this.ends[index] ?? 0;
  }

  /** The first range's start (only meaningful when size > 0). */
  get lowest(): number {
    return this.starts[0] ?? 0;
  }

  /** The last range's end (only meaningful when size > 0). */
  get highest(): number {
    return this.ends[this.ends.length - 1] ?? 0;
  }

  clear(): void {
    this.starts.length = 0;
    this.ends.length = 0;
  }

  /** Adds [start, end), merging with whatever it overlaps or touches. Returns the bytes newly covered. */
  add(start: number, end: number): number {
    if (!seqLt(start, end)) return 0;
    const starts = this.starts;
    const ends = this.ends;
    // First range that ends at or after `start` (it may merge), then every range starting at or before `end`.
    let first = 0;
    while (first < starts.length && seqLt(ends[first] ?? 0, start)) first++;
    let last = first;
    let covered = 0;
    let mergedStart = start;
    let mergedEnd = end;
    while (last < starts.length && seqLe(starts[last] ?? 0, end)) {
      const rangeStart = starts[last] ?? 0;
      const rangeEnd = ends[last] ?? 0;
      covered += overlap(rangeStart, rangeEnd, start, end);
      if (seqLt(rangeStart, mergedStart)) mergedStart = rangeStart;
      if (seqGt(rangeEnd, mergedEnd)) mergedEnd = rangeEnd;
      last++;
    }
    if (last === first) {
      starts.splice(first, 0, mergedStart);
      ends.splice(first, 0, mergedEnd);
    } else {
      starts[first] = mergedStart;
      ends[first] = mergedEnd;
      if (last - first > 1) {
        starts.splice(first + 1, last - first - 1);
        ends.splice(first + 1, last - first - 1);
      }
    }
    return seqDiff(end, start) - covered;
  }

  /** Forgets everything below `seq`, trimming a range that straddles it. */
  removeBelow(seq: number): void {
    const starts = this.starts;
    const ends = this.ends;
    let drop = 0;
    while (drop < starts.length && seqLe(ends[drop] ?? 0, seq)) drop++;
    if (drop > 0) {
      starts.splice(0, drop);
      ends.splice(0, drop);
    }
    if (starts.length > 0 && seqLt(starts[0] ?? 0, seq)) starts[0] = seq;
  }

  /** Forgets everything at or above `seq`, trimming a range that straddles it. */
  removeFrom(seq: number): void {
    const starts = this.starts;
    const ends = this.ends;
    while (starts.length > 0 && seqGe(starts[starts.length - 1] ?? 0, seq)) {
      starts.pop();
      ends.pop();
    }
    if (ends.length > 0 && seqGt(ends[ends.length - 1] ?? 0, seq)) ends[ends.length - 1] = seq;
  }

  /** Index of the range containing `seq`, or -1. */
  indexOf(seq: number): number {
    for (let index = 0; index < this.starts.length; index++) {
      if (seqInRange(seq, this.starts[index] ?? 0, this.ends[index] ?? 0)) return index;
    }
    return -1;
  }

  contains(seq: number): boolean {
    return this.indexOf(seq) >= 0;
  }

  /** Bytes of [low, high) the set covers. */
  coveredBetween(low: number, high: number): number {
    let covered = 0;
    for (let index = 0; index < this.starts.length; index++) covered += overlap(this.starts[index] ?? 0, this.ends[index] ?? 0, low, high);
    return covered;
  }

  /** Total bytes covered. */
  get coveredBytes(): number {
    let covered = 0;
    for (let index = 0; index < this.starts.length; index++) covered += seqDiff(this.ends[index] ?? 0, this.starts[index] ?? 0);
    return covered;
  }
}

/** Bytes shared by [aStart, aEnd) and [bStart, bEnd). */
function overlap(aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const start = seqMax(aStart, bStart);
  const end = seqMin(aEnd, bEnd);
  return seqLt(start, end) ? seqDiff(end, start) : 0;
}

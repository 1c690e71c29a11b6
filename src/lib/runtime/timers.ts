/**
 * A min-heap of timers keyed by monotonic deadline (ns). Cancelled timers are removed lazily when
 * they reach the top, so cancel is O(1) and the heap never holds more than was ever scheduled.
 */

export interface Timer {
  readonly deadline: number;
  /** Stops the timer from firing; safe to call more than once or after it fired. */
  cancel(): void;
}

const NOTHING = (): void => undefined;

class TimerEntry implements Timer {
  cancelled = false;
  constructor(
    readonly deadline: number,
    readonly sequence: number,
    public callback: () => void,
  ) {}
  cancel(): void {
    this.cancelled = true;
    // The entry stays in the heap until it reaches the top; dropping the callback now frees
    // whatever its closure holds (a reassembly's fragments, a connection) at once.
    this.callback = NOTHING;
  }
}

export class TimerQueue {
  private readonly heap: TimerEntry[] = [];
  private sequence = 0;

  add(deadline: number, callback: () => void): Timer {
    const entry = new TimerEntry(deadline, this.sequence++, callback);
    this.heap.push(entry);
    this.siftUp(this.heap.length - 1);
    return entry;
  }

  /** The earliest live deadline, or undefined when no timer is pending. */
  nextDeadline(): number | undefined {
    this.prune();
    return this.heap[0]?.deadline;
  }

  /** Removes and returns the earliest live timer due at `now`, or undefined. Timers with equal deadlines fire in the order they were added. */
  popDue(now: number): (() => void) | undefined {
    return this.popDueTimer(now)?.callback;
  }

  /** As popDue, with the timer's deadline (a virtual clock moves to it before firing). */
  popDueTimer(now: number): { readonly deadline: number; readonly callback: () => void } | undefined {
    this.prune();
    const top = this.heap[0];
    if (top === undefined || top.deadline > now) return undefined;
    this.removeTop();
    return top;
  }

  private prune(): void {
    for (let top = this.heap[0]; top !== undefined && top.cancelled; top = this.heap[0]) {
      this.removeTop();
    }
  }

  private removeTop(): void {
    const last = this.heap.pop();
    if (last !== undefined && this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
  }

  private before(a: TimerEntry, b: TimerEntry): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.sequence < b.sequence);
  }

  private siftUp(index: number): void {
    const heap = this.heap;
    const entry = heap[index];
    if (entry === undefined) return;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex];
      if (parent === undefined || !this.before(entry, parent)) break;
      heap[index] = parent;
      index = parentIndex;
    }
    heap[index] = entry;
  }

  private siftDown(index: number): void {
    const heap = this.heap;
    const entry = heap[index];
    if (entry === undefined) return;
    for (;;) {
      const leftIndex = 2 * index + 1;
      if (leftIndex >= heap.length) break;
      const rightIndex = leftIndex + 1;
      const left = heap[leftIndex];
      const right = heap[rightIndex];
      let childIndex = leftIndex;
      let child = left;
      if (right !== undefined && left !== undefined && this.before(right, left)) {
        childIndex = rightIndex;
        child = right;
      }
      if (child === undefined || !this.before(child, entry)) break;
      heap[index] = child;
      index = childIndex;
    }
    heap[index] = entry;
  }
}

/**
 * The image's scheduler: timers, net readiness and promise continuations, driven only through the
 * base's yield. It is the whole "kernel loop" of an appliance:
 *
 *   fire due timers → dispatch readable net devices → let continuations run → yield until the
 *   next deadline or input.
 *
 * Promise continuations run when the engine drains its job queue, which happens inside yield, so
 * the deadline for a sleeping yield is computed only after a non-waiting yield has let every
 * continuation queued by the last dispatch run (they may schedule earlier timers).
 */
import type { Base } from "../../abi/base.ts";
import { TimerQueue, type Timer } from "./timers.ts";

const NS_PER_MS = 1_000_000;
/** With no timer pending, sleep at most this long between yields (devices still wake us at once). */
const IDLE_WAIT_NS = 3_600_000_000_000;
/** Timers fired in one turn at most, so a timer that re-arms itself at "now" cannot starve I/O. */
const MAX_TIMERS_PER_TURN = 1024;

export type MainResult = number | void;

export class DeadlockError extends Error {
  override readonly name = "DeadlockError";
}

export class Scheduler {
  private readonly timers = new TimerQueue();
  private readonly readers = new Map<number, () => void>();

  constructor(private readonly base: Base) {}

  /** Monotonic time in nanoseconds. */
  now(): number {
    return this.base.clockMonotonic();
  }

  /** Runs `callback` once the monotonic clock reaches `deadline` (ns). */
  at(deadline: number, callback: () => void): Timer {
    return this.timers.add(deadline, callback);
  }

  /** Runs `callback` after `delayMs` milliseconds (fractions allowed). */
  after(delayMs: number, callback: () => void): Timer {
    const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs * NS_PER_MS : 0;
    return this.timers.add(this.now() + delay, callback);
  }

  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.after(delayMs, resolve));
  }

  /** Calls `onReadable` whenever net device `handle` has input pending; returns a function that stops it. */
  watchNet(handle: number, onReadable: () => void): () => void {
    if (this.readers.has(handle)) throw new Error(`net handle ${handle} is already watched`);
    this.readers.set(handle, onReadable);
    return () => {
      if (this.readers.get(handle) === onReadable) this.readers.delete(handle);
    };
  }

  /**
   * Runs `main` and the loop. Resolves with main's exit code when it returns a number; when it
   * returns nothing, the loop goes on while a timer or a watched device can still wake it, then
   * resolves 0. Rejects with the first error thrown by main or by a timer or reader callback, and
   * with a DeadlockError when main is still pending but nothing could ever resume it.
   */
  async run(main: () => MainResult | Promise<MainResult>): Promise<number> {
    let settled = false;
    let result: MainResult = undefined;
    let failure: { error: unknown } | undefined;
    Promise.resolve()
      .then(main)
      .then(
        (value) => {
          settled = true;
          result = value;
        },
        (error: unknown) => {
          settled = true;
          failure = { error };
        },
      );

    // Continuations may be pending (main just started): the first yield must not sleep.
    let mayHaveContinuations = true;
    for (;;) {
      let ready: number;
      if (mayHaveContinuations) {
        ready = await this.base.yield(0);
      } else {
        if (failure !== undefined) throw failure.error;
        if (settled) {
          if (typeof result === "number") return result;
          if (this.timers.nextDeadline() === undefined && this.readers.size === 0) return 0;
        }
        const next = this.timers.nextDeadline();
        if (next === undefined && this.readers.size === 0) {
          throw new DeadlockError("main is still waiting, but no timer or device is left that could wake it");
        }
        ready = await this.base.yield(next ?? this.now() + IDLE_WAIT_NS);
      }
      if (failure !== undefined) throw failure.error;
      if (settled && typeof result === "number") return result;
      const fired = this.fireTimers();
      mayHaveContinuations = fired + this.dispatch(ready) > 0;
    }
  }

  private fireTimers(): number {
    const now = this.now();
    let fired = 0;
    for (let callback = this.timers.popDue(now); callback !== undefined; callback = this.timers.popDue(now)) {
      callback();
      if (++fired === MAX_TIMERS_PER_TURN) break;
    }
    return fired;
  }

  private dispatch(ready: number): number {
    let dispatched = 0;
    for (let bits = ready >>> 0; bits !== 0; bits &= bits - 1) {
      const handle = 31 - Math.clz32(bits & -bits);
      const reader = this.readers.get(handle);
      if (reader !== undefined) {
        reader();
        dispatched++;
      }
    }
    return dispatched;
  }
}

/**
 * A restartable deadline over the stack's Timers, for the timers a connection moves on nearly
 * every segment (retransmission, delayed ACK): moving the deadline later is an assignment, not a
 * cancel and a new timer. The underlying timer is re-armed only when the deadline moves earlier
 * or when it fires before the current deadline. The callback is bound once, at construction.
 */
import type { TimerHandle, Timers } from "../types.ts";

export class DeadlineTimer {
  /** When the callback should run; Infinity when stopped. */
  private deadline = Infinity;
  private handle: TimerHandle | undefined;
  /** The deadline the underlying timer is set for. */
  private armedFor = Infinity;
  private readonly fire: () => void;

  constructor(
    private readonly timers: Timers,
    callback: () => void,
  ) {
    this.fire = () => {
      this.handle = undefined;
      this.armedFor = Infinity;
      const deadline = this.deadline;
      if (deadline === Infinity) return;
      if (this.timers.now() < deadline) {
        this.arm(deadline);
        return;
      }
      this.deadline = Infinity;
      callback();
    };
  }

  get running(): boolean {
    return this.deadline !== Infinity;
  }

  /** The deadline, or Infinity. */
  get at(): number {
    return this.deadline;
  }

  /** Runs the callback at `deadline` (ms) instead of any earlier setting. */
  set(deadline: number): void {
    this.deadline = deadline;
    if (deadline < this.armedFor) this.arm(deadline);
  }

  /** Sets the deadline unless one is set already. */
  setIfStopped(deadline: number): void {
    if (this.deadline === Infinity) this.set(deadline);
  }

  stop(): void {
    this.deadline = Infinity;
  }

  /** Stops and also cancels the underlying timer (when the connection goes away). */
  dispose(): void {
    this.deadline = Infinity;
    this.handle?.cancel();
    this.handle = undefined;
    this.armedFor = Infinity;
  }

  private arm(deadline: number): void {
    this.handle?.cancel();
    this.armedFor = deadline;
    this.handle = this.timers.at(deadline, this.fire);
  }
}

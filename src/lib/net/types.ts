/**
 * The seams of the network stack. Protocol code is plain state machines over these interfaces, so
 * tests drive it with a virtual clock and an in-memory link, and an appliance with its NetDevice
 * and scheduler (see adapters.ts).
 */
import type { MacAddress } from "../wire/address.ts";

/** Monotonic time in milliseconds (fractional allowed). */
export interface Clock {
  now(): number;
}

export interface TimerHandle {
  cancel(): void;
}

/** Timers on the stack's clock. Callbacks run from the event loop, never re-entrantly inside `at`. */
export interface Timers extends Clock {
  at(deadlineMs: number, callback: () => void): TimerHandle;
}

/** An Ethernet link: a NetDevice in an appliance, a port of a virtual link in tests. */
export interface Link {
  readonly mac: MacAddress;
  /** Largest IP datagram the link carries (1500 on Ethernet). */
  readonly mtu: number;
  /** Sends one Ethernet frame; the link may drop it (as a wire may). The frame is not retained. */
  send(frame: Uint8Array): void;
  /** Delivers received frames; the frame is only valid during the call. */
  onFrame(listener: (frame: Uint8Array) => void): void;
}

/** Fills bytes with cryptographically secure randomness (the base's entropy call). */
export type RandomSource = (bytes: Uint8Array) => void;

/** A layer's counters: plain numbers, readable at any time, registered for the exit report. */
export type Counters = Record<string, number>;

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
  /** What the link does for the stack beyond moving frames; undefined: nothing. */
  readonly offloads?: LinkOffloads | undefined;
  /**
   * Sends one Ethernet frame; the link may drop it (as a wire may). The frame is not retained.
   * `offload` (only on a link with offloads) asks the link to finish the frame's checksum and to
   * cut it into segments.
   */
  send(frame: Uint8Array, offload?: TransmitOffload): void;
  /**
   * Delivers received frames; the frame is only valid during the call. `checksumTrusted` (links
   * with offloads only) says its TCP or UDP checksum is not to be verified (see the base ABI's
   * NetFrameMeta); such a frame may also be a coalesced TCP segment larger than the MTU.
   */
  onFrame(listener: FrameReceiver): void;
}

export type FrameReceiver = (frame: Uint8Array, checksumTrusted?: boolean) => void;

/** Offloads a link offers, as the base ABI's NetOffloads (checksums both ways, TCP segmentation). */
export interface LinkOffloads {
  /** Largest IP datagram holding a TCP segment the link cuts into MTU-sized ones; never below the MTU. */
  readonly maxTcpDatagram: number;
}

/** A frame's transmit offloads: the write half of the base ABI's NetFrameMeta. */
export interface TransmitOffload {
  /** Where the link starts the checksum it computes (the transport header), from the frame's start. */
  checksumStart: number;
  /** Where in the transport header the checksum goes; the field holds the pseudo-header sum. */
  checksumOffset: number;
  /** TCP payload bytes per segment the link cuts the frame into; 0 to send it as it is. */
  segmentSize: number;
}

/** Fills bytes with cryptographically secure randomness (the base's entropy call). */
export type RandomSource = (bytes: Uint8Array) => void;

/** A layer's counters: plain numbers, readable at any time, registered for the exit report. */
export type Counters = Record<string, number>;

/**
 * A test harness for network code, in plain ECMAScript (no Node): a virtual clock that implements
 * Timers, and an in-memory Ethernet link (a hub or a learning switch) joining any number of stacks
 * in one process, with impairments drawn from a seeded generator, in the manner of MirageOS's
 * vnetif backends: loss, duplication, reordering, corruption (bit flips), an MTU limit and delay.
 *
 * Frames are copied on send and delivered through the clock, never re-entrantly inside `send`, so
 * a test decides when time passes: `clock.advance(ms)`, `clock.runUntilIdle()`, `clock.runUntil(...)`.
 * The same seed and the same sequence of sends give the same run. Builders at the end make
 * crafted frames for injection.
 */
import { TimerQueue } from "../../runtime/timers.ts";
import { MacAddress, type Ipv4Address } from "../../wire/address.ts";
import { ARP_PACKET_LENGTH, ArpRepr } from "../../wire/arp.ts";
import { ETHERNET_HEADER_LENGTH, EtherType, EthernetRepr, VLAN_TAG_LENGTH } from "../../wire/ethernet.ts";
import { Icmpv4Repr } from "../../wire/icmpv4.ts";
import { Ipv4Repr } from "../../wire/ipv4.ts";
import { applyOffloads } from "../../wire/segmentation.ts";
import { UdpRepr } from "../../wire/udp.ts";
import type { NetLogFactory, NetLogger } from "../ethernet.ts";
import type { Link, LinkOffloads, RandomSource, TimerHandle, Timers, TransmitOffload } from "../types.ts";

/** mulberry32: a small, fast generator with a 32-bit state; plenty for test impairments. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A number in [0, 1). */
  next(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }

  /** An integer in [0, bound). */
  below(bound: number): number {
    return Math.floor(this.next() * bound);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  fill(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) bytes[i] = this.nextUint32() & 0xff;
  }
}

/** A RandomSource (the stack's entropy seam) from a seed: deterministic, so not for production. */
export function seededRandomSource(seed: number): RandomSource {
  const random = new SeededRandom(seed);
  return (bytes) => random.fill(bytes);
}

/** Timers on a clock that moves only when told; timers fire in deadline order, ties in the order they were set. */
export class VirtualClock implements Timers {
  private current: number;
  private readonly timers = new TimerQueue();

  constructor(startMs = 0) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  at(deadlineMs: number, callback: () => void): TimerHandle {
    return this.timers.add(deadlineMs, callback);
  }

  /** The earliest live deadline, or undefined when no timer is set. */
  nextDeadline(): number | undefined {
    return this.timers.nextDeadline();
  }

  /** Fires every timer due within `ms` from now, in order, then sets the clock to now + ms. Returns the number fired. */
  advance(ms: number): number {
    return this.advanceTo(this.current + ms);
  }

  advanceTo(targetMs: number): number {
    let fired = 0;
    for (let timer = this.timers.popDueTimer(targetMs); timer !== undefined; timer = this.timers.popDueTimer(targetMs)) {
      this.fire(timer);
      fired++;
    }
    if (targetMs > this.current) this.current = targetMs;
    return fired;
  }

  /**
   * Fires timers until none is left, or until `limitMs` of virtual time has passed. Throws when
   * more than `maxTimers` fire: something re-arms itself forever.
   */
  runUntilIdle(options: { limitMs?: number; maxTimers?: number } = {}): number {
    const stopAt = this.current + (options.limitMs ?? Infinity);
    const maxTimers = options.maxTimers ?? 1_000_000;
    let fired = 0;
    for (let timer = this.timers.popDueTimer(stopAt); timer !== undefined; timer = this.timers.popDueTimer(stopAt)) {
      this.fire(timer);
      if (++fired > maxTimers) throw new Error(`virtual clock: more than ${maxTimers} timers fired; a timer loop?`);
    }
    if (Number.isFinite(stopAt) && this.nextDeadline() !== undefined && stopAt > this.current) this.current = stopAt;
    return fired;
  }

  /**
   * Fires timers one by one until `condition()` holds (checked before each), no timer is left, or
   * the next one lies beyond `limitMs` from now. Returns whether the condition holds.
   */
  runUntil(condition: () => boolean, limitMs = Infinity): boolean {
    const stopAt = this.current + limitMs;
    while (!condition()) {
      const timer = this.timers.popDueTimer(stopAt);
      if (timer === undefined) {
        if (Number.isFinite(stopAt) && stopAt > this.current) this.current = stopAt;
        return condition();
      }
      this.fire(timer);
    }
    return true;
  }

  private fire(timer: { readonly deadline: number; readonly callback: () => void }): void {
    if (timer.deadline > this.current) this.current = timer.deadline;
    timer.callback();
  }
}

/** What the link does to each delivery of a frame (probabilities in [0, 1], times in ms). */
export interface Impairments {
  /** A delivery is lost. */
  loss?: number;
  /** A delivery happens twice. */
  duplication?: number;
  /** A delivery is held back by `reorderDelayMs`, so later frames overtake it. */
  reordering?: number;
  reorderDelayMs?: number;
  /** One random bit of the frame is flipped. */
  corruption?: number;
  /** Fixed latency of every delivery. */
  delayMs?: number;
  /** Uniform extra latency in [0, jitterMs). */
  jitterMs?: number;
  /** Frames carrying more than this many bytes after the Ethernet header are dropped. */
  mtu?: number;
}

export type VirtualLinkCounters = {
  /** Frames sent by ports. */
  sent: number;
  /** Copies handed to receiving ports (after impairments, duplicates included). */
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  tooBig: number;
};

export interface VirtualLinkOptions {
  clock: Timers;
  /** Seed of the impairments' generator (default 1). */
  seed?: number;
  impairments?: Impairments;
  /** "hub" (default) repeats every frame to every other port; "switch" learns MACs and forwards unicast to one port. */
  mode?: "hub" | "switch";
}

export interface PortOptions {
  /** Default 02:00:00:00:00:<n>, n counting attached ports from 1. */
  mac?: MacAddress;
  /** The MTU the port announces to its stack (default 1500). */
  mtu?: number;
  name?: string;
  /**
   * The port offers transmit offloads, as a TAP with IFF_VNET_HDR does: it finishes partial
   * checksums and cuts TCP segmentation-offload frames (up to 64 KiB) into the frames the link
   * carries (src/lib/wire/segmentation.ts). Received frames stay plain ones.
   */
  offloads?: boolean;
}

/** Sees every frame a port sends, before impairments. The frame is the link's copy: do not modify it. */
export type LinkTap = (frame: Uint8Array, from: VirtualPort) => void;

export class VirtualLink {
  readonly counters: VirtualLinkCounters = { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, corrupted: 0, tooBig: 0 };
  impairments: Impairments;
  readonly random: SeededRandom;
  private readonly ports: VirtualPort[] = [];
  private readonly taps: LinkTap[] = [];
  private readonly learned = new Map<MacAddress, VirtualPort>();
  private readonly clock: Timers;
  private readonly mode: "hub" | "switch";

  constructor(options: VirtualLinkOptions) {
    this.clock = options.clock;
    this.random = new SeededRandom(options.seed ?? 1);
    this.impairments = { ...options.impairments };
    this.mode = options.mode ?? "hub";
  }

  attach(options: PortOptions = {}): VirtualPort {
    const index = this.ports.length + 1;
    const port = new VirtualPort(
      this,
      options.mac ?? MacAddress.fromOctets(2, 0, 0, 0, (index >> 8) & 0xff, index & 0xff),
      options.mtu ?? 1500,
      options.name ?? `port${index}`,
      options.offloads === true ? { maxTcpDatagram: 0xffff } : undefined,
    );
    this.ports.push(port);
    return port;
  }

  /** Calls `listener` with every frame sent from now on. */
  tap(listener: LinkTap): void {
    this.taps.push(listener);
  }

  /** Delivers `frame` (copied) to `port` after `delayMs`, bypassing impairments: for crafted input. */
  inject(port: VirtualPort, frame: Uint8Array, delayMs = 0): void {
    const copy = frame.slice();
    this.clock.at(this.clock.now() + delayMs, () => port.deliver(copy));
  }

  /** From a port. */
  transmit(from: VirtualPort, frame: Uint8Array): void {
    this.counters.sent++;
    const copy = frame.slice();
    for (const tap of this.taps) tap(copy, from);
    if (copy.length < ETHERNET_HEADER_LENGTH) return;
    const mtu = this.impairments.mtu;
    if (mtu !== undefined && payloadLength(copy) > mtu) {
      this.counters.tooBig++;
      return;
    }
    const dst = MacAddress.read(copy, 0);
    if (this.mode === "switch") {
      this.learned.set(MacAddress.read(copy, 6), from);
      const target = MacAddress.isUnicast(dst) ? this.learned.get(dst) : undefined;
      if (target !== undefined) {
        if (target !== from) this.schedule(target, copy);
        return;
      }
    }
    for (const port of this.ports) if (port !== from) this.schedule(port, copy);
  }

  private schedule(port: VirtualPort, frame: Uint8Array): void {
    const impairments = this.impairments;
    const random = this.random;
    if (random.chance(impairments.loss ?? 0)) {
      this.counters.lost++;
      return;
    }
    const copies = random.chance(impairments.duplication ?? 0) ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    for (let n = 0; n < copies; n++) {
      const copy = frame.slice();
      if (random.chance(impairments.corruption ?? 0)) {
        const bit = random.below(copy.length * 8);
        copy[bit >> 3] ^= 1 << (bit & 7);
        this.counters.corrupted++;
      }
      let delay = (impairments.delayMs ?? 0) + random.next() * (impairments.jitterMs ?? 0);
      if (random.chance(impairments.reordering ?? 0)) {
        delay += impairments.reorderDelayMs ?? 5;
        this.counters.reordered++;
      }
      this.counters.delivered++;
      this.clock.at(this.clock.now() + delay, () => port.deliver(copy));
    }
  }
}

/** One station's attachment to a VirtualLink: the Link a stack is built on. */
export class VirtualPort implements Link {
  /** Frames handed to this port's listener. */
  received = 0;
  private listener: ((frame: Uint8Array) => void) | undefined;

  /** Frames the port cut or finished for its stack (offloads), and requests it refused. */
  offloaded = 0;
  offloadRefused = 0;

  constructor(
    private readonly link: VirtualLink,
    readonly mac: MacAddress,
    readonly mtu: number,
    readonly name: string,
    readonly offloads?: LinkOffloads | undefined,
  ) {}

  send(frame: Uint8Array, offload?: TransmitOffload): void {
    if (offload === undefined) {
      this.link.transmit(this, frame);
      return;
    }
    const frames = this.offloads === undefined ? undefined : applyOffloads(frame, offload);
    if (frames === undefined) {
      this.offloadRefused++;
      return;
    }
    this.offloaded++;
    for (const wireFrame of frames) this.link.transmit(this, wireFrame);
  }

  onFrame(listener: (frame: Uint8Array) => void): void {
    this.listener = listener;
  }

  /** Delivers `frame` to this port after `delayMs`, bypassing the link's impairments. */
  inject(frame: Uint8Array, delayMs = 0): void {
    this.link.inject(this, frame, delayMs);
  }

  /** From the link (through the clock). */
  deliver(frame: Uint8Array): void {
    this.received++;
    this.listener?.(frame);
  }
}

function payloadLength(frame: Uint8Array): number {
  const tagged = frame.length >= ETHERNET_HEADER_LENGTH && ((frame[12] << 8) | frame[13]) === EtherType.Vlan;
  return frame.length - ETHERNET_HEADER_LENGTH - (tagged ? VLAN_TAG_LENGTH : 0);
}

export interface LogEntry {
  readonly source: string;
  readonly level: "error" | "warn" | "info" | "debug";
  readonly message: string;
}

/** A log that keeps what it is told, for tests to look at; pass `log.factory` as the stack's `log`. */
export class RecordingLog {
  readonly entries: LogEntry[] = [];
  readonly factory: NetLogFactory = (source) => this.logger(source);

  /** Messages of `level` (and, if given, `source`). */
  messages(level: LogEntry["level"], source?: string): string[] {
    return this.entries.filter((entry) => entry.level === level && (source === undefined || entry.source === source)).map((entry) => entry.message);
  }

  private logger(source: string): NetLogger {
    const record =
      (level: LogEntry["level"]) =>
      (message: string | (() => string)): void => {
        this.entries.push({ source, level, message: typeof message === "function" ? message() : message });
      };
    return { error: record("error"), warn: record("warn"), info: record("info"), debug: record("debug") };
  }
}

// Builders for crafted input: whole frames from a few fields, on the wire codecs.

/** An Ethernet frame around `payload` (not padded). */
export function ethernetFrame(dst: MacAddress, src: MacAddress, etherType: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(ETHERNET_HEADER_LENGTH + payload.length);
  EthernetRepr.emit({ dst, src, etherType }, frame);
  frame.set(payload, ETHERNET_HEADER_LENGTH);
  return frame;
}

/** An ARP packet (28 bytes). */
export function arpPacket(repr: ArpRepr): Uint8Array {
  const packet = new Uint8Array(ARP_PACKET_LENGTH);
  ArpRepr.emit(repr, packet);
  return packet;
}

/** An IPv4 packet around `payload`; header fields default to a plain, unfragmented datagram with TTL 64. */
export function ipv4Packet(fields: Partial<Ipv4Repr> & Pick<Ipv4Repr, "src" | "dst" | "protocol">, payload: Uint8Array): Uint8Array {
  const repr: Ipv4Repr = {
    ttl: 64,
    dscp: 0,
    ecn: 0,
    identification: 0,
    dontFragment: false,
    moreFragments: false,
    fragmentOffset: 0,
    ...fields,
    payloadLength: payload.length,
  };
  const packet = new Uint8Array(Ipv4Repr.bufferLength(repr));
  Ipv4Repr.emit(repr, packet);
  packet.set(payload, Ipv4Repr.headerLength(repr));
  return packet;
}

/** A UDP datagram with its checksum over the pseudo-header of `src` and `dst`. */
export function udpDatagram(src: Ipv4Address, dst: Ipv4Address, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const repr: UdpRepr = { srcPort, dstPort, payload };
  const datagram = new Uint8Array(UdpRepr.bufferLength(repr));
  UdpRepr.emit(repr, datagram, src, dst);
  return datagram;
}

/** An ICMP message with its checksum. */
export function icmpMessage(repr: Icmpv4Repr): Uint8Array {
  const message = new Uint8Array(Icmpv4Repr.bufferLength(repr));
  Icmpv4Repr.emit(repr, message);
  return message;
}

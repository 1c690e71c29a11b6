/**
 * Test doubles for the DHCP client: a virtual clock with timers, a seeded RandomSource, and a
 * fake DHCP server that builds the replies a cooperative server would send (and variations).
 */
import type { RandomSource, TimerHandle, Timers } from "../../../src/lib/net/types.ts";
import { Ipv4Address } from "atoll/wire/address";
import { DhcpRepr } from "../../../src/lib/wire/dhcp.ts";

interface PendingTimer {
  deadlineMs: number;
  order: number;
  callback: () => void;
  live: boolean;
}

/**
 * Timers on a clock that moves only when told to. Due timers run in deadline order (ties in the
 * order they were set), with the clock at their deadline; a deadline in the past runs at "now".
 */
export class VirtualTimers implements Timers {
  private nowMs = 0;
  private nextOrder = 0;
  private timers: PendingTimer[] = [];

  now(): number {
    return this.nowMs;
  }

  at(deadlineMs: number, callback: () => void): TimerHandle {
    const timer: PendingTimer = { deadlineMs, order: this.nextOrder++, callback, live: true };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.live = false;
      },
    };
  }

  /** Timers set and neither fired nor cancelled. */
  get pending(): number {
    return this.timers.filter((timer) => timer.live).length;
  }

  /** The deadline of the next timer to run, if any. */
  nextDeadline(): number | undefined {
    return this.next()?.deadlineMs;
  }

  /** Runs the next timer (moving the clock to its deadline); false if none is pending. */
  runNext(): boolean {
    const timer = this.next();
    if (timer === undefined) return false;
    this.fire(timer);
    return true;
  }

  /** Runs every timer due up to `untilMs`, then leaves the clock there. */
  runUntil(untilMs: number): void {
    for (let timer = this.next(); timer !== undefined && timer.deadlineMs <= untilMs; timer = this.next()) this.fire(timer);
    this.nowMs = Math.max(this.nowMs, untilMs);
  }

  advance(ms: number): void {
    this.runUntil(this.nowMs + ms);
  }

  private next(): PendingTimer | undefined {
    this.timers = this.timers.filter((timer) => timer.live);
    let earliest: PendingTimer | undefined;
    for (const timer of this.timers) {
      const sooner = earliest === undefined || timer.deadlineMs < earliest.deadlineMs || (timer.deadlineMs === earliest.deadlineMs && timer.order < earliest.order);
      if (sooner) earliest = timer;
    }
    return earliest;
  }

  private fire(timer: PendingTimer): void {
    timer.live = false;
    this.nowMs = Math.max(this.nowMs, timer.deadlineMs);
    timer.callback();
  }
}

/** A deterministic RandomSource (mulberry32), so a failing run replays. */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return (bytes) => {
    for (let i = 0; i < bytes.length; i++) {
      state = (state + 0x6d2b79f5) >>> 0;
      let mixed = Math.imul(state ^ (state >>> 15), state | 1);
      mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
      bytes[i] = (mixed ^ (mixed >>> 14)) >>> 24;
    }
  };
}

export function ip(text: string): Ipv4Address {
  const address = Ipv4Address.parse(text);
  if (typeof address !== "number") throw new Error(address.message);
  return address;
}

export function encodeDhcp(repr: DhcpRepr): Uint8Array {
  const bytes = new Uint8Array(DhcpRepr.bufferLength(repr));
  DhcpRepr.emit(repr, bytes);
  return bytes;
}

/** What the fake server grants; options left undefined are not sent. */
export interface FakeServerConfig {
  serverId: Ipv4Address;
  address: Ipv4Address;
  subnetMask?: Ipv4Address | undefined;
  routers?: Ipv4Address[] | undefined;
  dnsServers?: Ipv4Address[] | undefined;
  leaseTime?: number | undefined;
  renewalTime?: number | undefined;
  rebindingTime?: number | undefined;
}

export const DEFAULT_SERVER: FakeServerConfig = {
  serverId: ip("198.18.0.1"),
  address: ip("198.18.0.50"),
  subnetMask: ip("255.255.255.0"),
  routers: [ip("198.18.0.1")],
  dnsServers: [ip("198.18.0.53")],
  leaseTime: 3600,
};

/**
 * Replies as RFC 2131 §4.3 has a server build them, to a request the test hands it: the xid,
 * flags, giaddr and chaddr of the request, the configured address in yiaddr, and the options.
 */
export class FakeDhcpServer {
  readonly config: FakeServerConfig;

  constructor(config: Partial<FakeServerConfig> = {}) {
    this.config = { ...DEFAULT_SERVER, ...config };
  }

  offer(request: DhcpRepr, changes: Partial<DhcpRepr> = {}): DhcpRepr {
    return { ...this.reply(request, "offer"), ...changes };
  }

  ack(request: DhcpRepr, changes: Partial<DhcpRepr> = {}): DhcpRepr {
    return { ...this.reply(request, "ack"), ...changes };
  }

  /** Table 3: a NAK carries no address and no lease options. */
  nak(request: DhcpRepr, changes: Partial<DhcpRepr> = {}): DhcpRepr {
    return {
      ...this.header(request, "nak"),
      serverIdentifier: this.config.serverId,
      otherOptions: [{ code: 56, data: Uint8Array.from("wrong network", (char) => char.charCodeAt(0)) }],
      ...changes,
    };
  }

  /** An OFFER for a DISCOVER, an ACK for a REQUEST, nothing for the rest. */
  answer(request: DhcpRepr): DhcpRepr | undefined {
    if (request.messageType === "discover") return this.offer(request);
    if (request.messageType === "request") return this.ack(request);
    return undefined;
  }

  private reply(request: DhcpRepr, messageType: "offer" | "ack"): DhcpRepr {
    const { config } = this;
    return {
      ...this.header(request, messageType),
      yourAddress: config.address,
      serverIdentifier: config.serverId,
      subnetMask: config.subnetMask,
      routers: config.routers,
      dnsServers: config.dnsServers,
      leaseTime: config.leaseTime,
      renewalTime: config.renewalTime,
      rebindingTime: config.rebindingTime,
    };
  }

  private header(request: DhcpRepr, messageType: "offer" | "ack" | "nak"): DhcpRepr {
    return {
      operation: "boot-reply",
      messageType,
      transactionId: request.transactionId,
      secs: 0,
      broadcast: request.broadcast,
      hops: 0,
      clientAddress: messageType === "ack" ? request.clientAddress : Ipv4Address.UNSPECIFIED,
      yourAddress: Ipv4Address.UNSPECIFIED,
      serverAddress: Ipv4Address.UNSPECIFIED,
      relayAgentAddress: request.relayAgentAddress,
      clientHardwareAddress: request.clientHardwareAddress,
    };
  }
}

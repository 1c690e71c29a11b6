/**
 * ICMP for IPv4 (RFC 792, RFC 1122 §3.2.2): echo replies of any size the IP layer reassembles,
 * errors about datagrams we received (port and protocol unreachable, reassembly time exceeded),
 * errors about datagrams we sent handed to the protocol they concern, and a ping client.
 *
 * Errors we send obey RFC 1122 §3.2.2: never about an ICMP error, a datagram to a broadcast or
 * multicast address or in a link-layer broadcast, a fragment other than the first, or a datagram
 * whose source is not one host; and they are rate limited by a token bucket (RFC 1812 §4.3.2.8).
 */
import { Ipv4Address } from "../wire/address.ts";
import { readU16 } from "../wire/bytes.ts";
import { WireError } from "../wire/error.ts";
import {
  ICMPV4_HEADER_LENGTH,
  Icmpv4Repr,
  Icmpv4TimeExceededCode,
  Icmpv4Type,
  Icmpv4UnreachableCode,
  type Icmpv4Echo,
} from "../wire/icmpv4.ts";
import { IPV4_MAX_TOTAL_LENGTH, IPV4_MIN_HEADER_LENGTH, IpProtocol, Ipv4Packet } from "../wire/ipv4.ts";
import type { NetLogger } from "./ethernet.ts";
import {
  NetError,
  type Ipv4Datagram,
  type Ipv4ErrorReport,
  type Ipv4ErrorSender,
  type Ipv4Layer,
  type Ipv4ProtocolHandler,
  type NetErrorCode,
} from "./ipv4.ts";
import type { Clock, RandomSource, TimerHandle, Timers } from "./types.ts";

export interface IcmpLimits {
  /** Errors sent a second, sustained (RFC 1812 §4.3.2.8 asks for a limit, not a value). */
  errorsPerSecond: number;
  /** Errors sent back to back after a quiet time. */
  errorBurst: number;
  /** Pings awaiting their reply at once. */
  maxPendingPings: number;
}

export const DEFAULT_ICMP_LIMITS: Readonly<IcmpLimits> = {
  errorsPerSecond: 10,
  errorBurst: 10,
  maxPendingPings: 64,
};

/**
 * Each received message lands in `rxMessages` and then in exactly one of the outcomes
 * (`echoRequests`, `echoReplies`, `errorsDelivered`) or the drops.
 */
export type IcmpCounters = {
  rxMessages: number;
  /** Echo requests answered. */
  echoRequests: number;
  /** Echo replies that completed a ping. */
  echoReplies: number;
  /** Errors about a datagram we sent, handed to its socket or connection. */
  errorsDelivered: number;
  /** Drop: too short, or an error whose quoted datagram does not parse. */
  malformed: number;
  badChecksum: number;
  /** Drop: echo requests to a broadcast or multicast address (RFC 1122 §3.2.2.6 allows ignoring them). */
  broadcastEcho: number;
  /** Drop: echo replies no ping waits for. */
  unmatchedReplies: number;
  /** Drop: errors about a datagram no socket or connection claims. */
  errorsUnmatched: number;
  /** Drop: types we do not act on (redirect, timestamp, source quench, ...). */
  unhandledType: number;
  echoRepliesSent: number;
  echoRequestsSent: number;
  errorsSent: number;
  /** Errors not sent because of the rate limit. */
  errorsRateLimited: number;
};

export interface PingOptions {
  /** Bytes of echo data, 0 to 65507 (default 56, as ping(8)). */
  size?: number;
  /** Default 1000 ms. */
  timeoutMs?: number;
  ttl?: number;
  dontFragment?: boolean;
}

export interface PingReply {
  from: Ipv4Address;
  sequence: number;
  /** Echo data bytes, as sent and returned. */
  bytes: number;
  /** The reply's TTL. */
  ttl: number;
  rttMs: number;
}

/**
 * A token bucket: `ratePerSecond` tokens a second up to `burst`. Shared by whoever must limit the
 * rate of replies to unsolicited input (ICMP errors here; TCP resets may use one too).
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly clock: Clock,
  ) {
    this.tokens = burst;
    this.updatedAt = clock.now();
  }

  /** Takes a token if there is one. */
  take(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) * this.ratePerSecond) / 1000);
    this.updatedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** RFC 1812 §4.3.2.3: an error quotes as much of the datagram as fits in 576 bytes. */
const MAX_ERROR_DATAGRAM = 576;
const MAX_QUOTE = MAX_ERROR_DATAGRAM - IPV4_MIN_HEADER_LENGTH - ICMPV4_HEADER_LENGTH;
/** RFC 2474 §4.2.2.2: class selector 6 (precedence "internetwork control"), as RFC 1812 §4.3.2.5 asks of ICMP errors. */
const ERROR_DSCP = 48;
const MAX_ECHO_DATA = IPV4_MAX_TOTAL_LENGTH - IPV4_MIN_HEADER_LENGTH - ICMPV4_HEADER_LENGTH;
const PARAMETER_PROBLEM = 12;
/** Query types (RFC 792, RFC 950): echo, timestamp, information and address mask, requests and replies. */
const QUERY_TYPES: ReadonlySet<number> = new Set([0, 8, 13, 14, 15, 16, 17, 18]);

interface PendingPing {
  readonly dst: Ipv4Address;
  readonly data: Uint8Array;
  readonly sentAt: number;
  readonly timer: TimerHandle;
  resolve(reply: PingReply): void;
  reject(error: NetError): void;
}

export interface IcmpLayerOptions {
  ipv4: Ipv4Layer;
  timers: Timers;
  random: RandomSource;
  log: NetLogger;
  limits?: Partial<IcmpLimits> | undefined;
}

export class IcmpLayer implements Ipv4ProtocolHandler, Ipv4ErrorSender {
  readonly counters: IcmpCounters = {
    rxMessages: 0,
    echoRequests: 0,
    echoReplies: 0,
    errorsDelivered: 0,
    malformed: 0,
    badChecksum: 0,
    broadcastEcho: 0,
    unmatchedReplies: 0,
    errorsUnmatched: 0,
    unhandledType: 0,
    echoRepliesSent: 0,
    echoRequestsSent: 0,
    errorsSent: 0,
    errorsRateLimited: 0,
  };
  readonly limits: Readonly<IcmpLimits>;
  private readonly ipv4: Ipv4Layer;
  private readonly timers: Timers;
  private readonly log: NetLogger;
  private readonly errorBucket: TokenBucket;
  private readonly pings = new Map<number, PendingPing>();
  /** The echo identifier of our pings; random, so that replies to an earlier boot do not match. */
  private readonly identifier: number;
  private sequence = 0;
  private scratch = new Uint8Array(1024);

  constructor(options: IcmpLayerOptions) {
    this.ipv4 = options.ipv4;
    this.timers = options.timers;
    this.log = options.log;
    this.limits = { ...DEFAULT_ICMP_LIMITS, ...options.limits };
    this.errorBucket = new TokenBucket(this.limits.errorsPerSecond, this.limits.errorBurst, options.timers);
    const seed = new Uint8Array(2);
    options.random(seed);
    this.identifier = (seed[0] << 8) | seed[1];
  }

  receive(datagram: Ipv4Datagram): void {
    const counters = this.counters;
    counters.rxMessages++;
    const message = Icmpv4Repr.parse(datagram.payload);
    if (message instanceof WireError) {
      if (message.kind === "bad-checksum") counters.badChecksum++;
      else counters.malformed++;
      return;
    }
    switch (message.kind) {
      case "echo-request":
        if (datagram.destination !== "unicast") {
          counters.broadcastEcho++;
          return;
        }
        counters.echoRequests++;
        this.reply(datagram, message);
        return;
      case "echo-reply":
        if (this.completePing(datagram, message)) counters.echoReplies++;
        else counters.unmatchedReplies++;
        return;
      case "destination-unreachable":
        this.deliverError(datagram, Icmpv4Type.DestinationUnreachable, message.code, message.original, message.nextHopMtu);
        return;
      case "time-exceeded":
        this.deliverError(datagram, Icmpv4Type.TimeExceeded, message.code, message.original, 0);
        return;
      case "other":
        // RFC 1122 §3.2.2.5: parameter problem goes to the transport too; RFC 6633 retired
        // source quench, and a host may ignore redirects when it has one gateway (§3.2.2.2).
        if (message.type === PARAMETER_PROBLEM) this.deliverError(datagram, PARAMETER_PROBLEM, message.code, message.data, 0);
        else counters.unhandledType++;
        return;
    }
  }

  /** An error about an ICMP message we sent: only our pings care. */
  receiveError(report: Ipv4ErrorReport): boolean {
    const quoted = report.payload;
    if (quoted.length < ICMPV4_HEADER_LENGTH || quoted[0] !== Icmpv4Type.EchoRequest || readU16(quoted, 4) !== this.identifier) return false;
    const sequence = readU16(quoted, 6);
    const ping = this.pings.get(sequence);
    if (ping === undefined || ping.dst !== report.dst) return false;
    this.settle(sequence, ping);
    ping.reject(new NetError(report.code, `ping ${Ipv4Address.format(report.dst)}: ${describeReport(report)}`));
    return true;
  }

  /** Sends an ICMP error about a received datagram, if RFC 1122 §3.2.2 and the rate limit allow. */
  sendError(about: Ipv4Datagram, type: number, code: number): void {
    const header = about.header;
    const src = header.src;
    const config = this.ipv4.config;
    if (about.destination !== "unicast" || about.linkDestination !== "unicast" || header.fragmentOffset !== 0) return;
    if (!Ipv4Address.isUnicast(src) || Ipv4Address.isLoopback(src) || (config !== undefined && config.cidr.isBroadcast(src))) return;
    if (header.protocol === IpProtocol.Icmp && !QUERY_TYPES.has(about.payload[0] ?? -1)) return;
    if (!this.errorBucket.take()) {
      this.counters.errorsRateLimited++;
      return;
    }
    const original = about.packet.subarray(0, Math.min(about.packet.length, MAX_QUOTE));
    const message: Icmpv4Repr =
      type === Icmpv4Type.TimeExceeded
        ? { kind: "time-exceeded", code, original }
        : { kind: "destination-unreachable", code, nextHopMtu: 0, original };
    const length = Icmpv4Repr.bufferLength(message);
    const buffer = this.buffer(length);
    Icmpv4Repr.emit(message, buffer);
    if (this.ipv4.send({ dst: src, protocol: IpProtocol.Icmp, dscp: ERROR_DSCP }, buffer.subarray(0, length)) === undefined) {
      this.counters.errorsSent++;
    }
  }

  /**
   * Sends an echo request to `dst` and resolves with the reply, or rejects with a NetError:
   * "timeout", or what an ICMP error or the stack said ("host-unreachable", "no-route", ...).
   */
  ping(dst: Ipv4Address, options: PingOptions = {}): Promise<PingReply> {
    const size = options.size ?? 56;
    if (!Number.isInteger(size) || size < 0 || size > MAX_ECHO_DATA) throw new RangeError(`ping: size ${size} is not 0 to ${MAX_ECHO_DATA}`);
    if (this.pings.size >= this.limits.maxPendingPings) {
      return Promise.reject(new NetError("no-buffers", `ping: ${this.pings.size} pings already wait for a reply`));
    }
    let sequence = this.sequence;
    while (this.pings.has(sequence)) sequence = (sequence + 1) & 0xffff;
    this.sequence = (sequence + 1) & 0xffff;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i + sequence) & 0xff;
    const request: Icmpv4Repr = { kind: "echo-request", identifier: this.identifier, sequence, data };
    const length = Icmpv4Repr.bufferLength(request);
    const buffer = this.buffer(length);
    Icmpv4Repr.emit(request, buffer);
    const failure = this.ipv4.send(
      { dst, protocol: IpProtocol.Icmp, ttl: options.ttl, dontFragment: options.dontFragment },
      buffer.subarray(0, length),
    );
    if (failure !== undefined) return Promise.reject(new NetError(failure, `ping ${Ipv4Address.format(dst)}: ${failure}`));
    this.counters.echoRequestsSent++;
    const timeoutMs = options.timeoutMs ?? 1000;
    return new Promise<PingReply>((resolve, reject) => {
      const timer = this.timers.at(this.timers.now() + timeoutMs, () => {
        const ping = this.pings.get(sequence);
        if (ping === undefined) return;
        this.settle(sequence, ping);
        reject(new NetError("timeout", `ping ${Ipv4Address.format(dst)}: no reply in ${timeoutMs} ms`));
      });
      this.pings.set(sequence, { dst, data, sentAt: this.timers.now(), timer, resolve, reject });
    });
  }

  /** Rejects every ping in flight with "closed". */
  close(): void {
    for (const [sequence, ping] of [...this.pings]) {
      this.settle(sequence, ping);
      ping.reject(new NetError("closed", "ping: the stack was closed"));
    }
  }

  private reply(request: Ipv4Datagram, echo: Icmpv4Echo): void {
    const reply: Icmpv4Repr = { kind: "echo-reply", identifier: echo.identifier, sequence: echo.sequence, data: echo.data };
    const length = Icmpv4Repr.bufferLength(reply);
    const buffer = this.buffer(length);
    Icmpv4Repr.emit(reply, buffer);
    // RFC 1122 §3.2.2.6: the reply's source is the request's specific destination.
    const sent = this.ipv4.send(
      { dst: request.header.src, src: request.header.dst, protocol: IpProtocol.Icmp, dscp: request.header.dscp },
      buffer.subarray(0, length),
    );
    if (sent === undefined) this.counters.echoRepliesSent++;
  }

  private completePing(datagram: Ipv4Datagram, echo: Icmpv4Echo): boolean {
    if (echo.identifier !== this.identifier) return false;
    const ping = this.pings.get(echo.sequence);
    if (ping === undefined || ping.dst !== datagram.header.src || !sameBytes(ping.data, echo.data)) return false;
    this.settle(echo.sequence, ping);
    ping.resolve({
      from: datagram.header.src,
      sequence: echo.sequence,
      bytes: echo.data.length,
      ttl: datagram.header.ttl,
      rttMs: this.timers.now() - ping.sentAt,
    });
    return true;
  }

  private settle(sequence: number, ping: PendingPing): void {
    ping.timer.cancel();
    this.pings.delete(sequence);
  }

  private deliverError(datagram: Ipv4Datagram, type: number, code: number, original: Uint8Array, nextHopMtu: number): void {
    const counters = this.counters;
    const quoted = Ipv4Packet.checkHeader(original);
    if (quoted instanceof WireError) {
      counters.malformed++;
      return;
    }
    // RFC 5927 §4.1: check what can be checked; an error about a datagram we did not send is noise or an attack.
    const own = this.ipv4.address;
    if (own === undefined || quoted.src !== own) {
      counters.errorsUnmatched++;
      return;
    }
    const delivered = this.ipv4.deliverError({
      code: errorCode(type, code),
      icmp: { type, code },
      reporter: datagram.header.src,
      src: quoted.src,
      dst: quoted.dst,
      protocol: quoted.protocol,
      payload: quoted.payload,
      nextHopMtu,
    });
    if (delivered) counters.errorsDelivered++;
    else counters.errorsUnmatched++;
    this.log.debug(
      () =>
        `${errorCode(type, code)} (type ${type} code ${code}) from ${Ipv4Address.format(datagram.header.src)} about a datagram to ${Ipv4Address.format(quoted.dst)}${delivered ? "" : ", which nobody claims"}`,
    );
  }

  private buffer(length: number): Uint8Array {
    if (this.scratch.length < length) this.scratch = new Uint8Array(Math.max(length, this.scratch.length * 2));
    return this.scratch;
  }
}

/** The NetError code for an ICMP error (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1). */
export function errorCode(type: number, code: number): NetErrorCode {
  if (type === Icmpv4Type.TimeExceeded) return "time-exceeded";
  if (type === PARAMETER_PROBLEM) return "parameter-problem";
  switch (code) {
    case Icmpv4UnreachableCode.NetUnreachable:
    case Icmpv4UnreachableCode.NetworkUnknown:
    case 11: // network unreachable for type of service
      return "network-unreachable";
    case Icmpv4UnreachableCode.ProtocolUnreachable:
      return "protocol-unreachable";
    case Icmpv4UnreachableCode.PortUnreachable:
      return "port-unreachable";
    case Icmpv4UnreachableCode.FragmentationNeeded:
      return "message-too-long";
    case 9: // network administratively prohibited
    case 10: // host administratively prohibited
    case Icmpv4UnreachableCode.CommunicationProhibited:
      return "prohibited";
    default:
      return "host-unreachable";
  }
}

/** "port unreachable from 198.18.0.1", for error messages. */
export function describeReport(report: Ipv4ErrorReport): string {
  const what = report.code.replace(/-/g, " ");
  if (report.icmp === undefined) return `${what} (no ARP reply)`;
  if (report.icmp.type === Icmpv4Type.TimeExceeded && report.icmp.code === Icmpv4TimeExceededCode.ReassemblyTimeExceeded) {
    return `reassembly time exceeded, from ${Ipv4Address.format(report.reporter)}`;
  }
  return `${what}, from ${Ipv4Address.format(report.reporter)}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

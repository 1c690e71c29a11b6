/**
 * A DHCP client (RFC 2131 §4.4) for one Ethernet interface, as a pure state machine over the
 * stack's seams: it sends through a DhcpTransport, learns of replies through `receive`, and
 * keeps time with one timer at most. It leases an address, renews and rebinds it, and reports
 * the lease through `onBound` and its loss through `onLost`; configuring the interface is the
 * caller's business.
 *
 *   start ─▶ SELECTING ──OFFER─▶ REQUESTING ──ACK─▶ BOUND ──T1─▶ RENEWING ──T2─▶ REBINDING
 *              ▲ (DISCOVER, retry)     │ NAK, no ACK    ▲ ◀──ACK────────┘                │
 *              │                       ▼                └──────────────ACK───────────────┘
 *              └── after a delay ── INIT ◀── NAK or expiry (onLost) in RENEWING/REBINDING
 *
 * Not implemented: INIT-REBOOT (§3.2; every start is a fresh DISCOVER), DHCPDECLINE after an ARP
 * probe (§4.4.1; the stack may probe and stop), DHCPINFORM, and the random 1-10 s wait before
 * the first DISCOVER (§4.4.1): an appliance boots alone, and boot latency is what it is judged by.
 */
import { source, type Logger } from "../logs/index.ts";
import { Ipv4Address, Ipv4Cidr, MacAddress } from "../wire/address.ts";
import { DhcpOptionCode, DhcpRepr, type DhcpMessageType } from "../wire/dhcp.ts";
import { WireError } from "../wire/error.ts";
import type { Counters, RandomSource, TimerHandle, Timers } from "./types.ts";

export interface DhcpTransport {
  /**
   * Sends a DHCP message (the UDP payload) from port 68 to port 67: broadcast from 0.0.0.0 when
   * `server` is undefined, else unicast to `server` from the leased address.
   */
  send(message: Uint8Array, server?: Ipv4Address): void;
}

/**
 * What a DHCPACK grants. Times are seconds from when the REQUEST was first sent (RFC 2131
 * §4.4.1), so a little shorter than the server's view; an infinite lease (0xffffffff, §3.3)
 * has all three as Infinity.
 */
export interface DhcpLease {
  /** The leased address with the prefix of the subnet mask (option 1). */
  cidr: Ipv4Cidr;
  /** The first router (option 3), if it is on the leased subnet. */
  gateway?: Ipv4Address;
  /** Option 6, in the server's order of preference; may be empty. */
  dns: Ipv4Address[];
  /** The server identifier (option 54): where renewals go. */
  server: Ipv4Address;
  /** Option 51. */
  leaseSeconds: number;
  /** T1 (option 58, default half the lease, §4.4.5). */
  renewSeconds: number;
  /** T2 (option 59, default 7/8 of the lease, §4.4.5). */
  rebindSeconds: number;
}

export type DhcpClientState = "init" | "selecting" | "requesting" | "bound" | "renewing" | "rebinding" | "stopped";

export interface DhcpClientOptions {
  mac: MacAddress;
  timers: Timers;
  random: RandomSource;
  transport: DhcpTransport;
  /** Sent as option 12 (RFC 2132 §3.14): 1-255 printable ASCII characters, no spaces. */
  hostname?: string;
  /** A lease was granted or renewed; called again with fresh times after each renewal. */
  onBound(lease: DhcpLease): void;
  /** The lease is gone (NAK, expiry, a new address, or stop): stop using the address. */
  onLost(): void;
  log?: Logger;
}

/** RFC 2131 §4.1: the first retransmission after 4 s, doubling up to 64 s, each ±1 s at random. */
const FIRST_RETRANSMIT_MS = 4_000;
const MAX_RETRANSMIT_MS = 64_000;
const RETRANSMIT_JITTER_MS = 1_000;
/**
 * REQUESTs sent in REQUESTING before giving up (at 0, 4, 12, 28 s, giving up at 60 s): §4.4.1
 * asks for "the retransmission algorithm" and then a return to INIT, without a count.
 */
const REQUEST_TRANSMISSIONS = 4;
/** §4.4.5: RENEWING and REBINDING retransmit after half the time left, "down to a minimum of 60 seconds". */
const MIN_RENEWAL_RETRANSMIT_MS = 60_000;
/**
 * Waits before a new DISCOVER after a NAK, an abandoned REQUEST or an expiry, doubling up to 64 s
 * and reset when bound: RFC 2131 §3.1 just says "restart", but a server that NAKs whatever it
 * offered would otherwise keep us in a tight loop (dhcpcd backs off the same way).
 */
const FIRST_RESTART_DELAY_MS = 1_000;
const MAX_RESTART_DELAY_MS = 64_000;

/** Option 51's "infinity" (RFC 2131 §3.3). */
const INFINITE_LEASE = 0xffff_ffff;
/** RFC 2132 §9.14: client identifier type 1 is an Ethernet address (the ARP hardware type). */
const CLIENT_ID_TYPE_ETHERNET = 1;
/** Option 57: the largest IP datagram we accept, an Ethernet MTU (the UDP stack does not reassemble more). */
const MAX_MESSAGE_SIZE = 1500;
/** RFC 2132 §9.8: the options we want, in order of preference. */
const PARAMETER_REQUEST_LIST: readonly number[] = [
  DhcpOptionCode.SubnetMask,
  DhcpOptionCode.Router,
  DhcpOptionCode.DomainNameServer,
  DhcpOptionCode.LeaseTime,
  DhcpOptionCode.RenewalTime,
  DhcpOptionCode.RebindingTime,
];
/** RFC 2132 §9.9: the text a server may put in a NAK. Not in DhcpOptionCode, so it arrives in otherOptions. */
const MESSAGE_OPTION = 56;
/** Highest value of the 16-bit 'secs' field. */
const MAX_SECS = 0xffff;
const HOSTNAME_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** The lease with the absolute times (ms on the client's clock) its timers run on. */
interface HeldLease {
  lease: DhcpLease;
  renewAtMs: number;
  rebindAtMs: number;
  expiresAtMs: number;
}

/** The server and address chosen in SELECTING, requested in REQUESTING. */
interface Offer {
  server: Ipv4Address;
  address: Ipv4Address;
}

export class DhcpClient {
  /**
   * `received` counts every call to `receive`, and each lands in exactly one of: `malformed`
   * (does not parse), `ignored` (not for us or not expected now: op, xid, chaddr, client
   * identifier, server identifier, message type for the state, or no exchange running),
   * `rejected` (ours but unusable: an OFFER without server identifier or usable address, an ACK
   * without lease time or subnet mask...), or `offers`, `acks`, `naks` (acted upon). Sent:
   * `discovers`, `requests`, `releases` (retransmissions included). Acks split into `leases`
   * (new, from REQUESTING), `renewals` and `rebinds`; `expiries` counts leases run out and
   * `requestTimeouts` REQUESTING exchanges abandoned for want of an answer.
   */
  readonly counters: Counters = {
    received: 0,
    malformed: 0,
    ignored: 0,
    rejected: 0,
    offers: 0,
    acks: 0,
    naks: 0,
    discovers: 0,
    requests: 0,
    releases: 0,
    leases: 0,
    renewals: 0,
    rebinds: 0,
    expiries: 0,
    requestTimeouts: 0,
  };

  private readonly mac: MacAddress;
  private readonly timers: Timers;
  private readonly random: RandomSource;
  private readonly transport: DhcpTransport;
  private readonly hostname: string | undefined;
  private readonly notifyBound: (lease: DhcpLease) => void;
  private readonly notifyLost: () => void;
  private readonly log: Logger;
  /** Option 61, type 1 and our MAC (RFC 2132 §9.14), so servers key the lease on it. */
  private readonly clientIdentifier: Uint8Array;

  private current: DhcpClientState = "init";
  /** Between start and stop, including the INIT wait before a new DISCOVER. */
  private running = false;
  private timer: TimerHandle | undefined;
  /** Bumped on every arm and disarm, so a callback of a replaced timer does nothing even if it runs. */
  private timerGeneration = 0;
  /** xid of the exchange in progress (§4.4.1: chosen at random, matched in replies). */
  private transactionId = 0;
  /** Messages sent in the current exchange: drives the backoff and the REQUESTING give-up. */
  private transmissions = 0;
  /** When acquisition or renewal began: the 'secs' field counts from here (Table 5). */
  private exchangeStartedMs = 0;
  /** 'secs' of the last DISCOVER, which the REQUEST in REQUESTING must repeat (§4.4.1). */
  private discoverSecs = 0;
  /** When the first REQUEST of this exchange went out: lease times count from here (§4.4.1). */
  private requestStartedMs = 0;
  private offer: Offer | undefined;
  private held: HeldLease | undefined;
  private restartDelayMs = FIRST_RESTART_DELAY_MS;

  constructor(options: DhcpClientOptions) {
    if (options.hostname !== undefined && !HOSTNAME_PATTERN.test(options.hostname)) {
      throw new RangeError(`dhcp: hostname ${JSON.stringify(options.hostname.slice(0, 40))} is not 1-255 printable ASCII characters`);
    }
    this.mac = options.mac;
    this.timers = options.timers;
    this.random = options.random;
    this.transport = options.transport;
    this.hostname = options.hostname;
    this.notifyBound = (lease) => options.onBound(lease);
    this.notifyLost = () => options.onLost();
    this.log = options.log ?? source("dhcp");
    this.clientIdentifier = new Uint8Array(7);
    this.clientIdentifier[0] = CLIENT_ID_TYPE_ETHERNET;
    MacAddress.write(this.mac, this.clientIdentifier, 1);
  }

  get state(): DhcpClientState {
    return this.current;
  }

  /** The lease held in BOUND, RENEWING and REBINDING (the one last given to onBound), else undefined. */
  get lease(): DhcpLease | undefined {
    return this.held?.lease;
  }

  /** Sends the first DISCOVER. Does nothing if already started; after `stop`, starts afresh. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.restartDelayMs = FIRST_RESTART_DELAY_MS;
    this.discover();
  }

  /** A UDP payload that arrived on port 68, from any source. Never throws on any bytes. */
  receive(message: Uint8Array): void {
    this.counters.received++;
    const repr = DhcpRepr.parse(message);
    if (repr instanceof WireError) {
      this.counters.malformed++;
      this.log.debug(() => `dropped a malformed message: ${repr.message}`);
      return;
    }
    const reason = this.reasonToIgnore(repr);
    if (reason !== undefined) {
      this.counters.ignored++;
      this.log.debug(() => `ignored a ${repr.messageType}: ${reason}`);
      return;
    }
    if (repr.messageType === "offer") this.onOffer(repr);
    else if (repr.messageType === "ack") this.onAck(repr);
    else this.onNak(repr);
  }

  /**
   * Cancels the timer and gives the lease back with a DHCPRELEASE (§4.4.6), then calls onLost,
   * if one is held. The client stays stopped until `start`.
   */
  stop(): void {
    this.disarm();
    this.running = false;
    this.offer = undefined;
    const held = this.held;
    this.held = undefined;
    this.current = "stopped";
    if (held === undefined) {
      this.log.info("stopped");
      return;
    }
    // Table 5: a RELEASE has its own xid, ciaddr set, the server identifier, and no other request options.
    this.transactionId = this.randomU32();
    this.counters.releases++;
    this.transport.send(
      this.encode("release", { secs: 0, broadcast: false, clientAddress: held.lease.cidr.address, serverIdentifier: held.lease.server }),
      held.lease.server,
    );
    this.log.info(`released ${held.lease.cidr.toString()} to ${Ipv4Address.format(held.lease.server)} and stopped`);
    this.notifyLost();
  }

  // ---- Receiving ----

  /** Why a well-formed message is not for the exchange in progress, or undefined if it is. */
  private reasonToIgnore(repr: DhcpRepr): string | undefined {
    if (repr.operation !== "boot-reply") return "not a BOOTREPLY";
    if (!this.running || this.current === "init" || this.current === "bound") return `nothing pending in state ${this.current}`;
    if (repr.transactionId !== this.transactionId) return `xid 0x${repr.transactionId.toString(16)} is not ours`;
    if (repr.clientHardwareAddress !== this.mac) return `chaddr ${MacAddress.format(repr.clientHardwareAddress)} is not ours`;
    // RFC 6842: a server that echoes option 61 lets us tell our replies from another client's.
    if (repr.clientIdentifier !== undefined && !sameBytes(repr.clientIdentifier, this.clientIdentifier)) return "another client identifier";
    const expected: readonly DhcpMessageType[] = this.current === "selecting" ? ["offer"] : ["ack", "nak"];
    if (!expected.includes(repr.messageType)) return `unexpected in state ${this.current}`;
    // Only the server we asked answers a REQUEST in REQUESTING (the others withdraw their offers,
    // §3.1 step 3) or a unicast one in RENEWING; in REBINDING any server may.
    const askedServer = this.current === "requesting" ? this.offer?.server : this.current === "renewing" ? this.held?.lease.server : undefined;
    if (askedServer !== undefined && repr.serverIdentifier !== undefined && repr.serverIdentifier !== askedServer) {
      return `from server ${Ipv4Address.format(repr.serverIdentifier)}, not ${Ipv4Address.format(askedServer)}`;
    }
    return undefined;
  }

  /** SELECTING: take the first acceptable OFFER (§4.4.1) and request it. */
  private onOffer(offer: DhcpRepr): void {
    const server = offer.serverIdentifier;
    // Table 3: an OFFER MUST carry the server identifier; we need it to name our choice.
    if (server === undefined || !Ipv4Address.isUnicast(server)) {
      this.reject("offer", server === undefined ? "no server identifier" : `server identifier ${Ipv4Address.format(server)}`);
      return;
    }
    if (!isUsableHostAddress(offer.yourAddress)) {
      this.reject("offer", `unusable address ${Ipv4Address.format(offer.yourAddress)}`);
      return;
    }
    this.counters.offers++;
    this.offer = { server, address: offer.yourAddress };
    this.current = "requesting";
    this.transmissions = 0;
    this.requestStartedMs = this.timers.now();
    this.log.info(`requesting ${Ipv4Address.format(offer.yourAddress)} from ${Ipv4Address.format(server)}`);
    this.sendSelectingRequest();
  }

  /** REQUESTING, RENEWING, REBINDING: the ACK grants (or extends) a lease. */
  private onAck(ack: DhcpRepr): void {
    const state = this.current;
    const lease = leaseFromAck(ack, this.offer?.server ?? this.held?.lease.server);
    if (typeof lease === "string") {
      this.reject("ack", lease);
      // The server has said its last word on this REQUEST: asking again would get the same ACK.
      // With a lease still held, keep retransmitting until another answer or the expiry.
      if (state === "requesting") this.restart();
      return;
    }
    const firstRouter = ack.routers?.[0];
    if (firstRouter !== undefined && lease.gateway === undefined) {
      this.log.warn(`router ${Ipv4Address.format(firstRouter)} is not a usable host on ${lease.cidr.toString()}: no default gateway`);
    }
    this.counters.acks++;
    this.counters[state === "requesting" ? "leases" : state === "renewing" ? "renewals" : "rebinds"]++;
    const previous = this.held?.lease;
    const startMs = this.requestStartedMs;
    this.held = {
      lease,
      renewAtMs: startMs + lease.renewSeconds * 1000,
      rebindAtMs: startMs + lease.rebindSeconds * 1000,
      expiresAtMs: startMs + lease.leaseSeconds * 1000,
    };
    this.offer = undefined;
    this.current = "bound";
    this.restartDelayMs = FIRST_RESTART_DELAY_MS;
    this.armLeaseTimer();
    const verb = state === "requesting" ? "bound to" : state === "renewing" ? "renewed" : "rebound to";
    this.log.info(`${verb} ${describeLease(lease)}${state === "rebinding" ? ` by ${Ipv4Address.format(lease.server)}` : ""}`);
    if (previous !== undefined && previous.cidr.address !== lease.cidr.address) {
      this.log.info(`the server moved us from ${Ipv4Address.format(previous.cidr.address)} to ${Ipv4Address.format(lease.cidr.address)}`);
      this.notifyLost();
      if (this.held?.lease !== lease) return; // onLost stopped us
    }
    this.notifyBound(lease);
  }

  /** §3.1 step 5, §4.4.5: a NAK ends the lease (if any) and the exchange; start over. */
  private onNak(nak: DhcpRepr): void {
    this.counters.naks++;
    const held = this.held;
    this.held = undefined;
    const text = nak.otherOptions?.find((option) => option.code === MESSAGE_OPTION)?.data;
    const from = nak.serverIdentifier === undefined ? "" : ` from ${Ipv4Address.format(nak.serverIdentifier)}`;
    this.log.info(`NAK${from} in state ${this.current}${text === undefined ? "" : `: ${printable(text)}`}`);
    this.restart();
    if (held !== undefined) this.notifyLost();
  }

  private reject(what: DhcpMessageType, reason: string): void {
    this.counters.rejected++;
    this.log.warn(`rejected an ${what}: ${reason}`);
  }

  // ---- Timers ----

  private onTimer(): void {
    switch (this.current) {
      case "init":
        this.discover();
        return;
      case "selecting":
        this.log.debug(() => `no offer: DISCOVER again (try ${this.transmissions + 1})`);
        this.sendDiscover();
        return;
      case "requesting":
        if (this.transmissions >= REQUEST_TRANSMISSIONS) {
          this.counters.requestTimeouts++;
          this.log.info(`no answer to ${this.transmissions} REQUESTs: back to DISCOVER`);
          this.restart();
          return;
        }
        this.log.debug(() => `no ACK: REQUEST again (try ${this.transmissions + 1})`);
        this.sendSelectingRequest();
        return;
      case "bound":
      case "renewing":
      case "rebinding":
        this.onLeaseTimer();
        return;
      case "stopped":
        return;
    }
  }

  /**
   * One timer serves T1, T2, expiry and the retransmissions between them; on each firing the
   * clock says which (a late timer may have passed several at once).
   */
  private onLeaseTimer(): void {
    const held = this.held;
    if (held === undefined) return;
    const now = this.timers.now();
    if (now >= held.expiresAtMs) {
      // §4.4.5: "the client MUST immediately stop any other network processing".
      this.counters.expiries++;
      this.held = undefined;
      this.log.info(`lease on ${held.lease.cidr.toString()} expired`);
      this.restart();
      this.notifyLost();
    } else if (now >= held.rebindAtMs && this.current !== "rebinding") {
      this.beginRenewal("rebinding", now);
    } else if (now >= held.renewAtMs && this.current === "bound") {
      this.beginRenewal("renewing", now);
    } else if (this.current !== "bound") {
      this.log.debug(() => `no ACK: ${this.current === "renewing" ? "unicast" : "broadcast"} REQUEST again (try ${this.transmissions + 1})`);
      this.sendRenewalRequest();
    } else {
      this.armLeaseTimer(); // fired early: wait for T1 again
    }
  }

  private arm(deadlineMs: number): void {
    this.disarm();
    const generation = this.timerGeneration;
    this.timer = this.timers.at(deadlineMs, () => {
      if (generation !== this.timerGeneration) return;
      this.timer = undefined;
      this.onTimer();
    });
  }

  private disarm(): void {
    this.timerGeneration++;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** BOUND: wait for T1 (nothing to wait for with an infinite lease). */
  private armLeaseTimer(): void {
    const held = this.held;
    if (held !== undefined && Number.isFinite(held.renewAtMs)) this.arm(held.renewAtMs);
    else this.disarm();
  }

  /** §4.1: 4 s doubling to 64 s after each transmission, ±1 s uniformly at random. */
  private backoffMs(): number {
    const base = Math.min(FIRST_RETRANSMIT_MS * 2 ** (this.transmissions - 1), MAX_RETRANSMIT_MS);
    return base + (this.randomFraction() * 2 - 1) * RETRANSMIT_JITTER_MS;
  }

  // ---- Exchanges ----

  /** INIT → SELECTING: a new transaction, then DISCOVER. */
  private discover(): void {
    this.transactionId = this.randomU32();
    this.exchangeStartedMs = this.timers.now();
    this.transmissions = 0;
    this.offer = undefined;
    this.current = "selecting";
    this.log.info("discovering");
    this.sendDiscover();
  }

  /** Back to INIT, to DISCOVER again after the restart delay. */
  private restart(): void {
    this.offer = undefined;
    this.current = "init";
    this.arm(this.timers.now() + this.restartDelayMs);
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, MAX_RESTART_DELAY_MS);
  }

  private sendDiscover(): void {
    this.discoverSecs = this.secsSinceExchangeStarted();
    // §4.1: without an address we cannot receive unicast, so ask for broadcast replies.
    this.transmit("discover", { secs: this.discoverSecs, broadcast: true });
    this.arm(this.timers.now() + this.backoffMs());
  }

  /** REQUESTING: broadcast, ciaddr zero, with the requested address and the chosen server (§4.3.2, Table 5). */
  private sendSelectingRequest(): void {
    const offer = this.offer;
    if (offer === undefined) return;
    // §4.4.1: the same 'secs' as the DISCOVER, broadcast like it, so every server sees our choice.
    this.transmit("request", { secs: this.discoverSecs, broadcast: true, requestedAddress: offer.address, serverIdentifier: offer.server });
    this.arm(this.timers.now() + this.backoffMs());
  }

  /** BOUND → RENEWING at T1, or → REBINDING at T2: a new transaction for the same lease. */
  private beginRenewal(state: "renewing" | "rebinding", now: number): void {
    const held = this.held;
    if (held === undefined) return;
    // 'secs' counts from the start of the renewal process, which rebinding continues.
    if (this.current === "bound") this.exchangeStartedMs = now;
    this.current = state;
    this.transactionId = this.randomU32();
    this.transmissions = 0;
    this.requestStartedMs = now;
    const server = Ipv4Address.format(held.lease.server);
    const leased = held.lease.cidr.toString();
    this.log.info(state === "renewing" ? `renewing ${leased} with ${server}` : `rebinding ${leased}: no answer from ${server}`);
    this.sendRenewalRequest();
  }

  /**
   * RENEWING unicasts to the server, REBINDING broadcasts; both with ciaddr set and neither
   * requested address nor server identifier (§4.3.2, Table 5). The next try waits half the time
   * left until T2 (RENEWING) or expiry (REBINDING), at least 60 s (§4.4.5), but no longer than
   * that deadline, where the timer moves us on.
   */
  private sendRenewalRequest(): void {
    const held = this.held;
    if (held === undefined) return;
    const renewing = this.current === "renewing";
    // Bound, we can receive unicast replies: no BROADCAST flag (§4.1).
    const fields = { secs: this.secsSinceExchangeStarted(), broadcast: false, clientAddress: held.lease.cidr.address };
    this.transmit("request", fields, renewing ? held.lease.server : undefined);
    const now = this.timers.now();
    const deadline = renewing ? held.rebindAtMs : held.expiresAtMs;
    this.arm(Math.min(deadline, now + Math.max(MIN_RENEWAL_RETRANSMIT_MS, (deadline - now) / 2)));
  }

  private transmit(messageType: "discover" | "request", fields: MessageFields, server?: Ipv4Address): void {
    this.transmissions++;
    this.counters[messageType === "discover" ? "discovers" : "requests"]++;
    this.transport.send(this.encode(messageType, fields), server);
  }

  private encode(messageType: "discover" | "request" | "release", fields: MessageFields): Uint8Array {
    const repr: DhcpRepr = {
      operation: "boot-request",
      messageType,
      transactionId: this.transactionId,
      secs: fields.secs,
      broadcast: fields.broadcast,
      hops: 0,
      clientAddress: fields.clientAddress ?? Ipv4Address.UNSPECIFIED,
      yourAddress: Ipv4Address.UNSPECIFIED,
      serverAddress: Ipv4Address.UNSPECIFIED,
      relayAgentAddress: Ipv4Address.UNSPECIFIED,
      clientHardwareAddress: this.mac,
      clientIdentifier: this.clientIdentifier,
      requestedAddress: fields.requestedAddress,
      serverIdentifier: fields.serverIdentifier,
    };
    // Table 5: a RELEASE carries none of these.
    if (messageType !== "release") {
      repr.parameterRequestList = [...PARAMETER_REQUEST_LIST];
      repr.maxMessageSize = MAX_MESSAGE_SIZE;
      repr.hostname = this.hostname;
    }
    const bytes = new Uint8Array(DhcpRepr.bufferLength(repr));
    DhcpRepr.emit(repr, bytes);
    return bytes;
  }

  private secsSinceExchangeStarted(): number {
    return Math.min(MAX_SECS, Math.max(0, Math.floor((this.timers.now() - this.exchangeStartedMs) / 1000)));
  }

  private randomU32(): number {
    const bytes = new Uint8Array(4);
    this.random(bytes);
    return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  }

  /** Uniform in [0, 1). */
  private randomFraction(): number {
    return this.randomU32() / 0x1_0000_0000;
  }
}

interface MessageFields {
  secs: number;
  broadcast: boolean;
  clientAddress?: Ipv4Address;
  requestedAddress?: Ipv4Address;
  serverIdentifier?: Ipv4Address;
}

/**
 * The lease an ACK grants, or why it cannot be used. A missing subnet mask refuses the lease
 * rather than guessing a classful or /24 prefix: a wrong prefix misroutes traffic silently,
 * while a refusal shows in the log and the counters. `fallbackServer` stands in for a missing
 * server identifier (Table 3 requires one; some servers omit it in renewals).
 */
export function leaseFromAck(ack: DhcpRepr, fallbackServer: Ipv4Address | undefined): DhcpLease | string {
  const address = ack.yourAddress;
  if (!isUsableHostAddress(address)) return `unusable address ${Ipv4Address.format(address)}`;
  const server = ack.serverIdentifier ?? fallbackServer;
  if (server === undefined) return "no server identifier (option 54)";
  const leaseTime = ack.leaseTime;
  if (leaseTime === undefined) return "no lease time (option 51)"; // Table 3: MUST in an ACK to a REQUEST
  if (leaseTime === 0) return "a lease of 0 s";
  if (ack.subnetMask === undefined) return "no subnet mask (option 1)";
  const cidr = Ipv4Cidr.fromNetmask(address, ack.subnetMask);
  if (cidr instanceof WireError) return cidr.message;
  if (cidr.prefixLength === 0) return "subnet mask 0.0.0.0";
  // RFC 1122 §3.2.1.3: all-zeros and all-ones host parts name the subnet and its broadcast.
  if (cidr.prefixLength <= 30 && (address === cidr.network || address === cidr.broadcast)) {
    return `${Ipv4Address.format(address)} is not a host address on /${cidr.prefixLength}`;
  }

  let leaseSeconds = Infinity;
  let rebindSeconds = Infinity;
  let renewSeconds = Infinity;
  if (leaseTime !== INFINITE_LEASE) {
    // §4.4.5 defaults, also used when the server's 0 < T1 ≤ T2 ≤ lease does not hold (a T1 of
    // 0 would have us renew at once after every ACK, for as long as the server repeats it).
    leaseSeconds = leaseTime;
    const t2 = ack.rebindingTime;
    rebindSeconds = t2 !== undefined && t2 > 0 && t2 <= leaseTime ? t2 : leaseTime * 0.875;
    const t1 = ack.renewalTime;
    renewSeconds = t1 !== undefined && t1 > 0 && t1 <= rebindSeconds ? t1 : Math.min(leaseTime * 0.5, rebindSeconds);
  }

  const router = ack.routers?.[0];
  const routerOnLink = router !== undefined && isUsableHostAddress(router) && router !== address && cidr.contains(router) && !cidr.isBroadcast(router);
  const gateway = routerOnLink ? router : undefined;
  const lease: DhcpLease = {
    cidr,
    dns: (ack.dnsServers ?? []).filter(isUsableHostAddress),
    server,
    leaseSeconds,
    renewSeconds,
    rebindSeconds,
  };
  if (gateway !== undefined) lease.gateway = gateway;
  return lease;
}

function isUsableHostAddress(address: Ipv4Address): boolean {
  return Ipv4Address.isUnicast(address) && !Ipv4Address.isLoopback(address);
}

function describeLease(lease: DhcpLease): string {
  const via = lease.gateway === undefined ? " (no router)" : ` via ${Ipv4Address.format(lease.gateway)}`;
  const duration = Number.isFinite(lease.leaseSeconds) ? `${lease.leaseSeconds} s` : "infinite";
  return `${lease.cidr.toString()}${via}, lease ${duration}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index]);
}

/** A server's NAK text for the log: printable ASCII kept, the rest as '?', at most 100 characters. */
function printable(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes.subarray(0, 100)) text += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : "?";
  return text;
}

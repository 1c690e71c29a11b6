/**
 * IPv4 for a host (RFC 791, RFC 1122 §3): one interface, an on-link prefix and a default gateway.
 * It never forwards. It accepts datagrams to our address, the limited broadcast, our subnet's
 * directed broadcast and joined multicast groups; fragments outgoing datagrams larger than the
 * MTU (RFC 791 §3.2) and reassembles incoming ones in bounded memory; and hands datagrams to the
 * protocol handlers registered for them (ICMP, UDP, and whoever else, e.g. TCP).
 *
 * Reassembly follows RFC 791 §3.2 and RFC 1122 §3.3.2 with these bounds: `maxFragments` per
 * datagram, `maxReassemblies` at once, `maxReassemblyBytes` in all, and a timer of
 * `reassemblyTimeoutMs` from the first fragment, after which ICMP time exceeded (code 1) goes
 * back if the first fragment had come. Overlapping fragments discard the whole datagram (RFC
 * 5722's rule for IPv6, which Linux applies to IPv4 too); exact duplicates, which a network may
 * well produce, are dropped alone. When a new datagram needs room, the oldest reassembly goes:
 * an attacker then has to keep up a flood, rather than fill the table once a timeout.
 */
import { Ipv4Address, MacAddress } from "../wire/address.ts";
import { writeU16 } from "../wire/bytes.ts";
import { finishChecksum, sumBytes } from "../wire/checksum.ts";
import { EtherType } from "../wire/ethernet.ts";
import { WireError } from "../wire/error.ts";
import { Icmpv4TimeExceededCode, Icmpv4Type, Icmpv4UnreachableCode } from "../wire/icmpv4.ts";
import { IPV4_MAX_TOTAL_LENGTH, IPV4_MIN_HEADER_LENGTH, Ipv4Packet, Ipv4Repr } from "../wire/ipv4.ts";
import type { ArpLayer } from "./arp.ts";
import type { EthernetInterface, LinkDestination, NetLogger } from "./ethernet.ts";
import type { Ipv4Config } from "./ipv4-config.ts";
import type { LinkOffloads, RandomSource, TimerHandle, Timers, TransmitOffload } from "./types.ts";

/** Why a send failed or an error arrived, named after the errno values sockets report. */
export type NetErrorCode =
  /** No route to the destination: not on-link and no gateway, or no address configured (ENETUNREACH). */
  | "no-route"
  /** Larger than the MTU with "don't fragment", or larger than IPv4 allows (EMSGSIZE; ICMP code 4). */
  | "message-too-long"
  /** The next hop did not answer ARP, or ICMP host unreachable (EHOSTUNREACH). */
  | "host-unreachable"
  /** ICMP network unreachable (ENETUNREACH). */
  | "network-unreachable"
  /** ICMP protocol unreachable (ENOPROTOOPT). */
  | "protocol-unreachable"
  /** ICMP port unreachable: nobody listens there (a UDP socket's ECONNREFUSED). */
  | "port-unreachable"
  /** ICMP communication administratively prohibited (RFC 1812 §5.2.7.1). */
  | "prohibited"
  /** ICMP time exceeded: TTL or reassembly (RFC 792). */
  | "time-exceeded"
  /** ICMP parameter problem (RFC 792). */
  | "parameter-problem"
  /** The port is bound already (EADDRINUSE). */
  | "address-in-use"
  /** The peer refused the connection: a TCP RST in answer to our SYN (ECONNREFUSED). */
  | "connection-refused"
  /** The peer reset the connection: a TCP RST on an established connection (ECONNRESET). */
  | "connection-reset"
  /** The socket is closed. */
  | "closed"
  /** No answer in time (a ping). */
  | "timeout"
  /** Too much already in flight (ENOBUFS). */
  | "no-buffers";

/** A network error, thrown by sends that fail at once and passed to error listeners for the rest. */
export class NetError extends Error {
  override readonly name = "NetError";
  constructor(
    readonly code: NetErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** How a received datagram was addressed at the IP layer. */
export type Ipv4Destination = "unicast" | "broadcast" | "multicast";

/** A datagram for us, as handed to a protocol handler. Its bytes are valid only during the call. */
export interface Ipv4Datagram {
  /** For a reassembled datagram, the first fragment's header with the fragment fields cleared. */
  readonly header: Ipv4Repr;
  readonly payload: Uint8Array;
  /** Header (options included) and payload as received: what an ICMP error about it quotes. */
  readonly packet: Uint8Array;
  readonly destination: Ipv4Destination;
  readonly linkDestination: LinkDestination;
  /**
   * The link vouches for the transport checksum (a frame from the host's own stack through an
   * offloading TAP, or our own datagram delivered locally): TCP and UDP skip verifying it.
   */
  readonly checksumTrusted: boolean;
}

/**
 * An error about a datagram we sent: from an ICMP error message, or found locally (ARP got no
 * answer). The addresses, protocol and payload are those of the datagram we sent, as quoted.
 */
export interface Ipv4ErrorReport {
  readonly code: NetErrorCode;
  /** The ICMP message it came in, or undefined when the stack itself found the error. */
  readonly icmp: { readonly type: number; readonly code: number } | undefined;
  /** Who reported it: the sender of the ICMP message, or our own address. */
  readonly reporter: Ipv4Address;
  readonly src: Ipv4Address;
  readonly dst: Ipv4Address;
  readonly protocol: number;
  /** The leading bytes of the datagram's payload: at least 8 from a conforming sender (RFC 792). */
  readonly payload: Uint8Array;
  /** For "message-too-long" from ICMP, the next hop's MTU (RFC 1191 §4), else 0. */
  readonly nextHopMtu: number;
}

/** A transport protocol over IPv4. */
export interface Ipv4ProtocolHandler {
  receive(datagram: Ipv4Datagram): void;
  /** Returns whether the error was matched to a socket or connection. */
  receiveError(report: Ipv4ErrorReport): boolean;
  /**
   * Whether a datagram not addressed to us should be taken all the same: a DHCP client's port
   * before its address is configured (RFC 2131 §4.1). Only asked for first fragments.
   */
  acceptsAnyDestination?(payload: Uint8Array): boolean;
}

/** Sends ICMP errors about received datagrams; the ICMP layer, which applies RFC 1122 §3.2.2's rules. */
export interface Ipv4ErrorSender {
  sendError(about: Ipv4Datagram, type: number, code: number): void;
}

export interface Ipv4SendOptions {
  dst: Ipv4Address;
  protocol: number;
  /** Default: our address (0.0.0.0 while none is configured, which only broadcasts may use). */
  src?: Ipv4Address | undefined;
  /** Default: `defaultTtl`, or 1 to a multicast group (RFC 1112 §6.1). */
  ttl?: number | undefined;
  dscp?: number | undefined;
  ecn?: number | undefined;
  /** Fail with "message-too-long" rather than fragment (RFC 791 §3.1, "Flags"). */
  dontFragment?: boolean | undefined;
  /** Transmit offloads, on a link that has them (see `Ipv4Layer.offloads`). */
  offload?: Ipv4Offload | undefined;
}

/**
 * A transport's request for the link's offloads. The transport checksum field, at
 * `checksumOffset` in the payload, holds the pseudo-header sum for the link to finish (or for
 * this layer, for a datagram delivered locally). With `segmentSize` > 0 the payload is a TCP
 * segment the link cuts into segments of that many data bytes: the datagram may then be larger
 * than the MTU (up to the link's maxTcpDatagram) and is never fragmented.
 */
export interface Ipv4Offload {
  readonly checksumOffset: number;
  readonly segmentSize: number;
}

/** Where a datagram to some destination goes. */
export interface Ipv4Route {
  /** "local": to our own address, delivered without touching the link. */
  readonly kind: "local" | "unicast" | "broadcast" | "multicast";
  /** The on-link address whose MAC the frame goes to (the destination or the gateway); for unicast only. */
  readonly nextHop: Ipv4Address;
  /** The source address a datagram on this route gets. */
  readonly src: Ipv4Address;
}

export interface Ipv4Limits {
  /** RFC 1122 §3.2.1.7 asks for a configurable TTL; 64 is IANA's recommendation (RFC 1700). */
  defaultTtl: number;
  /** RFC 1122 §3.3.2: between 60 s and 120 s recommended there, 15 s to 60 s in practice (Linux 30 s). */
  reassemblyTimeoutMs: number;
  maxFragments: number;
  maxReassemblies: number;
  maxReassemblyBytes: number;
  /** Datagrams to our own address waiting for delivery. */
  maxLocalQueue: number;
}

export const DEFAULT_IPV4_LIMITS: Readonly<Ipv4Limits> = {
  defaultTtl: 64,
  reassemblyTimeoutMs: 30_000,
  maxFragments: 64,
  maxReassemblies: 16,
  maxReassemblyBytes: 1024 * 1024,
  maxLocalQueue: 64,
};

/**
 * Each received packet lands in `rxPackets` and then in exactly one of: a drop, `delivered`
 * (whole datagrams), `fragmentsReassembled`, or (for now) `fragmentsPending`. Reassembled
 * datagrams are counted again in `reassembled` as they go up.
 */
export type Ipv4Counters = {
  rxPackets: number;
  delivered: number;
  reassembled: number;
  fragmentsReassembled: number;
  /** Drop: lengths or version wrong (truncated, header length below 20, total length beyond the frame). */
  malformed: number;
  badChecksum: number;
  /** Drop: a broadcast or multicast source (RFC 1122 §3.2.1.3). */
  badSource: number;
  /** Drop: for another host, or unicast to us in a link-layer broadcast (RFC 1122 §3.3.6). */
  notForUs: number;
  /** Drop: no handler for the protocol (ICMP protocol unreachable goes back). */
  unknownProtocol: number;
  /** Drop: a fragment other than the last whose length is zero or not a multiple of 8. */
  fragmentMalformed: number;
  /** Drop: the same fragment again. */
  fragmentDuplicate: number;
  /** Drop (each fragment of the datagram): fragments overlap or disagree on the datagram's end. */
  fragmentOverlap: number;
  /** Drop (each fragment of the datagram): it would exceed 65535 bytes. */
  fragmentTooLong: number;
  /** Drop (each fragment of the datagram): more than `maxFragments`, or evicted to make room. */
  reassemblyLimit: number;
  /** Drop (each fragment of the datagram): not complete in time. */
  reassemblyTimeout: number;
  /** Gauges: what reassembly holds now. */
  fragmentsPending: number;
  reassembliesPending: number;
  reassemblyBytes: number;
  /** Datagrams sent (each once, however many fragments), and fragments among the frames. */
  txPackets: number;
  txFragments: number;
  /** Sends refused: no route, or too long. */
  noRoute: number;
  tooBig: number;
  /** Datagrams to our own address delivered, or dropped (queue full or no handler). */
  localDelivered: number;
  localDropped: number;
};

/** A datagram waiting for ARP: the header to emit and a copy of the payload. */
export class QueuedDatagram {
  constructor(
    readonly header: Ipv4Repr,
    readonly payload: Uint8Array,
    readonly offload?: Ipv4Offload | undefined,
  ) {}
  get byteLength(): number {
    return IPV4_MIN_HEADER_LENGTH + this.payload.length;
  }
}

interface Fragment {
  readonly offset: number;
  readonly end: number;
  readonly data: Uint8Array;
}

/** A datagram being reassembled, keyed by (src, dst, protocol, identification) (RFC 791 §3.2). */
class Reassembly {
  /** Sorted by offset, never overlapping. */
  readonly fragments: Fragment[] = [];
  receivedBytes = 0;
  /** The payload length, once the last fragment has come; -1 before. */
  payloadLength = -1;
  /** From the fragment at offset 0, once it has come: its header bytes and repr. */
  firstHeaderBytes: Uint8Array | undefined;
  firstHeader: Ipv4Repr | undefined;
  timer: TimerHandle | undefined;

  constructor(
    readonly src: Ipv4Address,
    readonly dst: Ipv4Address,
    readonly protocol: number,
    readonly identification: number,
    readonly destination: Ipv4Destination,
    readonly linkDestination: LinkDestination,
  ) {}

  matches(header: Ipv4Repr): boolean {
    return (
      this.identification === header.identification &&
      this.src === header.src &&
      this.dst === header.dst &&
      this.protocol === header.protocol
    );
  }
}

type FragmentDrop = "fragmentOverlap" | "fragmentTooLong" | "reassemblyLimit" | "reassemblyTimeout";

/** RFC 791 §3.1: every host must take 68-byte datagrams, so no link may carry fewer. */
const MIN_MTU = 68;
/** The largest payload a datagram with a minimal header can carry. */
const MAX_PAYLOAD = IPV4_MAX_TOTAL_LENGTH - IPV4_MIN_HEADER_LENGTH;

export interface Ipv4LayerOptions {
  ethernet: EthernetInterface;
  arp: ArpLayer<QueuedDatagram>;
  timers: Timers;
  random: RandomSource;
  log: NetLogger;
  limits?: Partial<Ipv4Limits> | undefined;
  /**
   * Answer unicast datagrams sent to our link address for another host (routed through us) with
   * ICMP destination unreachable, communication administratively prohibited (RFC 1812
   * §5.2.7.1), instead of dropping them in silence: for a gateway that forwards nothing (the
   * user-mode network's), so that its guest's connects to the outside fail at once. A host
   * leaves it off.
   */
  refuseRouting?: boolean | undefined;
}

/** The ARP layer's packet type for an IPv4 layer. */
export type Ipv4ArpLayer = ArpLayer<QueuedDatagram>;

export class Ipv4Layer {
  readonly counters: Ipv4Counters = {
    rxPackets: 0,
    delivered: 0,
    reassembled: 0,
    fragmentsReassembled: 0,
    malformed: 0,
    badChecksum: 0,
    badSource: 0,
    notForUs: 0,
    unknownProtocol: 0,
    fragmentMalformed: 0,
    fragmentDuplicate: 0,
    fragmentOverlap: 0,
    fragmentTooLong: 0,
    reassemblyLimit: 0,
    reassemblyTimeout: 0,
    fragmentsPending: 0,
    reassembliesPending: 0,
    reassemblyBytes: 0,
    txPackets: 0,
    txFragments: 0,
    noRoute: 0,
    tooBig: 0,
    localDelivered: 0,
    localDropped: 0,
  };
  readonly limits: Readonly<Ipv4Limits>;
  /** Largest datagram sent in one frame. */
  readonly mtu: number;
  private current: Ipv4Config | undefined;
  private readonly protocols = new Map<number, Ipv4ProtocolHandler>();
  private readonly groups = new Set<Ipv4Address>();
  /** Oldest first. */
  private readonly reassemblies: Reassembly[] = [];
  private readonly localQueue: Uint8Array[] = [];
  /** The offload request handed to the Ethernet layer, reused. */
  private readonly linkOffload: TransmitOffload = { checksumStart: 0, checksumOffset: 0, segmentSize: 0 };
  private localTimer: TimerHandle | undefined;
  private identification: number;
  private errorSender: Ipv4ErrorSender | undefined;
  private readonly ethernet: EthernetInterface;
  private readonly arp: ArpLayer<QueuedDatagram>;
  private readonly timers: Timers;
  private readonly log: NetLogger;
  private readonly refuseRouting: boolean;

  constructor(options: Ipv4LayerOptions) {
    this.refuseRouting = options.refuseRouting === true;
    this.ethernet = options.ethernet;
    this.arp = options.arp;
    this.timers = options.timers;
    this.log = options.log;
    this.limits = { ...DEFAULT_IPV4_LIMITS, ...options.limits };
    this.mtu = options.ethernet.mtu;
    if (this.mtu < MIN_MTU) throw new RangeError(`ipv4: an MTU of ${this.mtu} is below the minimum of ${MIN_MTU} (RFC 791 §3.1)`);
    // A random start makes identifications hard to predict across reboots (RFC 6864 §4.1 asks
    // only for uniqueness within the reassembly time; unpredictability costs nothing here).
    const seed = new Uint8Array(2);
    options.random(seed);
    this.identification = (seed[0] << 8) | seed[1];
  }

  get config(): Ipv4Config | undefined {
    return this.current;
  }

  /** Our address, or undefined while none is configured. */
  get address(): Ipv4Address | undefined {
    return this.current?.cidr.address;
  }

  /** Sets the interface's address and routes; the stack also tells ARP. */
  configure(config: Ipv4Config | undefined): void {
    this.current = config;
  }

  setErrorSender(sender: Ipv4ErrorSender): void {
    this.errorSender = sender;
  }

  /** Registers the handler for an IP protocol number (IpProtocol); replaces any earlier one. */
  registerProtocol(protocol: number, handler: Ipv4ProtocolHandler): void {
    this.protocols.set(protocol, handler);
  }

  unregisterProtocol(protocol: number, handler: Ipv4ProtocolHandler): void {
    if (this.protocols.get(protocol) === handler) this.protocols.delete(protocol);
  }

  /** Accepts datagrams to a multicast group (no IGMP reports are sent). Returns false if already joined. */
  joinGroup(group: Ipv4Address): boolean {
    if (!Ipv4Address.isMulticast(group)) throw new RangeError(`ipv4: ${Ipv4Address.format(group)} is not a multicast group`);
    if (this.groups.has(group)) return false;
    this.groups.add(group);
    this.ethernet.joinGroup(MacAddress.forIpv4Multicast(group));
    return true;
  }

  leaveGroup(group: Ipv4Address): boolean {
    if (!this.groups.delete(group)) return false;
    this.ethernet.leaveGroup(MacAddress.forIpv4Multicast(group));
    return true;
  }

  /** Where a datagram to `dst` would go, or "no-route" (RFC 1122 §3.3.1). */
  route(dst: Ipv4Address): Ipv4Route | "no-route" {
    const config = this.current;
    const own = config === undefined ? Ipv4Address.UNSPECIFIED : config.cidr.address;
    if (Ipv4Address.isBroadcast(dst)) return { kind: "broadcast", nextHop: dst, src: own };
    if (Ipv4Address.isMulticast(dst)) return { kind: "multicast", nextHop: dst, src: own };
    if (config === undefined || !Ipv4Address.isUnicast(dst) || Ipv4Address.isLoopback(dst)) return "no-route";
    if (dst === own) return { kind: "local", nextHop: dst, src: own };
    if (config.cidr.isBroadcast(dst)) return { kind: "broadcast", nextHop: dst, src: own };
    if (config.cidr.contains(dst)) return { kind: "unicast", nextHop: dst, src: own };
    if (config.gateway !== undefined) return { kind: "unicast", nextHop: config.gateway, src: own };
    return "no-route";
  }

  /**
   * Sends `payload` (copied before this returns) to `options.dst`, fragmenting it to the MTU.
   * Returns undefined when the datagram went out or waits for ARP, else why it could not be sent.
   */
  send(options: Ipv4SendOptions, payload: Uint8Array): NetErrorCode | undefined {
    const counters = this.counters;
    const route = this.route(options.dst);
    if (route === "no-route") {
      counters.noRoute++;
      return "no-route";
    }
    const offload = options.offload !== undefined && this.offloads !== undefined ? options.offload : undefined;
    const segmenting = offload !== undefined && offload.segmentSize > 0;
    const dontFragment = (options.dontFragment ?? false) || segmenting;
    const linkLimit = segmenting && this.offloads !== undefined ? this.offloads.maxTcpDatagram : this.mtu;
    if (payload.length > MAX_PAYLOAD || (dontFragment && route.kind !== "local" && IPV4_MIN_HEADER_LENGTH + payload.length > linkLimit)) {
      counters.tooBig++;
      return "message-too-long";
    }
    const header: Ipv4Repr = {
      src: options.src ?? route.src,
      dst: options.dst,
      protocol: options.protocol,
      ttl: options.ttl ?? (route.kind === "multicast" ? 1 : this.limits.defaultTtl),
      dscp: options.dscp ?? 0,
      ecn: options.ecn ?? 0,
      // A segmented datagram leaves as several, each taking the next identification (as Linux's GSO numbers them).
      identification: this.nextIdentification(segmenting && offload !== undefined ? Math.ceil(payload.length / offload.segmentSize) : 1),
      dontFragment,
      moreFragments: false,
      fragmentOffset: 0,
      payloadLength: payload.length,
    };
    switch (route.kind) {
      case "local":
        this.sendLocal(header, payload, offload);
        return undefined;
      case "broadcast":
        this.transmit(header, payload, MacAddress.BROADCAST, offload);
        return undefined;
      case "multicast":
        this.transmit(header, payload, MacAddress.forIpv4Multicast(options.dst), offload);
        return undefined;
      case "unicast": {
        const mac = this.arp.lookup(route.nextHop);
        if (mac !== undefined) this.transmit(header, payload, mac, offload);
        else this.arp.enqueue(route.nextHop, new QueuedDatagram(header, payload.slice(), offload));
        return undefined;
      }
    }
  }

  /** Sends a datagram that waited for ARP (the ARP layer calls this). */
  transmitQueued(datagram: QueuedDatagram, mac: MacAddress): void {
    this.transmit(datagram.header, datagram.payload, mac, datagram.offload);
  }

  /**
   * Negative advice from a transport (RFC 1122 §3.3.1.4; TCP gives it after R1 retransmissions,
   * §4.2.3.5): datagrams to `dst` seem not to arrive. ARP re-validates the next hop (the
   * destination on-link, else the gateway; see ArpLayer.adviseUnreachable). Returns whether a
   * re-validation started.
   */
  adviseUnreachable(dst: Ipv4Address): boolean {
    const route = this.route(dst);
    if (route === "no-route" || route.kind !== "unicast") return false;
    return this.arp.adviseUnreachable(route.nextHop);
  }

  /** Reports a datagram that waited for ARP in vain to its protocol, as host unreachable. */
  reportUnresolved(datagram: QueuedDatagram): void {
    const header = datagram.header;
    this.deliverError({
      code: "host-unreachable",
      icmp: undefined,
      reporter: this.address ?? Ipv4Address.UNSPECIFIED,
      src: header.src,
      dst: header.dst,
      protocol: header.protocol,
      payload: datagram.payload,
      nextHopMtu: 0,
    });
  }

  /** Hands an error to the protocol of the datagram it is about; returns whether it was matched. */
  deliverError(report: Ipv4ErrorReport): boolean {
    const handler = this.protocols.get(report.protocol);
    return handler !== undefined && handler.receiveError(report);
  }

  /** Handles one received packet (the Ethernet payload, valid only during the call); never throws on any input. */
  receive(bytes: Uint8Array, linkDestination: LinkDestination, checksumTrusted = false): void {
    const counters = this.counters;
    counters.rxPackets++;
    const header = Ipv4Repr.parse(bytes);
    if (header instanceof WireError) {
      if (header.kind === "bad-checksum") counters.badChecksum++;
      else counters.malformed++;
      return;
    }
    const config = this.current;
    const src = header.src;
    // RFC 1122 §3.2.1.3: a source must be one host's address (or 0.0.0.0, which DHCP clients
    // use), and never a loopback address from the wire. Nor our own address (a "martian", as
    // Linux calls it): answering it would talk to ourselves, and an echo would loop forever.
    if (
      (!Ipv4Address.isUnicast(src) && !Ipv4Address.isUnspecified(src)) ||
      Ipv4Address.isLoopback(src) ||
      (config !== undefined && (config.cidr.isBroadcast(src) || src === config.cidr.address))
    ) {
      counters.badSource++;
      return;
    }
    const headerLength = new Ipv4Packet(bytes).headerLength;
    const totalLength = headerLength + header.payloadLength;
    const packet = bytes.subarray(0, totalLength);
    const payload = bytes.subarray(headerLength, totalLength);
    const isFragment = header.moreFragments || header.fragmentOffset !== 0;
    const handler = this.protocols.get(header.protocol);
    const dst = header.dst;
    let destination: Ipv4Destination | undefined;
    if (config !== undefined && dst === config.cidr.address) {
      // RFC 1122 §3.3.6: a unicast datagram in a link-layer broadcast is suspect.
      if (linkDestination === "unicast") destination = "unicast";
    } else if (Ipv4Address.isBroadcast(dst) || (config !== undefined && config.cidr.isBroadcast(dst))) {
      destination = "broadcast";
    } else if (Ipv4Address.isMulticast(dst)) {
      if (this.groups.has(dst)) destination = "multicast";
    } else if (header.fragmentOffset === 0 && handler?.acceptsAnyDestination?.(payload) === true) {
      destination = "unicast";
    }
    if (destination === undefined) {
      counters.notForUs++;
      if (this.refuseRouting && linkDestination === "unicast" && Ipv4Address.isUnicast(dst) && !Ipv4Address.isLoopback(dst)) {
        // sendError applies RFC 1122 §3.2.2's rules (no errors about errors or non-first fragments) and the rate limit.
        const routed: Ipv4Datagram = { header, payload, packet, destination: "unicast", linkDestination, checksumTrusted };
        this.errorSender?.sendError(routed, Icmpv4Type.DestinationUnreachable, Icmpv4UnreachableCode.CommunicationProhibited);
      }
      return;
    }
    // A fragment is never trusted: the host finishes checksums before it fragments.
    const datagram: Ipv4Datagram = { header, payload, packet, destination, linkDestination, checksumTrusted: checksumTrusted && !isFragment };
    if (handler === undefined) {
      counters.unknownProtocol++;
      // RFC 1122 §3.2.2.1: a host SHOULD send protocol unreachable (the sender applies the rules).
      this.errorSender?.sendError(datagram, Icmpv4Type.DestinationUnreachable, Icmpv4UnreachableCode.ProtocolUnreachable);
      return;
    }
    if (isFragment) {
      this.addFragment(datagram, headerLength);
      return;
    }
    counters.delivered++;
    handler.receive(datagram);
  }

  /** Cancels every timer and drops what is buffered. */
  close(): void {
    for (const reassembly of [...this.reassemblies]) this.discard(reassembly, undefined);
    this.localTimer?.cancel();
    this.localTimer = undefined;
    this.localQueue.length = 0;
  }

  /** The link's offloads, which `send` may be asked to use; undefined when it has none. */
  get offloads(): LinkOffloads | undefined {
    return this.ethernet.offloads;
  }

  /** Reserves `count` consecutive identifications and returns the first. */
  private nextIdentification(count = 1): number {
    const identification = this.identification;
    this.identification = (identification + count) & 0xffff;
    return identification;
  }

  /** Sends one datagram to `mac`, in fragments if it exceeds the MTU (RFC 791 §3.2, "Fragmentation"). */
  private transmit(header: Ipv4Repr, payload: Uint8Array, mac: MacAddress, offload?: Ipv4Offload): void {
    const ethernet = this.ethernet;
    const buffer = ethernet.payloadBuffer;
    const maxPayload = this.mtu - IPV4_MIN_HEADER_LENGTH;
    this.counters.txPackets++;
    if (offload !== undefined) {
      // The link finishes the checksum (and cuts the segment): never fragmented, `send` checked the size.
      Ipv4Repr.emit(header, buffer);
      buffer.set(payload, IPV4_MIN_HEADER_LENGTH);
      const request = this.linkOffload;
      request.checksumStart = IPV4_MIN_HEADER_LENGTH;
      request.checksumOffset = offload.checksumOffset;
      request.segmentSize = offload.segmentSize;
      ethernet.send(mac, EtherType.Ipv4, IPV4_MIN_HEADER_LENGTH + payload.length, request);
      return;
    }
    if (payload.length <= maxPayload) {
      Ipv4Repr.emit(header, buffer);
      buffer.set(payload, IPV4_MIN_HEADER_LENGTH);
      ethernet.send(mac, EtherType.Ipv4, IPV4_MIN_HEADER_LENGTH + payload.length);
      return;
    }
    // Every fragment but the last carries a multiple of 8 bytes: offsets count 8-byte units.
    const chunk = maxPayload & ~7;
    const fragment: Ipv4Repr = { ...header };
    for (let offset = 0; offset < payload.length; offset += chunk) {
      const end = Math.min(offset + chunk, payload.length);
      fragment.fragmentOffset = offset;
      fragment.moreFragments = end < payload.length;
      fragment.payloadLength = end - offset;
      Ipv4Repr.emit(fragment, buffer);
      buffer.set(payload.subarray(offset, end), IPV4_MIN_HEADER_LENGTH);
      this.counters.txFragments++;
      ethernet.send(mac, EtherType.Ipv4, IPV4_MIN_HEADER_LENGTH + fragment.payloadLength);
    }
  }

  /** Queues a datagram to our own address, delivered from a timer: never re-entrantly inside send. */
  private sendLocal(header: Ipv4Repr, payload: Uint8Array, offload?: Ipv4Offload): void {
    if (this.localQueue.length >= this.limits.maxLocalQueue) {
      this.counters.localDropped++;
      return;
    }
    const packet = new Uint8Array(IPV4_MIN_HEADER_LENGTH + payload.length);
    Ipv4Repr.emit(header, packet);
    packet.set(payload, IPV4_MIN_HEADER_LENGTH);
    if (offload !== undefined) {
      // No link to finish the checksum: do it here, over the field's pseudo-header sum and the rest.
      const transport = packet.subarray(IPV4_MIN_HEADER_LENGTH);
      writeU16(transport, offload.checksumOffset, finishChecksum(sumBytes(transport)));
    }
    this.localQueue.push(packet);
    this.localTimer ??= this.timers.at(this.timers.now(), () => this.deliverLocal());
  }

  private deliverLocal(): void {
    this.localTimer = undefined;
    const queue = this.localQueue.splice(0);
    for (const packet of queue) {
      const header = Ipv4Repr.parse(packet);
      const handler = header instanceof WireError ? undefined : this.protocols.get(header.protocol);
      if (header instanceof WireError || handler === undefined) {
        this.counters.localDropped++;
        continue;
      }
      this.counters.localDelivered++;
      handler.receive({
        header,
        payload: packet.subarray(IPV4_MIN_HEADER_LENGTH),
        packet,
        destination: "unicast",
        linkDestination: "unicast",
        checksumTrusted: false,
      });
    }
  }

  private addFragment(datagram: Ipv4Datagram, headerLength: number): void {
    const header = datagram.header;
    const counters = this.counters;
    const offset = header.fragmentOffset;
    const length = datagram.payload.length;
    const end = offset + length;
    const isLast = !header.moreFragments;
    if (!isLast && (length === 0 || length % 8 !== 0)) {
      counters.fragmentMalformed++;
      return;
    }
    let reassembly: Reassembly | undefined;
    for (const candidate of this.reassemblies) {
      if (candidate.matches(header)) {
        reassembly = candidate;
        break;
      }
    }
    if (end > MAX_PAYLOAD) {
      // The "ping of death": the datagram would exceed 65535 bytes.
      counters.fragmentTooLong++;
      if (reassembly !== undefined) this.discard(reassembly, "fragmentTooLong");
      return;
    }
    if (reassembly === undefined) {
      if (this.reassemblies.length >= this.limits.maxReassemblies) {
        const oldest = this.reassemblies[0];
        if (oldest !== undefined) this.discard(oldest, "reassemblyLimit");
      }
      reassembly = this.startReassembly(datagram);
    }
    const fragments = reassembly.fragments;
    // Where the fragment goes: before the first fragment starting at or after its offset.
    let index = fragments.length;
    while (index > 0 && (fragments[index - 1]?.offset ?? 0) >= offset) index--;
    const previous = fragments[index - 1];
    const next = fragments[index];
    if (next !== undefined && next.offset === offset && next.end === end) {
      counters.fragmentDuplicate++;
      return;
    }
    const lastEnd = fragments[fragments.length - 1]?.end ?? 0;
    const inconsistent = isLast
      ? (reassembly.payloadLength >= 0 && reassembly.payloadLength !== end) || lastEnd > end
      : reassembly.payloadLength >= 0 && end > reassembly.payloadLength;
    if (inconsistent || (previous !== undefined && previous.end > offset) || (next !== undefined && next.offset < end)) {
      counters.fragmentOverlap++;
      this.discard(reassembly, "fragmentOverlap");
      return;
    }
    if (fragments.length >= this.limits.maxFragments) {
      counters.reassemblyLimit++;
      this.discard(reassembly, "reassemblyLimit");
      return;
    }
    if (!this.makeRoom(length, reassembly)) {
      counters.reassemblyLimit++;
      this.discard(reassembly, "reassemblyLimit");
      return;
    }
    fragments.splice(index, 0, { offset, end, data: datagram.payload.slice() });
    reassembly.receivedBytes += length;
    counters.fragmentsPending++;
    counters.reassemblyBytes += length;
    if (isLast) reassembly.payloadLength = end;
    if (offset === 0) {
      reassembly.firstHeaderBytes = datagram.packet.slice(0, headerLength);
      reassembly.firstHeader = header;
    }
    if (reassembly.payloadLength >= 0 && reassembly.receivedBytes === reassembly.payloadLength) this.complete(reassembly);
  }

  private startReassembly(datagram: Ipv4Datagram): Reassembly {
    const header = datagram.header;
    const reassembly = new Reassembly(
      header.src,
      header.dst,
      header.protocol,
      header.identification,
      datagram.destination,
      datagram.linkDestination,
    );
    // RFC 1122 §3.3.2: the timer runs from the first fragment to arrive and is not restarted.
    reassembly.timer = this.timers.at(this.timers.now() + this.limits.reassemblyTimeoutMs, () => this.timeOut(reassembly));
    this.reassemblies.push(reassembly);
    this.counters.reassembliesPending = this.reassemblies.length;
    return reassembly;
  }

  /** Evicts the oldest other reassemblies until `length` more bytes fit; false if they cannot. */
  private makeRoom(length: number, keep: Reassembly): boolean {
    const limit = this.limits.maxReassemblyBytes;
    while (this.counters.reassemblyBytes + length > limit) {
      const victim = this.reassemblies.find((candidate) => candidate !== keep);
      if (victim === undefined) return false;
      this.discard(victim, "reassemblyLimit");
    }
    return true;
  }

  private complete(reassembly: Reassembly): void {
    const firstHeaderBytes = reassembly.firstHeaderBytes;
    const firstHeader = reassembly.firstHeader;
    const headerLength = firstHeaderBytes?.length ?? 0;
    if (firstHeaderBytes === undefined || firstHeader === undefined || headerLength + reassembly.payloadLength > IPV4_MAX_TOTAL_LENGTH) {
      this.discard(reassembly, "fragmentTooLong");
      return;
    }
    const packet = new Uint8Array(headerLength + reassembly.payloadLength);
    packet.set(firstHeaderBytes);
    for (const fragment of reassembly.fragments) packet.set(fragment.data, headerLength + fragment.offset);
    // The header now describes the whole datagram, so that an ICMP error quoting it makes sense.
    const view = new Ipv4Packet(packet);
    view.totalLength = packet.length;
    view.moreFragments = false;
    view.fragmentOffset = 0;
    view.fillChecksum();
    const counters = this.counters;
    counters.fragmentsReassembled += reassembly.fragments.length;
    this.remove(reassembly);
    const handler = this.protocols.get(reassembly.protocol);
    if (handler === undefined) return; // unregistered since the first fragment: nothing to count it under but the fragments
    counters.reassembled++;
    handler.receive({
      header: { ...firstHeader, moreFragments: false, fragmentOffset: 0, payloadLength: reassembly.payloadLength },
      payload: packet.subarray(headerLength),
      packet,
      destination: reassembly.destination,
      linkDestination: reassembly.linkDestination,
      checksumTrusted: false,
    });
  }

  private timeOut(reassembly: Reassembly): void {
    reassembly.timer = undefined;
    const firstHeaderBytes = reassembly.firstHeaderBytes;
    const firstHeader = reassembly.firstHeader;
    const first = reassembly.fragments[0];
    this.discard(reassembly, "reassemblyTimeout");
    // RFC 1122 §3.3.2: time exceeded (reassembly) only if the first fragment came, as only it
    // holds the transport header the sender needs to find the socket.
    if (firstHeaderBytes === undefined || firstHeader === undefined || first === undefined || first.offset !== 0) return;
    const packet = new Uint8Array(firstHeaderBytes.length + first.data.length);
    packet.set(firstHeaderBytes);
    packet.set(first.data, firstHeaderBytes.length);
    this.errorSender?.sendError(
      {
        header: firstHeader,
        payload: first.data,
        packet,
        destination: reassembly.destination,
        linkDestination: reassembly.linkDestination,
        checksumTrusted: false,
      },
      Icmpv4Type.TimeExceeded,
      Icmpv4TimeExceededCode.ReassemblyTimeExceeded,
    );
  }

  /** Drops a reassembly, counting each fragment it held under `reason` (none on close). */
  private discard(reassembly: Reassembly, reason: FragmentDrop | undefined): void {
    if (reason !== undefined) {
      this.counters[reason] += reassembly.fragments.length;
      this.log.debug(
        () =>
          `${reason}: datagram ${reassembly.identification} from ${Ipv4Address.format(reassembly.src)} discarded with ${reassembly.fragments.length} fragment(s) held`,
      );
    }
    this.remove(reassembly);
  }

  private remove(reassembly: Reassembly): void {
    reassembly.timer?.cancel();
    reassembly.timer = undefined;
    const index = this.reassemblies.indexOf(reassembly);
    if (index >= 0) this.reassemblies.splice(index, 1);
    const counters = this.counters;
    counters.fragmentsPending -= reassembly.fragments.length;
    counters.reassemblyBytes -= reassembly.receivedBytes;
    counters.reassembliesPending = this.reassemblies.length;
    // Release the data now: anything still holding the reassembly (a cancelled timer until the
    // queue prunes it) must not keep fragments alive past the byte limit.
    reassembly.fragments.length = 0;
    reassembly.firstHeaderBytes = undefined;
  }
}

/**
 * A minimal ARP and ICMP echo responder on the wire codecs: a pure state machine (frame in, reply
 * frame out) with drop counters, no I/O. It answers only what is addressed to its own IPv4 address
 * and replies to the sender's MAC, so it needs no ARP cache. The IPv4 stack supersedes it.
 */
import { ArpRepr } from "atoll/wire/arp";
import { Ipv4Address, MacAddress } from "atoll/wire/address";
import { EtherType, EthernetFrame, EthernetRepr, ETHERNET_HEADER_LENGTH } from "atoll/wire/ethernet";
import { WireError } from "atoll/wire/error";
import { Icmpv4Repr } from "atoll/wire/icmpv4";
import { IpProtocol, Ipv4Packet, Ipv4Repr, IPV4_MIN_HEADER_LENGTH } from "atoll/wire/ipv4";

export interface ResponderCounters {
  arpReplies: number;
  echoReplies: number;
  /** Frames not for us: another unicast MAC, or ARP/IP for another address. */
  notForUs: number;
  /** Frames that failed to parse (truncated, bad checksum, bad lengths). */
  malformed: number;
  /** Well-formed but not handled here: other EtherTypes, VLAN tags, fragments, non-echo ICMP, UDP/TCP. */
  unhandled: number;
}

const DEFAULT_TTL = 64;

export class PingResponder {
  readonly counters: ResponderCounters = { arpReplies: 0, echoReplies: 0, notForUs: 0, malformed: 0, unhandled: 0 };
  private readonly transmit: Uint8Array;
  private identification = 0;

  constructor(
    readonly mac: MacAddress,
    readonly address: Ipv4Address,
    maxFrameLength: number,
  ) {
    this.transmit = new Uint8Array(maxFrameLength);
  }

  /** A gratuitous ARP request announcing our address (RFC 5227 §3), sent when the address is assigned. */
  announcement(): Uint8Array {
    return this.arpFrame(MacAddress.BROADCAST, {
      operation: "request",
      senderHardwareAddress: this.mac,
      senderProtocolAddress: this.address,
      targetHardwareAddress: MacAddress.UNSPECIFIED,
      targetProtocolAddress: this.address,
    });
  }

  /**
   * Handles one received frame. Returns the reply frame (a view into a buffer reused by the next
   * call) or undefined when there is nothing to send.
   */
  handle(bytes: Uint8Array): Uint8Array | undefined {
    const frame = EthernetFrame.check(bytes);
    const ethernet = EthernetRepr.parse(bytes);
    if (frame instanceof WireError || ethernet instanceof WireError) return this.count("malformed");
    if (ethernet.dst !== this.mac && !MacAddress.isBroadcast(ethernet.dst)) return this.count("notForUs");
    if (ethernet.vlan !== undefined) return this.count("unhandled");
    if (ethernet.etherType === EtherType.Arp) return this.handleArp(frame.payload);
    if (ethernet.etherType === EtherType.Ipv4) return this.handleIpv4(ethernet.src, frame.payload);
    return this.count("unhandled");
  }

  private handleArp(payload: Uint8Array): Uint8Array | undefined {
    const arp = ArpRepr.parse(payload);
    if (arp instanceof WireError) return this.count(arp.kind === "unsupported" ? "unhandled" : "malformed");
    if (arp.targetProtocolAddress !== this.address) return this.count("notForUs");
    if (arp.operation !== "request") return this.count("unhandled");
    this.counters.arpReplies++;
    // RFC 826, "Packet Reception": swap sender and target, fill in our hardware address.
    return this.arpFrame(arp.senderHardwareAddress, {
      operation: "reply",
      senderHardwareAddress: this.mac,
      senderProtocolAddress: this.address,
      targetHardwareAddress: arp.senderHardwareAddress,
      targetProtocolAddress: arp.senderProtocolAddress,
    });
  }

  private handleIpv4(sourceMac: MacAddress, payload: Uint8Array): Uint8Array | undefined {
    const packet = Ipv4Packet.check(payload);
    const ip = Ipv4Repr.parse(payload);
    if (packet instanceof WireError || ip instanceof WireError) return this.count("malformed");
    if (ip.dst !== this.address) return this.count("notForUs");
    if (ip.moreFragments || ip.fragmentOffset !== 0 || ip.protocol !== IpProtocol.Icmp) return this.count("unhandled");
    const icmp = Icmpv4Repr.parse(packet.payload);
    if (icmp instanceof WireError) return this.count("malformed");
    if (icmp.kind !== "echo-request") return this.count("unhandled");
    const reply: Icmpv4Repr = { kind: "echo-reply", identifier: icmp.identifier, sequence: icmp.sequence, data: icmp.data };
    const icmpLength = Icmpv4Repr.bufferLength(reply);
    const frameLength = ETHERNET_HEADER_LENGTH + IPV4_MIN_HEADER_LENGTH + icmpLength;
    if (frameLength > this.transmit.length) return this.count("unhandled");
    const out = this.transmit.subarray(0, frameLength);
    EthernetRepr.emit({ dst: sourceMac, src: this.mac, etherType: EtherType.Ipv4 }, out);
    const ipBytes = out.subarray(ETHERNET_HEADER_LENGTH);
    Ipv4Repr.emit(
      {
        src: this.address,
        dst: ip.src,
        protocol: IpProtocol.Icmp,
        ttl: DEFAULT_TTL,
        dscp: ip.dscp,
        ecn: 0,
        identification: this.identification++ & 0xffff,
        dontFragment: false,
        moreFragments: false,
        fragmentOffset: 0,
        payloadLength: icmpLength,
      },
      ipBytes,
    );
    Icmpv4Repr.emit(reply, ipBytes.subarray(IPV4_MIN_HEADER_LENGTH));
    this.counters.echoReplies++;
    return out;
  }

  private arpFrame(dst: MacAddress, arp: ArpRepr): Uint8Array {
    const ethernet: EthernetRepr = { dst, src: this.mac, etherType: EtherType.Arp };
    // Ethernet's minimum frame is 60 bytes before the FCS (IEEE 802.3 §4.2.3.3): pad ARP's 42.
    const out = this.transmit.subarray(0, 60);
    out.fill(0);
    EthernetRepr.emit(ethernet, out);
    ArpRepr.emit(arp, out.subarray(EthernetRepr.headerLength(ethernet)));
    return out;
  }

  private count(reason: "notForUs" | "malformed" | "unhandled"): undefined {
    this.counters[reason]++;
    return undefined;
  }
}

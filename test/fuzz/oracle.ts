/**
 * The fuzzer's oracle: what must hold of the stack, whatever it is fed.
 *
 * - Every frame the stack sends is well formed (SentFrameOracle): our MAC and address as source,
 *   padded to 60 bytes, within the MTU, a valid IPv4 header checksum, valid ICMP and UDP checksums
 *   (fragmented datagrams are reassembled here to check them), ARP that parses, ICMP errors only
 *   to unicast hosts (RFC 1122 §3.2.2) and within 576 bytes (RFC 1812 §4.3.2.3).
 * - The receive counters balance (`unbalancedCounters` is empty), `ethernet.rxFrames` equals the
 *   frames fed, and the state stays within the configured limits (counterProblem).
 */
import { DEFAULT_ARP_LIMITS, DEFAULT_IPV4_LIMITS, unbalancedCounters, type StackCounters } from "atoll/net";
import { ArpRepr, checksumVerifies, EtherType, EthernetRepr, Icmpv4Repr, IpProtocol, Ipv4Address, Ipv4Repr, ipv4PseudoHeaderSum, MacAddress, sumBytes, UdpPacket, WireError } from "atoll/wire";
import { CONFIG, MTU, OUR_MAC, OURS } from "./host.ts";

export class SentFrameOracle {
  private readonly outgoingFragments = new Map<string, { parts: [number, Uint8Array][]; total: number; header: Ipv4Repr }>();
  /** Fragmented datagrams the stack sent that were reassembled here and checked whole. */
  reassembled = 0;

  /**
   * What is wrong with a frame the stack sent, or undefined. `configured`: whether the stack has
   * an address now (without one it may send only DHCP, from 0.0.0.0).
   */
  problemWithSent(frame: Uint8Array, configured: boolean): string | undefined {
    if (frame.length < 60) return `${frame.length} bytes, not padded to 60`;
    if (frame.length > 14 + MTU) return `${frame.length} bytes, above the MTU`;
    const ethernet = EthernetRepr.parse(frame);
    if (ethernet instanceof WireError) return `ethernet: ${ethernet.message}`;
    if (ethernet.src !== OUR_MAC) return `source MAC ${MacAddress.format(ethernet.src)}`;
    if (ethernet.vlan !== undefined) return "a VLAN tag";
    if (MacAddress.isMulticast(ethernet.dst) && !MacAddress.isBroadcast(ethernet.dst) && Math.floor(ethernet.dst / 2 ** 24) !== 0x01005e) {
      return `group destination ${MacAddress.format(ethernet.dst)}`;
    }
    const payload = frame.subarray(14);
    if (ethernet.etherType === EtherType.Arp) {
      const arp = ArpRepr.parse(payload);
      if (arp instanceof WireError) return `arp: ${arp.message}`;
      if (arp.senderHardwareAddress !== OUR_MAC || arp.senderProtocolAddress !== OURS) return "arp: not from our MAC and address";
      if (!configured) return "arp sent without an address";
      return undefined;
    }
    if (ethernet.etherType !== EtherType.Ipv4) return `EtherType 0x${ethernet.etherType.toString(16)}`;
    const header = Ipv4Repr.parse(payload);
    if (header instanceof WireError) return `ipv4: ${header.message}`;
    if (header.src !== OURS && !(Ipv4Address.isUnspecified(header.src) && !configured)) return `ipv4 source ${Ipv4Address.format(header.src)}`;
    if (Ipv4Address.isUnspecified(header.dst) || Ipv4Address.isLoopback(header.dst)) return `ipv4 destination ${Ipv4Address.format(header.dst)}`;
    const ipPayload = payload.subarray(20, 20 + header.payloadLength);
    if (header.moreFragments || header.fragmentOffset !== 0) {
      if (header.dontFragment) return "a fragment with DF";
      if (header.moreFragments && (ipPayload.length === 0 || ipPayload.length % 8 !== 0)) return `a non-last fragment of ${ipPayload.length} bytes`;
      return this.reassembleSent(header, ipPayload);
    }
    return problemWithTransport(header, ipPayload, ethernet.dst);
  }

  private reassembleSent(header: Ipv4Repr, payload: Uint8Array): string | undefined {
    const key = `${header.dst}:${header.protocol}:${header.identification}`;
    let entry = this.outgoingFragments.get(key);
    if (entry === undefined) {
      if (this.outgoingFragments.size > 256) this.outgoingFragments.clear();
      entry = { parts: [], total: -1, header };
      this.outgoingFragments.set(key, entry);
    }
    entry.parts.push([header.fragmentOffset, payload.slice()]);
    if (!header.moreFragments) entry.total = header.fragmentOffset + payload.length;
    if (header.fragmentOffset === 0) entry.header = header;
    if (entry.total < 0) return undefined;
    const bytes = entry.parts.reduce((sum, [, part]) => sum + part.length, 0);
    if (bytes < entry.total) return undefined;
    this.outgoingFragments.delete(key);
    if (bytes > entry.total) return `fragments of datagram ${header.identification} overlap (${bytes} bytes for ${entry.total})`;
    const whole = new Uint8Array(entry.total);
    for (const [offset, part] of entry.parts) {
      if (offset + part.length > whole.length) return `fragment at ${offset} beyond the end ${entry.total}`;
      whole.set(part, offset);
    }
    this.reassembled++;
    return problemWithTransport({ ...entry.header, payloadLength: entry.total }, whole, MacAddress.fromNumber(0));
  }
}

/** What is wrong with a counter snapshot after `fed` frames, or undefined. */
export function counterProblem(counters: StackCounters, fed: number): string | undefined {
  const unbalanced = unbalancedCounters(counters);
  if (unbalanced.length > 0) return `counters do not balance: ${unbalanced.join("; ")}`;
  if (counters.ethernet.rxFrames !== fed) return `ethernet.rxFrames ${counters.ethernet.rxFrames}, ${fed} frames fed`;
  const ipv4 = counters.ipv4;
  const arp = counters.arp;
  const bounds: [string, number, number][] = [
    ["ipv4.reassembliesPending", ipv4.reassembliesPending, DEFAULT_IPV4_LIMITS.maxReassemblies],
    ["ipv4.reassemblyBytes", ipv4.reassemblyBytes, DEFAULT_IPV4_LIMITS.maxReassemblyBytes],
    ["ipv4.fragmentsPending", ipv4.fragmentsPending, DEFAULT_IPV4_LIMITS.maxReassemblies * DEFAULT_IPV4_LIMITS.maxFragments],
    ["arp.cacheEntries", arp.cacheEntries, DEFAULT_ARP_LIMITS.cacheSize],
    ["arp.queuedPackets", arp.queuedPackets, DEFAULT_ARP_LIMITS.queueTotal],
  ];
  for (const [name, value, limit] of bounds) {
    if (value > limit || value < 0) return `${name} = ${value}, outside 0..${limit}`;
  }
  return undefined;
}

/** The largest values the gauges reached. */
export interface Peaks {
  reassembliesPending: number;
  reassemblyBytes: number;
  arpCacheEntries: number;
  arpQueuedPackets: number;
}

export function updatePeaks(peaks: Peaks, counters: StackCounters): void {
  peaks.reassembliesPending = Math.max(peaks.reassembliesPending, counters.ipv4.reassembliesPending);
  peaks.reassemblyBytes = Math.max(peaks.reassemblyBytes, counters.ipv4.reassemblyBytes);
  peaks.arpCacheEntries = Math.max(peaks.arpCacheEntries, counters.arp.cacheEntries);
  peaks.arpQueuedPackets = Math.max(peaks.arpQueuedPackets, counters.arp.queuedPackets);
}

/** What is wrong with a transport message we sent, whole (not a fragment). */
function problemWithTransport(header: Ipv4Repr, payload: Uint8Array, dstMac: MacAddress): string | undefined {
  if (header.protocol === IpProtocol.Icmp) {
    const message = Icmpv4Repr.parse(payload);
    if (message instanceof WireError) return `icmp: ${message.message}`;
    if (message.kind === "destination-unreachable" || message.kind === "time-exceeded") {
      // RFC 1122 §3.2.2: errors go to one host, never to a group or broadcast.
      if (!Ipv4Address.isUnicast(header.dst) || CONFIG.cidr.isBroadcast(header.dst) || MacAddress.isMulticast(dstMac)) {
        return `an ICMP error to ${Ipv4Address.format(header.dst)} (${MacAddress.format(dstMac)})`;
      }
      if (payload.length > 576 - 20) return `an ICMP error of ${payload.length} bytes (RFC 1812 §4.3.2.3: 576 in all)`;
    }
    return undefined;
  }
  if (header.protocol === IpProtocol.Udp) {
    const udp = UdpPacket.check(payload);
    if (udp instanceof WireError) return `udp: ${udp.message}`;
    if (udp.length !== payload.length) return `udp: length ${udp.length} in a ${payload.length}-byte payload`;
    if (udp.checksum === 0) return "udp: no checksum";
    if (!checksumVerifies(sumBytes(payload, 0, payload.length, ipv4PseudoHeaderSum(header.src, header.dst, IpProtocol.Udp, payload.length)))) return "udp: bad checksum";
    return undefined;
  }
  return `IP protocol ${header.protocol}`;
}

/**
 * The fuzzer's generator of valid frames, seeded: Ethernet, ARP, IPv4 (with options, VLAN tags,
 * unknown protocols), ICMP, UDP and fragmented datagrams (in order or not, with losses, duplicates
 * and overlaps) from the host's peers, and frames that answer or quote what the stack itself sent
 * (replies to its pings, ARP replies to its requests, ICMP errors about its datagrams, its own
 * frames mirrored or looped back). test/fuzz/mutator.ts damages most of them.
 */
import { ethernetFrame, arpPacket, icmpMessage, ipv4Packet, udpDatagram, type SeededRandom } from "../../src/lib/net/testing/virtual-link.ts";
import { ArpRepr, EtherType, EthernetRepr, finishChecksum, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, MacAddress, sumBytes, WireError } from "atoll/wire";
import { CONFIG, ECHO_PORT, GATEWAY, ip, OUR_MAC, OURS, PEERS, peerAddress, peerMac, QUEUE_PORT, READ_PORT, CLOSED_PORT, SUBNET_BROADCAST, type SentFrames } from "./host.ts";

/** A valid frame and the probability that the fuzzer mutates it before feeding it. */
export interface GeneratedFrame {
  readonly frame: Uint8Array;
  readonly mutation: number;
}

/** Records frames made under a generator's name ("udp", "fragments", ...). */
type Push = (name: string, ...frames: Uint8Array[]) => void;

export class FrameGenerator {
  /** Frames made by each generator. */
  readonly generated: Record<string, number> = {};

  constructor(
    private readonly random: SeededRandom,
    /** What the stack sent lately, kept up to date by the fuzzer. */
    private readonly seen: SentFrames,
  ) {}

  /** The next valid frames, each with the probability that it is to be mutated. */
  generate(): GeneratedFrame[] {
    const frames: GeneratedFrame[] = [];
    this.generateInto((name, ...made) => {
      this.generated[name] = (this.generated[name] ?? 0) + 1;
      // Most frames are mutated; the pieces of a fragmented datagram less often, so that some reassemble.
      const mutation = made.length > 1 ? 0.08 : 0.72;
      for (const frame of made) frames.push({ frame, mutation });
    });
    return frames;
  }

  private generateInto(push: Push): void {
    const random = this.random;
    const peer = random.below(4) === 0 ? 0 : random.below(PEERS);
    const src = peerAddress(peer);
    const mac = peerMac(peer);
    const toUs = (packet: Uint8Array, dst: MacAddress = OUR_MAC): Uint8Array => ethernetFrame(dst, mac, EtherType.Ipv4, packet);
    const kind = random.below(100);
    if (kind < 12) {
      const operation = random.below(3) === 0 ? "reply" : "request";
      const variants: [string, Ipv4Address, Ipv4Address][] = [
        ["arp for us", src, OURS],
        ["arp gratuitous", src, src],
        ["arp probe", Ipv4Address.UNSPECIFIED, OURS],
        ["arp about others", src, peerAddress(random.below(PEERS))],
        ["arp conflict", OURS, OURS],
      ];
      const [name, sender, target] = variants[random.below(random.below(8) === 0 ? 5 : 4)] as [string, Ipv4Address, Ipv4Address];
      const dst = operation === "reply" && random.below(2) === 0 ? OUR_MAC : MacAddress.BROADCAST;
      const packet = arpPacket({ operation, senderHardwareAddress: mac, senderProtocolAddress: sender, targetHardwareAddress: operation === "reply" ? OUR_MAC : MacAddress.UNSPECIFIED, targetProtocolAddress: target });
      push(name, ethernetFrame(dst, mac, EtherType.Arp, packet));
      return;
    }
    if (kind < 30) {
      const data = this.bytes(random.below(6) === 0 ? random.below(1473) : random.below(120));
      const echo = icmpMessage({ kind: "echo-request", identifier: random.below(0x10000), sequence: random.below(0x10000), data });
      const where = random.below(12);
      if (where === 0) push("echo to broadcast", ethernetFrame(MacAddress.BROADCAST, mac, EtherType.Ipv4, ipv4Packet({ src, dst: Ipv4Address.BROADCAST, protocol: IpProtocol.Icmp }, echo)));
      else if (where === 1) push("echo to all-hosts", ethernetFrame(MacAddress.forIpv4Multicast(ip(224, 0, 0, 1)), mac, EtherType.Ipv4, ipv4Packet({ src, dst: ip(224, 0, 0, 1), protocol: IpProtocol.Icmp, ttl: 1 }, echo)));
      else push("echo request", toUs(ipv4Packet({ src, dst: OURS, protocol: IpProtocol.Icmp, identification: random.below(0x10000) }, echo)));
      return;
    }
    if (kind < 48) {
      const ports = [ECHO_PORT, ECHO_PORT, ECHO_PORT, QUEUE_PORT, READ_PORT, CLOSED_PORT, 68, 1 + random.below(0xffff)];
      const dstPort = ports[random.below(ports.length)] as number;
      const payload = this.bytes(random.below(6) === 0 ? random.below(1473) : random.below(200));
      const datagram = udpDatagram(src, OURS, 1024 + random.below(60000), dstPort, payload);
      if (random.below(10) === 0) datagram.fill(0, 6, 8); // no checksum (RFC 768)
      if (random.below(10) === 0) {
        const broadcast = random.below(2) === 0 ? Ipv4Address.BROADCAST : SUBNET_BROADCAST;
        const bcast = udpDatagram(src, broadcast, 1024, dstPort, payload);
        push("udp broadcast", ethernetFrame(MacAddress.BROADCAST, mac, EtherType.Ipv4, ipv4Packet({ src, dst: broadcast, protocol: IpProtocol.Udp }, bcast)));
      } else {
        push("udp", toUs(ipv4Packet({ src, dst: OURS, protocol: IpProtocol.Udp, identification: random.below(0x10000), dontFragment: random.below(2) === 0 }, datagram)));
      }
      return;
    }
    if (kind < 62) {
      push("fragments", ...this.fragments(src, mac));
      return;
    }
    if (kind < 76) {
      this.reflect(src, mac, push);
      return;
    }
    if (kind < 82) {
      // IPv4 options (IHL 6 to 15): NOPs and an end, with a valid checksum.
      const optionWords = 1 + random.below(10);
      const inner = random.below(2) === 0
        ? icmpMessage({ kind: "echo-request", identifier: 1, sequence: random.below(0x10000), data: this.bytes(random.below(64)) })
        : udpDatagram(src, OURS, 5000, ECHO_PORT, this.bytes(random.below(64)));
      const plain = ipv4Packet({ src, dst: OURS, protocol: inner[0] === 8 ? IpProtocol.Icmp : IpProtocol.Udp }, inner);
      const withOptions = new Uint8Array(plain.length + optionWords * 4);
      withOptions.set(plain.subarray(0, 20));
      withOptions.fill(1, 20, 20 + optionWords * 4 - 1); // NOP ... END
      withOptions.set(plain.subarray(20), 20 + optionWords * 4);
      const view = new Ipv4Packet(withOptions);
      view.headerLength = 20 + optionWords * 4;
      view.totalLength = withOptions.length;
      view.fillChecksum();
      push("ipv4 options", toUs(withOptions));
      return;
    }
    if (kind < 86) {
      // Priority-tagged (VLAN 0, accepted) or another VLAN (dropped).
      const inner = ipv4Packet({ src, dst: OURS, protocol: IpProtocol.Icmp }, icmpMessage({ kind: "echo-request", identifier: 2, sequence: random.below(0x10000), data: this.bytes(random.below(64)) }));
      const frame = new Uint8Array(18 + inner.length);
      EthernetRepr.emit({ dst: OUR_MAC, src: mac, etherType: EtherType.Ipv4, vlan: { id: random.below(3) === 0 ? random.below(4096) : 0, priority: random.below(8), dropEligible: false } }, frame);
      frame.set(inner, 18);
      push("vlan", frame);
      return;
    }
    if (kind < 91) {
      // Protocols nobody handles (TCP, IGMP, ...): protocol unreachable goes back.
      const protocols = [IpProtocol.Tcp, 2, 47, 50, 132, 255];
      push("other protocol", toUs(ipv4Packet({ src, dst: OURS, protocol: protocols[random.below(protocols.length)] as number }, this.bytes(random.below(80)))));
      return;
    }
    if (kind < 95) {
      // ICMP types we do not act on, and parameter problem.
      const type = [4, 5, 12, 13, 14, 15, 16, 17, 18, 40, 200][random.below(11)] as number;
      push("icmp other", toUs(ipv4Packet({ src, dst: OURS, protocol: IpProtocol.Icmp }, icmpMessage({ kind: "other", type, code: random.below(4), restOfHeader: random.nextUint32(), data: this.bytes(random.below(64)) }))));
      return;
    }
    // Not for us at the link layer, or not IPv4/ARP.
    const dsts = [MacAddress.fromOctets(2, 9, 9, 9, 9, 9), MacAddress.forIpv4Multicast(ip(239, 1, 2, 3)), MacAddress.fromOctets(0x33, 0x33, 0, 0, 0, 1), MacAddress.BROADCAST];
    const types = [EtherType.Ipv6, 0x88cc, 0x8863, EtherType.ServiceVlan, EtherType.Ipv4];
    push("other link traffic", ethernetFrame(dsts[random.below(dsts.length)] as MacAddress, mac, types[random.below(types.length)] as number, ipv4Packet({ src, dst: peerAddress(1), protocol: IpProtocol.Udp }, this.bytes(random.below(100)))));
  }

  /** A datagram in fragments: in order or not, with duplicates, omissions and overlaps now and then. */
  private fragments(src: Ipv4Address, mac: MacAddress): Uint8Array[] {
    const random = this.random;
    const sizeKind = random.below(20);
    const size = sizeKind === 0 ? 20_000 + random.below(45_500) : sizeKind < 4 ? random.below(12_000) : 8 + random.below(3000);
    const icmp = random.below(2) === 0;
    const identification = random.below(0x10000);
    const transport = icmp
      ? icmpMessage({ kind: "echo-request", identifier: 3, sequence: identification, data: this.bytes(Math.max(0, size - 8)) })
      : udpDatagram(src, OURS, 4000, random.below(4) === 0 ? QUEUE_PORT : ECHO_PORT, this.bytes(Math.max(0, size - 8)));
    // Full-sized fragments mostly, as Linux sends them; else any multiple of 8 up to 1480.
    const chunk = random.below(2) === 0 ? 1480 : 8 * Math.max(1 + random.below(185), Math.ceil(transport.length / 8 / 70));
    const pieces: Uint8Array[] = [];
    for (let offset = 0; offset < transport.length; offset += chunk) {
      const end = Math.min(offset + chunk, transport.length);
      const fields = { src, dst: OURS, protocol: icmp ? IpProtocol.Icmp : IpProtocol.Udp, identification, fragmentOffset: offset, moreFragments: end < transport.length };
      pieces.push(ethernetFrame(OUR_MAC, mac, EtherType.Ipv4, ipv4Packet(fields, transport.subarray(offset, end))));
      if (pieces.length > 80) break; // beyond maxFragments anyway; the rest never comes
    }
    const twist = random.below(10);
    if (twist === 0) shuffle(pieces, random);
    else if (twist === 1) pieces.reverse();
    else if (twist === 2 && pieces.length > 1) pieces.splice(random.below(pieces.length), 1); // one lost: times out
    else if (twist === 3) pieces.splice(random.below(pieces.length), 0, (pieces[random.below(pieces.length)] as Uint8Array).slice()); // a duplicate
    else if (twist === 4 && pieces.length > 1) {
      // An overlap: one fragment moved by 8 bytes.
      const index = random.below(pieces.length);
      const piece = (pieces[index] as Uint8Array).slice();
      const view = new Ipv4Packet(piece.subarray(14));
      view.fragmentOffset = Math.max(0, view.fragmentOffset + (random.below(2) === 0 ? 8 : -8));
      view.fillChecksum();
      pieces[index] = piece;
    }
    return pieces;
  }

  /** Frames that answer or quote what the stack itself sent. */
  private reflect(src: Ipv4Address, mac: MacAddress, push: Push): void {
    const random = this.random;
    const pool = random.below(2) === 0 && this.seen.solicitations.length > 0 ? this.seen.solicitations : this.seen.sent;
    const sent = pool[pool.length - 1 - random.below(Math.max(1, pool.length))];
    if (sent === undefined || sent.length < 34) {
      push("udp", ethernetFrame(OUR_MAC, mac, EtherType.Ipv4, ipv4Packet({ src, dst: OURS, protocol: IpProtocol.Udp }, udpDatagram(src, OURS, 1, ECHO_PORT, this.bytes(8)))));
      return;
    }
    const etherType = (sent[12] << 8) | sent[13];
    const to = MacAddress.read(sent, 0);
    const replyMac = MacAddress.isUnicast(to) ? to : mac;
    if (etherType === EtherType.Arp) {
      const request = ArpRepr.parse(sent.subarray(14));
      if (request instanceof WireError || request.operation !== "request") return this.reflectAsIs(sent, push);
      // Answer our request, as the host asked for would (or claim our address, now and then).
      const target = request.targetProtocolAddress === OURS ? peerAddress(1) : request.targetProtocolAddress;
      const answerMac = peerMac(PEERS + (target & 0x3f));
      push("arp reply to ours", ethernetFrame(OUR_MAC, answerMac, EtherType.Arp, arpPacket({ operation: "reply", senderHardwareAddress: answerMac, senderProtocolAddress: target, targetHardwareAddress: OUR_MAC, targetProtocolAddress: OURS })));
      return;
    }
    if (etherType !== EtherType.Ipv4) return this.reflectAsIs(sent, push);
    const header = Ipv4Repr.parse(sent.subarray(14));
    if (header instanceof WireError) return this.reflectAsIs(sent, push);
    const packet = sent.subarray(14, 14 + 20 + header.payloadLength);
    const payload = packet.subarray(20);
    const isEchoRequest = header.protocol === IpProtocol.Icmp && payload[0] === 8;
    const choice = pool === this.seen.solicitations && isEchoRequest && random.below(5) !== 0 ? 0 : random.below(4);
    if (choice === 0 && header.protocol === IpProtocol.Icmp && payload[0] === 8 && header.fragmentOffset === 0 && !header.moreFragments) {
      // The reply to our ping, from whoever we pinged.
      const reply = payload.slice();
      reply[0] = 0;
      const view = new DataView(reply.buffer);
      view.setUint16(2, 0);
      view.setUint16(2, finishChecksum(sumBytes(reply)));
      const from = Ipv4Address.isUnicast(header.dst) && !CONFIG.cidr.isBroadcast(header.dst) ? header.dst : src;
      push("echo reply to ours", ethernetFrame(OUR_MAC, replyMac, EtherType.Ipv4, ipv4Packet({ src: from, dst: OURS, protocol: IpProtocol.Icmp }, reply)));
      return;
    }
    if (choice <= 1) {
      // An ICMP error about our datagram (as a router or the destination would send).
      const quote = packet.subarray(0, 20 + Math.min(payload.length, random.below(2) === 0 ? 8 : 548));
      const types: [number, number][] = [[3, random.below(16)], [3, 4], [11, random.below(2)], [12, 0]];
      const [type, code] = types[random.below(types.length)] as [number, number];
      const message =
        type === 3
          ? icmpMessage({ kind: "destination-unreachable", code, nextHopMtu: code === 4 ? 576 + random.below(1000) : 0, original: quote })
          : type === 11
            ? icmpMessage({ kind: "time-exceeded", code, original: quote })
            : icmpMessage({ kind: "other", type, code, restOfHeader: 20 << 24, data: quote });
      const reporter = random.below(2) === 0 ? GATEWAY : Ipv4Address.isUnicast(header.dst) ? header.dst : src;
      push("icmp error about ours", ethernetFrame(OUR_MAC, replyMac, EtherType.Ipv4, ipv4Packet({ src: reporter, dst: OURS, protocol: IpProtocol.Icmp }, message)));
      return;
    }
    if (choice === 2) {
      // Mirrored: addresses swapped, so our own reply comes back to us.
      const copy = sent.slice();
      MacAddress.write(OUR_MAC, copy, 0);
      MacAddress.write(replyMac, copy, 6);
      const view = new Ipv4Packet(copy.subarray(14));
      view.src = header.dst;
      view.dst = OURS;
      view.fillChecksum();
      push("mirrored", copy);
      return;
    }
    this.reflectAsIs(sent, push);
  }

  private reflectAsIs(sent: Uint8Array, push: Push): void {
    push("own frame looped back", sent.slice());
  }

  private bytes(length: number): Uint8Array {
    const bytes = new Uint8Array(length);
    // Random bytes cost time; a pattern with a random start does as well for payloads.
    const start = this.random.below(256);
    for (let i = 0; i < length; i++) bytes[i] = (start + i * 7) & 0xff;
    return bytes;
  }
}

function shuffle<T>(items: T[], random: SeededRandom): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.below(i + 1);
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
}

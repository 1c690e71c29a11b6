/**
 * The fuzzer's mutator, seeded: damages a valid frame by random bytes, bit flips, byte
 * overwrites, truncation (near header boundaries most often), extension, splices with frames fed
 * before, and field-aware mutations of every Ethernet, ARP, IPv4, ICMP and UDP header field, of
 * the length fields and of the fragment fields, and then fixes the checksums up now and then so
 * that the damage gets past them to the layers above.
 */
import type { SeededRandom } from "../../src/lib/net/testing/virtual-link.ts";
import { EtherType, finishChecksum, IpProtocol, Ipv4Address, Ipv4Packet, MacAddress, sumBytes, UdpPacket, WireError } from "atoll/wire";
import { CLOSED_PORT, ECHO_PORT, GATEWAY, ip, MAX_FRAME, NETWORK, OFF_LINK, OUR_MAC, OURS, peerAddress, peerMac, QUEUE_PORT, READ_PORT, SUBNET_BROADCAST } from "./host.ts";

const INTERESTING_8 = [0, 1, 2, 4, 5, 6, 8, 15, 0x40, 0x45, 0x46, 0x4f, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_16 = [0, 1, 7, 8, 9, 19, 20, 21, 27, 28, 60, 0x7f, 0x80, 0xff, 0x100, 0x5dc, 0x5dd, 0x5f0, 0x600, 0x800, 0x806, 0x8100, 0x86dd, 0x1fff, 0x2000, 0x3fff, 0x4000, 0x7fff, 0x8000, 0xfff8, 0xfffe, 0xffff];

export type Mutation = "none" | "field" | "bitflip" | "overwrite" | "truncate" | "extend" | "random" | "splice" | "length" | "fragment";

export class FrameMutator {
  /** How many frames each mutation (or "none") made. */
  readonly mutations: Partial<Record<Mutation, number>> = {};

  constructor(
    private readonly random: SeededRandom,
    /** Recent frames fed, for splices; kept up to date by the fuzzer. */
    private readonly fed: readonly Uint8Array[],
  ) {}

  /** A valid frame fed as it is (cut to what a TAP delivers). */
  keep(valid: Uint8Array): Uint8Array {
    this.mutations.none = (this.mutations.none ?? 0) + 1;
    return valid.length > MAX_FRAME ? valid.subarray(0, MAX_FRAME) : valid;
  }

  /** A damaged copy of a valid frame. */
  mutate(valid: Uint8Array): Uint8Array {
    const random = this.random;
    const roll = random.below(100);
    let kind: Mutation;
    let frame: Uint8Array;
    if (roll < 17) {
      kind = "field";
      frame = valid.slice();
      for (let n = 1 + random.below(3); n > 0; n--) this.mutateField(frame);
      this.fixUp(frame, 0.85);
    } else if (roll < 54) {
      kind = "bitflip";
      frame = valid.slice();
      for (let n = 1 + random.below(6); n > 0 && frame.length > 0; n--) {
        const index = random.below(4) === 0 ? random.below(frame.length) : random.below(Math.min(frame.length, 64));
        frame[index] ^= 1 << random.below(8);
      }
      this.fixUp(frame, 0.5);
    } else if (roll < 60) {
      kind = "overwrite";
      frame = valid.slice();
      for (let n = 1 + random.below(4); n > 0 && frame.length > 0; n--) frame[random.below(frame.length)] = random.below(256);
      this.fixUp(frame, 0.5);
    } else if (roll < 70) {
      kind = "truncate";
      // Cut near header boundaries more often than anywhere.
      const cuts = [13, 14, 17, 18, 21, 33, 34, 35, 41, 42, 43, 14 + 27, 14 + 28];
      const at = random.below(3) === 0 ? random.below(valid.length + 1) : (cuts[random.below(cuts.length)] as number);
      frame = valid.slice(0, Math.min(at, valid.length));
      if (random.below(2) === 0) this.fixUp(frame, 1);
    } else if (roll < 75) {
      kind = "extend";
      frame = new Uint8Array(Math.min(MAX_FRAME, valid.length + 1 + random.below(200)));
      frame.set(valid.subarray(0, frame.length));
      random.fill(frame.subarray(valid.length));
    } else if (roll < 80) {
      kind = "random";
      frame = new Uint8Array(random.below(4) === 0 ? random.below(MAX_FRAME + 1) : random.below(120));
      random.fill(frame);
      if (frame.length >= 14 && random.below(2) === 0) {
        MacAddress.write(random.below(4) === 0 ? MacAddress.BROADCAST : OUR_MAC, frame, 0);
        frame[6] &= 0xfe;
        const types = [EtherType.Ipv4, EtherType.Arp, EtherType.Vlan];
        const type = types[random.below(types.length)] as number;
        frame[12] = type >> 8;
        frame[13] = type & 0xff;
        if (type === EtherType.Ipv4 && frame.length >= 34) {
          frame[14] = 0x45;
          if (random.below(2) === 0) this.fixUp(frame, 1);
        }
      }
    } else if (roll < 85) {
      kind = "splice";
      const other = this.fed[random.below(Math.max(1, this.fed.length))] ?? valid;
      const cut = random.below(Math.min(valid.length, other.length) + 1);
      frame = new Uint8Array(Math.min(MAX_FRAME, cut + Math.max(0, other.length - cut)));
      frame.set(valid.subarray(0, cut));
      frame.set(other.subarray(cut, cut + frame.length - cut), cut);
      this.fixUp(frame, 0.7);
    } else if (roll < 93) {
      kind = "length";
      frame = valid.slice();
      this.mutateLengths(frame);
    } else {
      kind = "fragment";
      frame = valid.slice();
      this.mutateFragmentFields(frame);
    }
    this.mutations[kind] = (this.mutations[kind] ?? 0) + 1;
    return frame.length > MAX_FRAME ? frame.subarray(0, MAX_FRAME) : frame;
  }

  /** Where the IPv4 header starts (14, or 18 behind a tag), or -1 if the frame carries none. */
  private ipOffset(frame: Uint8Array): number {
    if (frame.length < 14) return -1;
    let type = (frame[12] << 8) | frame[13];
    let offset = 14;
    if (type === EtherType.Vlan && frame.length >= 18) {
      type = (frame[16] << 8) | frame[17];
      offset = 18;
    }
    if (type !== EtherType.Ipv4 || frame.length < offset + 20) return -1;
    return offset;
  }

  private mutateField(frame: Uint8Array): void {
    const random = this.random;
    const ipAt = this.ipOffset(frame);
    const ipAddresses = [OURS, GATEWAY, peerAddress(3), Ipv4Address.UNSPECIFIED, Ipv4Address.BROADCAST, SUBNET_BROADCAST, NETWORK, ip(224, 0, 0, 1), ip(239, 1, 2, 3), ip(127, 0, 0, 1), OFF_LINK, ip(240, 0, 0, 1), Ipv4Address.fromNumber(random.nextUint32())];
    const macs = [OUR_MAC, MacAddress.BROADCAST, MacAddress.forIpv4Multicast(ip(224, 0, 0, 1)), MacAddress.fromNumber(0), peerMac(1), MacAddress.fromOctets(1, 2, 3, 4, 5, 6), MacAddress.fromOctets(2, random.below(256), 0, 0, 0, random.below(256))];
    const pick = <T>(values: readonly T[]): T => values[random.below(values.length)] as T;
    const set16 = (offset: number, value: number): void => {
      if (offset + 2 > frame.length) return;
      frame[offset] = (value >> 8) & 0xff;
      frame[offset + 1] = value & 0xff;
    };
    const fields: (() => void)[] = [
      () => frame.length >= 6 && MacAddress.write(pick(macs), frame, 0),
      () => frame.length >= 12 && MacAddress.write(pick(macs), frame, 6),
      () => set16(12, pick([EtherType.Ipv4, EtherType.Arp, EtherType.Vlan, EtherType.Ipv6, EtherType.ServiceVlan, 0x0600, 0x05ff, 0x0040, random.below(0x10000)])),
    ];
    const etherType = frame.length >= 14 ? (frame[12] << 8) | frame[13] : -1;
    if (etherType === EtherType.Arp && frame.length >= 14 + 28) {
      const a = 14;
      fields.push(
        () => set16(a, pick([1, 6, 0, random.below(0x10000)])),
        () => set16(a + 2, pick([0x0800, 0x86dd, 0])),
        () => (frame[a + 4] = pick([6, 0, 8, 255])),
        () => (frame[a + 5] = pick([4, 0, 16, 255])),
        () => set16(a + 6, pick([1, 2, 3, 4, 8, 9, 0, 0xffff])),
        () => MacAddress.write(pick(macs), frame, a + 8),
        () => Ipv4Address.write(pick(ipAddresses), frame, a + 14),
        () => MacAddress.write(pick(macs), frame, a + 18),
        () => Ipv4Address.write(pick(ipAddresses), frame, a + 24),
      );
    }
    if (ipAt >= 0) {
      const a = ipAt;
      const ihl = (frame[a] & 0x0f) * 4;
      fields.push(
        () => (frame[a] = (frame[a] & 0x0f) | (pick([4, 4, 6, 0, 15]) << 4)),
        () => (frame[a] = (frame[a] & 0xf0) | pick([0, 1, 4, 5, 6, 7, 15])),
        () => (frame[a + 1] = random.below(256)),
        () => set16(a + 2, pick(INTERESTING_16)),
        () => set16(a + 4, pick([0, 1, 0xffff, random.below(0x10000)])),
        () => set16(a + 6, pick([0, 0x4000, 0x2000, 0x8000, 0x2001, 0x1fff, 0x3fff, random.below(0x10000)])),
        () => (frame[a + 8] = pick([0, 1, 64, 255])),
        () => (frame[a + 9] = pick([1, 1, 17, 17, 6, 2, 0, 255])),
        () => Ipv4Address.write(pick(ipAddresses), frame, a + 12),
        () => Ipv4Address.write(pick(ipAddresses), frame, a + 16),
      );
      const t = a + Math.max(20, ihl);
      const protocol = frame[a + 9];
      if (protocol === IpProtocol.Icmp && frame.length >= t + 8) {
        fields.push(
          () => (frame[t] = pick([0, 3, 4, 5, 8, 11, 12, 13, 14, 17, 255])),
          () => (frame[t + 1] = pick(INTERESTING_8)),
          () => set16(t + 4, random.below(0x10000)),
          () => set16(t + 6, pick(INTERESTING_16)),
        );
        if (frame.length >= t + 28) {
          // The quoted datagram of an error: its header fields.
          fields.push(
            () => (frame[t + 8] = pick(INTERESTING_8)),
            () => set16(t + 10, pick(INTERESTING_16)),
            () => (frame[t + 17] = pick([1, 17, 6, 0])),
            () => Ipv4Address.write(pick(ipAddresses), frame, t + 20),
            () => Ipv4Address.write(pick(ipAddresses), frame, t + 24),
          );
        }
      }
      if (protocol === IpProtocol.Udp && frame.length >= t + 8) {
        fields.push(
          () => set16(t, pick([0, 7, 53, 67, 68, 0xffff, random.below(0x10000)])),
          () => set16(t + 2, pick([0, ECHO_PORT, QUEUE_PORT, READ_PORT, CLOSED_PORT, 67, 68, 0xffff])),
          () => set16(t + 4, pick(INTERESTING_16)),
          () => set16(t + 6, pick([0, 0xffff, random.below(0x10000)])),
        );
      }
    }
    (pick(fields) as () => void)();
  }

  private mutateLengths(frame: Uint8Array): void {
    const random = this.random;
    const a = this.ipOffset(frame);
    if (a < 0) {
      frame[random.below(Math.max(1, frame.length))] ^= 0xff;
      return;
    }
    const available = frame.length - a;
    const ihl = (frame[a] & 0x0f) * 4;
    const choices = [0, 1, 19, 20, ihl - 1, ihl, ihl + 7, ihl + 8, available - 1, available, available + 1, 0xffff, random.below(0x10000)];
    const which = random.below(3);
    if (which === 0) {
      const total = (choices[random.below(choices.length)] as number) & 0xffff;
      frame[a + 2] = total >> 8;
      frame[a + 3] = total & 0xff;
    } else if (which === 1) {
      frame[a] = (frame[a] & 0xf0) | random.below(16);
    } else if (frame[a + 9] === IpProtocol.Udp && frame.length >= a + ihl + 8) {
      const udpAvailable = available - ihl;
      const length = [0, 7, 8, 9, udpAvailable - 1, udpAvailable, udpAvailable + 1, 0xffff][random.below(8)] as number;
      frame[a + ihl + 4] = (length >> 8) & 0xff;
      frame[a + ihl + 5] = length & 0xff;
    }
    this.fixUp(frame, 0.9);
  }

  private mutateFragmentFields(frame: Uint8Array): void {
    const random = this.random;
    const a = this.ipOffset(frame);
    if (a < 0) return;
    const view = new Ipv4Packet(frame.subarray(a));
    switch (random.below(5)) {
      case 0:
        view.moreFragments = !view.moreFragments;
        break;
      case 1:
        view.fragmentOffset = random.below(3) === 0 ? 65528 : 8 * random.below(8192);
        break;
      case 2:
        view.identification = random.below(4);
        break;
      case 3:
        view.moreFragments = true;
        view.fragmentOffset = 8 * random.below(16);
        break;
      default:
        view.dontFragment = true;
        view.moreFragments = random.below(2) === 0;
    }
    this.fixUp(frame, 0.95);
  }

  /**
   * With probability `p` for each, recomputes the IPv4 header checksum and the ICMP or UDP
   * checksum, so that a mutation gets past the checksums to the code behind them.
   */
  private fixUp(frame: Uint8Array, p: number): void {
    const random = this.random;
    const a = this.ipOffset(frame);
    if (a < 0) return;
    const header = Ipv4Packet.checkHeader(frame.subarray(a));
    if (header instanceof WireError) return;
    const ihl = header.headerLength;
    const total = header.totalLength;
    const isFragment = header.moreFragments || header.fragmentOffset !== 0;
    if (!isFragment && total >= ihl && a + total <= frame.length && random.chance(p)) {
      const payload = frame.subarray(a + ihl, a + total);
      if (header.protocol === IpProtocol.Icmp && payload.length >= 8) {
        payload[2] = 0;
        payload[3] = 0;
        const sum = finishChecksum(sumBytes(payload));
        payload[2] = sum >> 8;
        payload[3] = sum & 0xff;
      } else if (header.protocol === IpProtocol.Udp && payload.length >= 8) {
        const udp = UdpPacket.check(payload);
        if (!(udp instanceof WireError) && udp.checksum !== 0) udp.fillChecksum(header.src, header.dst);
      }
    }
    if (random.chance(p)) header.fillChecksum();
  }
}

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  RECEIVE_DROP_COUNTERS,
  STACK_LAYERS,
  totalReceiveDrops,
  unbalancedCounters,
  type Stack,
  type StackCounters,
  type StackLayer,
} from "atoll/net";
import {
  RecordingLog,
  SeededRandom,
  arpPacket,
  ethernetFrame,
  icmpMessage,
  ipv4Packet,
  udpDatagram,
  type VirtualClock,
  type VirtualPort,
} from "../../../src/lib/net/testing/virtual-link.ts";
import { EtherType, IpProtocol, Ipv4Address, Ipv4Packet, MacAddress, WireError, type ArpRepr } from "atoll/wire";
import { virtualStack } from "../../fuzz/virtual-stack.ts";
import { config, ip } from "./network.ts";

const OURS = ip("198.18.0.2");
const PEER = ip("198.18.0.1");
const PEER_MAC = MacAddress.fromOctets(2, 0, 0, 0, 0xee, 1);

function setup(): { clock: VirtualClock; stack: Stack; port: VirtualPort } {
  const { clock, port, stack } = virtualStack({ ipv4: config("198.18.0.2/24@198.18.0.1"), seed: 3, log: new RecordingLog().factory });
  const echo = stack.udp.bind(7);
  echo.onDatagram((payload, from) => echo.send(payload, from));
  stack.udp.bind(8); // a queue nobody reads
  clock.runUntilIdle();
  return { clock, stack, port };
}

const toUs = (packet: Uint8Array, dst: MacAddress = MacAddress.fromNumber(0)): Uint8Array => ethernetFrame(dst, PEER_MAC, EtherType.Ipv4, packet);
const ipv4 = (protocol: number, payload: Uint8Array, fields: Partial<Parameters<typeof ipv4Packet>[0]> = {}): Uint8Array =>
  ipv4Packet({ src: PEER, dst: OURS, protocol, ...fields }, payload);
const udp = (dstPort: number, payload: Uint8Array = new Uint8Array(4), src = PEER, dst = OURS): Uint8Array => udpDatagram(src, dst, 1000, dstPort, payload);
const arpFrame = (repr: Partial<ArpRepr>, dst = MacAddress.BROADCAST): Uint8Array =>
  ethernetFrame(
    dst,
    PEER_MAC,
    EtherType.Arp,
    arpPacket({
      operation: "request",
      senderHardwareAddress: PEER_MAC,
      senderProtocolAddress: PEER,
      targetHardwareAddress: MacAddress.UNSPECIFIED,
      targetProtocolAddress: OURS,
      ...repr,
    }),
  );

function withByte(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[index] = value;
  return copy;
}

function dropsBy(counters: StackCounters): Map<string, number> {
  const drops = new Map<string, number>();
  for (const layer of STACK_LAYERS) {
    const values: Readonly<Record<string, number>> = counters[layer];
    for (const name of RECEIVE_DROP_COUNTERS[layer]) drops.set(`${layer}.${name}`, values[name] ?? 0);
  }
  return drops;
}

describe("receive path accounting", () => {
  it("counts each bad frame of a battery under exactly the one reason expected", () => {
    const { clock, stack, port } = setup();
    const ourMac = stack.mac;
    const fix = (frame: Uint8Array): Uint8Array => {
      // Frames built with a placeholder destination go to our MAC.
      if (MacAddress.read(frame, 0) === MacAddress.fromNumber(0)) MacAddress.write(ourMac, frame, 0);
      return frame;
    };
    const validUdp = toUs(ipv4(IpProtocol.Udp, udp(7)));
    const badIpChecksum = validUdp.slice();
    badIpChecksum[14 + 10] ^= 0xff;
    const badUdpChecksum = validUdp.slice();
    badUdpChecksum[14 + 20 + 6] ^= 0x01;
    const badIcmpChecksum = toUs(ipv4(IpProtocol.Icmp, withByte(icmpMessage({ kind: "echo-request", identifier: 1, sequence: 1, data: new Uint8Array(4) }), 2, 0)));
    const tagged = new Uint8Array(18 + 28);
    tagged.set(validUdp.subarray(0, 12));
    tagged.set([0x81, 0x00, 0x00, 0x05, 0x08, 0x06], 12);
    const battery: [name: string, expected: `${StackLayer}.${string}`, frames: Uint8Array[]][] = [
      ["runt frame", "ethernet.malformed", [new Uint8Array(10)]],
      ["tag announced but cut", "ethernet.malformed", [withByte(withByte(validUdp.slice(0, 15), 12, 0x81), 13, 0x00)]],
      ["group source MAC", "ethernet.malformed", [withByte(validUdp, 6, 0x01)]],
      ["802.3 length field", "ethernet.unsupported", [withByte(withByte(validUdp, 12, 0x00), 13, 0x40)]],
      ["another VLAN", "ethernet.unsupported", [tagged]],
      ["another station", "ethernet.notForUs", [ethernetFrame(MacAddress.fromOctets(2, 9, 9, 9, 9, 9), PEER_MAC, EtherType.Ipv4, ipv4(IpProtocol.Udp, udp(7)))]],
      ["unjoined group", "ethernet.notForUs", [ethernetFrame(MacAddress.forIpv4Multicast(ip("239.9.9.9")), PEER_MAC, EtherType.Ipv4, ipv4(IpProtocol.Udp, udp(7)))]],
      ["IPv6", "ethernet.unknownEtherType", [withByte(withByte(validUdp, 12, 0x86), 13, 0xdd)]],
      ["ARP cut short", "arp.malformed", [arpFrame({}).subarray(0, 14 + 20)]],
      ["ARP for another hardware", "arp.unsupported", [withByte(arpFrame({}), 15, 6)]],
      ["RARP operation", "arp.unsupported", [withByte(arpFrame({}), 21, 3)]],
      ["ARP from a broadcast MAC", "arp.badSender", [arpFrame({ senderHardwareAddress: MacAddress.BROADCAST })]],
      ["ARP from a multicast address", "arp.badSender", [arpFrame({ senderProtocolAddress: ip("224.0.0.5") })]],
      ["ARP about others", "arp.notForUs", [arpFrame({ senderProtocolAddress: ip("198.18.0.60"), targetProtocolAddress: ip("198.18.0.61") })]],
      ["IP header cut", "ipv4.malformed", [toUs(ipv4(IpProtocol.Udp, udp(7)).subarray(0, 12))]],
      ["IP version 6", "ipv4.malformed", [withByte(validUdp, 14, 0x65)]],
      ["IP total length beyond the frame", "ipv4.malformed", [toUs(ipv4(IpProtocol.Udp, udp(7))).subarray(0, 14 + 24)]],
      ["IP header checksum", "ipv4.badChecksum", [badIpChecksum]],
      ["broadcast source", "ipv4.badSource", [toUs(ipv4(IpProtocol.Udp, udp(7), { src: Ipv4Address.BROADCAST }))]],
      ["another host's address", "ipv4.notForUs", [toUs(ipv4(IpProtocol.Udp, udp(7), { dst: ip("198.18.0.77") }))]],
      ["unknown protocol", "ipv4.unknownProtocol", [toUs(ipv4(99, new Uint8Array(8)))]],
      ["fragment of 12 bytes", "ipv4.fragmentMalformed", [toUs(ipv4(IpProtocol.Udp, new Uint8Array(12), { moreFragments: true }))]],
      ["fragment beyond 65535", "ipv4.fragmentTooLong", [toUs(ipv4(IpProtocol.Udp, new Uint8Array(16), { fragmentOffset: 65520 }))]],
      [
        "overlapping fragments",
        "ipv4.fragmentOverlap",
        [
          toUs(ipv4(IpProtocol.Udp, new Uint8Array(16), { identification: 9, moreFragments: true })),
          toUs(ipv4(IpProtocol.Udp, new Uint8Array(16), { identification: 9, moreFragments: true, fragmentOffset: 8 })),
        ],
      ],
      ["ICMP cut", "icmp.malformed", [toUs(ipv4(IpProtocol.Icmp, new Uint8Array([8, 0, 0, 0])))]],
      ["ICMP checksum", "icmp.badChecksum", [badIcmpChecksum]],
      ["ICMP error quoting garbage", "icmp.malformed", [toUs(ipv4(IpProtocol.Icmp, icmpMessage({ kind: "other", type: 3, code: 1, restOfHeader: 0, data: new Uint8Array(12) })))]],
      ["ICMP timestamp", "icmp.unhandledType", [toUs(ipv4(IpProtocol.Icmp, icmpMessage({ kind: "other", type: 13, code: 0, restOfHeader: 0, data: new Uint8Array(12) })))]],
      ["unsolicited echo reply", "icmp.unmatchedReplies", [toUs(ipv4(IpProtocol.Icmp, icmpMessage({ kind: "echo-reply", identifier: 1, sequence: 1, data: new Uint8Array(4) })))]],
      [
        "broadcast echo",
        "icmp.broadcastEcho",
        [ethernetFrame(MacAddress.BROADCAST, PEER_MAC, EtherType.Ipv4, ipv4(IpProtocol.Icmp, icmpMessage({ kind: "echo-request", identifier: 1, sequence: 1, data: new Uint8Array(4) }), { dst: Ipv4Address.BROADCAST }))],
      ],
      [
        "ICMP error about another host's datagram",
        "icmp.errorsUnmatched",
        [toUs(ipv4(IpProtocol.Icmp, icmpMessage({ kind: "destination-unreachable", code: 3, nextHopMtu: 0, original: ipv4Packet({ src: ip("198.18.0.9"), dst: PEER, protocol: IpProtocol.Udp }, udp(7, new Uint8Array(0), ip("198.18.0.9"), PEER)) })))],
      ],
      ["UDP cut", "udp.malformed", [toUs(ipv4(IpProtocol.Udp, udp(7).subarray(0, 6)))]],
      ["UDP length beyond the datagram", "udp.malformed", [toUs(ipv4(IpProtocol.Udp, withByte(udp(7), 5, 40)))]],
      ["UDP checksum", "udp.badChecksum", [badUdpChecksum]],
      ["UDP to a closed port", "udp.noListener", [toUs(ipv4(IpProtocol.Udp, udp(9)))]],
    ];
    for (const [name, expected, frames] of battery) {
      const before = stack.counters();
      for (const frame of frames) port.inject(fix(frame));
      clock.advance(1);
      const after = stack.counters();
      assert.equal(totalReceiveDrops(after) - totalReceiveDrops(before), frames.length, `${name}: counted ${totalReceiveDrops(after) - totalReceiveDrops(before)} drops for ${frames.length} frame(s)`);
      const changed = [...dropsBy(after)].filter(([counter, value]) => value !== dropsBy(before).get(counter));
      assert.deepEqual(changed.map(([counter]) => counter), [expected], name);
      assert.deepEqual(unbalancedCounters(after), [], name);
    }
    // A full queue, last: the 65th datagram nobody reads.
    const before = totalReceiveDrops(stack.counters());
    for (let n = 0; n < 65; n++) port.inject(fix(toUs(ipv4(IpProtocol.Udp, udp(8)))));
    clock.advance(1);
    assert.equal(stack.counters().udp.queueFull, 1);
    assert.equal(totalReceiveDrops(stack.counters()) - before, 1);
    assert.deepEqual(unbalancedCounters(stack.counters()), []);
  });

  it("survives seeded mutations of valid frames: no exception, every frame accounted for, memory bounded", () => {
    const { clock, stack, port } = setup();
    const ourMac = stack.mac;
    const random = new SeededRandom(20240601);
    const longDatagram = udp(7, new Uint8Array(3000).map((_, i) => i & 0xff));
    const fragmentsOf = (datagram: Uint8Array, identification: number): Uint8Array[] =>
      [0, 1480, 2960].map((offset) =>
        ipv4Packet(
          { src: PEER, dst: OURS, protocol: IpProtocol.Udp, identification, fragmentOffset: offset, moreFragments: offset + 1480 < datagram.length },
          datagram.subarray(offset, Math.min(offset + 1480, datagram.length)),
        ),
      );
    const quoted = ipv4Packet({ src: OURS, dst: PEER, protocol: IpProtocol.Udp }, udpDatagram(OURS, PEER, 7, 1000, new Uint8Array(8)));
    const seeds: Uint8Array[] = [
      arpFrame({}),
      arpFrame({ operation: "reply", targetHardwareAddress: ourMac }, ourMac),
      toUs(ipv4(IpProtocol.Icmp, icmpMessage({ kind: "echo-request", identifier: 7, sequence: 1, data: new Uint8Array(56) })), ourMac),
      toUs(ipv4(IpProtocol.Udp, udp(7, new Uint8Array(40))), ourMac),
      toUs(ipv4(IpProtocol.Udp, udp(9)), ourMac),
      toUs(ipv4(IpProtocol.Icmp, icmpMessage({ kind: "destination-unreachable", code: 3, nextHopMtu: 0, original: quoted })), ourMac),
      ethernetFrame(MacAddress.BROADCAST, PEER_MAC, EtherType.Ipv4, ipv4(IpProtocol.Udp, udp(7, new Uint8Array(4), PEER, Ipv4Address.BROADCAST), { dst: Ipv4Address.BROADCAST })),
      ...fragmentsOf(longDatagram, 1).map((packet) => toUs(packet, ourMac)),
    ];
    const mutate = (frame: Uint8Array): Uint8Array => {
      const copy = frame.slice();
      switch (random.below(6)) {
        case 0: // a few bit flips, headers mostly
          for (let n = 1 + random.below(4); n > 0; n--) {
            const index = random.below(Math.min(copy.length, 64));
            copy[index] ^= 1 << random.below(8);
          }
          return copy;
        case 1: // overwrite a byte anywhere
          copy[random.below(copy.length)] = random.below(256);
          return copy;
        case 2: // truncate
          return copy.subarray(0, random.below(copy.length + 1));
        case 3: {
          // extend with garbage
          const longer = new Uint8Array(copy.length + 1 + random.below(64));
          longer.set(copy);
          random.fill(longer.subarray(copy.length));
          return longer;
        }
        case 4: {
          // random bytes behind a plausible header
          const bytes = new Uint8Array(random.below(200));
          random.fill(bytes);
          bytes.set(copy.subarray(0, Math.min(14, bytes.length)));
          return bytes;
        }
        default:
          return copy; // valid, to keep state moving (reassemblies, ARP, replies)
      }
    };
    const frames = 30_000;
    for (let n = 0; n < frames; n++) {
      const seed = seeds[random.below(seeds.length)];
      assert.ok(seed !== undefined);
      const frame = mutate(seed);
      // Re-checksum the IPv4 header now and then, so that mutations reach the layers above.
      if (frame.length >= 34 && random.chance(0.5)) {
        const packet = Ipv4Packet.checkHeader(frame.subarray(14));
        if (!(packet instanceof WireError)) packet.fillChecksum();
      }
      port.inject(frame);
      if (n % 100 === 0) {
        clock.advance(random.below(2000));
        const counters = stack.counters();
        assert.deepEqual(unbalancedCounters(counters), [], `after ${n} frames`);
        assert.ok(counters.ipv4.reassembliesPending <= 16);
        assert.ok(counters.ipv4.reassemblyBytes <= 1024 * 1024);
        assert.ok(counters.arp.cacheEntries <= 512);
        assert.ok(counters.arp.queuedPackets <= 64);
      }
    }
    clock.runUntilIdle();
    const counters = stack.counters();
    assert.equal(counters.ethernet.rxFrames, frames);
    assert.deepEqual(unbalancedCounters(counters), []);
    assert.ok(counters.udp.delivered > 0 && counters.icmp.echoRequests > 0 && counters.ipv4.reassembled > 0, JSON.stringify(counters));
  });

  it("stays bounded under floods: fragments, ARP senders, unresolved destinations", () => {
    const { clock, stack, port } = setup();
    for (let n = 0; n < 5000; n++) {
      port.inject(toUs(ipv4(IpProtocol.Udp, new Uint8Array(1480), { identification: n, moreFragments: true }), stack.mac));
      const sender = MacAddress.fromOctets(2, 1, 0, 0, n >> 8, n & 0xff);
      port.inject(ethernetFrame(MacAddress.BROADCAST, sender, EtherType.Arp, arpPacket({ operation: "request", senderHardwareAddress: sender, senderProtocolAddress: Ipv4Address.fromNumber(0x0a000000 + n), targetHardwareAddress: MacAddress.UNSPECIFIED, targetProtocolAddress: OURS })));
    }
    clock.advance(1);
    const socket = stack.udp.bind();
    for (let n = 0; n < 5000; n++) socket.send(new Uint8Array(100), { address: Ipv4Address.fromNumber(ip("198.18.0.0") + 3 + (n % 250)), port: 9 });
    let counters = stack.counters();
    assert.equal(counters.ipv4.reassembliesPending, 16);
    assert.equal(counters.ipv4.reassemblyLimit, 5000 - 16);
    assert.equal(counters.arp.cacheEntries, 512);
    assert.ok(counters.arp.queuedPackets <= 64 && counters.arp.pendingResolutions <= 64);
    clock.runUntilIdle();
    counters = stack.counters();
    assert.equal(counters.ipv4.fragmentsPending, 0);
    assert.equal(counters.arp.queuedPackets, 0);
    assert.deepEqual(unbalancedCounters(counters), []);
  });
});

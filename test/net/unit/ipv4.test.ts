import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { NetError, unbalancedCounters, type UdpSocketError } from "atoll/net";
import { ethernetFrame, ipv4Packet, udpDatagram } from "../../../src/lib/net/testing/virtual-link.ts";
import { ArpRepr, EtherType, EthernetRepr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, MacAddress, WireError } from "atoll/wire";
import { ip, TestNetwork, type Host } from "./network.ts";

/** A raw station on the link: crafted frames go straight to `to`, bypassing impairments. */
const WIRE_MAC = MacAddress.fromOctets(2, 0, 0, 0, 0xee, 1);
const WIRE_IP = ip("198.18.0.200");

function inject(to: Host, packet: Uint8Array, dst: MacAddress = to.stack.mac): void {
  to.port.inject(ethernetFrame(dst, WIRE_MAC, EtherType.Ipv4, packet));
}

/** Fragments of one datagram's payload (crafted): [offset, length, more fragments]. */
function fragments(
  payload: Uint8Array,
  pieces: readonly (readonly [offset: number, length: number, more: boolean])[],
  fields: Partial<Ipv4Repr> & Pick<Ipv4Repr, "src" | "dst" | "protocol">,
): Uint8Array[] {
  return pieces.map(([offset, length, more]) =>
    ipv4Packet({ identification: 0x4242, ...fields, fragmentOffset: offset, moreFragments: more }, payload.subarray(offset, offset + length)),
  );
}

interface SeenIpv4 {
  at: number;
  dstMac: MacAddress;
  header: Ipv4Repr;
  packet: Uint8Array;
}

function recordIpv4(net: TestNetwork): SeenIpv4[] {
  const seen: SeenIpv4[] = [];
  net.link.tap((frame) => {
    const ethernet = EthernetRepr.parse(frame);
    if (ethernet instanceof WireError || ethernet.etherType !== EtherType.Ipv4) return;
    const packet = frame.subarray(14);
    const header = Ipv4Repr.parse(packet);
    if (!(header instanceof WireError)) seen.push({ at: net.clock.now(), dstMac: ethernet.dst, header, packet });
  });
  return seen;
}

function arpTargets(net: TestNetwork): Ipv4Address[] {
  const targets: Ipv4Address[] = [];
  net.link.tap((frame) => {
    const ethernet = EthernetRepr.parse(frame);
    if (ethernet instanceof WireError || ethernet.etherType !== EtherType.Arp) return;
    const arp = ArpRepr.parse(frame.subarray(14));
    if (!(arp instanceof WireError) && arp.operation === "request" && arp.senderProtocolAddress !== arp.targetProtocolAddress) {
      targets.push(arp.targetProtocolAddress);
    }
  });
  return targets;
}

function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

describe("ipv4 fragmentation and reassembly", () => {
  it("round-trips UDP datagrams of any size up to 65507 bytes under reordering and duplication", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 65507 }), fc.integer({ min: 1, max: 0x7fff_ffff }), (size, seed) => {
        const net = new TestNetwork({ seed, impairments: { reordering: 0.3, reorderDelayMs: 3, duplication: 0.2, jitterMs: 1 } });
        const a = net.host("198.18.0.1/24");
        const b = net.host("198.18.0.2/24");
        const sent = pattern(size, seed);
        let received: Uint8Array | undefined;
        b.stack.udp.bind(9).onDatagram((payload) => {
          received ??= payload.slice();
        });
        a.stack.udp.bind().send(sent, { address: ip("198.18.0.2"), port: 9 });
        assert.ok(net.clock.runUntil(() => received !== undefined, 1000), `a ${size}-byte datagram did not arrive`);
        assert.deepEqual(received, sent);
        net.clock.runUntilIdle();
        assert.deepEqual(unbalancedCounters(b.stack.counters()), []);
        const counters = b.stack.counters().ipv4;
        assert.equal(counters.fragmentsPending, 0);
        assert.equal(counters.reassemblyBytes, 0);
      }),
      { numRuns: 40 },
    );
  });

  it("fragments to the MTU with 8-byte aligned offsets (RFC 791 §3.2)", () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    net.clock.runUntilIdle();
    const seen = recordIpv4(net);
    b.stack.udp.bind(9);
    a.stack.udp.bind(5000).send(pattern(4000, 1), { address: ip("198.18.0.2"), port: 9 });
    net.clock.runUntilIdle();
    const frags = seen.filter((frame) => frame.header.protocol === IpProtocol.Udp);
    assert.deepEqual(
      frags.map(({ header }) => [header.fragmentOffset, header.payloadLength, header.moreFragments]),
      [
        [0, 1480, true],
        [1480, 1480, true],
        [2960, 1048, false],
      ],
    );
    assert.ok(frags.every(({ header }) => header.identification === frags[0]?.header.identification));
    assert.equal(a.stack.counters().ipv4.txFragments, 3);
    assert.equal(b.stack.counters().ipv4.reassembled, 1);
  });

  it("refuses to fragment when told not to (DF), and datagrams beyond 65535 bytes", () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.1/24");
    const socket = a.stack.udp.bind();
    assert.throws(
      () => socket.send(new Uint8Array(1473), { address: ip("198.18.0.2"), port: 9 }, { dontFragment: true }),
      (error: unknown) => error instanceof NetError && error.code === "message-too-long",
    );
    socket.send(new Uint8Array(1472), { address: ip("198.18.0.2"), port: 9 }, { dontFragment: true });
    assert.throws(
      () => socket.send(new Uint8Array(65508), { address: ip("198.18.0.2"), port: 9 }),
      (error: unknown) => error instanceof NetError && error.code === "message-too-long",
    );
    assert.equal(a.stack.counters().ipv4.tooBig, 1);
  });

  it("drops the whole datagram when fragments overlap (RFC 5722's rule), but only an exact duplicate alone", () => {
    const net = new TestNetwork();
    const b = net.host("198.18.0.2/24");
    let delivered = 0;
    b.stack.udp.bind(9).onDatagram(() => delivered++);
    const datagram = udpDatagram(WIRE_IP, ip("198.18.0.2"), 1000, 9, pattern(40, 3)); // 48 bytes
    const fields = { src: WIRE_IP, dst: ip("198.18.0.2"), protocol: IpProtocol.Udp };
    for (const packet of fragments(
      datagram,
      [
        [0, 16, true],
        [8, 16, true],
        [24, 24, false],
      ],
      fields,
    )) {
      inject(b, packet);
    }
    net.clock.advance(1);
    let counters = b.stack.counters().ipv4;
    assert.equal(counters.fragmentOverlap, 2);
    assert.equal(delivered, 0);
    // The last fragment started a new reassembly; let it time out.
    net.clock.advance(31_000);
    for (const packet of fragments(
      datagram,
      [
        [0, 16, true],
        [0, 16, true],
        [32, 16, false],
        [16, 16, true],
        [32, 16, false],
      ],
      { ...fields, identification: 7 },
    )) {
      inject(b, packet);
    }
    net.clock.advance(1);
    counters = b.stack.counters().ipv4;
    assert.equal(delivered, 1);
    assert.equal(counters.fragmentDuplicate, 1, "the second copy of the last fragment starts a reassembly of its own");
    assert.equal(counters.reassembliesPending, 1);
    // Two "last" fragments that disagree on the end.
    for (const packet of fragments(
      datagram,
      [
        [16, 16, false],
        [32, 16, false],
      ],
      { ...fields, identification: 8 },
    )) {
      inject(b, packet);
    }
    net.clock.advance(1);
    counters = b.stack.counters().ipv4;
    assert.equal(counters.fragmentOverlap, 2 + 2);
    net.clock.runUntilIdle();
    assert.deepEqual(unbalancedCounters(b.stack.counters()), []);
  });

  it("drops fragments that are not multiples of 8 bytes, and datagrams that would exceed 65535 bytes", () => {
    const net = new TestNetwork();
    const b = net.host("198.18.0.2/24");
    const fields = { src: WIRE_IP, dst: ip("198.18.0.2"), protocol: IpProtocol.Udp };
    inject(b, ipv4Packet({ ...fields, moreFragments: true }, new Uint8Array(12)));
    inject(b, ipv4Packet({ ...fields, moreFragments: true }, new Uint8Array(0)));
    inject(b, ipv4Packet({ ...fields, identification: 1, fragmentOffset: 0, moreFragments: true }, new Uint8Array(16)));
    inject(b, ipv4Packet({ ...fields, identification: 1, fragmentOffset: 65528, moreFragments: false }, new Uint8Array(16)));
    net.clock.advance(1);
    const counters = b.stack.counters().ipv4;
    assert.equal(counters.fragmentMalformed, 2);
    assert.equal(counters.fragmentTooLong, 2, "the offending fragment and the one held");
    assert.equal(counters.reassembliesPending, 0);
    assert.deepEqual(unbalancedCounters(b.stack.counters()), []);
  });

  it("bounds reassembly: datagrams at once (evicting the oldest), fragments per datagram, and bytes", () => {
    const net = new TestNetwork();
    const b = net.host("198.18.0.2/24", { limits: { ipv4: { maxReassemblyBytes: 8 * 1024 } } });
    const fields = { src: WIRE_IP, dst: ip("198.18.0.2"), protocol: IpProtocol.Udp, moreFragments: true };
    for (let id = 0; id < 17; id++) inject(b, ipv4Packet({ ...fields, identification: id }, new Uint8Array(8)));
    net.clock.advance(1);
    let counters = b.stack.counters().ipv4;
    assert.equal(counters.reassembliesPending, 16);
    assert.equal(counters.reassemblyLimit, 1);
    assert.equal(counters.fragmentsPending, 16);

    for (let n = 0; n < 65; n++) inject(b, ipv4Packet({ ...fields, identification: 100, fragmentOffset: 8 * n }, new Uint8Array(8)));
    net.clock.advance(1);
    counters = b.stack.counters().ipv4;
    assert.equal(counters.reassemblyLimit, 1 + 1 + 65, "one more evicted to start it, then all its 65 fragments");

    for (let n = 0; n < 7; n++) inject(b, ipv4Packet({ ...fields, identification: 200 + n }, new Uint8Array(1480)));
    net.clock.advance(1);
    counters = b.stack.counters().ipv4;
    assert.ok(counters.reassemblyBytes <= 8 * 1024, `${counters.reassemblyBytes} bytes held`);
    assert.ok(counters.reassembliesPending <= 16);
    assert.deepEqual(unbalancedCounters(b.stack.counters()), []);
  });

  it("times out after 30 s and sends time exceeded (reassembly) when the first fragment came (RFC 1122 §3.3.2)", () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    net.clock.runUntilIdle();
    const socket = a.stack.udp.bind(4000);
    const errors: UdpSocketError[] = [];
    socket.onError((error) => errors.push(error));
    const datagram = udpDatagram(ip("198.18.0.1"), ip("198.18.0.2"), 4000, 9, pattern(100, 1));
    const [first, second] = fragments(
      datagram,
      [
        [0, 64, true],
        [64, 44, false],
      ],
      { src: ip("198.18.0.1"), dst: ip("198.18.0.2"), protocol: IpProtocol.Udp },
    );
    assert.ok(first !== undefined && second !== undefined);
    const start = net.clock.now();
    b.port.inject(ethernetFrame(b.stack.mac, a.stack.mac, EtherType.Ipv4, first));
    net.clock.advance(29_990);
    assert.equal(b.stack.counters().icmp.errorsSent, 0);
    net.clock.advance(20);
    net.clock.runUntilIdle();
    assert.equal(b.stack.counters().ipv4.reassemblyTimeout, 1);
    assert.equal(b.stack.counters().icmp.errorsSent, 1);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, "time-exceeded");
    assert.deepEqual(errors[0]?.icmp, { type: 11, code: 1 });
    assert.equal(errors[0]?.remote.port, 9);
    assert.ok(net.clock.now() - start >= 30_000);

    // Without the first fragment, the timeout is silent.
    b.port.inject(ethernetFrame(b.stack.mac, a.stack.mac, EtherType.Ipv4, second));
    net.clock.runUntilIdle();
    assert.equal(b.stack.counters().ipv4.reassemblyTimeout, 2);
    assert.equal(b.stack.counters().icmp.errorsSent, 1);
    assert.deepEqual(unbalancedCounters(b.stack.counters()), []);
  });
});

describe("ipv4 routing and acceptance", () => {
  it("sends on-link destinations directly and others through the gateway, which does not forward", () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.2/24@198.18.0.1");
    const gateway = net.host("198.18.0.1/24");
    net.host("198.18.0.3/24");
    net.clock.runUntilIdle();
    const targets = arpTargets(net);
    const seen = recordIpv4(net);
    const socket = a.stack.udp.bind();
    socket.send(new Uint8Array(4), { address: ip("203.0.113.5"), port: 9 });
    socket.send(new Uint8Array(4), { address: ip("198.18.0.3"), port: 9 });
    net.clock.runUntilIdle();
    assert.deepEqual(targets, [ip("198.18.0.1"), ip("198.18.0.3")]);
    const offLink = seen.find(({ header }) => header.dst === ip("203.0.113.5"));
    assert.equal(offLink?.dstMac, gateway.stack.mac);
    assert.equal(gateway.stack.counters().ipv4.notForUs, 1, "a host does not forward");
  });

  it("fails with no-route off-link without a gateway, and for unicast without an address", () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.2/24");
    const isNoRoute = (error: unknown): boolean => error instanceof NetError && error.code === "no-route";
    assert.throws(() => a.stack.udp.bind().send(new Uint8Array(4), { address: ip("203.0.113.5"), port: 9 }), isNoRoute);
    assert.equal(a.stack.counters().ipv4.noRoute, 1);
    const unconfigured = net.host(undefined);
    const socket = unconfigured.stack.udp.bind();
    assert.throws(() => socket.send(new Uint8Array(4), { address: ip("198.18.0.2"), port: 9 }), isNoRoute);
    socket.send(new Uint8Array(4), { address: Ipv4Address.BROADCAST, port: 9 });
    assert.equal(unconfigured.stack.counters().ipv4.txPackets, 1);
  });

  it("accepts any TTL, as a host must (RFC 1122 §3.2.1.7), and skips IP options", () => {
    const net = new TestNetwork();
    const b = net.host("198.18.0.2/24");
    const received: Uint8Array[] = [];
    b.stack.udp.bind(9).onDatagram((payload) => received.push(payload.slice()));
    const datagram = udpDatagram(WIRE_IP, ip("198.18.0.2"), 1000, 9, pattern(10, 1));
    for (const ttl of [0, 1]) inject(b, ipv4Packet({ src: WIRE_IP, dst: ip("198.18.0.2"), protocol: IpProtocol.Udp, ttl }, datagram));
    // The same datagram with 8 bytes of options (NOPs and an end-of-list).
    const plain = ipv4Packet({ src: WIRE_IP, dst: ip("198.18.0.2"), protocol: IpProtocol.Udp }, datagram);
    const withOptions = new Uint8Array(plain.length + 8);
    withOptions.set(plain.subarray(0, 20));
    withOptions.set([1, 1, 1, 1, 1, 1, 1, 0], 20);
    withOptions.set(plain.subarray(20), 28);
    const view = new Ipv4Packet(withOptions);
    view.headerLength = 28;
    view.totalLength = withOptions.length;
    view.fillChecksum();
    inject(b, withOptions);
    net.clock.runUntilIdle();
    assert.equal(received.length, 3);
    for (const payload of received) assert.deepEqual(payload, pattern(10, 1));
  });

  it("accepts its address, the limited and directed broadcasts and joined groups, and nothing else", () => {
    const net = new TestNetwork();
    const b = net.host("198.18.0.2/24");
    const received: string[] = [];
    b.stack.udp.bind(9).onDatagram((_payload, from) => received.push(Ipv4Address.format(from.address)));
    const send = (dst: Ipv4Address, dstMac: MacAddress, src = WIRE_IP): void =>
      inject(b, ipv4Packet({ src, dst, protocol: IpProtocol.Udp }, udpDatagram(src, dst, 1000, 9, new Uint8Array(4))), dstMac);
    const group = ip("239.1.2.3");
    send(Ipv4Address.BROADCAST, MacAddress.BROADCAST);
    send(ip("198.18.0.255"), MacAddress.BROADCAST);
    send(group, MacAddress.forIpv4Multicast(group)); // not joined: the MAC filter drops it
    net.clock.runUntilIdle();
    b.stack.joinMulticast(group);
    send(group, MacAddress.forIpv4Multicast(group), ip("198.18.0.201"));
    send(ip("198.18.0.2"), MacAddress.BROADCAST); // unicast in a link broadcast (RFC 1122 §3.3.6)
    send(ip("198.18.0.77"), b.stack.mac);
    send(ip("198.18.0.2"), b.stack.mac, ip("224.0.0.9"));
    net.clock.runUntilIdle();
    assert.deepEqual(received, ["198.18.0.200", "198.18.0.200", "198.18.0.201"]);
    const counters = b.stack.counters();
    assert.equal(counters.ethernet.notForUs, 1);
    assert.equal(counters.ipv4.notForUs, 2);
    assert.equal(counters.ipv4.badSource, 1);
    assert.equal(counters.icmp.errorsSent, 0);
    assert.deepEqual(unbalancedCounters(counters), []);
  });

  it("delivers datagrams to its own address from a timer, not inside send", () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.1/24");
    const received: number[] = [];
    a.stack.udp.bind(9).onDatagram((payload) => received.push(payload.length));
    a.stack.udp.bind().send(new Uint8Array(3000), { address: ip("198.18.0.1"), port: 9 });
    assert.deepEqual(received, []);
    net.clock.runUntilIdle();
    assert.deepEqual(received, [3000]);
    assert.equal(a.stack.counters().ipv4.localDelivered, 1);
  });

  it("counts identifications up from where the entropy put them", () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.1/24");
    net.host("198.18.0.2/24");
    const seen = recordIpv4(net);
    const socket = a.stack.udp.bind();
    for (let n = 0; n < 3; n++) socket.send(new Uint8Array(4), { address: ip("198.18.0.2"), port: 9 });
    net.clock.runUntilIdle();
    const ids = seen.filter(({ header }) => header.protocol === IpProtocol.Udp).map(({ header }) => header.identification);
    assert.equal(ids.length, 3);
    assert.deepEqual(ids, [ids[0], ((ids[0] ?? 0) + 1) & 0xffff, ((ids[0] ?? 0) + 2) & 0xffff]);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NetError, unbalancedCounters, type UdpSocketError } from "atoll/net";
import { ethernetFrame, icmpMessage, ipv4Packet, udpDatagram } from "../../../src/lib/net/testing/virtual-link.ts";
import { EtherType, EthernetRepr, Icmpv4Repr, IpProtocol, Ipv4Address, Ipv4Repr, MacAddress, WireError } from "atoll/wire";
import { ip, TestNetwork } from "./network.ts";

class IcmpNetwork extends TestNetwork {
  /** Every ICMP message sent on the link, with the sender's IP header. */
  readonly icmp: { ip: Ipv4Repr; message: Icmpv4Repr }[] = [];

  constructor() {
    super();
    this.link.tap((frame) => {
      const ethernet = EthernetRepr.parse(frame);
      if (ethernet instanceof WireError || ethernet.etherType !== EtherType.Ipv4) return;
      const header = Ipv4Repr.parse(frame.subarray(14));
      if (header instanceof WireError || header.protocol !== IpProtocol.Icmp || header.moreFragments || header.fragmentOffset !== 0) return;
      const message = Icmpv4Repr.parse(frame.subarray(34, 34 + header.payloadLength));
      if (!(message instanceof WireError)) this.icmp.push({ ip: header, message });
    });
  }

  errors(kind: Icmpv4Repr["kind"]): Icmpv4Repr[] {
    return this.icmp.filter(({ message }) => message.kind === kind).map(({ message }) => message);
  }
}

const OUTSIDER_MAC = MacAddress.fromOctets(2, 0, 0, 0, 0xee, 1);

describe("icmp echo", () => {
  for (const size of [0, 56, 1472, 1473, 8000, 65000]) {
    it(`answers a ${size}-byte ping across two stacks`, async () => {
      const net = new IcmpNetwork();
      const a = net.host("198.18.0.1/24");
      const b = net.host("198.18.0.2/24");
      const reply = await net.settle(a.stack.ping(ip("198.18.0.2"), { size }));
      assert.equal(reply.from, ip("198.18.0.2"));
      assert.equal(reply.bytes, size);
      assert.equal(reply.ttl, 64);
      const counters = b.stack.counters();
      assert.equal(counters.icmp.echoRequests, 1);
      assert.equal(counters.icmp.echoRepliesSent, 1);
      // 1472 bytes of data plus 8 of ICMP and 20 of IP fill a 1500-byte MTU exactly.
      assert.equal(counters.ipv4.reassembled, size > 1472 ? 1 : 0);
      assert.equal(counters.ipv4.txFragments > 0, size > 1472);
      assert.equal(a.stack.counters().icmp.echoReplies, 1);
      assert.deepEqual(unbalancedCounters(counters), []);
      assert.deepEqual(unbalancedCounters(a.stack.counters()), []);
    });
  }

  it("times out without a reply, and fails with host unreachable when ARP gets no answer", async () => {
    const net = new IcmpNetwork();
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    b.stack.close();
    await assert.rejects(net.settle(a.stack.ping(ip("198.18.0.2"), { timeoutMs: 500 })), (error: unknown) => error instanceof NetError && error.code === "timeout");
    await assert.rejects(
      net.settle(a.stack.ping(ip("198.18.0.99"), { timeoutMs: 5000 })),
      (error: unknown) => error instanceof NetError && error.code === "host-unreachable",
    );
    assert.throws(() => a.stack.ping(ip("198.18.0.2"), { size: 65508 }), RangeError);
  });

  it("ignores echo requests to broadcast and multicast addresses (RFC 1122 §3.2.2.6)", () => {
    const net = new IcmpNetwork();
    const b = net.host("198.18.0.2/24");
    const request = icmpMessage({ kind: "echo-request", identifier: 1, sequence: 1, data: new Uint8Array(8) });
    for (const [dst, mac] of [
      [Ipv4Address.BROADCAST, MacAddress.BROADCAST],
      [ip("198.18.0.255"), MacAddress.BROADCAST],
      [ip("224.0.0.1"), MacAddress.forIpv4Multicast(ip("224.0.0.1"))],
    ] as const) {
      b.port.inject(ethernetFrame(mac, OUTSIDER_MAC, EtherType.Ipv4, ipv4Packet({ src: ip("198.18.0.9"), dst, protocol: IpProtocol.Icmp }, request)));
    }
    net.clock.runUntilIdle();
    const counters = b.stack.counters();
    assert.equal(counters.icmp.broadcastEcho, 3);
    assert.equal(counters.icmp.echoRepliesSent, 0);
    assert.deepEqual(unbalancedCounters(counters), []);
  });
});

describe("icmp errors", () => {
  it("sends port unreachable for UDP nobody listens for, rate limited to 10/s with a burst of 10", () => {
    const net = new IcmpNetwork();
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    net.clock.runUntilIdle();
    const socket = a.stack.udp.bind(5555);
    // Resolve each other first, so that nothing waits for ARP.
    b.stack.udp.bind(8);
    socket.send(new Uint8Array(4), { address: ip("198.18.0.2"), port: 8 });
    net.clock.advance(10);
    const errors: UdpSocketError[] = [];
    socket.onError((error) => errors.push(error));
    const start = net.icmp.length;
    for (let n = 0; n < 30; n++) socket.send(new Uint8Array(4), { address: ip("198.18.0.2"), port: 9 });
    net.clock.advance(1);
    let counters = b.stack.counters();
    assert.equal(counters.udp.noListener, 30);
    assert.equal(counters.icmp.errorsSent, 10);
    assert.equal(counters.icmp.errorsRateLimited, 20);
    assert.equal(errors.length, 10);
    const unreachable = net.icmp[start]?.message;
    assert.ok(unreachable?.kind === "destination-unreachable");
    assert.equal(unreachable.code, 3);
    // The quote is the whole offending datagram here (it is short): IP header, UDP header, data.
    assert.equal(unreachable.original.length, 20 + 8 + 4);
    assert.equal(errors[0]?.code, "port-unreachable");
    assert.deepEqual(errors[0]?.remote, { address: ip("198.18.0.2"), port: 9 });
    assert.equal(errors[0]?.reporter, ip("198.18.0.2"));
    // Half a second later, five more tokens.
    net.clock.advance(500);
    for (let n = 0; n < 10; n++) socket.send(new Uint8Array(4), { address: ip("198.18.0.2"), port: 9 });
    net.clock.advance(1);
    counters = b.stack.counters();
    assert.equal(counters.icmp.errorsSent, 15);
    assert.equal(errors.length, 15);
    assert.deepEqual(unbalancedCounters(counters), []);
    assert.deepEqual(unbalancedCounters(a.stack.counters()), []);
  });

  it("sends no error about broadcasts, multicasts, link broadcasts, later fragments, ICMP errors or bad sources (RFC 1122 §3.2.2)", () => {
    const net = new IcmpNetwork();
    const b = net.host("198.18.0.2/24");
    const group = ip("239.0.0.1");
    b.stack.joinMulticast(group);
    const src = ip("198.18.0.9");
    const udp = (dst: Ipv4Address): Uint8Array => udpDatagram(src, dst, 1000, 9, new Uint8Array(4));
    const send = (mac: MacAddress, packet: Uint8Array): void => b.port.inject(ethernetFrame(mac, OUTSIDER_MAC, EtherType.Ipv4, packet));
    send(MacAddress.BROADCAST, ipv4Packet({ src, dst: Ipv4Address.BROADCAST, protocol: IpProtocol.Udp }, udp(Ipv4Address.BROADCAST)));
    send(MacAddress.BROADCAST, ipv4Packet({ src, dst: ip("198.18.0.255"), protocol: IpProtocol.Udp }, udp(ip("198.18.0.255"))));
    send(MacAddress.forIpv4Multicast(group), ipv4Packet({ src, dst: group, protocol: IpProtocol.Udp }, udp(group)));
    send(b.stack.mac, ipv4Packet({ src: Ipv4Address.UNSPECIFIED, dst: ip("198.18.0.2"), protocol: IpProtocol.Udp }, udpDatagram(Ipv4Address.UNSPECIFIED, ip("198.18.0.2"), 1, 9, new Uint8Array(4))));
    // A later fragment of a datagram of an unknown protocol (the first fragment would get protocol unreachable).
    send(b.stack.mac, ipv4Packet({ src, dst: ip("198.18.0.2"), protocol: 253, fragmentOffset: 8 }, new Uint8Array(8)));
    // An ICMP error (here, unknown to us) gets none either, even as an unknown type.
    const quoted = ipv4Packet({ src: ip("198.18.0.2"), dst: src, protocol: IpProtocol.Udp }, udpDatagram(ip("198.18.0.2"), src, 1, 2, new Uint8Array(0)));
    send(b.stack.mac, ipv4Packet({ src, dst: ip("198.18.0.2"), protocol: IpProtocol.Icmp }, icmpMessage({ kind: "destination-unreachable", code: 3, nextHopMtu: 0, original: quoted })));
    net.clock.runUntilIdle();
    const counters = b.stack.counters();
    assert.equal(counters.icmp.errorsSent, 0);
    assert.equal(counters.udp.noListener, 4);
    assert.equal(counters.ipv4.unknownProtocol, 1);
    assert.equal(counters.icmp.errorsUnmatched, 1);
    assert.deepEqual(unbalancedCounters(counters), []);
  });

  it("sends protocol unreachable for a protocol nobody handles", () => {
    const net = new IcmpNetwork();
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    net.clock.runUntilIdle();
    const errors: string[] = [];
    a.stack.ipv4.registerProtocol(253, {
      receive() {},
      receiveError(report) {
        errors.push(report.code);
        return true;
      },
    });
    assert.equal(a.stack.ipv4.send({ dst: ip("198.18.0.2"), protocol: 253 }, new Uint8Array(12)), undefined);
    net.clock.runUntilIdle();
    assert.equal(b.stack.counters().ipv4.unknownProtocol, 1);
    const unreachable = net.errors("destination-unreachable")[0];
    assert.ok(unreachable?.kind === "destination-unreachable");
    assert.equal(unreachable.code, 2);
    assert.deepEqual(errors, ["protocol-unreachable"]);
  });

  it("delivers an ICMP error from a router to the UDP socket it concerns, and ignores errors about others' datagrams", () => {
    const net = new IcmpNetwork();
    const a = net.host("198.18.0.2/24@198.18.0.1");
    const router = net.link.attach();
    net.clock.runUntilIdle();
    const socket = a.stack.udp.bind(4444);
    const errors: UdpSocketError[] = [];
    socket.onError((error) => errors.push(error));
    const report = (quotedSrc: Ipv4Address, srcPort: number, code: number): Uint8Array => {
      const original = ipv4Packet(
        { src: quotedSrc, dst: ip("203.0.113.7"), protocol: IpProtocol.Udp },
        udpDatagram(quotedSrc, ip("203.0.113.7"), srcPort, 53, new Uint8Array(20)),
      ).subarray(0, 28);
      const message = icmpMessage({ kind: "destination-unreachable", code, nextHopMtu: 0, original });
      return ethernetFrame(a.stack.mac, router.mac, EtherType.Ipv4, ipv4Packet({ src: ip("198.18.0.1"), dst: ip("198.18.0.2"), protocol: IpProtocol.Icmp }, message));
    };
    a.port.inject(report(ip("198.18.0.2"), 4444, 1));
    a.port.inject(report(ip("198.18.0.2"), 4444, 13));
    a.port.inject(report(ip("198.18.0.2"), 4445, 1));
    a.port.inject(report(ip("198.18.0.77"), 4444, 1));
    net.clock.runUntilIdle();
    assert.deepEqual(
      errors.map((error) => [error.code, error.reporter, error.remote.address, error.remote.port, error.icmp?.type, error.icmp?.code]),
      [
        ["host-unreachable", ip("198.18.0.1"), ip("203.0.113.7"), 53, 3, 1],
        ["prohibited", ip("198.18.0.1"), ip("203.0.113.7"), 53, 3, 13],
      ],
    );
    const counters = a.stack.counters();
    assert.equal(counters.icmp.errorsDelivered, 2);
    assert.equal(counters.icmp.errorsUnmatched, 2);
    assert.deepEqual(unbalancedCounters(counters), []);
  });
});

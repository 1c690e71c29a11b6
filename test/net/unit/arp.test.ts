import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { unbalancedCounters, UdpSocketError, type Stack } from "atoll/net";
import { arpPacket, ethernetFrame } from "../../../src/lib/net/testing/virtual-link.ts";
import { ArpRepr, EtherType, EthernetFrame, EthernetRepr, Ipv4Address, MacAddress, WireError } from "atoll/wire";
import { config, ip, TestNetwork } from "./network.ts";

interface ArpSeen {
  at: number;
  from: string;
  dst: MacAddress;
  arp: ArpRepr;
}

/** A virtual link with stacks on it, and every ARP frame sent on it. */
class ArpNetwork extends TestNetwork {
  readonly arpFrames: ArpSeen[] = [];

  constructor() {
    super();
    this.link.tap((frame, from) => {
      const ethernet = EthernetRepr.parse(frame);
      if (ethernet instanceof WireError || ethernet.etherType !== EtherType.Arp) return;
      const arp = ArpRepr.parse(frame.subarray(14));
      if (!(arp instanceof WireError)) this.arpFrames.push({ at: this.clock.now(), from: from.name, dst: ethernet.dst, arp });
    });
  }

  requests(from: string, target: Ipv4Address): ArpSeen[] {
    return this.arpFrames.filter((seen) => seen.from === from && seen.arp.operation === "request" && seen.arp.targetProtocolAddress === target && seen.arp.senderProtocolAddress !== target);
  }
}

function assertBalanced(...stacks: Stack[]): void {
  for (const stack of stacks) assert.deepEqual(unbalancedCounters(stack.counters()), []);
}

describe("arp", () => {
  it("resolves a neighbour, sends what waited, and both sides learn (RFC 826)", () => {
    const net = new ArpNetwork();
    const a = net.host("198.18.0.1/24", { name: "a" });
    const b = net.host("198.18.0.2/24", { name: "b" });
    net.clock.runUntilIdle();
    const server = b.stack.udp.bind(7);
    const received: number[] = [];
    server.onDatagram((payload) => received.push(payload.length));
    a.stack.udp.bind().send(new Uint8Array(100), { address: ip("198.18.0.2"), port: 7 });
    assert.equal(a.stack.counters().arp.pendingResolutions, 1);
    net.clock.runUntilIdle();
    assert.deepEqual(received, [100]);
    assert.equal(net.requests("a", ip("198.18.0.2")).length, 1);
    assert.equal(net.requests("a", ip("198.18.0.2"))[0]?.dst, MacAddress.BROADCAST);
    assert.equal(a.stack.arp.peek(ip("198.18.0.2")), b.stack.mac);
    assert.equal(b.stack.arp.peek(ip("198.18.0.1")), a.stack.mac);
    const counters = a.stack.counters().arp;
    assert.equal(counters.repliesReceived, 1);
    assert.equal(counters.queuedPackets, 0);
    assert.equal(b.stack.counters().arp.requestsAnswered, 1);
    assertBalanced(a.stack, b.stack);
  });

  it("queues at most 3 packets per destination, keeping the latest (RFC 1122 §2.3.2.2)", () => {
    const net = new ArpNetwork();
    const a = net.host("198.18.0.1/24", { name: "a" });
    const b = net.host("198.18.0.2/24", { name: "b" });
    net.clock.runUntilIdle();
    const received: number[] = [];
    b.stack.udp.bind(7).onDatagram((payload) => received.push(payload[0] ?? -1));
    const client = a.stack.udp.bind();
    for (let n = 0; n < 5; n++) client.send(new Uint8Array([n]), { address: ip("198.18.0.2"), port: 7 });
    assert.equal(a.stack.counters().arp.queuedPackets, 3);
    net.clock.runUntilIdle();
    assert.deepEqual(received, [2, 3, 4]);
    assert.equal(a.stack.counters().arp.queueOverflow, 2);
  });

  it("bounds the queue over all destinations", () => {
    const net = new ArpNetwork();
    const a = net.host("198.18.0.1/24", { name: "a", limits: { arp: { queueTotal: 4 } } });
    const client = a.stack.udp.bind();
    for (let host = 10; host < 16; host++) client.send(new Uint8Array(8), { address: ip(`198.18.0.${host}`), port: 7 });
    const counters = a.stack.counters().arp;
    assert.equal(counters.queuedPackets, 4);
    assert.equal(counters.pendingResolutions, 4);
    assert.equal(counters.queueOverflow, 2);
  });

  it("retries 3 times a second apart, then drops the packets and reports host unreachable", () => {
    const net = new ArpNetwork();
    const a = net.host("198.18.0.1/24", { name: "a" });
    const client = a.stack.udp.bind();
    const errors: UdpSocketError[] = [];
    client.onError((error) => errors.push(error));
    client.send(new Uint8Array(8), { address: ip("198.18.0.99"), port: 7 });
    client.send(new Uint8Array(8), { address: ip("198.18.0.99"), port: 7 });
    net.clock.runUntilIdle();
    const requests = net.requests("a", ip("198.18.0.99"));
    assert.deepEqual(
      requests.map((seen) => seen.at),
      [0, 1000, 2000],
    );
    assert.equal(errors.length, 2);
    assert.equal(errors[0]?.code, "host-unreachable");
    assert.equal(errors[0]?.remote.address, ip("198.18.0.99"));
    assert.equal(errors[0]?.remote.port, 7);
    assert.equal(errors[0]?.icmp, undefined);
    const counters = a.stack.counters().arp;
    assert.equal(counters.resolutionFailures, 1);
    assert.equal(counters.unresolvedDrops, 2);
    assert.equal(counters.pendingResolutions, 0);
    assert.equal(counters.queuedPackets, 0);
    // A later send starts over.
    client.send(new Uint8Array(8), { address: ip("198.18.0.99"), port: 7 });
    assert.equal(net.requests("a", ip("198.18.0.99")).length, 4);
  });

  it("bounds the cache, evicting the least recently confirmed entry", () => {
    const net = new ArpNetwork();
    const a = net.host("198.18.0.1/24", { name: "a", limits: { arp: { cacheSize: 4 } } });
    const spoke = net.link.attach({ name: "spoke" });
    for (let host = 10; host < 16; host++) {
      const mac = MacAddress.fromOctets(2, 0, 0, 0, 1, host);
      const request = arpPacket({
        operation: "request",
        senderHardwareAddress: mac,
        senderProtocolAddress: ip(`198.18.0.${host}`),
        targetHardwareAddress: MacAddress.UNSPECIFIED,
        targetProtocolAddress: ip("198.18.0.1"),
      });
      spoke.send(ethernetFrame(MacAddress.BROADCAST, mac, EtherType.Arp, request));
      net.clock.advance(10);
    }
    const counters = a.stack.counters().arp;
    assert.equal(counters.cacheEntries, 4);
    assert.equal(counters.cacheEvictions, 2);
    assert.equal(a.stack.arp.peek(ip("198.18.0.10")), undefined);
    assert.equal(a.stack.arp.peek(ip("198.18.0.11")), undefined);
    assert.equal(a.stack.arp.peek(ip("198.18.0.15")), MacAddress.fromOctets(2, 0, 0, 0, 1, 15));
    assert.equal(counters.requestsAnswered, 6);
  });

  it("forgets an entry 60 s after it was last confirmed", () => {
    const net = new ArpNetwork();
    const a = net.host("198.18.0.1/24", { name: "a" });
    net.host("198.18.0.2/24", { name: "b" });
    const client = a.stack.udp.bind();
    client.send(new Uint8Array(8), { address: ip("198.18.0.2"), port: 7 });
    net.clock.runUntilIdle();
    assert.equal(net.requests("a", ip("198.18.0.2")).length, 1);
    net.clock.advance(61_000);
    client.send(new Uint8Array(8), { address: ip("198.18.0.2"), port: 7 });
    const requests = net.requests("a", ip("198.18.0.2"));
    assert.equal(requests.length, 2);
    assert.equal(requests[1]?.dst, MacAddress.BROADCAST);
  });

  it("refreshes an entry in use with unicast requests, at most one a second, so it never lapses", () => {
    const net = new ArpNetwork();
    const a = net.host("198.18.0.1/24", { name: "a" });
    const b = net.host("198.18.0.2/24", { name: "b" });
    const client = a.stack.udp.bind();
    let received = 0;
    b.stack.udp.bind(7).onDatagram(() => received++);
    // A datagram every 100 ms for 3 minutes.
    for (let n = 0; n < 1800; n++) {
      client.send(new Uint8Array(8), { address: ip("198.18.0.2"), port: 7 });
      net.clock.advance(100);
    }
    net.clock.runUntilIdle();
    assert.equal(received, 1800);
    const requests = net.requests("a", ip("198.18.0.2"));
    const broadcast = requests.filter((seen) => seen.dst === MacAddress.BROADCAST);
    const unicast = requests.filter((seen) => seen.dst === b.stack.mac);
    assert.equal(broadcast.length, 1, "only the first resolution is broadcast");
    assert.ok(unicast.length >= 3 && unicast.length <= 6, `${unicast.length} refresh requests`);
    for (let i = 1; i < requests.length; i++) assert.ok((requests[i]?.at ?? 0) - (requests[i - 1]?.at ?? 0) >= 1000);
    assert.equal(a.stack.counters().arp.queuedPackets, 0);
  });

  it("announces an assigned address with two gratuitous requests 2 s apart (RFC 5227 §2.3)", () => {
    const net = new ArpNetwork();
    const a = net.host(undefined, { name: "a" });
    net.clock.runUntilIdle();
    assert.equal(net.arpFrames.length, 0, "nothing to announce without an address");
    a.stack.setIpv4(config("198.18.0.7/24"));
    net.clock.runUntilIdle();
    const announcements = net.arpFrames.filter((seen) => seen.from === "a");
    assert.deepEqual(
      announcements.map((seen) => seen.at),
      [0, 2000],
    );
    for (const { dst, arp } of announcements) {
      assert.equal(dst, MacAddress.BROADCAST);
      assert.equal(arp.operation, "request");
      assert.equal(arp.senderProtocolAddress, ip("198.18.0.7"));
      assert.equal(arp.targetProtocolAddress, ip("198.18.0.7"));
      assert.equal(arp.senderHardwareAddress, a.stack.mac);
      assert.equal(arp.targetHardwareAddress, MacAddress.UNSPECIFIED);
    }
    a.stack.setIpv4(config("198.18.0.7/24"));
    net.clock.runUntilIdle();
    assert.equal(net.arpFrames.length, 2, "the same configuration again announces nothing");
  });

  it("detects another host claiming our address, logs it and defends once per 10 s (RFC 5227 §2.4)", () => {
    const net = new ArpNetwork();
    const a = net.host("198.18.0.1/24", { name: "a" });
    const intruder = net.link.attach({ name: "intruder" });
    net.clock.runUntilIdle();
    const before = net.arpFrames.filter((seen) => seen.from === "a").length;
    const claim = ethernetFrame(
      MacAddress.BROADCAST,
      intruder.mac,
      EtherType.Arp,
      arpPacket({
        operation: "request",
        senderHardwareAddress: intruder.mac,
        senderProtocolAddress: ip("198.18.0.1"),
        targetHardwareAddress: MacAddress.UNSPECIFIED,
        targetProtocolAddress: ip("198.18.0.1"),
      }),
    );
    intruder.send(claim);
    net.clock.advance(10);
    intruder.send(claim);
    net.clock.advance(10);
    const counters = a.stack.counters().arp;
    assert.equal(counters.conflicts, 2);
    const warnings = net.log.messages("warn", "arp");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /conflict: 198\.18\.0\.1 is also claimed by 02:00:00:00:00:02/);
    const defences = net.arpFrames.filter((seen) => seen.from === "a").slice(before);
    assert.equal(defences.length, 1);
    assert.equal(defences[0]?.arp.senderProtocolAddress, ip("198.18.0.1"));
    assert.equal(a.stack.arp.peek(ip("198.18.0.1")), undefined, "the claim is not cached");
    net.clock.advance(10_000);
    intruder.send(claim);
    net.clock.advance(10);
    assert.equal(net.arpFrames.filter((seen) => seen.from === "a").length - before, 2);
    assertBalanced(a.stack);
  });

  it("answers only for its own address, and answers probes without caching them", () => {
    const net = new ArpNetwork();
    const a = net.host("198.18.0.1/24", { name: "a" });
    const other = net.link.attach({ name: "other" });
    const request = (sender: Ipv4Address, target: Ipv4Address): Uint8Array =>
      ethernetFrame(
        MacAddress.BROADCAST,
        other.mac,
        EtherType.Arp,
        arpPacket({
          operation: "request",
          senderHardwareAddress: other.mac,
          senderProtocolAddress: sender,
          targetHardwareAddress: MacAddress.UNSPECIFIED,
          targetProtocolAddress: target,
        }),
      );
    net.clock.runUntilIdle();
    other.send(request(ip("198.18.0.5"), ip("198.18.0.9")));
    net.clock.runUntilIdle();
    assert.equal(a.stack.counters().arp.notForUs, 1);
    assert.equal(a.stack.arp.peek(ip("198.18.0.5")), undefined);
    other.send(request(Ipv4Address.UNSPECIFIED, ip("198.18.0.1")));
    net.clock.runUntilIdle();
    const replies = net.arpFrames.filter((seen) => seen.from === "a" && seen.arp.operation === "reply");
    assert.equal(replies.length, 1);
    assert.equal(replies[0]?.dst, other.mac);
    assert.equal(a.stack.counters().arp.requestsAnswered, 1);
    assert.equal(a.stack.counters().arp.cacheEntries, 0);
    // A reply is padded to Ethernet's 60-byte minimum.
    const frames: Uint8Array[] = [];
    net.link.tap((frame) => frames.push(frame));
    other.send(request(ip("198.18.0.5"), ip("198.18.0.1")));
    net.clock.runUntilIdle();
    const reply = frames.find((frame) => {
      const ethernet = EthernetFrame.check(frame);
      return !(ethernet instanceof WireError) && ethernet.src === a.stack.mac;
    });
    assert.equal(reply?.length, 60);
    assertBalanced(a.stack);
  });
});

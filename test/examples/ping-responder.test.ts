import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { PingResponder } from "../../examples/ping/src/responder.ts";
import { Ipv4Address, MacAddress } from "../../src/lib/wire/address.ts";
import { ArpRepr } from "../../src/lib/wire/arp.ts";
import { EtherType, EthernetRepr } from "../../src/lib/wire/ethernet.ts";
import { Icmpv4Repr } from "../../src/lib/wire/icmpv4.ts";
import { IpProtocol, Ipv4Repr } from "../../src/lib/wire/ipv4.ts";
import { WireError } from "../../src/lib/wire/error.ts";

const ours = { mac: MacAddress.fromOctets(2, 0, 0, 0, 0, 2), ip: Ipv4Address.fromOctets(198, 18, 0, 2) };
const peer = { mac: MacAddress.fromOctets(2, 0, 0, 0, 0, 1), ip: Ipv4Address.fromOctets(198, 18, 0, 1) };

function echoRequest(data: Uint8Array, sequence: number, dst = ours.ip): Uint8Array {
  const icmp: Icmpv4Repr = { kind: "echo-request", identifier: 0x1234, sequence, data };
  const icmpLength = Icmpv4Repr.bufferLength(icmp);
  const frame = new Uint8Array(14 + 20 + icmpLength);
  EthernetRepr.emit({ dst: ours.mac, src: peer.mac, etherType: EtherType.Ipv4 }, frame);
  Ipv4Repr.emit(
    { src: peer.ip, dst, protocol: IpProtocol.Icmp, ttl: 64, dscp: 0, ecn: 0, identification: 7, dontFragment: true, moreFragments: false, fragmentOffset: 0, payloadLength: icmpLength },
    frame.subarray(14),
  );
  Icmpv4Repr.emit(icmp, frame.subarray(34));
  return frame;
}

test("answers an echo request with a reply carrying the same data, to the sender", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1472 }), fc.integer({ min: 0, max: 0xffff }), (data, sequence) => {
      const responder = new PingResponder(ours.mac, ours.ip, 1518);
      const reply = responder.handle(echoRequest(data, sequence));
      assert.ok(reply !== undefined);
      const ethernet = EthernetRepr.parse(reply);
      assert.ok(!(ethernet instanceof WireError));
      assert.equal(ethernet.dst, peer.mac);
      const ip = Ipv4Repr.parse(reply.subarray(14));
      assert.ok(!(ip instanceof WireError));
      assert.equal(ip.src, ours.ip);
      assert.equal(ip.dst, peer.ip);
      const icmp = Icmpv4Repr.parse(reply.subarray(34, 34 + ip.payloadLength));
      assert.ok(!(icmp instanceof WireError) && icmp.kind === "echo-reply");
      assert.equal(icmp.sequence, sequence);
      assert.deepEqual([...icmp.data], [...data]);
      assert.equal(responder.counters.echoReplies, 1);
    }),
  );
});

test("answers ARP for its address only, and announces itself", () => {
  const responder = new PingResponder(ours.mac, ours.ip, 1518);
  const request = (target: Ipv4Address): Uint8Array => {
    const frame = new Uint8Array(60);
    EthernetRepr.emit({ dst: MacAddress.BROADCAST, src: peer.mac, etherType: EtherType.Arp }, frame);
    ArpRepr.emit({ operation: "request", senderHardwareAddress: peer.mac, senderProtocolAddress: peer.ip, targetHardwareAddress: MacAddress.UNSPECIFIED, targetProtocolAddress: target }, frame.subarray(14));
    return frame;
  };
  const reply = responder.handle(request(ours.ip));
  assert.ok(reply !== undefined);
  const arp = ArpRepr.parse(reply.subarray(14));
  assert.ok(!(arp instanceof WireError));
  assert.equal(arp.operation, "reply");
  assert.equal(arp.senderHardwareAddress, ours.mac);
  assert.equal(arp.targetHardwareAddress, peer.mac);
  assert.equal(responder.handle(request(peer.ip)), undefined);
  assert.equal(responder.counters.notForUs, 1);
  const announcement = ArpRepr.parse(responder.announcement().subarray(14));
  assert.ok(!(announcement instanceof WireError));
  assert.equal(announcement.senderProtocolAddress, ours.ip);
  assert.equal(announcement.targetProtocolAddress, ours.ip);
});

test("any bytes: never throws, and every frame is answered or counted once", () => {
  const valid = echoRequest(new Uint8Array(56).fill(9), 1);
  const arbitrary = fc.oneof(
    fc.uint8Array({ maxLength: 1600 }),
    fc.tuple(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([at, value]) => {
      const copy = valid.slice();
      copy[at] = value;
      return copy;
    }),
    fc.integer({ min: 0, max: valid.length }).map((length) => valid.slice(0, length)),
  );
  const responder = new PingResponder(ours.mac, ours.ip, 1518);
  let frames = 0;
  fc.assert(
    fc.property(arbitrary, (bytes) => {
      frames++;
      responder.handle(bytes);
      const { arpReplies, echoReplies, notForUs, malformed, unhandled } = responder.counters;
      assert.equal(arpReplies + echoReplies + notForUs + malformed + unhandled, frames);
    }),
    { numRuns: 5000 },
  );
});

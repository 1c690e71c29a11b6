import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  EthernetFrame,
  Ipv4Address,
  Ipv4Packet,
  Ipv4Repr,
  IpProtocol,
  UdpPacket,
  UdpRepr,
  WireError,
} from "atoll/wire";
import { UDP_FRAME, UDP_NO_CHECKSUM_FRAME } from "./fixtures/captures.ts";
import {
  assertParsed,
  assertReprOrWireError,
  assertWireError,
  guarded,
  ipv4Address,
  mutatedInputs,
  u16,
  withFlippedByte,
} from "./fixtures/support.ts";

/** The IPv4 header and UDP datagram of a captured frame. */
function captured(frameBytes: Uint8Array): { ip: Ipv4Repr; datagram: Uint8Array } {
  const frame = EthernetFrame.check(frameBytes);
  assertParsed(frame);
  const packet = Ipv4Packet.check(frame.payload);
  assertParsed(packet);
  const ip = Ipv4Repr.parse(packet);
  assertParsed(ip);
  assert.equal(ip.protocol, IpProtocol.Udp);
  return { ip, datagram: packet.payload };
}

const udpRepr: fc.Arbitrary<UdpRepr> = fc.record(
  { srcPort: u16, dstPort: u16, payload: fc.uint8Array({ maxLength: 128 }) },
  { noNullPrototype: true },
);

interface Datagram {
  repr: UdpRepr;
  src: Ipv4Address;
  dst: Ipv4Address;
  bytes: Uint8Array;
}

const datagram: fc.Arbitrary<Datagram> = fc.tuple(udpRepr, ipv4Address, ipv4Address).map(([repr, src, dst]) => {
  const bytes = new Uint8Array(UdpRepr.bufferLength(repr));
  UdpRepr.emit(repr, bytes, src, dst);
  return { repr, src, dst, bytes };
});

const ascii = (text: string): Uint8Array => Uint8Array.from(text, (char) => char.charCodeAt(0));

describe("udp", () => {
  it("parses a datagram captured from Linux, checksum verified", () => {
    const { ip, datagram: bytes } = captured(UDP_FRAME);
    const repr = UdpRepr.parse(bytes, ip.src, ip.dst);
    assert.deepEqual(repr, { srcPort: 40000, dstPort: 7, payload: ascii("hello, atoll\n") });
    assertParsed(repr);
    const again = new Uint8Array(UdpRepr.bufferLength(repr));
    UdpRepr.emit(repr, again, ip.src, ip.dst);
    assert.deepEqual(again, bytes);
    // The pseudo-header matters: the same bytes between other hosts do not verify.
    assertWireError(UdpRepr.parse(bytes, ip.dst, ip.src === ip.dst ? ip.src : Ipv4Address.UNSPECIFIED), "bad-checksum");
  });

  it("accepts a zero checksum as none (RFC 768)", () => {
    const { ip, datagram: bytes } = captured(UDP_NO_CHECKSUM_FRAME);
    assert.deepEqual(UdpRepr.parse(bytes, ip.src, ip.dst), { srcPort: 40000, dstPort: 9, payload: ascii("ping?\n") });
    assert.deepEqual(UdpRepr.parse(bytes, Ipv4Address.UNSPECIFIED, Ipv4Address.BROADCAST), UdpRepr.parse(bytes, ip.src, ip.dst));
  });

  it("sends a computed checksum of zero as 0xffff", () => {
    // Pseudo-header 17 + 10 (length), header 10 (length): 0x25; the payload word 0xffda brings
    // the sum to 0xffff, whose complement is 0.
    const repr: UdpRepr = { srcPort: 0, dstPort: 0, payload: Uint8Array.of(0xff, 0xda) };
    const bytes = new Uint8Array(UdpRepr.bufferLength(repr));
    UdpRepr.emit(repr, bytes, Ipv4Address.UNSPECIFIED, Ipv4Address.UNSPECIFIED);
    assert.equal(new UdpPacket(bytes).checksum, 0xffff);
    assert.deepEqual(UdpRepr.parse(bytes, Ipv4Address.UNSPECIFIED, Ipv4Address.UNSPECIFIED), repr);
  });

  it("ignores bytes after its length field, such as Ethernet padding", () => {
    const { ip, datagram: bytes } = captured(UDP_FRAME);
    const padded = new Uint8Array(bytes.length + 5).fill(0xee);
    padded.set(bytes);
    const packet = UdpPacket.check(padded);
    assertParsed(packet);
    assert.equal(packet.bytes.length, bytes.length);
    assert.deepEqual(UdpRepr.parse(padded, ip.src, ip.dst), UdpRepr.parse(bytes, ip.src, ip.dst));
  });

  it("round-trips any valid repr", () => {
    fc.assert(
      fc.property(datagram, ({ repr, src, dst, bytes }) => {
        assert.notEqual(new UdpPacket(bytes).checksum, 0);
        assert.deepEqual(UdpRepr.parse(bytes, src, dst), repr);
      }),
    );
  });

  it("emits in place: the payload the stack wrote at offset 8 is used as is", () => {
    fc.assert(
      fc.property(udpRepr, ipv4Address, ipv4Address, (repr, src, dst) => {
        const bytes = new Uint8Array(8 + repr.payload.length);
        bytes.set(repr.payload, 8);
        UdpRepr.emit({ ...repr, payload: bytes.subarray(8) }, bytes, src, dst);
        assert.deepEqual(UdpRepr.parse(bytes, src, dst), repr);
      }),
      { numRuns: 30 },
    );
  });

  it("rejects bad lengths", () => {
    const { ip, datagram: bytes } = captured(UDP_FRAME);
    assertWireError(UdpRepr.parse(bytes.subarray(0, 7), ip.src, ip.dst), "truncated");
    assertWireError(UdpRepr.parse(bytes.subarray(0, bytes.length - 1), ip.src, ip.dst), "truncated");
    const short = bytes.slice();
    short[4] = 0;
    short[5] = 7;
    assertWireError(UdpRepr.parse(short, ip.src, ip.dst), "bad-length");
    assert.throws(() => UdpRepr.emit({ srcPort: 1, dstPort: 2, payload: new Uint8Array(0xffff - 7) }, new Uint8Array(0x10000), ip.src, ip.dst), RangeError);
    assert.throws(() => UdpRepr.emit({ srcPort: 1, dstPort: 2, payload: new Uint8Array(4) }, new Uint8Array(11), ip.src, ip.dst), RangeError);
  });

  it("detects any single changed byte outside the length field", () => {
    // Not the length field: shortening the datagram also drops payload words, which can cancel
    // the change in the sum (a blind spot of RFC 768's checksum; lengthening it is "truncated").
    // And not a change that zeroes the checksum field, which then reads as "no checksum".
    fc.assert(
      fc.property(
        fc.tuple(datagram, fc.integer({ min: 0, max: 0xffff })).chain(([{ src, dst, bytes }, pick]) => {
          const positions = [0, 1, 2, 3, 6, 7, ...Array.from({ length: bytes.length - 8 }, (_, i) => 8 + i)];
          const index = positions[pick % positions.length];
          return withFlippedByte(fc.constant(bytes), () => [index, index + 1]).map((flip) => ({ ...flip, src, dst }));
        }),
        ({ flipped, src, dst }) => {
          fc.pre(new UdpPacket(flipped).checksum !== 0);
          assertWireError(UdpRepr.parse(flipped, src, dst), "bad-checksum");
        },
      ),
      { numRuns: 500 },
    );
  });

  it("shows the blind spot: a shorter length can cancel out against the dropped bytes", () => {
    // Length 10 -> 8 lowers the sum by 2 in the pseudo-header and 2 in the header; dropping the
    // payload word 0xfffb (-4 in ones' complement) raises it by 4, so the checksum still verifies.
    const repr: UdpRepr = { srcPort: 1, dstPort: 2, payload: Uint8Array.of(0xff, 0xfb) };
    const bytes = new Uint8Array(10);
    UdpRepr.emit(repr, bytes, Ipv4Address.UNSPECIFIED, Ipv4Address.UNSPECIFIED);
    bytes[5] ^= 0x02;
    const result = UdpRepr.parse(bytes, Ipv4Address.UNSPECIFIED, Ipv4Address.UNSPECIFIED);
    assert.deepEqual(result, { srcPort: 1, dstPort: 2, payload: new Uint8Array(0) });
  });

  it("never throws or reads out of bounds on any input", () => {
    fc.assert(
      fc.property(mutatedInputs(datagram.map(({ bytes }) => bytes)), ipv4Address, ipv4Address, (bytes, src, dst) => {
        const result = UdpRepr.parse(guarded(bytes), src, dst);
        assertReprOrWireError(result);
        if (!(result instanceof WireError)) assert.ok(UdpRepr.bufferLength(result) <= bytes.length);
      }),
      { numRuns: 1000 },
    );
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  EthernetFrame,
  Icmpv4Packet,
  Icmpv4Repr,
  Icmpv4Type,
  Icmpv4UnreachableCode,
  Ipv4Address,
  Ipv4Packet,
  IpProtocol,
  WireError,
} from "atoll/wire";
import { PING_FRAME, PORT_UNREACHABLE_FRAME, UDP_NO_CHECKSUM_FRAME } from "./fixtures/captures.ts";
import {
  assertParsed,
  assertReprOrWireError,
  assertWireError,
  guarded,
  mutatedInputs,
  quotedDatagram,
  u16,
  u32,
  u8,
  withFlippedByte,
} from "./fixtures/support.ts";

function icmpMessage(frameBytes: Uint8Array): Uint8Array {
  const frame = EthernetFrame.check(frameBytes);
  assertParsed(frame);
  const packet = Ipv4Packet.check(frame.payload);
  assertParsed(packet);
  return packet.payload;
}

function emitted(repr: Icmpv4Repr): Uint8Array {
  const bytes = new Uint8Array(Icmpv4Repr.bufferLength(repr));
  Icmpv4Repr.emit(repr, bytes);
  return bytes;
}

const KNOWN_TYPES: ReadonlySet<number> = new Set([
  Icmpv4Type.EchoReply,
  Icmpv4Type.EchoRequest,
  Icmpv4Type.DestinationUnreachable,
  Icmpv4Type.TimeExceeded,
]);

const icmpv4Repr: fc.Arbitrary<Icmpv4Repr> = fc.oneof(
  fc.record(
    {
      kind: fc.constantFrom("echo-request" as const, "echo-reply" as const),
      identifier: u16,
      sequence: u16,
      data: fc.uint8Array({ maxLength: 64 }),
    },
    { noNullPrototype: true },
  ),
  fc.record(
    { kind: fc.constant("destination-unreachable" as const), code: u8, nextHopMtu: u16, original: quotedDatagram },
    { noNullPrototype: true },
  ),
  fc.record({ kind: fc.constant("time-exceeded" as const), code: u8, original: quotedDatagram }, { noNullPrototype: true }),
  fc.record(
    {
      kind: fc.constant("other" as const),
      type: u8.filter((type) => !KNOWN_TYPES.has(type)),
      code: u8,
      restOfHeader: u32,
      data: fc.uint8Array({ maxLength: 64 }),
    },
    { noNullPrototype: true },
  ),
);

describe("icmpv4", () => {
  it("parses an echo request captured from Linux ping", () => {
    const message = icmpMessage(PING_FRAME);
    const repr = Icmpv4Repr.parse(message);
    assertParsed(repr);
    assert.equal(repr.kind, "echo-request");
    if (repr.kind !== "echo-request") return;
    assert.equal(repr.identifier, 5483);
    assert.equal(repr.sequence, 1);
    assert.equal(repr.data.length, 56);
    // Linux ping fills the data after its 16-byte timestamp with 0x10, 0x11, ...
    assert.deepEqual([...repr.data.subarray(16)], Array.from({ length: 40 }, (_, i) => 0x10 + i));
    assert.deepEqual(emitted(repr), message);
  });

  it("parses a port unreachable captured from Linux, quoting the datagram", () => {
    const message = icmpMessage(PORT_UNREACHABLE_FRAME);
    const repr = Icmpv4Repr.parse(message);
    assertParsed(repr);
    assert.equal(repr.kind, "destination-unreachable");
    if (repr.kind !== "destination-unreachable") return;
    assert.equal(repr.code, Icmpv4UnreachableCode.PortUnreachable);
    assert.equal(repr.nextHopMtu, 0);
    const frame = EthernetFrame.check(UDP_NO_CHECKSUM_FRAME);
    assertParsed(frame);
    assert.deepEqual(repr.original, frame.payload);
    const quoted = Ipv4Packet.checkHeader(repr.original);
    assertParsed(quoted);
    assert.equal(quoted.protocol, IpProtocol.Udp);
    assert.equal(quoted.src, Ipv4Address.parse("198.18.0.2"));
    assert.deepEqual([...quoted.payload.subarray(0, 4)], [0x9c, 0x40, 0x00, 0x09]); // ports 40000 -> 9
    assert.deepEqual(emitted(repr), message);
  });

  it("round-trips any valid repr", () => {
    fc.assert(
      fc.property(icmpv4Repr, (repr) => {
        assert.deepEqual(Icmpv4Repr.parse(emitted(repr)), repr);
      }),
    );
  });

  it("emits in place without copying the data onto itself wrongly", () => {
    fc.assert(
      fc.property(u16, u16, fc.uint8Array({ maxLength: 64 }), (identifier, sequence, data) => {
        const bytes = new Uint8Array(8 + data.length);
        bytes.set(data, 8);
        const repr: Icmpv4Repr = { kind: "echo-reply", identifier, sequence, data: bytes.subarray(8) };
        Icmpv4Repr.emit(repr, bytes);
        assert.deepEqual(bytes.subarray(8), data);
        assert.deepEqual(Icmpv4Repr.parse(bytes), { ...repr, data });
      }),
      { numRuns: 30 },
    );
  });

  it("rejects short messages and quoted datagrams that are not IPv4 headers", () => {
    assertWireError(Icmpv4Repr.parse(new Uint8Array(7)), "truncated");
    const bad = emitted({ kind: "time-exceeded", code: 0, original: new Uint8Array(20) }); // version 0
    assertWireError(Icmpv4Repr.parse(bad), "malformed");
    const short = emitted({ kind: "destination-unreachable", code: 1, nextHopMtu: 0, original: new Uint8Array(12).fill(0x45) });
    assertWireError(Icmpv4Repr.parse(short), "malformed");
  });

  it("detects any single changed byte", () => {
    fc.assert(
      fc.property(
        withFlippedByte(icmpv4Repr.map(emitted), (bytes) => [0, bytes.length]),
        ({ flipped }) => {
          assertWireError(Icmpv4Repr.parse(flipped), "bad-checksum");
        },
      ),
      { numRuns: 500 },
    );
  });

  it("verifies and fills the checksum through the view", () => {
    const message = icmpMessage(PING_FRAME).slice();
    const packet = Icmpv4Packet.check(message);
    assertParsed(packet);
    assert.ok(packet.verifyChecksum());
    packet.sequence = 2;
    assert.ok(!packet.verifyChecksum());
    packet.fillChecksum();
    assert.ok(packet.verifyChecksum());
  });

  it("never throws or reads out of bounds on any input", () => {
    fc.assert(
      fc.property(mutatedInputs(icmpv4Repr.map(emitted)), (bytes) => {
        const result = Icmpv4Repr.parse(guarded(bytes));
        assertReprOrWireError(result);
        if (!(result instanceof WireError)) assert.equal(Icmpv4Repr.bufferLength(result), bytes.length);
      }),
      { numRuns: 1000 },
    );
  });
});

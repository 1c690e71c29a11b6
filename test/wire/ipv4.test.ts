import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { EthernetFrame, Ipv4Address, Ipv4Packet, Ipv4Repr, IpProtocol, WireError } from "atoll/wire";
import { PING_FRAME, PORT_UNREACHABLE_FRAME, UDP_FRAME } from "./fixtures/captures.ts";
import {
  assertParsed,
  assertReprOrWireError,
  assertWireError,
  guarded,
  ipv4Repr,
  mutatedInputs,
  withFlippedByte,
} from "./fixtures/support.ts";

function ipPayload(frameBytes: Uint8Array): Uint8Array {
  const frame = EthernetFrame.check(frameBytes);
  assertParsed(frame);
  return frame.payload;
}

/** Header and payload; payload lengths kept small so that the properties stay fast. */
const packetWithPayload = fc
  .tuple(
    ipv4Repr.map((repr) => ({ ...repr, payloadLength: 0 })),
    fc.uint8Array({ maxLength: 48 }),
  )
  .map(([header, payload]) => {
    const repr: Ipv4Repr = { ...header, payloadLength: payload.length };
    const bytes = new Uint8Array(Ipv4Repr.bufferLength(repr));
    Ipv4Repr.emit(repr, bytes);
    bytes.set(payload, Ipv4Repr.headerLength(repr));
    return { repr, payload, bytes };
  });

/** A valid packet whose header carries `optionWords` 32-bit words of options (here, NOPs). */
function withOptions(repr: Ipv4Repr, optionWords: number, payload: Uint8Array): Uint8Array {
  const headerLength = 20 + optionWords * 4;
  const bytes = new Uint8Array(headerLength + payload.length);
  Ipv4Repr.emit({ ...repr, payloadLength: headerLength - 20 + payload.length }, bytes);
  const packet = new Ipv4Packet(bytes);
  packet.headerLength = headerLength;
  bytes.fill(1, 20, headerLength); // option 1 is "no operation" (RFC 791 §3.1)
  bytes.set(payload, headerLength);
  packet.fillChecksum();
  return bytes;
}

describe("ipv4", () => {
  it("parses the header of a captured ping", () => {
    assert.deepEqual(Ipv4Repr.parse(ipPayload(PING_FRAME)), {
      src: Ipv4Address.parse("198.18.0.1"),
      dst: Ipv4Address.parse("198.18.0.2"),
      protocol: IpProtocol.Icmp,
      ttl: 64,
      dscp: 0,
      ecn: 0,
      identification: 0xbc1c,
      dontFragment: true,
      moreFragments: false,
      fragmentOffset: 0,
      payloadLength: 64,
    });
  });

  it("parses DSCP from a captured ICMP error (TOS 0xc0) and emits the header byte for byte", () => {
    const bytes = ipPayload(PORT_UNREACHABLE_FRAME);
    const repr = Ipv4Repr.parse(bytes);
    assertParsed(repr);
    assert.equal(repr.dscp, 48);
    assert.equal(repr.ecn, 0);
    assert.equal(repr.dontFragment, false);
    assert.equal(repr.identification, 0x4c29);
    const header = new Uint8Array(20);
    Ipv4Repr.emit(repr, header);
    assert.deepEqual(header, bytes.subarray(0, 20));
  });

  it("ignores the Ethernet padding after the total length", () => {
    const padded = new Uint8Array(60);
    padded.set(UDP_FRAME);
    padded.fill(0xee, UDP_FRAME.length);
    const packet = Ipv4Packet.check(ipPayload(padded));
    assertParsed(packet);
    assert.equal(packet.bytes.length, 41);
    assert.equal(packet.payload.length, 21);
    assert.equal(packet.payload[packet.payload.length - 1], 0x0a);
    assert.deepEqual(Ipv4Repr.parse(ipPayload(padded)), Ipv4Repr.parse(ipPayload(UDP_FRAME)));
  });

  it("round-trips any valid repr", () => {
    fc.assert(
      fc.property(ipv4Repr, (repr) => {
        // The payload is the caller's: left zero here, as only its length matters to the header.
        const bytes = new Uint8Array(Ipv4Repr.bufferLength(repr));
        Ipv4Repr.emit(repr, bytes);
        assert.deepEqual(Ipv4Repr.parse(bytes), repr);
      }),
      { numRuns: 50 },
    );
    fc.assert(
      fc.property(packetWithPayload, ({ repr, payload, bytes }) => {
        const packet = Ipv4Packet.check(bytes);
        assertParsed(packet);
        assert.deepEqual(Ipv4Repr.parse(packet), repr);
        assert.deepEqual(packet.payload, payload);
        assert.equal(packet.options.length, 0);
      }),
    );
  });

  it("skips options, exposing them raw", () => {
    fc.assert(
      fc.property(packetWithPayload, fc.integer({ min: 1, max: 10 }), ({ repr, payload }, optionWords) => {
        const bytes = withOptions(repr, optionWords, payload);
        const packet = Ipv4Packet.check(bytes);
        assertParsed(packet);
        assert.equal(packet.headerLength, 20 + optionWords * 4);
        assert.deepEqual(packet.options, new Uint8Array(optionWords * 4).fill(1));
        assert.deepEqual(packet.payload, payload);
        assert.deepEqual(Ipv4Repr.parse(bytes), repr);
      }),
    );
  });

  it("reports each kind of bad header", () => {
    const good = ipPayload(PING_FRAME).slice();
    const changed = (offset: number, value: number, fixChecksum = true): Uint8Array => {
      const bytes = good.slice();
      bytes[offset] = value;
      if (fixChecksum) new Ipv4Packet(bytes).fillChecksum();
      return bytes;
    };
    assertWireError(Ipv4Repr.parse(good.subarray(0, 19)), "truncated");
    assertWireError(Ipv4Repr.parse(changed(0, 0x65)), "bad-version");
    assertWireError(Ipv4Repr.parse(changed(0, 0x44)), "bad-header-length");
    assertWireError(Ipv4Repr.parse(good.subarray(0, 50)), "truncated"); // total length 84
    assertWireError(Ipv4Repr.parse(changed(3, 19)), "bad-length"); // total length 19 < 20
    assertWireError(Ipv4Repr.parse(changed(8, 63, false)), "bad-checksum");
    // IHL 15 claims a 60-byte header; with total length 84 that is consistent, but 40 bytes are not a header.
    assertWireError(Ipv4Repr.parse(changed(0, 0x4f).subarray(0, 40)), "truncated");
  });

  it("checks only the header of a quoted datagram", () => {
    const quoted = ipPayload(PING_FRAME).subarray(0, 28);
    assertWireError(Ipv4Packet.check(quoted), "truncated");
    const header = Ipv4Packet.checkHeader(quoted);
    assertParsed(header);
    assert.equal(header.protocol, IpProtocol.Icmp);
    assert.equal(header.payload.length, 8);
  });

  it("detects any single changed byte in the header", () => {
    fc.assert(
      fc.property(
        withFlippedByte(
          packetWithPayload.map(({ bytes }) => bytes),
          () => [0, 20],
        ),
        ({ flipped }) => {
          assert.ok(Ipv4Repr.parse(flipped) instanceof WireError);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("never throws or reads out of bounds on any input", () => {
    const valid = fc.oneof(
      packetWithPayload.map(({ bytes }) => bytes),
      fc.tuple(packetWithPayload, fc.integer({ min: 1, max: 10 })).map(([{ repr, payload }, words]) => withOptions(repr, words, payload)),
      fc.constant(ipPayload(PING_FRAME)),
    );
    fc.assert(
      fc.property(mutatedInputs(valid), (bytes) => {
        const result = Ipv4Repr.parse(guarded(bytes));
        assertReprOrWireError(result);
        if (!(result instanceof WireError)) assert.ok(20 + result.payloadLength <= bytes.length);
      }),
      { numRuns: 1000 },
    );
  });

  it("refuses to emit a header that cannot be written", () => {
    fc.assert(
      fc.property(ipv4Repr, (repr) => {
        assert.throws(() => Ipv4Repr.emit(repr, new Uint8Array(19)), RangeError);
        assert.throws(() => Ipv4Repr.emit({ ...repr, payloadLength: 0xffff - 19 }, new Uint8Array(20)), RangeError);
      }),
      { numRuns: 20 },
    );
  });
});

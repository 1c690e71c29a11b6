import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Ipv4Address } from "atoll/wire/address";
import { WireError } from "../../../src/lib/wire/error.ts";
import {
  TCP_HEADER_LENGTH,
  TcpFlag,
  TcpOptions,
  TcpPacket,
  TcpRepr,
  emitTcpHeader,
  verifyTcpChecksum,
  type TcpOptionsRepr,
} from "../../../src/lib/wire/tcp.ts";

const src = Ipv4Address.fromOctets(198, 18, 0, 1);
const dst = Ipv4Address.fromOctets(198, 18, 0, 2);

function segment(repr: Partial<TcpRepr> = {}): TcpRepr {
  return {
    srcPort: 49152,
    dstPort: 80,
    seq: 0x01020304,
    ack: 0xfffffff0,
    flags: TcpFlag.Ack | TcpFlag.Psh,
    window: 29200,
    urgentPointer: 0,
    options: {},
    payload: new Uint8Array([1, 2, 3, 4, 5]),
    ...repr,
  };
}

function emit(repr: TcpRepr): Uint8Array {
  const bytes = new Uint8Array(TcpRepr.bufferLength(repr));
  TcpRepr.emit(repr, bytes, src, dst);
  return bytes;
}

/** A header-only segment with raw option bytes, checksummed. */
function withRawOptions(options: number[]): Uint8Array {
  const padded = [...options];
  while (padded.length % 4 !== 0) padded.push(0);
  const bytes = new Uint8Array(TCP_HEADER_LENGTH + padded.length);
  bytes.set(padded, TCP_HEADER_LENGTH);
  const fields = { srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TcpFlag.Syn, window: 5, urgentPointer: 0 };
  // Emit a plain header, then put the raw options in and fix the data offset and checksum.
  emitTcpHeader(fields, new TcpOptions(), bytes, 0, src, dst);
  bytes.set(padded, TCP_HEADER_LENGTH);
  const packet = new TcpPacket(bytes);
  packet.headerLength = bytes.length;
  packet.fillChecksum(src, dst);
  return bytes;
}

describe("tcp wire codec", () => {
  it("round-trips a segment with every option", () => {
    const options: TcpOptionsRepr = { mss: 1460, windowScale: 7, sackPermitted: true, timestamps: { value: 0xdeadbeef, echo: 1 } };
    const repr = segment({ flags: TcpFlag.Syn, options, payload: new Uint8Array(0) });
    const bytes = emit(repr);
    // MSS (4) + SACK-permitted with timestamps (12) + NOP, window scale (4): 20 bytes, as Linux.
    assert.equal(bytes.length, TCP_HEADER_LENGTH + 20);
    assert.deepEqual([...bytes.subarray(20, 24)], [2, 4, 0x05, 0xb4]);
    assert.deepEqual([...bytes.subarray(24, 28)], [4, 2, 8, 10]);
    assert.deepEqual([...bytes.subarray(36, 40)], [1, 3, 3, 7]);
    const parsed = TcpRepr.parse(bytes, src, dst);
    assert.ok(!(parsed instanceof WireError));
    assert.deepEqual(parsed.options, options);
    assert.equal(parsed.seq, repr.seq);
    assert.equal(parsed.ack, repr.ack);
    assert.equal(parsed.flags, TcpFlag.Syn);
  });

  it("round-trips SACK blocks with timestamps (three fit) and without (four fit)", () => {
    const sack = [
      { left: 100, right: 200 },
      { left: 0xfffffff0, right: 16 },
      { left: 300, right: 400 },
    ];
    const withTs = emit(segment({ options: { timestamps: { value: 1, echo: 2 }, sack } }));
    assert.equal(withTs.length, TCP_HEADER_LENGTH + 40 + 5);
    const parsed = TcpRepr.parse(withTs, src, dst);
    assert.ok(!(parsed instanceof WireError));
    assert.deepEqual(parsed.options.sack, sack);
    const four = [...sack, { left: 500, right: 600 }];
    const without = TcpRepr.parse(emit(segment({ options: { sack: four } })), src, dst);
    assert.ok(!(without instanceof WireError));
    assert.deepEqual(without.options.sack, four);
    assert.throws(() => new TcpOptions().assign({ sack: [...four, { left: 1, right: 2 }] }), RangeError);
  });

  it("verifies the checksum over the pseudo-header, and rejects any single bit flip", () => {
    const bytes = emit(segment());
    assert.ok(verifyTcpChecksum(bytes, src, dst));
    assert.ok(!verifyTcpChecksum(bytes, src, Ipv4Address.fromOctets(198, 18, 0, 3)));
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const copy = bytes.slice();
      copy[bit >> 3] ^= 1 << (bit & 7);
      assert.ok(!verifyTcpChecksum(copy, src, dst), `bit ${bit}`);
    }
    const parsed = TcpRepr.parse(Uint8Array.from(bytes, (byte, i) => (i === 22 ? byte ^ 1 : byte)), src, dst);
    assert.ok(parsed instanceof WireError && parsed.kind === "bad-checksum");
  });

  it("rejects data offsets below 5 or beyond the segment", () => {
    const bytes = emit(segment());
    bytes[12] = 4 << 4;
    const low = TcpPacket.check(bytes);
    assert.ok(low instanceof WireError && low.kind === "bad-header-length");
    bytes[12] = 15 << 4;
    const high = TcpPacket.check(bytes);
    assert.ok(high instanceof WireError && high.kind === "truncated");
    assert.ok(TcpPacket.check(new Uint8Array(19)) instanceof WireError);
  });

  it("rejects options with bad lengths, skips unknown kinds and stops at End", () => {
    const malformed = [
      [2, 3, 5], // MSS with length 3
      [2, 0], // length 0 (RFC 9293 MUST-7)
      [8, 1], // length 1
      [30, 40], // runs past the header
      [5, 7, 0, 0, 0, 1, 0, 0], // SACK with a partial block
      [3, 4, 7, 0], // window scale with length 4
      [1, 1, 1, 2], // MSS kind with no length byte: [2] is the last byte
    ];
    for (const options of malformed) {
      const parsed = TcpRepr.parse(withRawOptions(options), src, dst);
      assert.ok(parsed instanceof WireError && parsed.kind === "malformed", `options ${options.join(",")}`);
    }
    const unknown = TcpRepr.parse(withRawOptions([30, 4, 9, 9, 2, 4, 1, 0]), src, dst);
    assert.ok(!(unknown instanceof WireError));
    assert.equal(unknown.options.mss, 256);
    const ended = TcpRepr.parse(withRawOptions([0, 2, 0, 0, 0]), src, dst);
    assert.ok(!(ended instanceof WireError));
    assert.deepEqual(ended.options, {});
  });

  it("never throws on arbitrary bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        const parsed = TcpRepr.parse(bytes, src, dst);
        if (parsed instanceof WireError) return;
        assert.ok(parsed.payload.length <= bytes.length);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (options) => {
        const set = new TcpOptions();
        set.parse(options, 0, options.length);
        assert.ok(set.sackCount <= 4);
      }),
      { numRuns: 2000 },
    );
  });

  it("round-trips random reprs (property)", () => {
    const options = fc.record(
      {
        mss: fc.integer({ min: 0, max: 0xffff }),
        windowScale: fc.integer({ min: 0, max: 14 }),
        sackPermitted: fc.constant(true),
        timestamps: fc.record({ value: fc.integer({ min: 0, max: 0xffffffff }), echo: fc.integer({ min: 0, max: 0xffffffff }) }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xff }),
        options,
        fc.uint8Array({ maxLength: 64 }),
        (port, seq, flags, opts, payload) => {
          const repr = segment({ srcPort: port, seq, flags, options: opts, payload });
          const parsed = TcpRepr.parse(emit(repr), src, dst);
          assert.ok(!(parsed instanceof WireError));
          // JSON: fast-check's records have no prototype, which deepEqual would count as a difference.
          assert.deepEqual(JSON.parse(JSON.stringify({ ...parsed, payload: [...parsed.payload] })), JSON.parse(JSON.stringify({ ...repr, payload: [...payload] })));
        },
      ),
      { numRuns: 500 },
    );
  });
});

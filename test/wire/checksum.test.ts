import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  checksumVerifies,
  finishChecksum,
  foldCarries,
  internetChecksum,
  Ipv4Address,
  ipv4PseudoHeaderSum,
  sumBytes,
} from "atoll/wire";
import { hex, ipv4Address } from "./fixtures/support.ts";

/** RFC 1071 read literally: one word at a time, folding after every addition. */
function referenceChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += (bytes[i] << 8) | (i + 1 < bytes.length ? bytes[i + 1] : 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return ~sum & 0xffff;
}

describe("internet checksum", () => {
  it("matches the worked example of RFC 1071 §3", () => {
    // 00 01 f2 03 f4 f5 f6 f7: the sum is ddf2, so the checksum is its complement 220d.
    const bytes = hex("0001 f203 f4f5 f6f7");
    assert.equal(sumBytes(bytes), 0xddf2);
    assert.equal(internetChecksum(bytes), 0x220d);
  });

  it("verifies the header of a captured IPv4 packet and recomputes its checksum", () => {
    const header = hex("4500 0054 bc1c 4000 4001 f264 c612 0001 c612 0002");
    assert.ok(checksumVerifies(sumBytes(header)));
    header[10] = 0;
    header[11] = 0;
    assert.equal(internetChecksum(header), 0xf264);
  });

  it("agrees with a word-at-a-time reference on any bytes, odd lengths included", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        assert.equal(internetChecksum(bytes), referenceChecksum(bytes));
      }),
    );
  });

  it("gives the same sum accumulated over pieces split at even offsets", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.array(fc.nat(100), { maxLength: 4 }),
        (bytes, cuts) => {
          const offsets = [...new Set(cuts.map((cut) => Math.min(bytes.length, cut * 2)))].sort((a, b) => a - b);
          let sum = 0;
          let start = 0;
          for (const end of [...offsets, bytes.length]) {
            sum = sumBytes(bytes, start, end, sum);
            start = end;
          }
          assert.equal(finishChecksum(sum), internetChecksum(bytes));
        },
      ),
    );
  });

  it("verifies data once its checksum is filled in, whatever the data", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 100 }), fc.nat(49), (bytes, word) => {
        const at = Math.min(word, (bytes.length >> 1) - 1) * 2;
        bytes[at] = 0;
        bytes[at + 1] = 0;
        const checksum = internetChecksum(bytes);
        bytes[at] = checksum >>> 8;
        bytes[at + 1] = checksum & 0xff;
        assert.ok(checksumVerifies(sumBytes(bytes)));
      }),
    );
  });

  it("folds sums beyond 32 bits without losing carries", () => {
    // 2^32 + 5 ≡ 1 + 5 (mod 0xffff), and folding never leaves more than 16 bits.
    assert.equal(foldCarries(2 ** 32 + 5), 6);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 52 }), (sum) => {
        const folded = foldCarries(sum);
        assert.ok(folded <= 0xffff);
        assert.equal(folded % 0xffff, sum % 0xffff);
      }),
    );
  });

  it("sums the IPv4 pseudo-header as its 12 bytes would", () => {
    fc.assert(
      fc.property(ipv4Address, ipv4Address, fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffff }), (src, dst, protocol, length) => {
        const bytes = new Uint8Array(12);
        Ipv4Address.write(src, bytes, 0);
        Ipv4Address.write(dst, bytes, 4);
        bytes[9] = protocol;
        bytes[10] = length >>> 8;
        bytes[11] = length & 0xff;
        assert.equal(foldCarries(ipv4PseudoHeaderSum(src, dst, protocol, length)), sumBytes(bytes));
      }),
    );
  });

  it("clamps a range that runs past the buffer", () => {
    const bytes = hex("0102 0304");
    assert.equal(sumBytes(bytes, 0, 100), sumBytes(bytes));
    assert.equal(sumBytes(bytes, 2, 1), 0);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { guarded, hex } from "./fixtures/support.ts";

// The robustness properties rely on this guard to notice out-of-bounds reads.
describe("test support: guarded bytes", () => {
  it("reads in bounds like the array it wraps, subarrays and methods included", () => {
    const bytes = guarded(hex("0102 0304 05"));
    assert.equal(bytes.length, 5);
    assert.equal(bytes[4], 5);
    assert.ok(bytes instanceof Uint8Array);
    const tail = bytes.subarray(2);
    assert.equal(tail[0], 3);
    assert.equal(tail.indexOf(5), 2);
    assert.deepEqual(Array.from(tail), [3, 4, 5]);
  });

  it("throws on a read past either end, in subarrays too", () => {
    const bytes = guarded(hex("0102 0304 05"));
    assert.throws(() => bytes[5], RangeError);
    assert.throws(() => bytes[-1], RangeError);
    assert.throws(() => bytes.subarray(1, 3)[2], RangeError);
  });
});

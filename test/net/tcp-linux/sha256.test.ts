/**
 * The fixtures' in-image SHA-256 (fixtures/sha256.ts) against node:crypto: every length around
 * the block and padding boundaries, in one update and in uneven pieces, and the data generator.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { Sha256, fillChunk } from "./fixtures/sha256.ts";

function reference(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

describe("fixtures/sha256.ts", () => {
  it("matches node:crypto for every length from 0 to 300 bytes, whole and in pieces", () => {
    const data = new Uint8Array(300);
    fillChunk(data, 7);
    for (let length = 0; length <= 300; length++) {
      const bytes = data.subarray(0, length);
      assert.equal(new Sha256().update(bytes).hex(), reference(bytes), `length ${length}`);
      const pieces = new Sha256();
      for (let at = 0, step = 1; at < length; at += step, step = (step * 3) % 70 + 1) pieces.update(bytes.subarray(at, Math.min(length, at + step)));
      assert.equal(pieces.hex(), reference(bytes), `length ${length} in pieces`);
    }
  });

  it("matches node:crypto over 8 MiB of 64 KiB chunks, as the client fixture hashes them", () => {
    const ours = new Sha256();
    const theirs = createHash("sha256");
    const chunk = new Uint8Array(64 * 1024);
    for (let index = 0; index < 128; index++) {
      fillChunk(chunk, index);
      ours.update(chunk);
      theirs.update(chunk);
    }
    assert.equal(ours.hex(), theirs.digest("hex"));
  });

  it("known vectors (FIPS 180-4 examples)", () => {
    const ascii = (text: string): Uint8Array => new Uint8Array([...text].map((c) => c.charCodeAt(0)));
    assert.equal(new Sha256().update(ascii("abc")).hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert.equal(
      new Sha256().update(ascii("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")).hex(),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
  });

  it("chunks differ from one another and are the same every time", () => {
    const a = new Uint8Array(1000);
    const b = new Uint8Array(1000);
    fillChunk(a, 1);
    fillChunk(b, 2);
    assert.notDeepEqual(a, b);
    const again = new Uint8Array(1000);
    fillChunk(again, 1);
    assert.deepEqual(a, again);
  });
});

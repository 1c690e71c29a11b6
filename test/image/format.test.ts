import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { checkImagePrefix, decodeImage, encodeImage, ImageError, IMAGE_FORMAT_VERSION, IMAGE_PREFIX_SIZE, type ImageContents } from "../../src/image/format.ts";
import { parseManifest, ManifestError, type Manifest } from "../../src/image/manifest.ts";

const manifest: Manifest = {
  name: "ping",
  net: ["service"],
  block: ["storage"],
  builtBy: "atoll test",
  buildTime: "2026-11-27T00:00:00.000Z",
  abiVersion: 1,
};
const contents: ImageContents = { manifest, code: "var __atollImage = { start() {} }; __atollImage;", sourceMap: '{"version":3}' };

/** Rewrites the trailing hash so that a deliberately altered image passes the hash check. */
function reseal(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  copy.set(createHash("sha256").update(copy.subarray(0, copy.length - 32)).digest(), copy.length - 32);
  return copy;
}

function expectImageError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => decodeImage(bytes),
    (error: unknown) => error instanceof ImageError && pattern.test(error.message) && !error.message.includes("\n"),
  );
}

const nameArb = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/);
const deviceListArb = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9_-]{0,10}$/), { maxLength: 4 });

test("round trip: what is encoded decodes back, with the hash of the whole", () => {
  fc.assert(
    fc.property(nameArb, deviceListArb, fc.string({ unit: "grapheme", maxLength: 200 }), fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }), (name, devices, code, assets) => {
      const net = devices.filter((_, i) => i % 2 === 0);
      const block = devices.filter((_, i) => i % 2 === 1);
      const input: ImageContents = { manifest: { ...manifest, name, net, block }, code, ...(assets === undefined ? {} : { assets }) };
      const bytes = encodeImage(input);
      const image = decodeImage(bytes);
      assert.deepEqual(image.manifest, input.manifest);
      assert.equal(image.code, code);
      assert.deepEqual(image.assets === undefined ? undefined : [...image.assets], assets === undefined ? undefined : [...assets]);
      assert.equal(image.size, bytes.length);
      assert.equal(image.formatVersion, IMAGE_FORMAT_VERSION);
      assert.equal(image.sha256, createHash("sha256").update(bytes.subarray(0, bytes.length - 32)).digest("hex"));
    }),
  );
});

test("every single corrupted byte is refused with a one-line error", () => {
  const bytes = encodeImage(contents);
  for (let index = 0; index < bytes.length; index++) {
    const corrupt = bytes.slice();
    corrupt[index] = (corrupt[index] ?? 0) ^ 0x01;
    expectImageError(corrupt, /corrupt|bad magic/);
  }
});

test("truncated files are refused and called truncated", () => {
  const bytes = encodeImage(contents);
  for (const length of [0, 7, 8, 20, 47, 100, bytes.length - 33, bytes.length - 1]) {
    expectImageError(bytes.subarray(0, length), length < 8 ? /bad magic/ : /truncated/);
  }
});

test("not an image at all", () => {
  expectImageError(new TextEncoder().encode("#!/bin/sh\necho hi\n"), /not an Atoll image/);
});

test("an unknown format version is refused and says to rebuild", () => {
  const bytes = encodeImage(contents).slice();
  new DataView(bytes.buffer).setUint32(8, 2, true);
  expectImageError(reseal(bytes), /format version 2 is not supported.*rebuild/);
});

test("unknown sections: optional ones are skipped, required ones refused", () => {
  const bytes = encodeImage(contents).slice();
  const view = new DataView(bytes.buffer);
  // The third section is the source map (optional): give it an unknown kind.
  view.setUint32(16 + 2 * 24, 99, true);
  const image = decodeImage(reseal(bytes));
  assert.equal(image.sourceMap, undefined);
  assert.equal(image.code, contents.code);
  view.setUint32(16 + 2 * 24 + 4, 0, true);
  expectImageError(reseal(bytes), /required section of unknown kind 99/);
});

test("a structurally bad table is refused even with a valid hash", () => {
  const bytes = encodeImage(contents).slice();
  const view = new DataView(bytes.buffer);
  view.setBigUint64(16 + 8, 5n, true);
  expectImageError(reseal(bytes), /outside the file/);
  const again = encodeImage(contents).slice();
  new DataView(again.buffer).setUint32(12, 1000, true);
  expectImageError(reseal(again), /declares 1000 sections/);
});

test("manifest validation", () => {
  const good = JSON.stringify(manifest);
  assert.deepEqual(parseManifest(good), manifest);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...manifest, name: "Ping" }, /appliance name "Ping" is invalid/],
    [{ ...manifest, name: "" }, /appliance name/],
    [{ ...manifest, net: "service" }, /'net' must be a list/],
    [{ ...manifest, net: ["a", "a"] }, /twice/],
    [{ ...manifest, net: ["x"], block: ["x"] }, /both as net and as block/],
    [{ ...manifest, net: ["bad name"] }, /device name "bad name" is invalid/],
    [{ ...manifest, extra: 1 }, /unknown field 'extra'/],
    [{ ...manifest, buildTime: "yesterday" }, /buildTime/],
    [{ ...manifest, abiVersion: 0 }, /abiVersion/],
    [{ ...manifest, net: Array.from({ length: 33 }, (_, i) => `n${i}`) }, /at most 32/],
  ];
  for (const [value, pattern] of bad) {
    assert.throws(() => parseManifest(JSON.stringify(value)), (error: unknown) => error instanceof ManifestError && pattern.test(error.message), JSON.stringify(value));
  }
  assert.throws(() => parseManifest("{"), /not valid JSON/);
  assert.throws(() => parseManifest("[]"), /not a JSON object/);
});

test("an image with an invalid manifest is refused naming the manifest", () => {
  const bytes = encodeImage({ ...contents, manifest: { ...manifest, name: "UPPER" } });
  expectImageError(bytes, /manifest is invalid: appliance name "UPPER"/);
});

test("checkImagePrefix refuses from the first bytes and the size, before the rest is read", () => {
  const image = encodeImage(contents);
  const prefix = image.subarray(0, IMAGE_PREFIX_SIZE);
  checkImagePrefix(prefix, image.length);
  assert.throws(() => checkImagePrefix(new Uint8Array(IMAGE_PREFIX_SIZE), 3 * 1024 ** 3), /bad magic/);
  assert.throws(() => checkImagePrefix(prefix.subarray(0, 40), 40), /truncated: 40 bytes/);
  // The same header on a file of another size: the table no longer ends at the hash.
  assert.throws(() => checkImagePrefix(prefix, 3 * 1024 ** 3), /bytes between its last section and its hash/);
  assert.throws(() => checkImagePrefix(prefix, image.length - 1), /image is corrupt: its section table does not fit its \d+ bytes \(it looks truncated\)/);
});

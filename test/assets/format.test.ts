import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { contentTypeFor, isCompressible } from "../../src/lib/assets/content-types.ts";
import { AssetFormatError, assetPathProblem, base64url, decodeAssets, encodeAssets, type AssetEntry } from "../../src/lib/assets/format.ts";

function entry(path: string, content: string, extra: Partial<AssetEntry> = {}): AssetEntry {
  const body = new TextEncoder().encode(content);
  return { path, contentType: contentTypeFor(path), body, sha256: new Uint8Array(createHash("sha256").update(body).digest()), ...extra };
}

const segment = fc.stringMatching(/^[A-Za-z0-9 _.~%é-]{1,8}$/).filter((text) => text !== "." && text !== "..");
const assetPath = fc.array(segment, { minLength: 1, maxLength: 4 }).map((segments) => `/${segments.join("/")}`);
const assetEntry = fc.record({
  path: assetPath,
  contentType: fc.constantFrom("text/html; charset=utf-8", "image/png", "application/octet-stream"),
  body: fc.uint8Array({ maxLength: 64 }),
  gzip: fc.option(fc.uint8Array({ maxLength: 32 }), { nil: undefined }),
  br: fc.option(fc.uint8Array({ maxLength: 32 }), { nil: undefined }),
});
const entries = fc.uniqueArray(assetEntry, { selector: (item) => item.path, maxLength: 8 }).map((items) =>
  items.map((item): AssetEntry => ({ ...item, sha256: new Uint8Array(createHash("sha256").update(item.body).digest()) })),
);

test("property: encode then decode gives every asset back, bytes as views of the section", () => {
  fc.assert(
    fc.property(entries, (input) => {
      const section = encodeAssets(input);
      const store = decodeAssets(section);
      assert.equal(store.count, input.length);
      assert.equal(store.byteLength, section.length);
      assert.deepEqual(store.paths(), [...input.map((item) => item.path)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      for (const item of input) {
        const asset = store.lookup(item.path);
        assert.ok(asset !== undefined);
        assert.deepEqual([...asset.body], [...item.body]);
        assert.equal(asset.body.buffer, section.buffer, "no copy");
        assert.equal(asset.size, item.body.length);
        assert.equal(asset.contentType, item.contentType);
        assert.deepEqual([...asset.sha256], [...item.sha256]);
        const tag = Buffer.from(item.sha256).toString("base64url");
        assert.equal(asset.etag, `"${tag}"`);
        assert.deepEqual(asset.variants.gzip === undefined ? undefined : [...asset.variants.gzip.body], item.gzip === undefined ? undefined : [...item.gzip]);
        assert.deepEqual(asset.variants.br === undefined ? undefined : [...asset.variants.br.body], item.br === undefined ? undefined : [...item.br]);
        if (asset.variants.gzip !== undefined) assert.equal(asset.variants.gzip.etag, `"${tag}-gzip"`);
        if (asset.variants.br !== undefined) assert.equal(asset.variants.br.etag, `"${tag}-br"`);
      }
      assert.equal(store.lookup("/not/there"), undefined);
    }),
  );
});

test("property: decoding never throws anything but AssetFormatError (random bytes, and every valid section mutated)", () => {
  const check = (bytes: Uint8Array): void => {
    try {
      decodeAssets(bytes);
    } catch (error) {
      assert.ok(error instanceof AssetFormatError, String(error));
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => check(bytes)), { numRuns: 500 });
  fc.assert(
    fc.property(entries, fc.nat(), fc.integer({ min: 1, max: 255 }), (input, where, delta) => {
      const section = encodeAssets(input);
      const mutated = section.slice();
      const index = where % mutated.length;
      mutated[index] = ((mutated[index] ?? 0) + delta) % 256;
      check(mutated);
      check(section.subarray(0, where % section.length));
    }),
    { numRuns: 500 },
  );
});

test("malformed sections: each check has its message", () => {
  const valid = encodeAssets([entry("/a.txt", "a"), entry("/b.txt", "b")]);
  const expectError = (bytes: Uint8Array, pattern: RegExp): void => assert.throws(() => decodeAssets(bytes), (error: unknown) => error instanceof AssetFormatError && pattern.test(error.message));
  expectError(valid.subarray(0, 10), /less than its 16-byte header/);
  const badMagic = valid.slice();
  badMagic[0] = 0;
  expectError(badMagic, /bad magic/);
  const badVersion = valid.slice();
  badVersion[8] = 2;
  expectError(badVersion, /version 2 is not supported/);
  const moreEntries = valid.slice();
  moreEntries[12] = 3;
  expectError(moreEntries, /runs past the end|entry 2/);
  // Swap the two paths' first characters after "/" so they are out of order.
  const swapped = valid.slice();
  const first = Buffer.from(swapped).indexOf("/a.txt");
  const second = Buffer.from(swapped).indexOf("/b.txt");
  swapped[first + 1] = 0x62;
  swapped[second + 1] = 0x61;
  expectError(swapped, /not sorted/);
  expectError(valid.subarray(0, valid.length - 1), /outside the data area/);
});

test("the encoder refuses what the format cannot hold", () => {
  assert.throws(() => encodeAssets([entry("/a", "1"), entry("/a", "2")]), /same path/);
  for (const path of ["a", "/a/", "/a//b", "/./a", "/a/../b", "/a\\b", "/a\0b", `/${"x".repeat(5000)}`, "/\ud800"]) {
    assert.throws(() => encodeAssets([entry(path, "x")]), AssetFormatError, path);
    assert.notEqual(assetPathProblem(path), undefined);
  }
  assert.throws(() => encodeAssets([{ ...entry("/a", "x"), contentType: "text/html\n" }]), /content type/);
  assert.throws(() => encodeAssets([{ ...entry("/a", "x"), sha256: new Uint8Array(3) }]), /SHA-256/);
  assert.equal(decodeAssets(encodeAssets([])).count, 0);
});

test("base64url matches Node's", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => assert.equal(base64url(bytes), Buffer.from(bytes).toString("base64url"))));
});

test("content types by extension", () => {
  const cases: Record<string, string> = {
    "/index.html": "text/html; charset=utf-8",
    "/A/B.HTM": "text/html; charset=utf-8",
    "/app.js": "text/javascript; charset=utf-8",
    "/mod.mjs": "text/javascript; charset=utf-8",
    "/style.css": "text/css; charset=utf-8",
    "/data.json": "application/json",
    "/site.webmanifest": "application/manifest+json",
    "/logo.svg": "image/svg+xml",
    "/photo.jpeg": "image/jpeg",
    "/icon.ico": "image/x-icon",
    "/font.woff2": "font/woff2",
    "/module.wasm": "application/wasm",
    "/robots.txt": "text/plain; charset=utf-8",
    "/README": "application/octet-stream",
    "/.env": "application/octet-stream",
    "/archive.tar.gz": "application/gzip",
    "/unknown.xyz": "application/octet-stream",
  };
  for (const [path, type] of Object.entries(cases)) assert.equal(contentTypeFor(path), type, path);
  assert.equal(isCompressible("text/html; charset=utf-8"), true);
  assert.equal(isCompressible("image/svg+xml"), true);
  assert.equal(isCompressible("application/wasm"), true);
  assert.equal(isCompressible("image/png"), false);
  assert.equal(isCompressible("font/woff2"), false);
  assert.equal(isCompressible("video/mp4"), false);
});

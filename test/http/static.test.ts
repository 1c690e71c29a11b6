import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { compressVariants } from "../../src/build/assets.ts";
import { contentTypeFor } from "../../src/lib/assets/content-types.ts";
import { decodeAssets, encodeAssets, type AssetStore } from "../../src/lib/assets/format.ts";
import { chooseContentCoding, evaluateRange, parseEntityTagList } from "../../src/lib/http/representation.ts";
import { serveHttpConnection } from "../../src/lib/http/server.ts";
import { serveStatic, type StaticOptions } from "../../src/lib/http/static.ts";
import { latin1Decode, latin1Encode } from "../../src/lib/http/syntax.ts";
import { createFlowPair, ManualTimers } from "../../src/lib/http/testing.ts";
import { TextEncoder } from "../../src/lib/web/encoding.ts";
import { Request } from "../../src/lib/web/request.ts";
import type { Response } from "../../src/lib/web/response.ts";

const text = new TextEncoder();
const INDEX = `<!doctype html><title>Home</title>${"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\n".repeat(40)}`;
const PNG = new Uint8Array(300).map((_, i) => (i * 7919) % 256);

function storeOf(files: Record<string, string | Uint8Array>): AssetStore {
  return decodeAssets(
    encodeAssets(
      Object.entries(files).map(([path, content]) => {
        const body = typeof content === "string" ? text.encode(content) : content;
        const contentType = contentTypeFor(path);
        return { path, contentType, body, sha256: new Uint8Array(createHash("sha256").update(body).digest()), ...compressVariants(body, contentType) };
      }),
    ),
  );
}

const store = storeOf({
  "/index.html": INDEX,
  "/style.css": `body { color: red; }\n${"/* padding for compression */\n".repeat(20)}`,
  "/img.png": PNG,
  "/docs/index.html": `<h1>Docs</h1>${"<p>documentation</p>".repeat(30)}`,
  "/404.html": "<h1>Nothing here</h1>",
  "/empty.txt": "",
  "/a b.txt": "spaced",
  "/café.txt": "accented",
  "/digits.txt": "0123456789",
});

function get(path: string, headers: Record<string, string> = {}, method = "GET", options: StaticOptions = {}, assets = store): Response {
  return serveStatic(assets, options)(new Request(`http://site.example${path}`, { method, headers }));
}

async function body(response: Response): Promise<string> {
  return latin1Decode(await response.bytes());
}

test("serves a file with its content type, a strong ETag, Accept-Ranges and Vary", async () => {
  const response = get("/index.html");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
  assert.match(response.headers.get("etag") ?? "", /^"[A-Za-z0-9_-]{43}"$/);
  assert.equal(response.headers.get("accept-ranges"), "bytes");
  assert.equal(response.headers.get("vary"), "Accept-Encoding");
  assert.equal(response.headers.get("content-encoding"), null, "no Accept-Encoding: identity");
  assert.equal(await body(response), INDEX);
  const png = get("/img.png", { "accept-encoding": "br, gzip" });
  assert.equal(png.headers.get("content-type"), "image/png");
  assert.equal(png.headers.get("vary"), null, "no variants, nothing varies");
  assert.deepEqual([...(await png.bytes())], [...PNG]);
});

test("Accept-Encoding: br preferred, then gzip; q-values and q=0 honoured; 406 when nothing is acceptable", async () => {
  const coding = (acceptEncoding: string): string | null => get("/index.html", { "accept-encoding": acceptEncoding }).headers.get("content-encoding");
  assert.equal(coding("gzip, deflate, br"), "br");
  assert.equal(coding("gzip"), "gzip");
  assert.equal(coding("x-gzip"), "gzip");
  assert.equal(coding("br;q=0, gzip"), "gzip");
  assert.equal(coding("gzip;q=0.5, br;q=0.4"), "gzip");
  assert.equal(coding("gzip;q=0.5, br;q=0.5"), "br");
  assert.equal(coding("*"), "br");
  assert.equal(coding("*;q=0.1, br;q=0"), "gzip");
  assert.equal(coding("identity"), null);
  assert.equal(coding(""), null);
  assert.equal(coding("deflate"), null);
  assert.equal(get("/index.html", { "accept-encoding": "identity;q=0, *;q=0" }).status, 406);
  assert.equal(get("/img.png", { "accept-encoding": "identity;q=0" }).status, 406);

  const br = get("/index.html", { "accept-encoding": "br" });
  assert.equal(brotliDecompressSync(await br.bytes()).toString(), INDEX);
  const gzip = get("/index.html", { "accept-encoding": "gzip" });
  assert.equal(gunzipSync(await gzip.bytes()).toString(), INDEX);
  assert.notEqual(br.headers.get("etag"), gzip.headers.get("etag"), "each representation has its own strong ETag");
});

test("conditional requests: If-None-Match (weak comparison) → 304, If-Match → 412", async () => {
  const etag = get("/style.css").headers.get("etag") ?? "";
  const notModified = get("/style.css", { "if-none-match": etag });
  assert.equal(notModified.status, 304);
  assert.equal(notModified.headers.get("etag"), etag);
  assert.equal(notModified.headers.get("vary"), "Accept-Encoding");
  assert.equal(notModified.headers.get("content-type"), null);
  assert.equal(await body(notModified), "");
  assert.equal(get("/style.css", { "if-none-match": `W/${etag}` }).status, 304);
  assert.equal(get("/style.css", { "if-none-match": `"other", ${etag}` }).status, 304);
  assert.equal(get("/style.css", { "if-none-match": "*" }).status, 304);
  assert.equal(get("/style.css", { "if-none-match": '"other"' }).status, 200);
  assert.equal(get("/style.css", { "if-none-match": "garbage" }).status, 200);
  // The identity ETag does not validate the brotli representation.
  assert.equal(get("/style.css", { "if-none-match": etag, "accept-encoding": "br" }).status, 200);
  assert.equal(get("/style.css", { "if-none-match": etag }, "HEAD").status, 304);

  assert.equal(get("/style.css", { "if-match": '"other"' }).status, 412);
  assert.equal(get("/style.css", { "if-match": `W/${etag}` }).status, 412, "If-Match compares strongly");
  assert.equal(get("/style.css", { "if-match": etag }).status, 200);
  assert.equal(get("/style.css", { "if-match": "*" }).status, 200);
});

test("ranges: one range → 206 with Content-Range; unsatisfiable → 416; several → 200 with the whole file", async () => {
  const range = (value: string, extra: Record<string, string> = {}): Response => get("/digits.txt", { range: value, ...extra });
  const first = range("bytes=0-3");
  assert.equal(first.status, 206);
  assert.equal(first.headers.get("content-range"), "bytes 0-3/10");
  assert.equal(await body(first), "0123");
  assert.equal(await body(range("bytes=-3")), "789");
  assert.equal(await body(range("bytes=7-")), "789");
  assert.equal(await body(range("bytes=8-100")), "89");
  assert.equal(range("bytes=8-100").headers.get("content-range"), "bytes 8-9/10");
  assert.equal(await body(range("Bytes = 2-4")), "234");
  assert.equal(await body(range("bytes=0-2, 2-5")), "012345", "overlapping ranges coalesce");
  const unsatisfiable = range("bytes=10-");
  assert.equal(unsatisfiable.status, 416);
  assert.equal(unsatisfiable.headers.get("content-range"), "bytes */10");
  assert.equal(range("bytes=-0").status, 416);
  assert.equal(range("bytes=0-1, 5-6").status, 200, "several parts: the whole representation");
  assert.equal(range("bytes=5-1").status, 200, "invalid: ignored");
  assert.equal(range("items=0-1").status, 200, "another unit: ignored");
  assert.equal(range("bytes=x-1").status, 200);
  assert.equal(get("/digits.txt", { range: "bytes=0-1" }, "HEAD").status, 200, "Range is for GET only");
  assert.equal(get("/empty.txt", { range: "bytes=0-1" }).status, 200);

  const etag = get("/digits.txt").headers.get("etag") ?? "";
  assert.equal(range("bytes=0-1", { "if-range": etag }).status, 206);
  assert.equal(range("bytes=0-1", { "if-range": '"stale"' }).status, 200);
  assert.equal(range("bytes=0-1", { "if-range": `W/${etag}` }).status, 200);
  assert.equal(range("bytes=0-1", { "if-range": "Sun, 06 Nov 1994 08:49:37 GMT" }).status, 200);

  const compressed = get("/index.html", { range: "bytes=0-9", "accept-encoding": "gzip" });
  assert.equal(compressed.status, 206);
  assert.equal(compressed.headers.get("content-encoding"), "gzip");
  assert.deepEqual([...(await compressed.bytes())].slice(0, 2), [0x1f, 0x8b], "the range is of the gzip bytes");
});

test("directories: index.html, and a redirect to the trailing slash", async () => {
  assert.equal(await body(get("/")), INDEX);
  assert.match(await body(get("/docs/")), /<h1>Docs<\/h1>/);
  const redirect = get("/docs?x=1");
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.get("location"), "/docs/?x=1");
  assert.equal(get("/img.png/").status, 404);
  assert.match(await body(get("/", {}, "GET", { indexFile: "404.html" })), /Nothing here/);
});

test("404: the store's 404.html, or plain text", async () => {
  const missing = get("/nope");
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(await body(missing), "<h1>Nothing here</h1>");
  const plain = get("/nope", {}, "GET", { notFoundPage: null });
  assert.deepEqual([plain.status, await body(plain)], [404, "Not Found\n"]);
  const bare = get("/nope", {}, "GET", {}, storeOf({ "/only.txt": "x" }));
  assert.deepEqual([bare.status, bare.headers.get("content-type")], [404, "text/plain; charset=utf-8"]);
});

test("methods other than GET and HEAD: 405 with Allow", () => {
  for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
    const response = get("/index.html", {}, method);
    assert.equal(response.status, 405);
    assert.equal(response.headers.get("allow"), "GET, HEAD");
  }
});

test("paths are percent-decoded as UTF-8; invalid UTF-8 is a 400", async () => {
  assert.equal(await body(get("/a%20b.txt")), "spaced");
  assert.equal(await body(get("/caf%C3%A9.txt")), "accented");
  assert.equal(await body(get("/café.txt")), "accented");
  assert.equal(get("/%FF").status, 400);
  assert.equal(get("/docs/../index.html").status, 200, "dot segments were resolved by the URL parser");
});

test("Cache-Control, as a value or per asset", () => {
  assert.equal(get("/style.css", {}, "GET", { cacheControl: "public, max-age=60" }).headers.get("cache-control"), "public, max-age=60");
  const perAsset: StaticOptions = { cacheControl: (asset) => (asset.contentType.startsWith("text/html") ? "no-cache" : "max-age=31536000, immutable") };
  assert.equal(get("/index.html", {}, "GET", perAsset).headers.get("cache-control"), "no-cache");
  assert.equal(get("/img.png", {}, "GET", perAsset).headers.get("cache-control"), "max-age=31536000, immutable");
});

test("on the wire: HEAD has GET's Content-Length, 206 and 304 are framed right", async () => {
  const [client, server] = createFlowPair();
  const done = serveHttpConnection(server, serveStatic(store), { timers: new ManualTimers(), wallClock: () => 0, accessLog: false, lingerMs: 0 });
  const etag = get("/digits.txt").headers.get("etag") ?? "";
  await client.write(
    latin1Encode(
      "HEAD /digits.txt HTTP/1.1\r\nHost: h\r\n\r\n" +
        "GET /digits.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=2-4\r\n\r\n" +
        `GET /digits.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: ${etag}\r\n\r\n` +
        "GET /digits.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=20-\r\nConnection: close\r\n\r\n",
    ),
  );
  let output = "";
  for (let chunk = await client.read(); chunk !== undefined; chunk = await client.read()) output += latin1Decode(chunk);
  await client.close();
  await done;
  const responses = output.split(/(?=HTTP\/1\.1 )/);
  assert.equal(responses.length, 4, output);
  assert.match(responses[0] ?? "", /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 10\r\n\r\n$/);
  // Field names go out as the Headers object holds them: lower-case (HTTP names are case-insensitive).
  assert.match(responses[1] ?? "", /^HTTP\/1\.1 206 Partial Content\r\n[\s\S]*content-range: bytes 2-4\/10\r\n[\s\S]*Content-Length: 3\r\n\r\n234$/);
  assert.match(responses[2] ?? "", /^HTTP\/1\.1 304 Not Modified\r\n[\s\S]*\r\n\r\n$/);
  assert.doesNotMatch(responses[2] ?? "", /Content-Length/);
  assert.match(responses[3] ?? "", /^HTTP\/1\.1 416 Range Not Satisfiable\r\n[\s\S]*content-range: bytes \*\/10\r\n[\s\S]*Content-Length: 0\r\n/);
});

test("negotiation, entity tags and ranges as pure functions", () => {
  assert.equal(chooseContentCoding(null, ["br", "gzip"]), "identity");
  assert.equal(chooseContentCoding("gzip;q=1.000, br;q=0.999", ["br", "gzip"]), "gzip");
  assert.equal(chooseContentCoding("gzip;q=2", ["gzip"]), "identity", "a malformed weight drops the element");
  assert.deepEqual(parseEntityTagList('W/"a", "b"'), [
    { weak: true, opaque: '"a"' },
    { weak: false, opaque: '"b"' },
  ]);
  assert.equal(parseEntityTagList('"a" "b"'), undefined);
  assert.equal(parseEntityTagList('"a'), undefined);
  assert.deepEqual(evaluateRange("bytes=0-0,-1", 5), { kind: "full" });
  assert.deepEqual(evaluateRange("bytes=0-1,2-3", 5), { kind: "partial", first: 0, last: 3 });
  assert.deepEqual(evaluateRange("bytes=,,1-1", 5), { kind: "partial", first: 1, last: 1 });
  assert.deepEqual(evaluateRange("bytes=", 5), { kind: "full" });
});

test("per-representation fields are built once, yet each response has its own Headers and the current Cache-Control", () => {
  let policy = "max-age=60";
  const site = serveStatic(store, { cacheControl: () => policy });
  const request = (headers: Record<string, string> = {}): Response => site(new Request("http://site.example/index.html", { headers }));
  const first = request({ "accept-encoding": "br" });
  first.headers.set("x-changed", "by the application");
  first.headers.delete("etag");
  const second = request({ "accept-encoding": "br" });
  assert.equal(second.headers.get("x-changed"), null);
  assert.equal(second.headers.get("content-encoding"), "br");
  assert.match(second.headers.get("etag") ?? "", /-br"$/);
  assert.equal(second.headers.get("cache-control"), "max-age=60");
  policy = "no-store";
  const third = request({ "accept-encoding": "br" });
  assert.equal(third.headers.get("cache-control"), "no-store");
  // The 304 for that representation: validator and caching fields only, the current ones.
  const notModified = request({ "accept-encoding": "br", "if-none-match": third.headers.get("etag") ?? "" });
  assert.equal(notModified.status, 304);
  assert.deepEqual([...notModified.headers.keys()], ["cache-control", "etag", "vary"]);
  assert.equal(notModified.headers.get("cache-control"), "no-store");
  // Other representations of the same asset keep their own fields.
  const identity = request();
  assert.equal(identity.headers.get("content-encoding"), null);
  assert.equal(identity.headers.get("etag"), store.lookup("/index.html")?.etag);
});

test("Accept-Encoding choices stay right when the same values come again (they are parsed once)", () => {
  for (let round = 0; round < 3; round++) {
    assert.equal(chooseContentCoding("gzip, br", ["br", "gzip"]), "br");
    assert.equal(chooseContentCoding("gzip;q=0.5", ["br", "gzip"]), "gzip");
    assert.equal(chooseContentCoding("br;q=0, gzip;q=0", ["br", "gzip"]), "identity");
    assert.equal(chooseContentCoding("*;q=0", ["br", "gzip"]), undefined);
    assert.equal(chooseContentCoding("gzip, br", []), "identity");
    assert.equal(chooseContentCoding("identity;q=0", []), undefined);
  }
});

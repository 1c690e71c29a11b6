import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ChunkedDecoder, parseChunkSizeLine } from "../../src/lib/http/chunked.ts";
import { Http1Connection, type Exchange, type HttpLimits } from "../../src/lib/http/connection.ts";
import { ProtocolError } from "../../src/lib/http/errors.ts";
import { interpretRequest } from "../../src/lib/http/framing.ts";
import { HeadCache, HeadReader, parseRequestHead } from "../../src/lib/http/head.ts";
import { latin1Decode, latin1Encode } from "../../src/lib/http/syntax.ts";
import { ManualTimers } from "../../src/lib/http/testing.ts";

const bytes = (text: string): Uint8Array => latin1Encode(text);

/** Reads a complete head with HeadReader, then parses and interprets it: the engine's path, without the engine. */
function parse(text: string): { status: number; kind?: string } | { status: 0; info: ReturnType<typeof interpretRequest> } {
  const reader = new HeadReader({ maxFirstLineBytes: 8192, maxFieldBytes: 16384, maxFieldCount: 100 }, true);
  reader.feed(bytes(text), 0);
  if (reader.error !== undefined) return { status: reader.error.status, kind: reader.error.kind };
  if (!reader.complete) return { status: -1, kind: "incomplete" };
  const head = parseRequestHead(reader.bytes());
  if (head instanceof ProtocolError) return { status: head.status, kind: head.kind };
  const info = interpretRequest(head, 1 << 20);
  if (info instanceof ProtocolError) return { status: info.status, kind: info.kind };
  return { status: 0, info };
}

test("valid request heads parse into method, target, version and fields", () => {
  const result = parse("GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nX-Thing:  spaced value \t\r\nAccept: */*\r\n\r\n");
  assert.equal(result.status, 0);
  assert.ok("info" in result && !(result.info instanceof ProtocolError));
  const info = result.info;
  assert.equal(info.method, "GET");
  assert.equal(info.target, "/a/b?c=d");
  assert.equal(info.versionMinor, 1);
  assert.equal(info.targetForm, "origin");
  assert.equal(info.authority, "example.com");
  assert.deepEqual(info.fields, [
    ["Host", "example.com"],
    ["X-Thing", "spaced value"],
    ["Accept", "*/*"],
  ]);
  assert.deepEqual(info.body, { kind: "none" });
  assert.equal(info.keepAlive, true);
});

test("corpus of valid requests", () => {
  const valid: [string, (info: Exclude<ReturnType<typeof interpretRequest>, ProtocolError>) => void][] = [
    ["\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", (info) => assert.equal(info.target, "/")],
    ["GET / HTTP/1.0\r\n\r\n", (info) => assert.deepEqual([info.versionMinor, info.keepAlive, info.authority], [0, false, undefined])],
    ["GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", (info) => assert.equal(info.keepAlive, true)],
    ["GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", (info) => assert.equal(info.keepAlive, false)],
    ["GET / HTTP/1.2\r\nHost: h\r\n\r\n", (info) => assert.equal(info.versionMinor, 1)],
    ["POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", (info) => assert.deepEqual(info.body, { kind: "length", length: 5 })],
    ["POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", (info) => assert.deepEqual(info.body, { kind: "none" })],
    ["POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n", (info) => assert.deepEqual(info.body, { kind: "length", length: 7 })],
    ["POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", (info) => assert.deepEqual(info.body, { kind: "chunked" })],
    ["POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n", (info) => assert.deepEqual(info.body, { kind: "chunked" })],
    ["PUT /p HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", (info) => assert.equal(info.expectContinue, true)],
    ["PUT /p HTTP/1.0\r\nExpect: whatever\r\nContent-Length: 1\r\n\r\n", (info) => assert.equal(info.expectContinue, false)],
    ["GET http://Example.COM:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n", (info) => assert.deepEqual([info.targetForm, info.authority, info.scheme], ["absolute", "example.com:8080", "http"])],
    ["OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", (info) => assert.equal(info.targetForm, "asterisk")],
    ["GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", (info) => assert.equal(info.authority, "[::1]:80")],
    ["GET / HTTP/1.1\r\nHost:\r\n\r\n", (info) => assert.equal(info.authority, undefined)],
    ["GET / HTTP/1.1\r\nHost: h\r\nX-Latin: caf\xe9\r\n\r\n", (info) => assert.equal(info.fields[1]?.[1], "caf\xe9")],
    ["M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\n", () => undefined],
  ];
  for (const [text, check] of valid) {
    const result = parse(text.replace("M-SEARCH *", "M-SEARCH /"));
    assert.equal(result.status, 0, `${JSON.stringify(text)}: ${JSON.stringify(result)}`);
    if ("info" in result && !(result.info instanceof ProtocolError)) check(result.info);
  }
});

test("corpus of invalid requests, each with the status RFC 9112 gives it", () => {
  const invalid: [string, number, string][] = [
    // Request line
    ["GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "badRequestLine"],
    ["GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400, "badRequestLine"],
    ["GET / http/1.1\r\nHost: h\r\n\r\n", 400, "badRequestLine"],
    ["GET / HTTP/11\r\nHost: h\r\n\r\n", 400, "badRequestLine"],
    ["GET /\r\nHost: h\r\n\r\n", 400, "badRequestLine"],
    ["G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "badRequestLine"],
    ["GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n", 400, "badRequestLine"],
    ["GET /caf\xe9 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "badRequestLine"],
    ["GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "unsupportedVersion"],
    ["GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505, "unsupportedVersion"],
    ["GET a HTTP/1.1\r\nHost: h\r\n\r\n", 400, "badTarget"],
    ["GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400, "badTarget"],
    ["GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "badTarget"],
    ["GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "badTarget"],
    ["CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501, "connectNotSupported"],
    // Line endings
    ["GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "bareLineFeed"],
    ["GET / HTTP/1.1\r\nHost: h\n\n", 400, "bareLineFeed"],
    ["GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400, "bareCarriageReturn"],
    ["GET / HTTP/1.1\r\rHost: h\r\n\r\n", 400, "bareCarriageReturn"],
    // Fields
    ["GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400, "obsFold"],
    ["GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400, "obsFold"],
    ["GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, "badHeaderField"],
    ["GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400, "badHeaderField"],
    ["GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", 400, "badHeaderField"],
    ["GET / HTTP/1.1\r\nHost: h\r\nX(y): z\r\n\r\n", 400, "badHeaderField"],
    ["GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400, "badHeaderValue"],
    ["GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", 400, "badHeaderValue"],
    ["GET / HTTP/1.1\r\nHost: h\r\nX: a\x0bb\r\n\r\n", 400, "badHeaderValue"],
    // Host
    ["GET / HTTP/1.1\r\n\r\n", 400, "badHost"],
    ["GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "badHost"],
    ["GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "badHost"],
    ["GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "badHost"],
    ["GET / HTTP/1.1\r\nHost: h:80x\r\n\r\n", 400, "badHost"],
    ["GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400, "badHost"],
    // Framing and smuggling (RFC 9112 §6)
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "lengthAndTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "lengthAndTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400, "badContentLength"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "badContentLength"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400, "badContentLength"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400, "badContentLength"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, "badContentLength"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400, "badContentLength"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n", 400, "badContentLength"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400, "badContentLength"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 413, "bodyTooLarge"],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n", 413, "bodyTooLarge"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "badTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, "badTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400, "badTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "badTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400, "badTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400, "badTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 400, "badTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400, "badTransferEncoding"],
    ["POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "badTransferEncoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "unknownTransferCoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "unknownTransferCoding"],
    ["POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", 417, "expectationFailed"],
  ];
  for (const [text, status, kind] of invalid) {
    const result = parse(text);
    assert.deepEqual(result, { status, kind }, JSON.stringify(text));
  }
});

test("limits: request line → 414, header section size and count → 431", () => {
  const reader = (limits: { line: number; bytes: number; count: number }): HeadReader =>
    new HeadReader({ maxFirstLineBytes: limits.line, maxFieldBytes: limits.bytes, maxFieldCount: limits.count }, true);
  const long = reader({ line: 32, bytes: 1024, count: 10 });
  // The error comes as soon as the limit is passed, without waiting for the line to end.
  long.feed(bytes(`GET /${"a".repeat(40)}`), 0);
  assert.equal(long.error?.status, 414);
  const big = reader({ line: 100, bytes: 64, count: 10 });
  big.feed(bytes(`GET / HTTP/1.1\r\nX: ${"b".repeat(80)}`), 0);
  assert.deepEqual([big.error?.status, big.error?.kind], [431, "headersTooLarge"]);
  const many = reader({ line: 100, bytes: 4096, count: 3 });
  many.feed(bytes("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"), 0);
  assert.deepEqual([many.error?.status, many.error?.kind], [431, "tooManyHeaders"]);
  const exact = reader({ line: 14, bytes: 4096, count: 3 });
  exact.feed(bytes("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), 0);
  assert.equal(exact.complete, true);
});

test("property: the reader's limits hold at the same octet whether a head arrives whole or in pieces", () => {
  const line = fc.constantFrom("GET / HTTP/1.1", "GET /a-rather-longer-target?with=query HTTP/1.1", "Host: a", "X-Long: " + "v".repeat(40), "A: 1", "", "bad\nline", "cr\rline");
  fc.assert(
    fc.property(fc.array(line, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), fc.integer({ min: 1, max: 60 }), fc.integer({ min: 4, max: 120 }), fc.integer({ min: 1, max: 5 }), (lines, splits, lineLimit, fieldLimit, countLimit) => {
      const input = bytes(lines.map((text) => `${text}\r\n`).join(""));
      const limits = { maxFirstLineBytes: lineLimit, maxFieldBytes: fieldLimit, maxFieldCount: countLimit };
      const whole = new HeadReader(limits, true);
      const wholeConsumed = whole.feed(input, 0);
      const pieces = new HeadReader(limits, true);
      let at = 0;
      for (const split of [...splits.map((value) => value % (input.length + 1)).sort((a, b) => a - b), input.length]) {
        const end = Math.max(at, split);
        const piece = input.subarray(0, end);
        while (at < end && pieces.error === undefined && !pieces.complete) at += pieces.feed(piece, at);
        at = end;
      }
      assert.deepEqual([pieces.complete, pieces.error?.kind], [whole.complete, whole.error?.kind]);
      if (whole.complete) assert.deepEqual(pieces.bytes(), whole.bytes());
      assert.ok(wholeConsumed <= input.length);
    }),
    { numRuns: 400 },
  );
});

test("property: heads parsed with a HeadCache equal heads parsed afresh, whatever the previous heads were", () => {
  const requestLine = fc.constantFrom("GET / HTTP/1.1", "GET /other HTTP/1.1", "HEAD / HTTP/1.0", "POST /x HTTP/1.1", "get / HTTP/1.1", "GET / HTTP/2.0", "GET  / HTTP/1.1");
  const fieldLine = fc.constantFrom("Host: a", "Host: b", "host: a", "Accept: */*", "Accept:  */* ", "User-Agent: x/1", "X-Custom: 1", " folded", "Bad Name: 1", "Ctl: a\x01b", "Cookie: a=1", "Cookie: a=2");
  const head = fc.tuple(requestLine, fc.array(fieldLine, { maxLength: 5 })).map(([first, fields]) => bytes([first, ...fields].map((text) => `${text}\r\n`).join("")));
  fc.assert(
    fc.property(fc.array(head, { minLength: 1, maxLength: 6 }), (heads) => {
      const cache = new HeadCache();
      for (const one of heads) {
        // The cache keeps copies: the reader's buffer is overwritten by the next head.
        const buffer = one.slice();
        assert.deepEqual(parseRequestHead(buffer, cache), parseRequestHead(one));
        buffer.fill(0);
      }
    }),
    { numRuns: 500 },
  );
});

test("chunk-size lines: sizes, extensions, and what is refused", () => {
  const size = (line: string): number => parseChunkSizeLine(bytes(line));
  assert.equal(size("0"), 0);
  assert.equal(size("1a"), 26);
  assert.equal(size("1A"), 26);
  assert.equal(size("0000000000000000000010"), 16);
  assert.equal(size("5;name"), 5);
  assert.equal(size("5 ; name = value"), 5);
  assert.equal(size('5;name="quoted \\" value";other=x'), 5);
  for (const bad of ["", " 5", "5 ", "0x5", "-1", "+1", "5;", "5;=x", "5;name=", '5;name="open', "g", "5\t", "5 x", "ffffffffffffffffff"]) {
    assert.equal(size(bad), -1, JSON.stringify(bad));
  }
});

function decodeChunked(text: string, pieces = 1): { data: string; error?: string; done: boolean; trailers: readonly (readonly [string, string])[] } {
  const decoder = new ChunkedDecoder({ maxChunkLineBytes: 64, maxTrailerBytes: 256, maxTrailerCount: 4 });
  const input = bytes(text);
  let data = "";
  const step = Math.max(1, Math.ceil(input.length / pieces));
  for (let at = 0; at < input.length && decoder.error === undefined && !decoder.done; at += step) {
    const piece = input.subarray(at, Math.min(input.length, at + step));
    let offset = 0;
    while (offset < piece.length && decoder.error === undefined && !decoder.done) {
      offset += decoder.decode(piece, offset, (chunk) => (data += latin1Decode(chunk)), () => undefined);
    }
  }
  return { data, ...(decoder.error === undefined ? {} : { error: decoder.error.kind }), done: decoder.done, trailers: decoder.trailers };
}

test("chunked bodies decode in any split, with trailers; malformed ones fail", () => {
  for (const pieces of [1, 2, 3, 7, 100]) {
    assert.deepEqual(decodeChunked("5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n", pieces), { data: "hello world", done: true, trailers: [["X-Sum", "1"]] });
  }
  assert.equal(decodeChunked("5\r\nhelloX\r\n0\r\n\r\n").error, "badChunkTerminator");
  assert.equal(decodeChunked("5\r\nhello\n0\r\n\r\n").error, "badChunkTerminator");
  assert.equal(decodeChunked("5\nhello\r\n0\r\n\r\n").error, "badChunkSize");
  assert.equal(decodeChunked("5\rhello\r\n0\r\n\r\n").error, "badChunkSize");
  assert.equal(decodeChunked("z\r\n").error, "badChunkSize");
  assert.equal(decodeChunked(`5;${"e".repeat(100)}\r\n`).error, "badChunkSize");
  assert.equal(decodeChunked("0\r\nBad Trailer: x\r\n\r\n").error, "badTrailer");
  assert.equal(decodeChunked("0\r\nX: a\n\r\n").error, "badTrailer");
  assert.equal(decodeChunked(`0\r\nX: ${"t".repeat(300)}\r\n\r\n`).error, "trailersTooLarge");
});

// ── Properties over the whole engine ──────────────────────────────────────────────────────────

const SMALL_LIMITS: Partial<HttpLimits> = {
  maxRequestLineBytes: 64,
  maxHeaderBytes: 256,
  maxHeaderCount: 8,
  maxBodyBytes: 512,
  maxChunkLineBytes: 32,
  maxPipelinedRequests: 4,
  bodyBufferBytes: 128,
};

interface Transcript {
  output: string;
  events: string[];
  maxBuffered: number;
}

/** Feeds `input` in the given pieces to a connection whose handler reads each body and answers with a summary. */
function runEngine(input: Uint8Array, splits: readonly number[], limits: Partial<HttpLimits> = SMALL_LIMITS): Transcript {
  const events: string[] = [];
  let maxBuffered = 0;
  const answer = (exchange: Exchange): void => {
    let length = 0;
    let sum = 0;
    const pump = (): void => {
      for (;;) {
        const read = exchange.readBody();
        if (read.kind === "pending") {
          exchange.onBodyReadable(pump);
          return;
        }
        if (read.kind === "data") {
          length += read.bytes.length;
          for (const byte of read.bytes) sum = (sum + byte) % 65521;
          continue;
        }
        const text = read.kind === "end" ? `${exchange.request.method} ${exchange.request.target} ${length} ${sum}` : `error ${read.error.message}`;
        events.push(`answered ${text}`);
        exchange.respond({ status: 200, headers: [["X", "y"]], contentLength: text.length });
        exchange.write(latin1Encode(text));
        exchange.end();
        return;
      }
    };
    pump();
  };
  const connection = new Http1Connection({
    timers: new ManualTimers(),
    limits,
    hooks: {
      onRequest: (exchange) => {
        events.push(`request ${exchange.request.requestLine}`);
        answer(exchange);
      },
      onOutput: () => undefined,
      onProtocolError: (error) => events.push(`error ${error.kind}`),
    },
  });
  const cuts = [...new Set(splits.map((split) => split % (input.length + 1)))].sort((a, b) => a - b);
  let previous = 0;
  for (const cut of [...cuts, input.length]) {
    if (cut > previous) {
      connection.receive(input.slice(previous, cut));
      maxBuffered = Math.max(maxBuffered, connection.bufferedInputBytes - (cut - previous));
    }
    previous = cut;
  }
  connection.receiveEnd();
  const output = connection
    .takeOutput()
    .map((piece) => latin1Decode(piece))
    .join("");
  return { output, events, maxBuffered };
}

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,8}$/);
const fieldValue = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,10}[\x21-\x7e])?$/);
const validRequest = fc
  .record({
    method: fc.constantFrom("GET", "POST", "PUT", "HEAD", "DELETE"),
    path: fc.stringMatching(/^\/[a-z0-9/._~-]{0,20}$/),
    fields: fc.array(fc.tuple(token, fieldValue), { maxLength: 4 }),
    body: fc.uint8Array({ maxLength: 200 }),
    chunked: fc.boolean(),
    chunkSize: fc.integer({ min: 1, max: 50 }),
  })
  .map(({ method, path, fields, body, chunked, chunkSize }) => {
    const head = [`${method} ${path} HTTP/1.1`, "Host: example.com", ...fields.filter(([name]) => !/^(host|content-length|transfer-encoding|connection|expect)$/i.test(name)).map(([name, value]) => `${name}: ${value}`)];
    if (body.length === 0) return bytes(`${head.join("\r\n")}\r\n\r\n`);
    if (!chunked) return new Uint8Array([...bytes(`${head.join("\r\n")}\r\nContent-Length: ${body.length}\r\n\r\n`), ...body]);
    const parts: number[] = [...bytes(`${head.join("\r\n")}\r\nTransfer-Encoding: chunked\r\n\r\n`)];
    for (let at = 0; at < body.length; at += chunkSize) {
      const piece = body.subarray(at, at + chunkSize);
      parts.push(...bytes(`${piece.length.toString(16)}\r\n`), ...piece, ...bytes("\r\n"));
    }
    parts.push(...bytes("0\r\n\r\n"));
    return new Uint8Array(parts);
  });
const noise = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.constantFrom("\r\n", "\n", "\r", " ", ":", "Content-Length: 3\r\n", "Transfer-Encoding: chunked\r\n", "0\r\n\r\n", "HTTP/1.1\r\n").map(bytes),
);
const stream = fc.array(fc.oneof({ weight: 3, arbitrary: validRequest }, { weight: 1, arbitrary: noise }), { maxLength: 6 }).map((parts) => {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
});

test("property: any byte stream, fed in any pieces, gives what it gives fed whole; the engine never throws; memory stays bounded", () => {
  fc.assert(
    fc.property(stream, fc.array(fc.nat(), { maxLength: 12 }), (input, splits) => {
      const whole = runEngine(input, []);
      const pieces = runEngine(input, splits);
      assert.deepEqual(pieces.events, whole.events);
      assert.equal(pieces.output, whole.output);
      // Held input never exceeds the head limits plus a chunk-size line (the handler reads bodies as they come).
      const bound = (SMALL_LIMITS.maxRequestLineBytes ?? 0) + (SMALL_LIMITS.maxHeaderBytes ?? 0) + (SMALL_LIMITS.maxChunkLineBytes ?? 0) + 8;
      assert.ok(pieces.maxBuffered <= bound, `buffered ${pieces.maxBuffered} > ${bound}`);
    }),
    { numRuns: 400 },
  );
});

test("property: valid pipelined requests are each answered, in order", () => {
  fc.assert(
    fc.property(fc.array(validRequest, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 8 }), (requests, splits) => {
      const input = new Uint8Array(requests.reduce((sum, request) => sum + request.length, 0));
      let at = 0;
      for (const request of requests) {
        input.set(request, at);
        at += request.length;
      }
      const result = runEngine(input, splits, { ...SMALL_LIMITS, maxRequestLineBytes: 8192, maxHeaderBytes: 16384, maxHeaderCount: 100 });
      const statuses = result.output.match(/HTTP\/1\.1 \d{3}/g) ?? [];
      assert.equal(statuses.length, requests.length);
      assert.ok(statuses.every((status) => status === "HTTP/1.1 200"));
      assert.equal(result.events.filter((event) => event.startsWith("error")).length, 0);
    }),
    { numRuns: 200 },
  );
});

test("property: random bytes never make the parser throw, and every error is answered with its status", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 6 }), (input, splits) => {
      const result = runEngine(input, splits);
      const errors = result.events.filter((event) => event.startsWith("error "));
      assert.ok(errors.length <= 1, "at most one protocol error: the connection closes after it");
    }),
    { numRuns: 500 },
  );
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { Http1Connection, type Exchange, type ExchangeRecord, type HttpLimits, type HttpTimeouts } from "../../src/lib/http/connection.ts";
import type { ProtocolError } from "../../src/lib/http/errors.ts";
import { latin1Decode, latin1Encode } from "../../src/lib/http/syntax.ts";
import { ManualTimers } from "../../src/lib/http/testing.ts";

interface Harness {
  connection: Http1Connection;
  timers: ManualTimers;
  exchanges: Exchange[];
  errors: ProtocolError[];
  records: ExchangeRecord[];
  send(text: string): void;
  output(): string;
}

function harness(options: { limits?: Partial<HttpLimits>; timeouts?: Partial<HttpTimeouts>; onRequest?: (exchange: Exchange) => void } = {}): Harness {
  const timers = new ManualTimers();
  const exchanges: Exchange[] = [];
  const errors: ProtocolError[] = [];
  const records: ExchangeRecord[] = [];
  const connection = new Http1Connection({
    timers,
    limits: options.limits,
    timeouts: options.timeouts,
    date: () => "Sun, 06 Nov 1994 08:49:37 GMT",
    hooks: {
      onRequest: (exchange) => {
        exchanges.push(exchange);
        options.onRequest?.(exchange);
      },
      onOutput: () => undefined,
      onProtocolError: (error) => errors.push(error),
      onExchangeComplete: (record) => records.push(record),
    },
  });
  return {
    connection,
    timers,
    exchanges,
    errors,
    records,
    send: (text) => connection.receive(latin1Encode(text)),
    output: () => {
      // A driver that writes at once: it takes the output and releases it (no send timeout runs).
      const text = connection
        .takeOutput()
        .map((piece) => latin1Decode(piece))
        .join("");
      connection.releaseOutput();
      return text;
    },
  };
}

function reply(exchange: Exchange, text: string, status = 200, length: "known" | "unknown" = "known"): void {
  exchange.respond({ status, headers: [["Content-Type", "text/plain"]], contentLength: length === "known" ? text.length : undefined });
  exchange.write(latin1Encode(text));
  exchange.end();
}

function readAll(exchange: Exchange): string | Error | undefined {
  let text = "";
  for (;;) {
    const read = exchange.readBody();
    if (read.kind === "data") text += latin1Decode(read.bytes);
    else if (read.kind === "end") return text;
    else if (read.kind === "error") return read.error;
    else return undefined;
  }
}

function statusLines(output: string): string[] {
  return output.match(/HTTP\/1\.1 \d{3}[^\r]*/g) ?? [];
}

const GET = (path: string, extra = ""): string => `GET ${path} HTTP/1.1\r\nHost: h\r\n${extra}\r\n`;

test("a response: head with Date and framing, then the body", () => {
  const h = harness({ onRequest: (exchange) => reply(exchange, "hello") });
  h.send(GET("/"));
  assert.equal(h.output(), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\n\r\nhello");
  assert.equal(h.connection.finished, false, "HTTP/1.1 persists");
  assert.deepEqual(h.records, [{ requestLine: "GET / HTTP/1.1", status: 200, bodyBytes: 5, aborted: false }]);
});

test("unknown length → chunked for HTTP/1.1, close-delimited for HTTP/1.0", () => {
  const h = harness({ onRequest: (exchange) => reply(exchange, "abc", 200, "unknown") });
  h.send(GET("/"));
  assert.match(h.output(), /Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n$/);
  const old = harness({ onRequest: (exchange) => reply(exchange, "abc", 200, "unknown") });
  old.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const output = old.output();
  assert.doesNotMatch(output, /Transfer-Encoding/);
  assert.match(output, /Connection: close\r\n\r\nabc$/);
  assert.equal(old.connection.finished, true);
});

test("HTTP/1.0 keep-alive: persists with a known length and says so; without keep-alive it closes", () => {
  const h = harness({ onRequest: (exchange) => reply(exchange, "x") });
  h.send("GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  assert.match(h.output(), /Connection: keep-alive\r\n\r\nx$/);
  assert.equal(h.connection.finished, false);
  h.send("GET /2 HTTP/1.0\r\n\r\n");
  assert.match(h.output(), /Connection: close\r\n\r\nx$/);
  assert.equal(h.connection.finished, true);
});

test("Connection: close: the response says close and later requests are not read", () => {
  const h = harness({ onRequest: (exchange) => reply(exchange, "x") });
  h.send(GET("/a", "Connection: close\r\n") + GET("/b"));
  const output = h.output();
  assert.equal(statusLines(output).length, 1);
  assert.match(output, /Connection: close/);
  assert.equal(h.exchanges.length, 1);
  assert.equal(h.connection.finished, true);
});

test("pipelining: responses go out in request order, whatever order the handler answers in", () => {
  const h = harness();
  h.send(GET("/1") + GET("/2") + GET("/3"));
  assert.equal(h.exchanges.length, 3);
  const [first, second, third] = h.exchanges;
  assert.ok(first !== undefined && second !== undefined && third !== undefined);
  reply(third, "three");
  reply(second, "two");
  assert.equal(h.output(), "", "nothing may pass the unanswered first request");
  reply(first, "one");
  const output = h.output();
  assert.deepEqual(output.match(/one|two|three/g), ["one", "two", "three"]);
});

test("pipelining depth is bounded: parsing waits, and input pauses", () => {
  const h = harness({ limits: { maxPipelinedRequests: 2, bodyBufferBytes: 40 } });
  h.send(GET("/1") + GET("/2") + GET("/3") + GET("/4"));
  assert.equal(h.exchanges.length, 2);
  assert.equal(h.connection.wantsInput, false, "the unparsed requests exceed the input buffer");
  const first = h.exchanges[0];
  assert.ok(first !== undefined);
  reply(first, "1");
  assert.equal(h.exchanges.length, 3);
});

test("HEAD: Content-Length as for GET, no body, no chunked coding", () => {
  const h = harness({ onRequest: (exchange) => reply(exchange, "0123456789") });
  h.send(`HEAD / HTTP/1.1\r\nHost: h\r\n\r\n${GET("/next")}`);
  const output = h.output();
  assert.ok(output.startsWith("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK"), output);
  assert.equal(h.exchanges[0]?.bodyAllowed, false);
  const unknown = harness({ onRequest: (exchange) => reply(exchange, "abc", 200, "unknown") });
  unknown.send("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
  assert.doesNotMatch(unknown.output(), /Transfer-Encoding|Content-Length|abc/);
});

test("204 and 304 carry no content and no Content-Length", () => {
  const h = harness({ onRequest: (exchange) => reply(exchange, "ignored", exchange.request.target === "/a" ? 204 : 304) });
  h.send(GET("/a") + GET("/b"));
  const output = h.output();
  assert.equal(statusLines(output).join("|"), "HTTP/1.1 204 No Content|HTTP/1.1 304 Not Modified");
  assert.doesNotMatch(output, /Content-Length|ignored/);
});

test("request bodies: Content-Length and chunked, streamed to the handler in pieces", () => {
  const bodies: string[] = [];
  const h = harness({
    onRequest: (exchange) => {
      let text = "";
      const pump = (): void => {
        for (;;) {
          const read = exchange.readBody();
          if (read.kind === "pending") {
            exchange.onBodyReadable(pump);
            return;
          }
          if (read.kind !== "data") break;
          text += latin1Decode(read.bytes);
        }
        bodies.push(text);
        reply(exchange, "ok");
      };
      pump();
    },
  });
  h.send("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello");
  h.send(" world");
  h.send("POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  h.send("2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n");
  assert.deepEqual(bodies, ["hello world", "abcde"]);
  assert.equal(statusLines(h.output()).length, 2);
});

test("a body the handler does not read is skipped, and the connection stays usable", () => {
  const h = harness({ onRequest: (exchange) => reply(exchange, exchange.request.target) });
  h.send(`POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nxxxxx${GET("/b")}`);
  assert.deepEqual(h.output().match(/\/a|\/b/g), ["/a", "/b"]);
  assert.equal(h.connection.finished, false);
});

test("request-body backpressure: parsing and input pause while the handler does not read", () => {
  const h = harness({ limits: { bodyBufferBytes: 16 } });
  h.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n");
  for (let i = 0; i < 5; i++) h.send("0123456789");
  assert.equal(h.connection.wantsInput, false);
  assert.ok(h.connection.bufferedInputBytes <= 60);
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  let received = 0;
  for (let read = exchange.readBody(); read.kind === "data"; read = exchange.readBody()) received += read.bytes.length;
  assert.equal(received, 50);
  assert.equal(h.connection.wantsInput, true);
});

test("response backpressure: an exchange stops being writable past the high-water mark until output is taken", () => {
  const h = harness({ limits: { outputHighWaterBytes: 100 } });
  h.send(GET("/"));
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  exchange.respond({ status: 200, headers: [] });
  exchange.write(new Uint8Array(150));
  assert.equal(exchange.writable, false);
  let woken = false;
  exchange.onWritable(() => (woken = true));
  h.output();
  assert.equal(woken, true);
  assert.equal(exchange.writable, true);
});

test("100-continue: sent on the first read of the body, and only then", () => {
  const h = harness();
  h.send("PUT /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  assert.equal(h.output(), "", "no 100 before the handler asks for the body");
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  assert.equal(exchange.readBody().kind, "pending");
  assert.equal(h.output(), "HTTP/1.1 100 Continue\r\n\r\n");
  h.send("abc");
  assert.equal(readAll(exchange), "abc");
  reply(exchange, "done");
  assert.match(h.output(), /^HTTP\/1\.1 200 OK/);
  assert.equal(h.connection.finished, false);
});

test("100-continue: a final answer without reading the body closes the connection", () => {
  const h = harness({ onRequest: (exchange) => reply(exchange, "no thanks", 413) });
  h.send("PUT /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  const output = h.output();
  assert.doesNotMatch(output, /100 Continue/);
  assert.match(output, /Connection: close/);
  assert.equal(h.connection.finished, true);
});

test("100-continue for a pipelined request waits until earlier responses are out", () => {
  const h = harness();
  h.send(`${GET("/1")}PUT /2 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n`);
  const [first, second] = h.exchanges;
  assert.ok(first !== undefined && second !== undefined);
  assert.equal(second.readBody().kind, "pending");
  assert.equal(h.output(), "");
  reply(first, "one");
  assert.match(h.output(), /one\r?\n?HTTP\/1\.1 100 Continue\r\n\r\n$/);
});

test("Expect on HTTP/1.0 is ignored", () => {
  const h = harness();
  h.send("PUT /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  h.exchanges[0]?.readBody();
  assert.equal(h.output(), "");
});

test("protocol errors are answered after the responses already owed, then the connection closes", () => {
  const h = harness();
  h.send(`${GET("/ok")}GET /bad HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n`);
  assert.equal(h.output(), "");
  const first = h.exchanges[0];
  assert.ok(first !== undefined);
  reply(first, "fine");
  const output = h.output();
  assert.deepEqual(statusLines(output), ["HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request"]);
  assert.doesNotMatch(output.split("HTTP/1.1 400")[0] ?? "", /Connection: close/);
  assert.match(output.split("HTTP/1.1 400")[1] ?? "", /Connection: close/);
  assert.equal(h.connection.finished, true);
  assert.equal(h.errors[0]?.kind, "badContentLength");
});

test("limits through the engine: 414, 431, 413 (declared and chunked), bad chunk 400, 501", () => {
  const cases: [string, Partial<HttpLimits>, number][] = [
    [`GET /${"a".repeat(100)} HTTP/1.1\r\n`, { maxRequestLineBytes: 64 }, 414],
    [`GET / HTTP/1.1\r\nHost: h\r\nX: ${"b".repeat(300)}\r\n`, { maxHeaderBytes: 256 }, 431],
    [`GET / HTTP/1.1\r\nHost: h\r\n${"A: 1\r\n".repeat(20)}\r\n`, { maxHeaderCount: 10 }, 431],
    ["POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n", { maxBodyBytes: 1000 }, 413],
    [`POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n${"x".repeat(512)}\r\n200\r\n`, { maxBodyBytes: 1000 }, 413],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", {}, 400],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", {}, 400],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br, chunked\r\n\r\n", {}, 501],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", {}, 400],
  ];
  for (const [input, limits, status] of cases) {
    const h = harness({ limits });
    h.send(input);
    const output = h.output();
    assert.equal(statusLines(output)[0]?.slice(9, 12), String(status), `${JSON.stringify(input.slice(0, 60))}: ${output.slice(0, 80)}`);
    assert.match(output, /Connection: close/);
    assert.equal(h.connection.finished, true);
  }
});

test("an error in a body the handler is reading fails the body, and the engine answers in its stead", () => {
  const h = harness();
  h.send("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  assert.equal(readAll(exchange), undefined);
  let cancelled = false;
  exchange.onCancel(() => (cancelled = true));
  h.send("zz\r\n");
  assert.ok(readAll(exchange) instanceof Error);
  assert.equal(cancelled, true);
  assert.match(h.output(), /^HTTP\/1\.1 400 Bad Request[\s\S]*malformed chunk-size/);
  // The handler's late answer goes nowhere.
  reply(exchange, "late");
  assert.equal(h.output(), "");
});

test("idle timeout: 408 and close on a connection that sends nothing", () => {
  const h = harness({ timeouts: { idleTimeoutMs: 5000 } });
  h.timers.advance(4999);
  assert.equal(h.output(), "");
  h.timers.advance(1);
  assert.match(h.output(), /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*Connection: close/);
  assert.equal(h.connection.finished, true);
  assert.equal(h.errors[0]?.kind, "idleTimeout");
  assert.equal(h.timers.armed, 0, "no timer is left behind");
});

test("idle timeout restarts after each request, and does not run while a request is in progress", () => {
  const h = harness({ timeouts: { idleTimeoutMs: 1000 } });
  h.timers.advance(900);
  h.send(GET("/"));
  h.timers.advance(5000);
  assert.equal(h.output(), "", "the handler may take its time");
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  reply(exchange, "x");
  h.output();
  h.timers.advance(999);
  assert.equal(h.output(), "");
  h.timers.advance(1);
  assert.match(h.output(), /408/);
});

test("headers timeout: a slow-loris head gets 408 even though bytes keep coming", () => {
  const h = harness({ timeouts: { headersTimeoutMs: 3000, idleTimeoutMs: 1000 } });
  for (const char of "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: 1234567") {
    h.send(char);
    h.timers.advance(100);
  }
  assert.match(h.output(), /^HTTP\/1\.1 408/);
  assert.equal(h.errors[0]?.kind, "headersTimeout");
  assert.equal(h.connection.finished, true);
});

test("body timeout: 408 when the handler waits for body bytes that do not come", () => {
  const h = harness({ timeouts: { bodyTimeoutMs: 2000 } });
  h.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  assert.equal(readAll(exchange), undefined);
  h.timers.advance(1500);
  h.send("de");
  assert.equal(readAll(exchange), undefined);
  h.timers.advance(1999);
  assert.equal(h.output(), "");
  h.timers.advance(1);
  assert.ok(readAll(exchange) instanceof Error);
  assert.match(h.output(), /^HTTP\/1\.1 408/);
});

test("the peer's end mid-body fails the body; a clean end after a request lets its response out, then finishes", () => {
  const h = harness();
  h.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
  h.connection.receiveEnd();
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  assert.ok(readAll(exchange) instanceof Error);

  const clean = harness();
  clean.send(GET("/"));
  clean.connection.receiveEnd();
  assert.equal(clean.connection.finished, false);
  const pending = clean.exchanges[0];
  assert.ok(pending !== undefined);
  reply(pending, "bye");
  assert.match(clean.output(), /Connection: close\r\n\r\nbye$/);
  assert.equal(clean.connection.finished, true);
});

test("graceful shutdown: idle connections finish at once; busy ones finish their response with Connection: close", () => {
  const idle = harness();
  idle.connection.shutdown();
  assert.equal(idle.connection.finished, true);

  const busy = harness();
  busy.send(GET("/"));
  busy.connection.shutdown();
  assert.equal(busy.connection.finished, false);
  busy.send(GET("/ignored"));
  assert.equal(busy.exchanges.length, 1);
  const exchange = busy.exchanges[0];
  assert.ok(exchange !== undefined);
  reply(exchange, "last");
  assert.match(busy.output(), /Connection: close\r\n\r\nlast$/);
  assert.equal(busy.connection.finished, true);
});

test("responses: engine-owned fields are dropped, injection is refused, statuses are checked", () => {
  const h = harness();
  h.send(GET("/"));
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  assert.throws(() => exchange.respond({ status: 200, headers: [["X", "a\r\nInjected: yes"]] }), TypeError);
  assert.throws(() => exchange.respond({ status: 200, headers: [["Bad Name", "x"]] }), TypeError);
  assert.throws(() => exchange.respond({ status: 101, headers: [] }), TypeError);
  assert.throws(() => exchange.respond({ status: 200, reason: "OK\r\nX: y", headers: [] }), TypeError);
  exchange.respond({
    status: 200,
    headers: [
      ["Connection", "upgrade"],
      ["Transfer-Encoding", "gzip"],
      ["Content-Length", "999"],
      ["Keep-Alive", "timeout=5"],
      ["Date", "Mon, 01 Jan 2001 00:00:00 GMT"],
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
    ],
    contentLength: 2,
  });
  exchange.write(latin1Encode("ok"));
  exchange.end();
  assert.equal(h.output(), "HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok");
});

test("a body that breaks its Content-Length: more throws, less aborts and closes", () => {
  const h = harness();
  h.send(GET("/a"));
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  exchange.respond({ status: 200, headers: [], contentLength: 3 });
  assert.throws(() => exchange.write(latin1Encode("abcd")), RangeError);
  exchange.write(latin1Encode("ab"));
  exchange.end();
  assert.match(h.output(), /Content-Length: 3\r\n\r\nab$/);
  assert.equal(h.connection.finished, true);
  assert.equal(h.records[0]?.aborted, true);
});

test("abort before responding answers 500", () => {
  const h = harness({ onRequest: (exchange) => exchange.abort() });
  h.send(GET("/"));
  assert.match(h.output(), /^HTTP\/1\.1 500 Internal Server Error/);
  assert.equal(h.connection.finished, true);
});

test("destroy cancels exchanges and fails their bodies", () => {
  const h = harness();
  h.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  h.connection.destroy();
  assert.equal(exchange.cancelled, true);
  assert.equal(h.timers.armed, 0);
  assert.ok(readAll(exchange) instanceof Error);
});

test("send(): the head and a small body in one piece; as respond+write+end otherwise", () => {
  const body = latin1Encode("hello");
  const sendAll = (exchange: Exchange, bytes: Uint8Array, contentLength: number | undefined): void =>
    exchange.send({ status: 200, headers: [["Content-Type", "text/plain"]], contentLength }, bytes);
  const pieces = (h: Harness): string[] => h.connection.takeOutput().map((piece) => latin1Decode(piece));

  const one = harness({ onRequest: (exchange) => sendAll(exchange, body, body.length) });
  one.send(GET("/"));
  assert.deepEqual(pieces(one), ["HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\n\r\nhello"]);
  assert.deepEqual(one.records.map((record) => [record.status, record.bodyBytes]), [[200, 5]]);

  // HEAD: the fields GET would have, no content.
  const head = harness({ onRequest: (exchange) => sendAll(exchange, body, body.length) });
  head.send("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
  assert.deepEqual(pieces(head), ["HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\n\r\n"]);

  // No declared length: chunked, as with write().
  const chunked = harness({ onRequest: (exchange) => sendAll(exchange, body, undefined) });
  chunked.send(GET("/"));
  assert.equal(pieces(chunked).join(""), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");

  // Longer than declared: RangeError from the write, as write() would throw.
  const long = harness();
  long.send(GET("/"));
  const exchange = long.exchanges[0];
  assert.ok(exchange !== undefined);
  assert.throws(() => sendAll(exchange, body, 3), RangeError);

  // A large body is not copied: it follows the head as its own piece.
  const large = new Uint8Array(64 * 1024).fill(0x61);
  const big = harness({ onRequest: (exchange) => sendAll(exchange, large, large.length) });
  big.send(GET("/"));
  const output = big.connection.takeOutput();
  assert.equal(output.length, 2);
  assert.equal(output[1], large);

  // Pipelined: the second answer waits for the first, then both leave in order.
  const later: Exchange[] = [];
  const pipelined = harness({ onRequest: (exchange) => later.push(exchange) });
  pipelined.send(GET("/1") + GET("/2"));
  const [first, second] = later;
  assert.ok(first !== undefined && second !== undefined);
  sendAll(second, latin1Encode("two"), 3);
  assert.equal(pipelined.output(), "");
  sendAll(first, latin1Encode("one"), 3);
  const text = pipelined.output();
  assert.ok(text.indexOf("one") < text.indexOf("two") && text.endsWith("two"), text);
});

test("response heads: an invalid field anywhere refuses the head, engine fields are dropped in any case", () => {
  const h = harness();
  h.send(GET("/"));
  const exchange = h.exchanges[0];
  assert.ok(exchange !== undefined);
  assert.throws(() => exchange.respond({ status: 200, headers: [["Connection", "a\nb"]] }), TypeError);
  assert.throws(() => exchange.respond({ status: 200, headers: [["X-Ok", "1"], ["Dat e", "x"]] }), TypeError);
  assert.throws(() => exchange.respond({ status: 200, headers: [["X-Long-Name", "ok"], ["Y", "\u0100"]] }), TypeError);
  exchange.send({ status: 200, headers: [["CONTENT-LENGTH", "99"], ["Transfer-Encoding", "gzip"], ["DATE", "Mon, 07 Nov 1994 00:00:00 GMT"], ["X", "é"]], contentLength: 2 }, latin1Encode("ok"));
  assert.equal(h.output(), "HTTP/1.1 200 OK\r\nDATE: Mon, 07 Nov 1994 00:00:00 GMT\r\nX: \u00e9\r\nContent-Length: 2\r\n\r\nok");
});

test("headers timeout runs from the head's first byte, exactly; a head that arrives whole never starts it", () => {
  const h = harness({ timeouts: { headersTimeoutMs: 3000, idleTimeoutMs: 60_000 } });
  h.send(GET("/a"));
  const first = h.exchanges[0];
  assert.ok(first !== undefined);
  reply(first, "a");
  h.output();
  h.timers.advance(1000);
  h.send("GET /b HTTP/1.1\r\n");
  h.timers.advance(2000);
  h.send("Host: h\r\n");
  h.timers.advance(999);
  assert.equal(h.output(), "");
  h.timers.advance(1);
  assert.match(h.output(), /^HTTP\/1\.1 408/);
  assert.equal(h.errors[0]?.kind, "headersTimeout");
});

test("keep-alive requests set no timer each: one watchdog per connection, set again only when it fires early", () => {
  const timers = new ManualTimers();
  let set = 0;
  const counting = {
    now: () => timers.now(),
    at: (deadline: number, callback: () => void) => {
      set++;
      return timers.at(deadline, callback);
    },
  };
  const connection = new Http1Connection({
    timers: counting,
    timeouts: { idleTimeoutMs: 5000, headersTimeoutMs: 10_000 },
    hooks: { onRequest: (exchange) => reply(exchange, "ok"), onOutput: () => undefined },
  });
  for (let i = 0; i < 200; i++) {
    connection.receive(latin1Encode(GET(`/${i}`)));
    connection.takeOutput();
    connection.releaseOutput();
    timers.advance(10);
  }
  assert.ok(set <= 2, `${set} timers set for 200 requests`);
  // Idle for longer than the timeout: the watchdog comes due and the connection times out on time.
  timers.advance(4989);
  assert.equal(connection.finished, false);
  timers.advance(1);
  assert.equal(connection.finished, true);
  assert.equal(timers.armed, 0);
});

test("output pieces stay the driver's until it releases them; release never lets buffered output be overwritten", () => {
  const h = harness();
  h.send(GET("/1"));
  const [first] = h.exchanges;
  assert.ok(first !== undefined);
  first.send({ status: 200, headers: [], contentLength: 5 }, latin1Encode("first"));
  const kept = h.connection.takeOutput();
  const keptText = kept.map((piece) => latin1Decode(piece)).join("");
  h.send(GET("/2"));
  h.exchanges[1]?.send({ status: 200, headers: [], contentLength: 6 }, latin1Encode("second"));
  assert.equal(kept.map((piece) => latin1Decode(piece)).join(""), keptText, "not released: untouched");
  assert.match(h.output(), /second$/);

  // Pipelined: the second answer waits in its exchange's buffer while the driver releases.
  h.send(GET("/3") + GET("/4"));
  const [, , third, fourth] = h.exchanges;
  assert.ok(third !== undefined && fourth !== undefined);
  fourth.send({ status: 200, headers: [["X-Fill", "y".repeat(200)]], contentLength: 6 }, latin1Encode("fourth"));
  h.connection.releaseOutput();
  third.send({ status: 200, headers: [["X-Fill", "z".repeat(200)]], contentLength: 5 }, latin1Encode("third"));
  const text = h.output();
  assert.ok(text.includes("y".repeat(200)) && text.includes("z".repeat(200)));
  assert.ok(text.indexOf("third") < text.indexOf("fourth") && text.endsWith("fourth"), text);
  h.connection.releaseOutput();
  h.send(GET("/5"));
  h.exchanges[4]?.send({ status: 200, headers: [], contentLength: 5 }, latin1Encode("fifth"));
  assert.match(h.output(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nfifth$/);
});

test("fieldsKey: the fields are checked and serialized once per key; Date, framing and Connection stay per response", () => {
  let date = "Sun, 06 Nov 1994 08:49:37 GMT";
  const key = {};
  const h = harness();
  const connection = new Http1Connection({
    timers: h.timers,
    date: () => date,
    hooks: { onRequest: (exchange) => h.exchanges.push(exchange), onOutput: () => undefined },
  });
  const text = (): string => connection.takeOutput().map((piece) => latin1Decode(piece)).join("");
  // An invalid field refuses the head and leaves nothing behind under the key.
  connection.receive(latin1Encode(GET("/0")));
  assert.throws(() => h.exchanges[0]?.respond({ status: 200, headers: [["X", "bad\r\nvalue"]], fieldsKey: key }), TypeError);
  h.exchanges[0]?.send({ status: 200, headers: [["X-A", "1"], ["Content-Length", "9"]], contentLength: 2, fieldsKey: key }, latin1Encode("ok"));
  assert.equal(text(), "HTTP/1.1 200 OK\r\nX-A: 1\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\nok");
  date = "Mon, 07 Nov 1994 08:49:37 GMT";
  connection.receive(latin1Encode(GET("/1", "Connection: close\r\n")));
  // Same key: the fields given are not even looked at.
  h.exchanges[1]?.send({ status: 404, headers: [], contentLength: 3, fieldsKey: key }, latin1Encode("abc"));
  assert.equal(text(), "HTTP/1.1 404 Not Found\r\nX-A: 1\r\nDate: Mon, 07 Nov 1994 08:49:37 GMT\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
});

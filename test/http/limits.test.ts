/**
 * The HTTP server's budgets (issue #12, finding 1): connections, requests in flight, pipelining,
 * bytes buffered per connection, the send timeout, and the rate-limited report of each. All in
 * process, over in-memory flows (atoll/http testing.ts) and manual timers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Http1Connection, type ConnectionLimitKind, type Exchange } from "../../src/lib/http/connection.ts";
import { LimitReporter } from "../../src/lib/http/limits.ts";
import { serveHttp, serveHttpConnection, type ByteFlow, type FetchHandler, type HttpLogger, type ServeOptions } from "../../src/lib/http/server.ts";
import { HttpStats } from "../../src/lib/http/stats.ts";
import { latin1Decode, latin1Encode } from "../../src/lib/http/syntax.ts";
import { createFlowPair, ManualTimers, type MemoryFlow } from "../../src/lib/http/testing.ts";
import { Response } from "../../src/lib/web/response.ts";
import { withEcho } from "../../examples/website/src/main.ts";

function settle(turns = 1): Promise<void> {
  return new Promise((resolve) => {
    let left = turns;
    const step = (): void => {
      left--;
      if (left <= 0) resolve();
      else setImmediate(step);
    };
    setImmediate(step);
  });
}

/** Waits for `done`, moving the manual clock on meanwhile (lingering after our FIN runs on it). */
async function finish(done: Promise<void>, timers: ManualTimers): Promise<void> {
  let finished = false;
  void done.then(() => {
    finished = true;
  });
  for (let turn = 0; turn < 200 && !finished; turn++) {
    timers.advance(1);
    await settle();
  }
  await done;
}

/** A client end that records what it reads, and whether the server ended (FIN) or reset the connection. */
class Peer {
  text = "";
  outcome: "open" | "ended" | "reset" = "open";
  private readonly reading: Promise<void>;

  constructor(
    readonly flow: MemoryFlow,
    read = true,
  ) {
    this.reading = read ? this.readAll() : Promise.resolve();
  }

  private async readAll(): Promise<void> {
    for (;;) {
      let chunk: Uint8Array | undefined;
      try {
        chunk = await this.flow.read();
      } catch {
        this.outcome = "reset";
        return;
      }
      if (chunk === undefined) {
        this.outcome = "ended";
        return;
      }
      this.text += latin1Decode(chunk);
    }
  }

  send(text: string): Promise<void> {
    return this.flow.write(latin1Encode(text));
  }

  statuses(): number[] {
    return [...this.text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => Number(match[1]));
  }

  async until(condition: () => boolean, what: string): Promise<void> {
    for (let turn = 0; turn < 2000; turn++) {
      if (condition()) return;
      await settle();
    }
    throw new Error(`timed out waiting for ${what}; read so far: ${JSON.stringify(this.text.slice(0, 300))}`);
  }

  ended(): Promise<void> {
    return this.reading;
  }
}

interface Log {
  warnings: string[];
  errors: string[];
}

function quietLogger(log: Log): HttpLogger {
  return {
    access: () => undefined,
    error: (message) => log.errors.push(message),
    warn: (message) => log.warnings.push(message),
    debug: () => undefined,
  };
}

/** serveHttp over in-memory flows: `connect()` makes a client and hands the server its end. */
function listening(handler: FetchHandler, options: ServeOptions = {}) {
  let accept: ((flow: ByteFlow) => void) | undefined;
  const timers = new ManualTimers();
  const log: Log = { warnings: [], errors: [] };
  const server = serveHttp(
    (onFlow) => {
      accept = onFlow;
    },
    handler,
    { timers, logger: quietLogger(log), wallClock: () => 0, lingerMs: 0, countersName: "http.limits-test", ...options },
  );
  const connect = (read = true): Peer => {
    const [client, serverEnd] = createFlowPair();
    accept?.(serverEnd);
    return new Peer(client, read);
  };
  /** Closes the server, moving the clock on so that lingering connections finish. */
  const close = (): Promise<void> => finish(server.close(), timers);
  return { server, timers, log, connect, close, stats: server.stats };
}

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`;

/** A handler whose `/wait` requests answer only when released, in order. */
function gatedHandler(): { handler: FetchHandler; release(): void; waiting(): number } {
  const gates: (() => void)[] = [];
  return {
    handler: async (request) => {
      if (request.url.endsWith("/wait")) await new Promise<void>((resolve) => gates.push(resolve));
      return new Response("ok");
    },
    release: () => gates.shift()?.(),
    waiting: () => gates.length,
  };
}

test("maxConnections: the N+1th connection closes the oldest idle keep-alive one, never one with a request in flight", async () => {
  const gate = gatedHandler();
  const { connect, stats, log, close } = listening(gate.handler, { limits: { maxConnections: 3 } });
  const busy = connect();
  const first = connect();
  const second = connect();
  await busy.send(GET("/wait"));
  await first.send(GET("/a"));
  await second.send(GET("/b"));
  await first.until(() => first.statuses().length === 1, "first answer");
  await second.until(() => second.statuses().length === 1, "second answer");
  assert.equal(gate.waiting(), 1);

  // At the cap: the oldest idle connection (first; busy is older but owes an answer) makes room.
  const third = connect();
  await first.until(() => first.outcome !== "open", "the oldest idle connection to close");
  assert.equal(first.outcome, "ended", "closed with a FIN, not reset: it owed nothing");
  assert.equal(second.outcome, "open");
  await third.send(GET("/c"));
  await third.until(() => third.statuses().length === 1, "the new connection's answer");
  assert.deepEqual(third.statuses(), [200]);
  assert.equal(stats.limitHits.idleConnectionsClosed, 1);
  assert.equal(stats.activeConnections, 3);

  // The request in flight was never dropped.
  gate.release();
  await busy.until(() => busy.statuses().length === 1, "the request in flight");
  assert.deepEqual(busy.statuses(), [200]);
  assert.equal(busy.outcome, "open");
  assert.match(log.warnings[0] ?? "", /3 connections open \(maxConnections\): closed the oldest idle one/);
  await close();
});

test("maxConnections: with none idle the next connection waits unread, takes the first place that frees, and past maxQueuedConnections is reset", async () => {
  const gate = gatedHandler();
  const { connect, stats, close } = listening(gate.handler, { limits: { maxConnections: 2, maxQueuedConnections: 1 } });
  const a = connect();
  const b = connect();
  await a.send(GET("/wait"));
  await b.send(GET("/wait"));
  await settle(5);
  assert.equal(gate.waiting(), 2);

  const queued = connect();
  await queued.send(GET("/q"));
  await settle(5);
  assert.equal(queued.text, "", "not served while every place is busy");
  assert.equal(stats.limitHits.connectionsQueued, 1);
  assert.equal(stats.queuedConnections, 1);
  assert.equal(stats.bytesIn, 2 * GET("/wait").length, "its request stays unread (in TCP, in a real stack)");

  const refused = connect();
  await refused.until(() => refused.outcome !== "open", "the connection past the queue to be reset");
  assert.equal(refused.outcome, "reset");
  assert.equal(stats.limitHits.connectionsRefused, 1);

  // a's answer goes out whole; a is then idle, so the waiting connection takes its place.
  gate.release();
  await a.until(() => a.outcome !== "open", "a to be closed for the waiting connection");
  assert.deepEqual([a.statuses(), a.outcome], [[200], "ended"]);
  await queued.until(() => queued.statuses().length === 1, "the waiting connection's answer");
  assert.deepEqual(queued.statuses(), [200]);
  assert.equal(stats.queuedConnections, 0);
  gate.release();
  await b.until(() => b.statuses().length === 1, "b's answer");
  await close();
});

test("maxConnections: with none idle, a new connection takes the place of the oldest stalled request head (a slowloris flood holds no place), never of a request in flight", async () => {
  const gate = gatedHandler();
  const { connect, stats, log, close } = listening(gate.handler, { limits: { maxConnections: 3, maxQueuedConnections: 1 } });
  const busy = connect();
  await busy.send(GET("/wait"));
  const slowOld = connect();
  await slowOld.send("GET / HTTP/1.1\r\nHo");
  await settle(5);
  const slowNew = connect();
  await slowNew.send("GET / HTTP/1.1\r\nHo");
  await settle(5);

  // At the cap, none idle: the oldest partial head goes, with a FIN; the younger one and the request in flight stay.
  const client = connect();
  await slowOld.until(() => slowOld.outcome !== "open", "the oldest stalled head to be closed");
  assert.equal(slowOld.outcome, "ended");
  assert.equal(slowNew.outcome, "open");
  await client.send(GET("/c"));
  await client.until(() => client.statuses().length === 1, "the new connection's answer");
  assert.deepEqual(client.statuses(), [200]);
  assert.equal(stats.limitHits.stalledHeadsClosed, 1);
  assert.equal(stats.limitHits.connectionsQueued, 0);
  assert.match(log.warnings.join("\n"), /none idle: closed the one waiting longest for a request \(silent, or its head incomplete; stalledHeadMs\)/);
  gate.release();
  await busy.until(() => busy.statuses().length === 1, "the request in flight");
  assert.deepEqual(busy.statuses(), [200]);
  await close();
});

test("maxConnections: a stalled head younger than stalledHeadMs keeps its place; the new connection waits", async () => {
  const gate = gatedHandler();
  const { connect, stats, close } = listening(gate.handler, { limits: { maxConnections: 2, maxQueuedConnections: 1, stalledHeadMs: 60_000 } });
  const busy = connect();
  await busy.send(GET("/wait"));
  const slow = connect();
  await slow.send("GET / HTTP/1.1\r\nHo");
  await settle(5);
  const queued = connect();
  await queued.send(GET("/q"));
  await settle(5);
  assert.equal(slow.outcome, "open");
  assert.equal(stats.limitHits.stalledHeadsClosed, 0);
  assert.equal(stats.limitHits.connectionsQueued, 1);
  gate.release();
  await busy.until(() => busy.statuses().length === 1, "the request in flight");
  await close();
});

test("maxConcurrentRequests: a request past the cap gets 503 with Retry-After at once; the ones in flight finish", async () => {
  const gate = gatedHandler();
  const { connect, stats, log, close } = listening(gate.handler, { limits: { maxConcurrentRequests: 2, retryAfterSeconds: 3 } });
  const a = connect();
  const b = connect();
  const c = connect();
  await a.send(GET("/wait"));
  await b.send(GET("/wait"));
  await settle(5);
  assert.equal(stats.requestsInFlight, 2);
  // A POST past the cap: its body is read and dropped, the connection stays usable.
  await c.send("POST /wait HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  await c.until(() => c.statuses().length === 1, "the 503");
  assert.deepEqual(c.statuses(), [503]);
  assert.match(c.text, /\r\nRetry-After: 3\r\n/);
  assert.equal(stats.limitHits.requestsRejected, 1);
  assert.match(log.warnings.join("\n"), /2 requests in flight \(maxConcurrentRequests\): answered 503 to "POST \/wait HTTP\/1\.1" from 198\.18\.0\.1:40000/);
  gate.release();
  await a.until(() => a.statuses().length === 1, "a's answer");
  assert.equal(stats.requestsInFlight, 1);
  await c.send(GET("/after"));
  await c.until(() => c.statuses().length === 2, "c's next answer, once a place freed");
  assert.deepEqual(c.statuses(), [503, 200]);
  gate.release();
  await b.until(() => b.statuses().length === 1, "b's answer");
  await close();
  assert.equal(stats.requestsInFlight, 0);
});

test("a connection that dies releases its requests in flight", async () => {
  const gate = gatedHandler();
  const { connect, stats, close } = listening(gate.handler, { limits: { maxConcurrentRequests: 1 } });
  const a = connect();
  await a.send(GET("/wait"));
  await settle(5);
  assert.equal(stats.requestsInFlight, 1);
  a.flow.abort();
  await settle(10);
  assert.equal(stats.requestsInFlight, 0);
  const b = connect();
  await b.send(GET("/x"));
  await b.until(() => b.statuses().length === 1, "b's answer");
  assert.deepEqual(b.statuses(), [200]);
  gate.release();
  await close();
});

// ── Pipelining ───────────────────────────────────────────────────────────────────────────────

function engine(limits: { maxPipelinedRequests?: number; maxPipelinedBytes?: number; bodyBufferBytes?: number }) {
  const timers = new ManualTimers();
  const exchanges: Exchange[] = [];
  const limitsHit: ConnectionLimitKind[] = [];
  const connection = new Http1Connection({
    timers,
    limits,
    hooks: {
      onRequest: (exchange) => exchanges.push(exchange),
      onOutput: () => undefined,
      onLimit: (kind) => limitsHit.push(kind),
    },
  });
  return { connection, exchanges, limitsHit, timers };
}

function answer(exchange: Exchange): void {
  exchange.send({ status: 200, headers: [], contentLength: 2 }, latin1Encode("ok"));
}

test("pipelining: a client that sends 1000 requests at once gets at most maxPipelinedRequests parsed, and raw input read ahead stays bounded", () => {
  const { connection, exchanges, limitsHit } = engine({ maxPipelinedRequests: 4, bodyBufferBytes: 1024 });
  const burst = GET("/x").repeat(1000);
  // The driver feeds while the engine wants input, as the server's read loop does.
  let fed = 0;
  while (fed < burst.length && connection.wantsInput) {
    const piece = burst.slice(fed, fed + 512);
    connection.receive(latin1Encode(piece));
    fed += piece.length;
  }
  assert.equal(exchanges.length, 4);
  assert.ok(fed < 2048, `${fed} bytes read ahead`);
  assert.ok(connection.bufferedInputBytes <= 1024 + 512);
  assert.deepEqual(limitsHit, ["pipelinedRequests"], "reported once per pause");
  // Answering lets parsing go on, in order.
  for (const exchange of exchanges.splice(0)) answer(exchange);
  connection.takeOutput();
  connection.releaseOutput();
  assert.equal(exchanges.length, 4);
  // Each answer lets one more in, and parsing pauses again: every pause is counted.
  assert.ok(limitsHit.length > 1 && limitsHit.every((kind) => kind === "pipelinedRequests"));
});

test("pipelining: heads parsed ahead are bounded in bytes (maxPipelinedBytes)", () => {
  const { connection, exchanges, limitsHit } = engine({ maxPipelinedRequests: 100, maxPipelinedBytes: 8192, bodyBufferBytes: 64 * 1024 });
  const big = `GET /big HTTP/1.1\r\nHost: h\r\nX-Pad: ${"p".repeat(3000)}\r\n\r\n`;
  connection.receive(latin1Encode(big.repeat(10)));
  // 3 heads of ~3 KiB reach 8 KiB: the fourth waits.
  assert.equal(exchanges.length, 3);
  assert.deepEqual(limitsHit, ["pipelinedBytes"]);
  const first = exchanges[0];
  assert.ok(first !== undefined);
  answer(first);
  assert.equal(exchanges.length, 4);
});

test("pipelining (property): requests handed out unanswered never exceed the bounds, and every request is answered in order", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 2000 }), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1024, max: 16 * 1024 }),
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 10 }),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }),
      (pads, maxRequests, maxBytes, cuts, answerNow) => {
        const { connection, exchanges } = engine({ maxPipelinedRequests: maxRequests, maxPipelinedBytes: maxBytes, bodyBufferBytes: 4096 });
        const requests = pads.map((pad, index) => `GET /${index} HTTP/1.1\r\nHost: h\r\nX-Pad: ${"p".repeat(pad)}\r\n\r\n`);
        const wire = requests.join("");
        let fed = 0;
        let cut = 0;
        let turn = 0;
        const answered: string[] = [];
        let unanswered: Exchange[] = [];
        const check = (): void => {
          unanswered.push(...exchanges.splice(0));
          assert.ok(unanswered.length <= maxRequests, `${unanswered.length} requests parsed ahead`);
          const headBytes = unanswered.slice(0, -1).reduce((sum, exchange) => sum + (requests[Number(exchange.request.target.slice(1))] ?? "").length - 4, 0);
          // (The engine counts a head without its final CRLF CRLF: at least length - 4.)
          assert.ok(headBytes < maxBytes, `${headBytes} head bytes parsed ahead before the last one`);
        };
        for (let guard = 0; guard < 10_000 && answered.length < requests.length; guard++) {
          if (fed < wire.length && connection.wantsInput) {
            const size = cuts[cut++ % cuts.length] ?? 1;
            connection.receive(latin1Encode(wire.slice(fed, fed + size)));
            fed = Math.min(wire.length, fed + size);
          }
          check();
          if (answerNow[turn++ % answerNow.length] === true || fed >= wire.length || !connection.wantsInput) {
            const next = unanswered.shift();
            if (next !== undefined) {
              answered.push(next.request.target);
              answer(next);
              connection.takeOutput();
              connection.releaseOutput();
            }
          }
        }
        assert.deepEqual(answered, requests.map((_, index) => `/${index}`));
      },
    ),
    { numRuns: 200 },
  );
});

// ── Bytes per connection, send timeout, headers timeout ─────────────────────────────────────

const ONE_MIB = 1 << 20;

/**
 * N clients POST 1 MiB to the website's /echo and never read the answer (issue #12: "two waves of
 * ~4,000 killed the appliance"). The pipes stand for TCP's buffers (64 KiB each way here); what
 * the HTTP layer holds beyond them is stats.bufferedBytes.
 */
async function slowEchoReaders(count: number, options: ServeOptions = {}) {
  const stats = new HttpStats();
  const timers = new ManualTimers();
  const log: Log = { warnings: [], errors: [] };
  const handler = withEcho(() => new Response("not found", { status: 404 }));
  const clients: MemoryFlow[] = [];
  const sessions: Promise<void>[] = [];
  const body = new Uint8Array(ONE_MIB).fill(0x61);
  for (let index = 0; index < count; index++) {
    const [client, server] = createFlowPair(64 * 1024);
    sessions.push(serveHttpConnection(server, handler, { stats, timers, logger: quietLogger(log), accessLog: false, lingerMs: 0, wallClock: () => 0, ...options }));
    clients.push(client);
    void (async () => {
      await client.write(latin1Encode(`POST /echo HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\nContent-Length: ${ONE_MIB}\r\n\r\n`));
      for (let offset = 0; offset < body.length; offset += 16 * 1024) await client.write(body.subarray(offset, offset + 16 * 1024));
    })().catch(() => undefined);
  }
  await settle(50);
  return { stats, timers, log, clients, sessions };
}

test("a client that POSTs 1 MiB to /echo and never reads costs bounded HTTP buffers, and the body is read only as fast as the answer leaves", async () => {
  const count = 20;
  const { stats, clients, sessions, timers } = await slowEchoReaders(count);
  const perConnection = stats.bufferedBytes / count;
  // Input: bodyBufferBytes (16 KiB) read ahead of the parser + bodyBufferBytes waiting for the
  // handler; output: outputHighWaterBytes (16 KiB) queued + as much being written to the flow.
  // (Before these limits: ~270 KiB of HTTP-layer memory per connection, 280 KiB of the body read.)
  assert.ok(perConnection <= 4 * 16 * 1024 + 64, `${Math.round(perConnection / 1024)} KiB buffered per connection`);
  assert.ok(perConnection > 0, "the measure sees the buffered bytes");
  // What the server read is what it could pass on: nowhere near the 1 MiB body.
  assert.ok(stats.bytesIn / count < 160 * 1024, `${Math.round(stats.bytesIn / count / 1024)} KiB read per connection`);
  assert.equal(stats.requestsInFlight, count);
  for (const client of clients) client.abort();
  timers.advance(1);
  await Promise.all(sessions);
  assert.equal(stats.bufferedBytes, 0);
  assert.equal(stats.requestsInFlight, 0);
});

test("send timeout: a client that stops reading is reset after sendTimeoutMs without progress, counted and logged", async () => {
  const { stats, timers, clients, sessions, log } = await slowEchoReaders(2, { timeouts: { sendTimeoutMs: 60_000 } });
  timers.advance(59_999);
  await settle(5);
  assert.equal(stats.limitHits.sendTimeout, 0);
  timers.advance(1);
  await Promise.all(sessions);
  assert.equal(stats.limitHits.sendTimeout, 2);
  assert.equal(stats.activeConnections, 0);
  assert.equal(stats.bufferedBytes, 0);
  // Reset: the client's next write fails.
  const [first] = clients;
  assert.ok(first !== undefined);
  await assert.rejects(first.write(latin1Encode("x")));
  // Rate-limited: one line for both.
  assert.deepEqual(
    log.warnings.filter((line) => line.includes("sendTimeoutMs")),
    ["198.18.0.1:40000: nothing could be sent for 60000 ms (sendTimeoutMs): connection reset"],
  );
});

test("send timeout: a slow reader that keeps taking bytes is not cut off, however long the response", async () => {
  const [client, server] = createFlowPair(16 * 1024);
  const timers = new ManualTimers();
  const stats = new HttpStats();
  const big = new Uint8Array(512 * 1024).fill(0x62);
  const done = serveHttpConnection(server, () => new Response(big), { timers, stats, wallClock: () => 0, logger: quietLogger({ warnings: [], errors: [] }), accessLog: false, lingerMs: 0, timeouts: { sendTimeoutMs: 1000 } });
  await client.write(latin1Encode("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
  let received = 0;
  for (;;) {
    // 16 KiB every 900 ms: 512 KiB take 29 s, far past the timeout, but it never stalls for 1 s.
    timers.advance(900);
    const chunk = await client.read();
    if (chunk === undefined) break;
    received += chunk.length;
  }
  await finish(done, timers);
  assert.ok(received > big.length);
  assert.equal(stats.limitHits.sendTimeout, 0);
  assert.equal(stats.resets, 0);
});

test("send timeout: after the last response, a FIN the peer never acknowledges does not hold the connection", async () => {
  // A flow whose shutdown never completes, as TCP's when the peer's window stays shut.
  const [client, memory] = createFlowPair();
  let aborted = false;
  const stuck: ByteFlow = {
    read: () => memory.read(),
    write: (bytes) => memory.write(bytes),
    shutdown: () => new Promise<void>(() => undefined),
    close: () => memory.close(),
    abort: () => {
      aborted = true;
      memory.abort();
    },
  };
  const timers = new ManualTimers();
  const stats = new HttpStats();
  const log: Log = { warnings: [], errors: [] };
  const done = serveHttpConnection(stuck, () => new Response("bye"), { timers, stats, wallClock: () => 0, logger: quietLogger(log), accessLog: false, timeouts: { sendTimeoutMs: 5000 } });
  await client.write(latin1Encode("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
  await settle(5);
  timers.advance(5000);
  await done;
  assert.equal(aborted, true);
  assert.equal(stats.limitHits.sendTimeout, 1);
  assert.match(log.warnings[0] ?? "", /sendTimeoutMs/);
});

test("a partial request line followed by silence is answered 408 and closed at headersTimeoutMs", async () => {
  const [client, server] = createFlowPair();
  const timers = new ManualTimers();
  const stats = new HttpStats();
  const log: Log = { warnings: [], errors: [] };
  const done = serveHttpConnection(server, () => new Response("never"), { timers, stats, wallClock: () => 0, logger: quietLogger(log), lingerMs: 0, timeouts: { headersTimeoutMs: 10_000 } });
  const peer = new Peer(client);
  await peer.send("GET /index.ht");
  await settle(5);
  timers.advance(9_999);
  await settle(5);
  assert.equal(peer.outcome, "open");
  timers.advance(1);
  await peer.ended();
  // Past the linger (0 ms here) after our FIN.
  await finish(done, timers);
  assert.match(peer.text, /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*Connection: close/);
  assert.equal(peer.outcome, "ended");
  assert.equal(stats.headersTimeouts, 1);
  assert.equal(stats.activeConnections, 0);
  assert.equal(timers.armed, 0);
  assert.deepEqual(log.warnings, ["198.18.0.1:40000: no complete request head within 10000 ms (headersTimeoutMs): 408 and close"]);
});

// ── Reports ──────────────────────────────────────────────────────────────────────────────────

test("LimitReporter: one line per limit per interval, with the count since the last line", () => {
  let now = 0;
  const lines: string[] = [];
  const reporter = new LimitReporter(() => now, (line) => lines.push(line), 5000);
  let built = 0;
  const describe = (text: string) => () => {
    built++;
    return text;
  };
  reporter.bit("connectionsRefused", describe("refused"));
  for (now = 1; now < 5000; now += 100) reporter.bit("connectionsRefused", describe("refused"));
  reporter.bit("sendTimeout", describe("stalled"));
  assert.deepEqual(lines, ["refused", "stalled"], "each limit has its own interval");
  assert.equal(built, 2, "lines not written are not built");
  now = 5000;
  reporter.bit("connectionsRefused", describe("refused"));
  assert.deepEqual(lines, ["refused", "stalled", "refused (51 times since the last report)"]);
});

test("property: whatever the timing of bites, lines are at least an interval apart and their counts add up", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 200 }), (gaps) => {
      let now = 0;
      const lines: { at: number; count: number }[] = [];
      const reporter = new LimitReporter(() => now, (line) => lines.push({ at: now, count: Number(/\((\d+) times/.exec(line)?.[1] ?? 1) }), 5000);
      for (const gap of gaps) {
        now += gap;
        reporter.bit("requestsRejected", () => "rejected");
      }
      for (let index = 1; index < lines.length; index++) assert.ok((lines[index]?.at ?? 0) - (lines[index - 1]?.at ?? 0) >= 5000);
      const reported = lines.reduce((sum, line) => sum + line.count, 0);
      assert.ok(reported <= gaps.length && reported > 0);
    }),
  );
});

test("counters: every limit shows in the registered snapshot", async () => {
  const gate = gatedHandler();
  const { connect, stats, close } = listening(gate.handler, { limits: { maxConnections: 1, maxQueuedConnections: 0, maxConcurrentRequests: 1 } });
  const a = connect();
  await a.send(GET("/wait"));
  await settle(5);
  const refused = connect();
  await refused.until(() => refused.outcome !== "open", "reset");
  await a.send(GET("/second"));
  await settle(5);
  const snapshot = stats.snapshot();
  assert.equal(snapshot.connectionsRefused, 1);
  assert.equal(snapshot.requestsInFlight, 1);
  assert.equal(typeof snapshot.bufferedBytes, "number");
  for (const name of ["sendTimeouts", "connectionsQueued", "idleConnectionsClosed", "stalledHeadsClosed", "requestsRejected", "pipelinedRequestsLimited", "pipelinedBytesLimited", "queuedConnections"]) {
    assert.equal(typeof snapshot[name], "number", name);
  }
  gate.release();
  await a.until(() => a.statuses().length === 2, "both answers");
  await close();
});

test("request bodies (property): however the input is cut, input held stays within 2 × bodyBufferBytes plus one read, and the body arrives whole", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 5000 }),
      fc.boolean(),
      fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 1, max: 1024 }),
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 8 }),
      (body, chunked, cuts, bodyBufferBytes, chunkSizes) => {
        let framed: Uint8Array;
        let head: string;
        if (chunked) {
          const parts: Uint8Array[] = [];
          for (let offset = 0, index = 0; offset < body.length; index++) {
            const size = Math.min(chunkSizes[index % chunkSizes.length] ?? 1, body.length - offset);
            parts.push(latin1Encode(`${size.toString(16)}\r\n`), body.subarray(offset, offset + size), latin1Encode("\r\n"));
            offset += size;
          }
          parts.push(latin1Encode("0\r\n\r\n"));
          framed = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
          let at = 0;
          for (const part of parts) {
            framed.set(part, at);
            at += part.length;
          }
          head = "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
        } else {
          framed = body;
          head = `POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n\r\n`;
        }
        const { connection, exchanges } = engine({ bodyBufferBytes });
        const wire = new Uint8Array(head.length + framed.length);
        wire.set(latin1Encode(head));
        wire.set(framed, head.length);
        const received: number[] = [];
        let ended = false;
        let fed = 0;
        for (let turn = 0; turn < 100_000 && !ended; turn++) {
          if (fed < wire.length && connection.wantsInput) {
            const size = cuts[turn % cuts.length] ?? 1;
            connection.receive(wire.slice(fed, fed + size));
            fed = Math.min(wire.length, fed + size);
          }
          assert.ok(connection.bufferedInputBytes <= 2 * bodyBufferBytes + 4096 + head.length, `${connection.bufferedInputBytes} bytes buffered`);
          const exchange = exchanges[0];
          if (exchange === undefined) continue;
          const read = exchange.readBody();
          if (read.kind === "data") received.push(...read.bytes);
          else if (read.kind === "end") ended = true;
          else if (read.kind === "error") throw read.error;
        }
        assert.equal(ended, true);
        assert.deepEqual(Uint8Array.from(received), body);
      },
    ),
    { numRuns: 150 },
  );
});

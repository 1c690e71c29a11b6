/**
 * The HTTP budgets over Atoll's own TCP (in process: two stacks on a virtual link and a virtual
 * clock, test/net/tcp/harness.ts): the issue #12 clients that never read an echo, and a flood of
 * partial request lines, against serveHttp as an appliance runs it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { serveHttp, type HttpLogger, type ServeOptions } from "../../src/lib/http/server.ts";
import { latin1Decode, latin1Encode } from "../../src/lib/http/syntax.ts";
import type { TcpFlow } from "../../src/lib/net/tcp/flow.ts";
import { Response } from "../../src/lib/web/response.ts";
import { withEcho } from "../../examples/website/src/main.ts";
import { TcpNetwork } from "../net/tcp/harness.ts";

const PORT = 80;

function setup(options: ServeOptions) {
  const net = new TcpNetwork({ seed: 7 });
  const server = net.host("198.18.0.2/24");
  const client = net.host("198.18.0.1/24");
  const warnings: string[] = [];
  const logger: HttpLogger = { access: () => undefined, error: () => undefined, warn: (line) => warnings.push(line), debug: () => undefined };
  const http = serveHttp((accept) => server.tcp.listen(PORT, accept, { noDelay: true }), withEcho(() => new Response("not found", { status: 404 })), {
    timers: net.clock,
    wallClock: () => 0,
    logger,
    accessLog: false,
    countersName: "http.limits-over-tcp",
    ...options,
  });
  const connect = (): Promise<TcpFlow> => net.drive(client.tcp.connect(server.address, PORT));
  return { net, http, stats: http.stats, connect, warnings };
}

/** Reads a flow to its end in the background: its text, and how it ended. */
function drain(flow: TcpFlow): { text: string; outcome: "open" | "ended" | "reset" } {
  const state: { text: string; outcome: "open" | "ended" | "reset" } = { text: "", outcome: "open" };
  void (async () => {
    try {
      for (;;) {
        const chunk = await flow.read();
        if (chunk === undefined) break;
        state.text += latin1Decode(chunk);
      }
      state.outcome = "ended";
    } catch {
      state.outcome = "reset";
    }
  })();
  return state;
}

test("over TCP: clients that POST 1 MiB to /echo and never read hold bounded HTTP buffers, and are reset at sendTimeoutMs", async () => {
  const { net, stats, connect } = setup({ timeouts: { sendTimeoutMs: 60_000 } });
  const count = 10;
  const body = new Uint8Array(1 << 20).fill(0x61);
  const flows: TcpFlow[] = [];
  for (let index = 0; index < count; index++) {
    const flow = await connect();
    flows.push(flow);
    // Written as fast as TCP takes it; the answer is never read.
    void (async () => {
      await flow.write(latin1Encode(`POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n\r\n`));
      await flow.write(body);
    })().catch(() => undefined);
  }
  await net.advance(5_000);
  assert.equal(stats.requestsInFlight, count);
  Reflect.set(globalThis, "HLDBG", 1); const perConnection = stats.bufferedBytes / count; Reflect.set(globalThis, "HLDBG", 0);
  // Input: bodyBufferBytes (16 KiB) read ahead + as much waiting for the handler; output:
  // outputHighWaterBytes (16 KiB) queued + as much being written, and its chunked framing merged
  // into one buffer (≤ 32 KiB here). Before the limits: ~257 KiB, most of a 64 KiB TCP read
  // landing whole in each queue.
  assert.ok(perConnection <= 96 * 1024, `${Math.round(perConnection / 1024)} KiB of HTTP buffers per connection`);
  // The body is read only as fast as the answer leaves (into TCP's buffers, ours and the
  // client's window): what was read and not sent is what the HTTP layer holds.
  const heldPerConnection = (stats.bytesIn - stats.bytesOut) / count;
  assert.ok(heldPerConnection <= 96 * 1024, `${Math.round(heldPerConnection / 1024)} KiB read and not sent per connection`);
  assert.ok(stats.bytesIn / count < 1 << 20, "the whole body was not read");
  const readBefore = stats.bytesIn;
  await net.advance(30_000);
  assert.equal(stats.bytesIn, readBefore, "nothing more is read while nothing can be sent");
  await net.advance(30_000);
  assert.equal(stats.limitHits.sendTimeout, count);
  assert.equal(stats.activeConnections, 0);
  assert.equal(stats.bufferedBytes, 0);
  assert.equal(stats.requestsInFlight, 0);
  for (const flow of flows) flow.abort();
});

test("over TCP: a flood of partial request lines younger than stalledHeadMs holds maxConnections places, waits or is reset beyond, and every one closes at headersTimeoutMs", async () => {
  const { net, stats, connect, warnings, http } = setup({ limits: { maxConnections: 10, maxQueuedConnections: 5, stalledHeadMs: 60_000 }, timeouts: { headersTimeoutMs: 10_000 } });
  const peers: ReturnType<typeof drain>[] = [];
  for (let index = 0; index < 30; index++) {
    const flow = await connect();
    peers.push(drain(flow));
    await flow.write(latin1Encode("GET /index.ht"));
  }
  await net.advance(100);
  assert.equal(stats.activeConnections, 10);
  assert.equal(stats.queuedConnections, 5);
  assert.equal(stats.limitHits.connectionsRefused, 15);
  assert.equal(peers.filter((peer) => peer.outcome === "reset").length, 15);
  // Reported once, then counted: a flood costs a line per limit every 5 s.
  assert.equal(warnings.filter((line) => line.includes("maxQueuedConnections")).length, 1);


  // At 10 s the first ten get 408; the five that waited take their places and get theirs 10 s later.
  await net.advance(10_000);
  assert.equal(stats.headersTimeouts, 10);
  assert.equal(stats.queuedConnections, 0);
  await net.advance(10_000);
  assert.equal(stats.headersTimeouts, 15);
  await net.advance(5_000);
  assert.equal(stats.activeConnections, 0);
  const answered = peers.filter((peer) => peer.outcome === "ended");
  assert.equal(answered.length, 15);
  for (const peer of answered) assert.match(peer.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.equal(warnings.filter((line) => line.includes("headersTimeoutMs")).length, 2, "15 timeouts over 10 s: two lines");
  await net.drive(http.close());
});

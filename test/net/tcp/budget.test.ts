/**
 * The TCP budget (budget.ts, issue #12 finding 1), on a virtual link with a virtual clock: caps
 * per source, per listener and in total, memory pressure and the high mark, orphans; each limit
 * counted when it bites; and the books balance (nothing accounted once every connection is gone).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { TcpFlag, type TcpRepr } from "../../../src/lib/wire/tcp.ts";
import type { TcpFlow } from "../../../src/lib/net/tcp/flow.ts";
import { seqAdd } from "../../../src/lib/net/tcp/seq.ts";
import { RecordingLog } from "../../../src/lib/net/testing/virtual-link.ts";
import { TcpNetwork, patternBytes, type RawPeer, type TcpHost } from "./harness.ts";

const REQUEST = new TextEncoder().encode("GET / HTTP/1.1\r\nHo");

/**
 * A raw peer's handshake from `srcPort` (plus `data` after it, when given): returns the SYN-ACK,
 * or undefined when the SYN went unanswered (dropped by a limit).
 */
async function handshake(net: TcpNetwork, peer: RawPeer, server: TcpHost, port: number, srcPort: number, data?: Uint8Array): Promise<TcpRepr | undefined> {
  const isn = srcPort * 1000;
  peer.received.length = 0;
  peer.send(server.address, { srcPort, dstPort: port, seq: isn, flags: TcpFlag.Syn, options: { mss: 1460 } });
  const isSynAck = (segment: TcpRepr): boolean => segment.flags === (TcpFlag.Syn | TcpFlag.Ack) && segment.dstPort === srcPort;
  await net.runUntil(() => peer.received.some(isSynAck), 200);
  const synAck = peer.received.find(isSynAck);
  if (synAck === undefined) return undefined;
  peer.send(server.address, { srcPort, dstPort: port, seq: seqAdd(isn, 1), ack: seqAdd(synAck.seq, 1), flags: TcpFlag.Ack });
  if (data !== undefined) {
    peer.send(server.address, { srcPort, dstPort: port, seq: seqAdd(isn, 1), ack: seqAdd(synAck.seq, 1), flags: TcpFlag.Ack | TcpFlag.Psh, payload: data });
  }
  await net.advance(1);
  return synAck;
}

/** A server host whose port-80 listener keeps every flow it accepts (the application never reads or closes unless told). */
function server(net: TcpNetwork, tcp: NonNullable<Parameters<TcpNetwork["host"]>[1]>["tcp"], log?: RecordingLog): { host: TcpHost; flows: TcpFlow[] } {
  const host = net.host("198.18.0.1/24", { tcp, ...(log === undefined ? {} : { log: log.factory }) });
  const flows: TcpFlow[] = [];
  host.tcp.listen(80, (flow) => void flows.push(flow));
  return { host, flows };
}

describe("TCP budget", () => {
  it("refuses a source's connection past maxConnectionsPerSource (SYN dropped), counted; other sources still get in", async () => {
    const net = new TcpNetwork();
    const { host, flows } = server(net, { maxConnectionsPerSource: 3 });
    const a = net.rawPeer("198.18.0.7/24");
    const b = net.rawPeer("198.18.0.8/24");
    await net.drive(a.stack.ping(host.address));
    await net.drive(b.stack.ping(host.address));
    for (let i = 0; i < 3; i++) assert.ok(await handshake(net, a, host, 80, 2000 + i));
    assert.equal(await handshake(net, a, host, 80, 2100), undefined, "the fourth SYN from one address is not answered");
    assert.equal(a.received.filter((segment) => segment.flags & TcpFlag.Rst).length, 0, "dropped, not reset");
    assert.equal(host.tcp.counters.sourceLimitDrops, 1);
    assert.ok(await handshake(net, b, host, 80, 3000), "another address is served");
    assert.equal(flows.length, 4);
    assert.equal(host.tcp.budget.fromSource(a.address), 3);
  });

  it("at maxConnections resets the least recently active idle connection for a new one, and refuses when none is idle", async () => {
    const net = new TcpNetwork();
    const log = new RecordingLog();
    const { host, flows } = server(net, { maxConnections: 4, evictIdleMs: 1000 }, log);
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    const synAcks: TcpRepr[] = [];
    for (let i = 0; i < 4; i++) synAcks.push((await handshake(net, peer, host, 80, 2000 + i, REQUEST)) ?? assert.fail("no SYN-ACK"));
    // All four were active a moment ago: nothing to spare, the SYN is dropped.
    assert.equal(await handshake(net, peer, host, 80, 2100), undefined);
    assert.equal(host.tcp.counters.connectionLimitDrops, 1);
    await net.advance(1500);
    // Connection 2001 makes progress (new data) and becomes the most recently active; 2000 is now the least.
    const synAck2001 = synAcks[1] ?? assert.fail("no SYN-ACK");
    peer.send(host.address, { srcPort: 2001, dstPort: 80, seq: seqAdd(2001 * 1000, 1 + REQUEST.length), ack: seqAdd(synAck2001.seq, 1), flags: TcpFlag.Ack, payload: REQUEST });
    await net.advance(1);
    const closed = flows.map((flow) => flow.closed);
    assert.ok(await handshake(net, peer, host, 80, 2200), "a new connection takes the place of an idle one");
    assert.equal(host.tcp.counters.evicted, 1);
    const reset = peer.received.filter((segment) => segment.flags & TcpFlag.Rst);
    assert.deepEqual(reset.map((segment) => segment.dstPort), [2000], "the least recently active one was reset");
    const error = await net.drive(closed[0] ?? Promise.resolve(undefined));
    assert.equal(error?.reason, "aborted");
    assert.equal(host.tcp.budget.connections, 4);
    assert.ok(log.entries.some((entry) => entry.level === "warn" && entry.message.includes("maxConnections")), "the refusal was logged");
  });

  it("segments that move nothing (a zero window, answered again and again) do not keep a connection from being spared", async () => {
    const net = new TcpNetwork();
    const { host, flows } = server(net, { maxConnections: 1, evictIdleMs: 1000 });
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    const synAck = (await handshake(net, peer, host, 80, 2000)) ?? assert.fail("no SYN-ACK");
    void flows[0]?.write(patternBytes(10_000, 6));
    // The peer reads nothing: it keeps repeating an ACK of nothing new with a zero window.
    for (let i = 0; i < 10; i++) {
      peer.send(host.address, { srcPort: 2000, dstPort: 80, seq: seqAdd(2000 * 1000, 1), ack: seqAdd(synAck.seq, 1), window: 0, flags: TcpFlag.Ack });
      await net.advance(200);
    }
    assert.ok(await handshake(net, peer, host, 80, 2001), "the stalled connection made room");
    assert.equal(host.tcp.counters.evicted, 1);
  });

  it("logs a limit at most once per limitLogIntervalMs, with the count since the last line", async () => {
    const net = new TcpNetwork();
    const log = new RecordingLog();
    const { host } = server(net, { maxConnectionsPerSource: 1, limitLogIntervalMs: 5000 }, log);
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    assert.ok(await handshake(net, peer, host, 80, 2000));
    for (let i = 0; i < 10; i++) await handshake(net, peer, host, 80, 2100 + i);
    await net.advance(5000);
    await handshake(net, peer, host, 80, 2200);
    const lines = log.entries.filter((entry) => entry.message.includes("maxConnectionsPerSource"));
    assert.equal(host.tcp.counters.sourceLimitDrops, 11);
    assert.equal(lines.length, 2, lines.map((line) => line.message).join("\n"));
    assert.match(lines[1]?.message ?? "", /\(10 times in \d+ s;/);
  });

  it("caps a listener's held connections (maxConnections of listen), apart from other listeners; room returns when the application closes", async () => {
    const net = new TcpNetwork();
    const host = net.host("198.18.0.1/24", { tcp: { evictIdleMs: 1e9 } });
    const held: TcpFlow[] = [];
    host.tcp.listen({ port: 80, maxConnections: 2 }, (flow) => void held.push(flow));
    host.tcp.listen(81, () => undefined);
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    assert.ok(await handshake(net, peer, host, 80, 2000));
    assert.ok(await handshake(net, peer, host, 80, 2001));
    assert.equal(await handshake(net, peer, host, 80, 2002), undefined);
    assert.equal(host.tcp.counters.listenerLimitDrops, 1);
    assert.ok(await handshake(net, peer, host, 81, 2003), "another listener is not held back");
    void held[0]?.close();
    await net.advance(1);
    assert.ok(await handshake(net, peer, host, 80, 2004), "the application closed one: room for another");
  });

  it("under memory pressure stops buffer growth and window growth, enters it once, and a new connection displaces an idle one", async () => {
    const net = new TcpNetwork();
    // Each connection holding data accounts 1 KiB of overhead and a 4 KiB ring: pressure from the fourth.
    const { host, flows } = server(net, { connectionOverhead: 1024, memoryLow: 8 * 1024, memoryPressure: 16 * 1024, memoryHigh: 1024 * 1024, evictIdleMs: 1000 });
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    const synAcks: TcpRepr[] = [];
    for (let i = 0; i < 3; i++) synAcks.push((await handshake(net, peer, host, 80, 2000 + i, REQUEST)) ?? assert.fail("no SYN-ACK"));
    assert.equal(host.tcp.budget.memoryUsed, 3 * (1024 + 4096));
    assert.equal(host.tcp.budget.underPressure, false);
    assert.ok(await handshake(net, peer, host, 80, 2003, REQUEST));
    assert.equal(host.tcp.budget.underPressure, true);
    assert.equal(host.tcp.counters.memoryPressureEntered, 1);
    // The application reads connection 2000's request: its window would move right; under pressure it may not pass the ring.
    const reader = flows[0] ?? assert.fail("no flow");
    peer.received.length = 0;
    const more = patternBytes(1000, 1);
    const isn = 2000 * 1000;
    const first = synAcks[0] ?? assert.fail("no SYN-ACK");
    peer.send(host.address, { srcPort: 2000, dstPort: 80, seq: seqAdd(isn, 1 + REQUEST.length), ack: seqAdd(first.seq, 1), flags: TcpFlag.Ack | TcpFlag.Psh, payload: more });
    await net.advance(100);
    await net.drive(reader.read());
    await net.advance(100);
    const acks = peer.received.filter((segment) => segment.dstPort === 2000 && segment.flags & TcpFlag.Ack);
    const lastAck = acks.at(-1) ?? assert.fail("no ACK");
    const rightEdgeOffset = lastAck.ack - (isn + 1) + lastAck.window;
    assert.ok(rightEdgeOffset <= 65535, `the window was not pushed past what was offered (edge at +${rightEdgeOffset})`);
    assert.equal(reader.connection.snapshotCounters().receiveBufferGrowths, 0);
    // A new connection under pressure: nothing idle yet, refused; once idle, the least recently active one goes.
    assert.equal(await handshake(net, peer, host, 80, 2100, REQUEST), undefined);
    assert.equal(host.tcp.counters.memoryLimitDrops, 1);
    await net.advance(1500);
    assert.ok(await handshake(net, peer, host, 80, 2101, REQUEST));
    assert.ok(host.tcp.counters.evicted >= 1);
    assert.ok(host.tcp.budget.memoryUsed <= 16 * 1024 + 1024 + 4096);
  });

  it("under memory pressure a send buffer takes no more than its allocated ring: the writer waits, and goes on as ACKs come", async () => {
    const net = new TcpNetwork();
    const client = net.host("198.18.0.2/24");
    const { host, flows } = server(net, { connectionOverhead: 1024, memoryLow: 512, memoryPressure: 1536, memoryHigh: 1024 * 1024 });
    const flow = await net.drive(client.tcp.connect(host.address, 80));
    await net.runUntil(() => flows.length === 1);
    // Two connections' overhead (2 KiB) put the server over its 1.5 KiB pressure mark.
    const second = await net.drive(client.tcp.connect(host.address, 80));
    await net.runUntil(() => flows.length === 2);
    assert.equal(host.tcp.budget.underPressure, true);
    const serverFlow = flows[0] ?? assert.fail("no flow");
    assert.equal(serverFlow.connection.writableBytes, 4096, "no ring yet: 4 KiB");
    const data = patternBytes(100_000, 4);
    const written = serverFlow.write(data);
    await net.advance(1);
    assert.ok(serverFlow.connection.inspect().bufferMemory <= 8192, `the ring stayed small: ${serverFlow.connection.inspect().bufferMemory}`);
    // The client reads: ACKs free room in the ring, and the write completes through it.
    const received: Uint8Array[] = [];
    const reading = (async () => {
      for await (const chunk of flow) received.push(chunk);
    })();
    await net.drive(written);
    void serverFlow.close();
    await net.drive(reading);
    assert.deepEqual(Buffer.concat(received), Buffer.from(data));
    assert.equal(serverFlow.connection.snapshotCounters().sendBufferGrowths, 0);
    second.abort();
  });

  it("over memoryHigh resets idle connections, least recently active first, until under the pressure mark", async () => {
    const net = new TcpNetwork();
    const { host } = server(net, { connectionOverhead: 1024, memoryLow: 4 * 1024, memoryPressure: 8 * 1024, memoryHigh: 12 * 1024, evictIdleMs: 1000, maxConnectionsPerSource: 100 });
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    // Embryonic connections cost only their overhead; they are the first to go.
    for (let i = 0; i < 2; i++) assert.ok(await handshake(net, peer, host, 80, 2000 + i, REQUEST));
    await net.advance(1500);
    peer.received.length = 0;
    assert.ok(await handshake(net, peer, host, 80, 2002, REQUEST), "admitted: pressure makes room first");
    assert.ok(host.tcp.counters.evicted >= 1);
    assert.ok(host.tcp.budget.memoryUsed <= 12 * 1024, `${host.tcp.budget.memoryUsed} bytes accounted`);
    const resets = peer.received.filter((segment) => segment.flags & TcpFlag.Rst).map((segment) => segment.dstPort);
    assert.equal(resets[0], 2000, "the least recently active went first");
  });

  it("over memoryHigh with nothing to spare, drops received data that would grow a ring (unacknowledged, counted), and takes it again once read", async () => {
    const net = new TcpNetwork();
    // One connection with its request: a 4 KiB ring and 1 KiB of overhead, under pressure (4 KiB) but not over the high mark (6 KiB).
    const { host, flows } = server(net, { connectionOverhead: 1024, memoryLow: 2 * 1024, memoryPressure: 4 * 1024, memoryHigh: 6 * 1024 });
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    const synAck = (await handshake(net, peer, host, 80, 2000, REQUEST)) ?? assert.fail("no SYN-ACK");
    assert.equal(host.tcp.budget.underPressure, true);
    // The peer fills the window it was offered before the pressure began, 1000 bytes a segment; the application does not read.
    const isn = 2000 * 1000;
    const body = patternBytes(20_000, 7);
    const sendFrom = (offset: number): void => {
      for (let at = offset; at < body.length; at += 1000) {
        peer.send(host.address, { srcPort: 2000, dstPort: 80, seq: seqAdd(isn, 1 + REQUEST.length + at), ack: seqAdd(synAck.seq, 1), flags: TcpFlag.Ack, payload: body.subarray(at, Math.min(at + 1000, body.length)) });
      }
    };
    peer.received.length = 0;
    sendFrom(0);
    await net.advance(50);
    const acked = (): number => Math.max(...peer.received.filter((segment) => segment.dstPort === 2000 && segment.flags & TcpFlag.Ack).map((segment) => segment.ack - (isn + 1)));
    const taken = acked();
    assert.ok(host.tcp.counters.receivePruned >= 1, "the drop was counted");
    assert.ok(taken < REQUEST.length + body.length, `not all was acknowledged (${taken})`);
    assert.ok(host.tcp.budget.memoryUsed <= 1024 + 8192, `the ring grew once at most: ${host.tcp.budget.memoryUsed} bytes accounted`);
    // The application reads what was taken; the peer retransmits the rest, which now fits: nothing is lost.
    const flow = flows[0] ?? assert.fail("no flow");
    const received: Uint8Array[] = [];
    for (let round = 0; round < 20 && acked() < REQUEST.length + body.length; round++) {
      while (flow.connection.readableBytes > 0) received.push((await net.drive(flow.read())) ?? new Uint8Array());
      sendFrom(acked() - REQUEST.length);
      await net.advance(50);
    }
    while (flow.connection.readableBytes > 0) received.push((await net.drive(flow.read())) ?? new Uint8Array());
    assert.deepEqual(Buffer.concat(received), Buffer.concat([REQUEST, body]));
  });

  it("resets a connection closed beyond maxOrphans, and counts it", async () => {
    const net = new TcpNetwork();
    const { host, flows } = server(net, { maxOrphans: 1 });
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    assert.ok(await handshake(net, peer, host, 80, 2000));
    assert.ok(await handshake(net, peer, host, 80, 2001));
    peer.received.length = 0;
    void flows[0]?.close();
    void flows[1]?.close();
    await net.advance(10);
    assert.equal(host.tcp.counters.orphansReset, 1);
    assert.equal(host.tcp.budget.orphans, 1);
    assert.deepEqual(peer.received.filter((segment) => segment.flags & TcpFlag.Rst).map((segment) => segment.dstPort), [2001]);
    assert.ok(peer.received.some((segment) => segment.dstPort === 2000 && segment.flags & TcpFlag.Fin), "the first one is an orphan sending its FIN");
  });

  it("gives up an orphan after orphanRetransmits when the peer vanished, long before maxRetransmits would", async () => {
    const net = new TcpNetwork();
    const { host, flows } = server(net, { orphanRetransmits: 2, orphanTimeoutMs: 1e9 });
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    assert.ok(await handshake(net, peer, host, 80, 2000));
    peer.received.length = 0;
    const flow = flows[0] ?? assert.fail("no flow");
    void flow.write(patternBytes(500, 2));
    void flow.close();
    const start = net.clock.now();
    await net.runUntil(() => host.tcp.budget.connections === 0, 120_000);
    assert.equal(host.tcp.budget.connections, 0);
    assert.ok(net.clock.now() - start < 20_000, `gone after ${net.clock.now() - start} ms`);
    const dataSegments = peer.received.filter((segment) => segment.payload.length > 0 || segment.flags & TcpFlag.Fin);
    // The data and the FIN, then at most two retransmissions of the data with the FIN.
    assert.ok(dataSegments.length <= 4, `sent once and retransmitted at most twice: ${dataSegments.length}`);
    assert.equal(host.tcp.counters.orphansTimedOut, 1);
    assert.equal(host.tcp.budget.orphans, 0);
    assert.equal(host.tcp.budget.memoryUsed, 0);
  });

  it("gives up as an orphan would once the application has sent its FIN and waits for it (shutdown) while the peer is gone", async () => {
    const net = new TcpNetwork();
    // The HTTP server's way: answer, shutdown(), wait for the FIN's acknowledgment, then close.
    const { host, flows } = server(net, { orphanRetransmits: 3, orphanTimeoutMs: 1e9 });
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    assert.ok(await handshake(net, peer, host, 80, 2000));
    const flow = flows[0] ?? assert.fail("no flow");
    void flow.write(patternBytes(300, 5));
    const shutdown = flow.shutdown().then(
      () => "acknowledged",
      (error: Error) => error.message,
    );
    const start = net.clock.now();
    const outcome = await net.drive(shutdown, 600_000);
    assert.match(outcome, /no acknowledgment after 3 retransmissions \(orphanRetransmits\)/);
    assert.ok(net.clock.now() - start < 30_000, `gave up after ${net.clock.now() - start} ms, not maxRetransmits' ~15 minutes`);
    assert.equal(host.tcp.counters.orphansTimedOut, 1);
    assert.equal(host.tcp.budget.connections, 0);
  });

  it("gives up an orphan after orphanTimeoutMs without progress", async () => {
    const net = new TcpNetwork();
    const { host, flows } = server(net, { orphanTimeoutMs: 3000 });
    const peer = net.rawPeer("198.18.0.7/24");
    await net.drive(peer.stack.ping(host.address));
    assert.ok(await handshake(net, peer, host, 80, 2000));
    const flow = flows[0] ?? assert.fail("no flow");
    void flow.write(patternBytes(500, 2));
    void flow.close();
    const start = net.clock.now();
    await net.runUntil(() => host.tcp.budget.connections === 0, 120_000);
    assert.ok(net.clock.now() - start <= 3500, `gone after ${net.clock.now() - start} ms`);
    assert.equal(host.tcp.counters.orphansTimedOut, 1);
  });

  it("accounts nothing once every connection is gone, whatever was opened, sent and closed (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ bytes: fc.integer({ min: 0, max: 40_000 }), abort: fc.boolean() }), { minLength: 1, maxLength: 6 }),
        async (plans) => {
          const net = new TcpNetwork({ seed: plans.length });
          const a = net.host("198.18.0.1/24", { tcp: { timeWaitMs: 1000 } });
          const b = net.host("198.18.0.2/24", { tcp: { timeWaitMs: 1000 } });
          b.tcp.listen(80, (flow) => {
            void (async () => {
              let total = 0;
              for await (const chunk of flow) total += chunk.length;
              await flow.write(patternBytes(total % 20_000, 3));
              await flow.close();
            })().catch(() => flow.abort());
          });
          const clients = Promise.all(
            plans.map(async (plan, index) => {
              const flow = await a.tcp.connect(b.address, 80);
              await flow.write(patternBytes(plan.bytes, index));
              if (plan.abort) {
                flow.abort();
                return;
              }
              await flow.shutdown();
              for await (const chunk of flow) void chunk;
              await flow.close();
            }),
          );
          await net.drive(clients);
          await net.advance(120_000);
          for (const side of [a, b]) {
            assert.equal(side.tcp.budget.connections, 0);
            assert.equal(side.tcp.budget.memoryUsed, 0);
            assert.equal(side.tcp.budget.orphans, 0);
            assert.equal(side.tcp.counters.connections, 0);
          }
        },
      ),
      { numRuns: 15 },
    );
  });
});

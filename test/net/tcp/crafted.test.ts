/**
 * Crafted and hostile input: odd flag combinations, broken headers and options, data outside the
 * window, sequence numbers around the 2^32 wrap; then a fast-check property that random segment
 * sequences, interleaved with random application calls, never make the stack throw and keep the
 * connection's invariants.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Ipv4Address } from "atoll/wire/address";
import { TcpFlag, TcpOptions, TcpPacket, TcpRepr } from "../../../src/lib/wire/tcp.ts";
import type { TcpConnection } from "../../../src/lib/net/tcp/connection.ts";
import type { TcpCounters } from "../../../src/lib/net/tcp/counters.ts";
import { TcpSecrets } from "../../../src/lib/net/tcp/isn.ts";
import { seqAdd, seqDiff, seqLe } from "../../../src/lib/net/tcp/seq.ts";
import { seededRandomSource } from "../../../src/lib/net/testing/virtual-link.ts";
import { TcpNetwork, bulkTransfer, patternBytes, rawHandshake, tcpRepr, type RawPeer, type TcpHost } from "./harness.ts";

const SYN = TcpFlag.Syn;
const ACK = TcpFlag.Ack;
const FIN = TcpFlag.Fin;
const RST = TcpFlag.Rst;
const PSH = TcpFlag.Psh;
const URG = TcpFlag.Urg;

async function setup(): Promise<{ net: TcpNetwork; server: TcpHost; peer: RawPeer }> {
  const net = new TcpNetwork();
  const server = net.host("198.18.0.1/24");
  const peer = net.rawPeer("198.18.0.9/24");
  server.tcp.listen(80);
  await net.drive(peer.stack.ping(server.address));
  return { net, server, peer };
}

/** What the server answers to one segment (after 1 ms). */
async function answer(net: TcpNetwork, peer: RawPeer, to: Ipv4Address, fields: Partial<TcpRepr>): Promise<TcpRepr[]> {
  peer.received.length = 0;
  peer.send(to, fields);
  await net.advance(1);
  return [...peer.received];
}

/** Receive counters add up: every segment is delivered or dropped under exactly one reason. */
function balanced(counters: TcpCounters): boolean {
  return (
    counters.segmentsIn ===
    counters.delivered + counters.malformed + counters.badChecksum + counters.badOptions + counters.notUnicast + counters.noConnection
  );
}

describe("tcp crafted segments", () => {
  it("to a listener: SYN+FIN, no flags, Xmas and lone FIN are dropped; a lone ACK gets a RST", async () => {
    const { net, server, peer } = await setup();
    const to = server.address;
    for (const flags of [SYN | FIN, 0, FIN | SYN | RST | PSH | URG | ACK, FIN | PSH | URG, FIN, RST, RST | ACK]) {
      assert.deepEqual(await answer(net, peer, to, { dstPort: 80, seq: 1000, flags }), [], `flags ${flags}`);
    }
    const reply = await answer(net, peer, to, { dstPort: 80, seq: 1000, ack: 777, flags: ACK });
    assert.deepEqual(
      reply.map((segment) => [segment.flags, segment.seq]),
      [[RST, 777]],
    );
    assert.equal(server.tcp.connectionList().length, 0);
    assert.ok(balanced(server.tcp.counters));
  });

  it("to a closed port: RST+ACK acknowledging SEG.SEQ + SEG.LEN (SYN and FIN count), nothing for a RST", async () => {
    const { net, server, peer } = await setup();
    const to = server.address;
    const cases: [number, number, number][] = [
      [0, 0, 5000],
      [SYN | FIN, 3, 5005],
      [FIN | PSH | URG, 10, 5011],
    ];
    for (const [flags, length, expectedAck] of cases) {
      const reply = await answer(net, peer, to, { dstPort: 81, seq: 5000, flags, payload: new Uint8Array(length) });
      assert.deepEqual(
        reply.map((segment) => [segment.flags, segment.seq, segment.ack]),
        [[RST | ACK, 0, expectedAck]],
        `flags ${flags}`,
      );
    }
    assert.deepEqual(await answer(net, peer, to, { dstPort: 81, seq: 5000, flags: RST }), []);
    assert.deepEqual(await answer(net, peer, to, { dstPort: 81, seq: 5000, flags: RST | ACK }), []);
  });

  it("drops bad data offsets, bad checksums, bad option lengths and zero ports, silently", async () => {
    const { net, server, peer } = await setup();
    const to = server.address;
    const counters = server.tcp.counters;
    const craft = (patch: (bytes: Uint8Array) => void, fields: Partial<TcpRepr> = {}, fixChecksum = true): Uint8Array => {
      const repr = tcpRepr({ dstPort: 80, seq: 1, flags: SYN, payload: new Uint8Array(8), ...fields });
      const bytes = new Uint8Array(TcpRepr.bufferLength(repr));
      TcpRepr.emit(repr, bytes, peer.address, to);
      patch(bytes);
      if (fixChecksum) new TcpPacket(bytes).fillChecksum(peer.address, to);
      return bytes;
    };
    peer.received.length = 0;
    peer.sendBytes(to, craft((bytes) => (bytes[12] = 4 << 4))); // data offset 4
    peer.sendBytes(to, craft((bytes) => (bytes[12] = 15 << 4))); // 60 bytes of header in 28
    peer.sendBytes(to, new Uint8Array(12)); // shorter than a header
    peer.sendBytes(to, craft((bytes) => (bytes[25] ^= 0x40), {}, false)); // one bit of data
    peer.sendBytes(to, craft((bytes) => bytes.set([2, 3, 1, 0], 20), { options: { mss: 1 } })); // MSS with length 3
    peer.sendBytes(to, craft((bytes) => bytes.set([8, 0, 0, 0], 20), { options: { mss: 1 } })); // length 0
    peer.sendBytes(to, craft((bytes) => bytes.set([0, 0], 0))); // source port 0
    await net.advance(10);
    assert.deepEqual(peer.received, []);
    assert.equal(counters.malformed, 3);
    assert.equal(counters.badChecksum, 1);
    assert.equal(counters.badOptions, 2);
    assert.equal(counters.notUnicast, 1);
    assert.equal(server.tcp.connectionList().length, 0);
    assert.ok(balanced(counters));
  });

  it("ignores a SYN to a broadcast address (RFC 9293 MUST-57)", async () => {
    const { net, server, peer } = await setup();
    assert.deepEqual(await answer(net, peer, Ipv4Address.fromOctets(198, 18, 0, 255), { dstPort: 80, seq: 1, flags: SYN }), []);
    assert.equal(server.tcp.counters.notUnicast, 1);
  });

  it("answers data outside the window with an ACK and takes only what fits", async () => {
    const { net, server, peer } = await setup();
    server.tcp.close();
    const tcp = net.host("198.18.0.2/24", { tcp: { receiveBufferSize: 4096 } });
    const isn = 0x10000;
    await net.drive(peer.stack.ping(tcp.address));
    const { flow, serverIsn, srcPort } = await rawHandshake(net, peer, tcp, 80, isn);
    const base = { srcPort, dstPort: 80, ack: seqAdd(serverIsn, 1), flags: ACK | PSH };
    // Far beyond the window: not acceptable, answered with an ACK of RCV.NXT.
    let replies = await answer(net, peer, tcp.address, { ...base, seq: seqAdd(isn, 100_000), payload: patternBytes(100, 1) });
    assert.deepEqual(
      replies.map((segment) => [segment.flags, segment.ack]),
      [[ACK, seqAdd(isn, 1)]],
    );
    // Already received (below RCV.NXT): the same.
    replies = await answer(net, peer, tcp.address, { ...base, seq: seqAdd(isn, -1000), payload: patternBytes(100, 1) });
    assert.equal(replies[0]?.ack, seqAdd(isn, 1));
    // Straddling the right edge: the part in the window is taken and acknowledged.
    const data = patternBytes(6000, 2);
    replies = await answer(net, peer, tcp.address, { ...base, seq: seqAdd(isn, 1), payload: data });
    assert.equal(flow.connection.readableBytes, 4096);
    assert.equal(replies.at(-1)?.ack, seqAdd(isn, 1 + 4096));
    assert.equal(replies.at(-1)?.window, 0);
    assert.deepEqual(await flow.read(), data.subarray(0, 4096));
  });

  it("PAWS drops an old duplicate by its timestamp; a segment without the negotiated timestamp is dropped (RFC 7323)", async () => {
    const { net, server, peer } = await setup();
    const isn = 0x5000;
    const { flow, serverIsn, srcPort } = await rawHandshake(net, peer, server, 8081, isn, { mss: 1460, timestamps: { value: 1_000_000, echo: 0 } });
    const base = { srcPort, dstPort: 8081, ack: seqAdd(serverIsn, 1), flags: ACK };
    // In order, with a newer timestamp: taken, and its TSval is echoed.
    let replies = await answer(net, peer, server.address, { ...base, seq: seqAdd(isn, 1), payload: patternBytes(10, 1), options: { timestamps: { value: 1_000_100, echo: 0 } } });
    assert.equal(flow.connection.readableBytes, 10);
    await net.advance(100);
    assert.equal(peer.received.at(-1)?.options.timestamps?.echo, 1_000_100);
    // The next bytes, but with an older TSval: PAWS rejects them (and acknowledges).
    replies = await answer(net, peer, server.address, { ...base, seq: seqAdd(isn, 11), payload: patternBytes(10, 2), options: { timestamps: { value: 1_000_050, echo: 0 } } });
    assert.equal(flow.connection.readableBytes, 10);
    assert.equal(server.tcp.counters.pawsRejected, 1);
    assert.equal(replies.at(-1)?.ack, seqAdd(isn, 11));
    // Without a timestamp at all: dropped.
    await answer(net, peer, server.address, { ...base, seq: seqAdd(isn, 11), payload: patternBytes(10, 3) });
    assert.equal(flow.connection.readableBytes, 10);
    assert.equal(server.tcp.counters.missingTimestamp, 1);
    // A RST needs no timestamp, and is not subject to PAWS.
    peer.send(server.address, { srcPort, dstPort: 8081, seq: seqAdd(isn, 11), flags: RST });
    assert.ok((await net.drive(flow.closed)) instanceof Error);
  });

  it("handles sequence numbers across the 2^32 wrap, in and out of order", async () => {
    const { net, server, peer } = await setup();
    const isn = 0xfffff000;
    const { flow, serverIsn, srcPort } = await rawHandshake(net, peer, server, 8080, isn, { mss: 1460, sackPermitted: true });
    const data = patternBytes(8000, 3);
    const send = (offset: number, length: number) =>
      peer.send(server.address, { srcPort, dstPort: 8080, seq: seqAdd(isn, 1 + offset), ack: seqAdd(serverIsn, 1), flags: ACK, payload: data.subarray(offset, offset + length) });
    // The wrap falls at offset 4095. Send the second half first.
    send(4000, 2000);
    send(6000, 2000);
    await net.advance(1);
    const sack = peer.received.at(-1)?.options.sack;
    assert.deepEqual(sack, [{ left: seqAdd(isn, 4001), right: seqAdd(isn, 8001) }]);
    send(0, 4000);
    await net.advance(1);
    assert.equal(peer.received.at(-1)?.ack, seqAdd(isn, 8001));
    assert.equal(peer.received.at(-1)?.ack, 0xfffff000 + 8001 - 2 ** 32);
    const chunks: number[] = [];
    for (let chunk = await flow.read(); chunk !== undefined && chunks.length < 8000; chunk = flow.connection.readableBytes > 0 ? await flow.read() : undefined) chunks.push(...chunk);
    assert.deepEqual(chunks, [...data]);
  });

  it("moves 4 MiB under loss with the sender's sequence space wrapping", async () => {
    // Find the clock start that puts the client's ISN 100 KB below 2^32 (RFC 6528: ISN = M + F).
    const probe = new TcpNetwork();
    const client = { address: Ipv4Address.fromOctets(198, 18, 0, 2), port: 50000 };
    const server = Ipv4Address.fromOctets(198, 18, 0, 1);
    const secrets = new TcpSecrets(seededRandomSource(probe.nextTcpSeed + 1));
    const hash = secrets.initialSequence(client.address, client.port, server, 5001, 0);
    const wanted = 2 ** 32 - 100_000;
    const startMs = (((wanted - hash) >>> 0) / 250) % 1e7;
    const net = new TcpNetwork({ startMs, impairments: { loss: 0.02 } });
    const serverHost = net.host("198.18.0.1/24");
    const clientHost = net.host("198.18.0.2/24");
    const originalConnect = clientHost.tcp.connect.bind(clientHost.tcp);
    clientHost.tcp.connect = (address, port, options) => originalConnect(address, port, { ...options, localPort: client.port });
    const result = await bulkTransfer(net, clientHost, serverHost, 4 * 1024 * 1024);
    const iss = result.clientFlow.connection.inspect().iss;
    assert.ok(seqDiff(0, iss) > 0 && seqDiff(0, iss) < 200_000, `ISS ${iss} just below the wrap`);
    assert.equal(result.receivedHash, result.sentHash);
    assert.ok(result.clientFlow.counters.retransmits > 0);
  });
});

// ——— Property: random segments and application calls ———

type Step =
  | { kind: "segment"; flags: number; seqDelta: number; ackDelta: number; window: number; length: number; options: TcpRepr["options"] }
  | { kind: "wait"; ms: number }
  | { kind: "app"; action: "read" | "write" | "shutdown" | "close" | "abort"; size: number };

function optionsLength(options: TcpRepr["options"]): number {
  const set = new TcpOptions();
  set.assign(options);
  return set.length;
}

const VALID_STATES = new Set(["SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT", "CLOSED"]);

function checkInvariants(connection: TcpConnection): void {
  const s = connection.inspect();
  assert.ok(VALID_STATES.has(s.state), s.state);
  if (s.state === "CLOSED") return;
  assert.ok(seqLe(s.sndUna, s.sndNxt), "SND.UNA ≤ SND.NXT");
  assert.ok(seqLe(s.sndNxt, s.sndMax), "SND.NXT ≤ SND.MAX");
  assert.ok(seqDiff(s.sndMax, s.sndUna) <= s.sendBuffered + 2, "nothing in flight beyond the buffer, SYN and FIN");
  assert.ok(s.sendBuffered >= 0 && s.sendBuffered <= s.sendCapacity, "bounded send buffer");
  assert.ok(s.receiveReadable >= 0 && s.receiveReadable <= s.receiveCapacity, "bounded receive buffer");
  assert.ok(s.rcvWnd >= 0 && s.rcvWnd + s.receiveReadable <= s.receiveCapacity, `window within the buffer: ${s.rcvWnd} + ${s.receiveReadable}`);
  assert.ok(s.sndWnd >= 0 && s.sndWnd <= 0xffff * 2 ** 14);
  assert.ok(s.outOfOrderRanges <= 64 && s.sackedRanges <= 256, "bounded range sets");
  assert.ok(Number.isFinite(s.cwnd) && s.cwnd >= 1, `cwnd ${s.cwnd}`);
  assert.ok(s.smss >= 1);
}

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("segment" as const),
      flags: fc.oneof({ weight: 5, arbitrary: fc.constantFrom(ACK, ACK | PSH, ACK | FIN, RST, ACK | RST, SYN, SYN | ACK) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
      seqDelta: fc.oneof(fc.integer({ min: -3000, max: 70_000 }), fc.constantFrom(0, 0, 0, 1, -1, 2 ** 31, 0x7fffffff), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
      ackDelta: fc.oneof(fc.integer({ min: -70_000, max: 70_000 }), fc.constantFrom(0, 0, 1, 2 ** 31), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
      window: fc.oneof(fc.constantFrom(0, 1, 65535), fc.integer({ min: 0, max: 65535 })),
      length: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1460 })),
      options: fc.record(
        {
          mss: fc.integer({ min: 0, max: 0xffff }),
          windowScale: fc.integer({ min: 0, max: 255 }),
          sackPermitted: fc.boolean(),
          timestamps: fc.record({ value: fc.integer({ min: 0, max: 0xffffffff }), echo: fc.integer({ min: 0, max: 0xffffffff }) }),
          sack: fc.array(fc.record({ left: fc.integer({ min: -5000, max: 70_000 }), right: fc.integer({ min: -5000, max: 70_000 }) }), { minLength: 1, maxLength: 3 }),
        },
        { requiredKeys: [] },
      ),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("wait" as const), ms: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 100, max: 70_000 })) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("app" as const),
      action: fc.constantFrom("read" as const, "write" as const, "write" as const, "shutdown" as const, "close" as const, "abort" as const),
      size: fc.integer({ min: 1, max: 300_000 }),
    }),
  },
);

describe("tcp robustness property", () => {
  it("random segment sequences and application calls never throw and keep the invariants", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 40 }), fc.boolean(), async (steps, timestamps) => {
        const net = new TcpNetwork();
        const server = net.host("198.18.0.1/24", { tcp: { receiveBufferSize: 32 * 1024, sendBufferSize: 64 * 1024 } });
        const peer = net.rawPeer("198.18.0.9/24");
        const isn = 0xffff0000;
        const handshakeOptions: TcpRepr["options"] = timestamps
          ? { mss: 1000, windowScale: 2, sackPermitted: true, timestamps: { value: 1000, echo: 0 } }
          : { mss: 1000 };
        const { flow, serverIsn, srcPort } = await rawHandshake(net, peer, server, 80, isn, handshakeOptions);
        const connection = flow.connection;
        let peerSeq = seqAdd(isn, 1);
        let tsValue = 2000;
        // Promises from application calls may reject (that is their contract); nothing else may.
        const swallow = (promise: Promise<unknown>): void => {
          promise.catch(() => undefined);
        };
        for (const step of steps) {
          switch (step.kind) {
            case "segment": {
              const state = connection.inspect();
              const seq = seqAdd(state.state === "CLOSED" ? peerSeq : state.rcvNxt, step.seqDelta);
              const ack = seqAdd(state.state === "CLOSED" ? seqAdd(serverIsn, 1) : state.sndUna, step.ackDelta);
              const options = { ...step.options };
              if (options.sack !== undefined) options.sack = options.sack.map((block) => ({ left: seqAdd(ack, block.left), right: seqAdd(ack, block.right) }));
              if (timestamps && options.timestamps === undefined) options.timestamps = { value: (tsValue += 10), echo: 0 };
              // Keep within 40 bytes of options, which is all a header has.
              while (options.sack !== undefined && options.sack.length > 0 && optionsLength(options) > 40) options.sack = options.sack.slice(1);
              if (options.sack?.length === 0) delete options.sack;
              peer.send(server.address, { srcPort, dstPort: 80, seq, ack, flags: step.flags, window: step.window, options, payload: patternBytes(step.length, step.length) });
              peerSeq = seqAdd(seq, step.length);
              await net.advance(1);
              break;
            }
            case "wait":
              await net.advance(step.ms);
              break;
            case "app":
              switch (step.action) {
                case "read":
                  if (connection.readableBytes > 0) swallow(flow.read());
                  break;
                case "write":
                  swallow(flow.write(patternBytes(step.size, 7)));
                  break;
                case "shutdown":
                  swallow(flow.shutdown());
                  break;
                case "close":
                  swallow(flow.close());
                  break;
                case "abort":
                  flow.abort();
                  break;
              }
              await net.advance(1);
              break;
          }
          checkInvariants(connection);
          assert.ok(balanced(server.tcp.counters), "every segment counted once");
        }
        // And once closed it always ends (the raw peer stays silent): retransmission limits,
        // FIN-WAIT-2 and TIME-WAIT timers, no timer keeping it alive forever.
        swallow(flow.close());
        await net.advance(3_600_000);
        assert.equal(server.tcp.connectionList().length, 0, `left in ${connection.state}`);
      }),
      { numRuns: Number(process.env.ATOLL_TCP_PROPERTY_RUNS ?? 150), ...(process.env.ATOLL_TCP_PROPERTY_VERBOSE ? { verbose: 2 } : {}) },
    );
  });
});

/**
 * SACK loss recovery (RFC 6675) against a hand-driven peer: regressions found against Linux over
 * an impaired link (test/net/tcp-linux/impaired.test.ts), where holes that SACK already showed
 * lost waited for the retransmission timer.
 *
 * - IsLost follows the scoreboard during recovery: SACK blocks arriving on duplicate ACKs after a
 *   partial ACK make the next hole lost, and NextSeg's rule (1) retransmits it before new data.
 * - HighRxt ends where the fast retransmission did: when SACK blocks of our own (we receive out of
 *   order too) leave room for less than a full segment, the rest of the hole is still sent.
 * - An ACK that SACKs new data counts toward fast retransmit even when it carries data (a peer
 *   that sends too, as an echo client does, puts data in nearly every ACK).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TcpFlow } from "../../../src/lib/net/tcp/flow.ts";
import { seqAdd, seqDiff } from "../../../src/lib/net/tcp/seq.ts";
import { TcpFlag } from "../../../src/lib/wire/tcp.ts";
import type { TcpRepr } from "../../../src/lib/wire/tcp.ts";
import { TcpNetwork, patternBytes, rawHandshake, type RawPeer, type TcpHost } from "./harness.ts";

const MSS = 1460;
const ACK = TcpFlag.Ack;
const PORT = 80;

interface Session {
  net: TcpNetwork;
  server: TcpHost;
  peer: RawPeer;
  flow: TcpFlow;
  /** The server's first data byte. */
  base: number;
  isn: number;
  srcPort: number;
  /** Sends a segment from the peer: ack (bytes after base), SACK blocks in segments, data. */
  ackWith(options: { ack: number; sack?: [number, number][]; data?: { offset: number; length: number } }): void;
  /** Data segments the server sent since the last call, as [offset from base, length]. */
  sent(): [number, number][];
}

async function session(seed: number): Promise<Session> {
  const net = new TcpNetwork({ seed });
  const server = net.host("198.18.0.1/24");
  const peer = net.rawPeer("198.18.0.9/24");
  const isn = 5000;
  const { flow, serverIsn, srcPort } = await rawHandshake(net, peer, server, PORT, isn, { mss: MSS, sackPermitted: true });
  const base = seqAdd(serverIsn, 1);
  const peerData = patternBytes(4000, seed);
  return {
    net,
    server,
    peer,
    flow,
    base,
    isn,
    srcPort,
    ackWith({ ack, sack = [], data }) {
      const options: TcpRepr["options"] = sack.length === 0 ? {} : { sack: sack.map(([from, to]) => ({ left: seqAdd(base, from * MSS), right: seqAdd(base, to * MSS) })) };
      const payload = data === undefined ? new Uint8Array(0) : peerData.subarray(data.offset, data.offset + data.length);
      const seq = seqAdd(isn, 1 + (data?.offset ?? 0));
      peer.send(server.address, { srcPort, dstPort: PORT, seq, ack: seqAdd(base, ack), flags: ACK, window: 65535, options, payload });
    },
    sent() {
      const segments = peer.received.filter((segment) => segment.payload.length > 0).map((segment): [number, number] => [seqDiff(segment.seq, base), segment.payload.length]);
      peer.received.length = 0;
      return segments;
    },
  };
}

/** Lets the server send what it will (one virtual millisecond, far below any timer). */
async function step(s: Session): Promise<void> {
  await s.net.advance(1);
}

describe("SACK recovery (RFC 6675)", () => {
  it("a hole that later SACKs mark lost is retransmitted before new data, not at the RTO", async () => {
    const s = await session(21);
    void s.flow.write(patternBytes(60 * MSS, 1));
    await step(s);
    assert.deepEqual(s.sent().map(([offset]) => offset / MSS), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "the initial window");
    // Segment 0 is lost: three duplicate ACKs SACKing 1, 1-2, 1-3 start recovery; 0 goes again.
    for (const to of [2, 3, 4]) s.ackWith({ ack: 0, sack: [[1, to]] });
    await step(s);
    // Limited transmit (RFC 3042) sends new segments on the first two; the third retransmits.
    const recovery = s.sent();
    assert.deepEqual(recovery.at(-1), [0, MSS], "fast retransmit of segment 0");
    // A partial ACK up to the hole at 4, with only segment 5 above it: not lost yet (IsLost needs three).
    s.ackWith({ ack: 4 * MSS, sack: [[5, 6]] });
    await step(s);
    // Three more segments above the hole arrive: now it is lost, and goes before any new data.
    s.ackWith({ ack: 4 * MSS, sack: [[5, 7]] });
    s.ackWith({ ack: 4 * MSS, sack: [[5, 8]] });
    s.ackWith({ ack: 4 * MSS, sack: [[5, 9]] });
    await step(s);
    const next = s.sent();
    assert.deepEqual(next[0], [4 * MSS, MSS], `the hole first; sent: ${JSON.stringify(next)}`);
    assert.equal(s.flow.counters.timeouts, 0);
  });

  it("a fast retransmission shortened by our own SACK blocks is completed in recovery", async () => {
    const s = await session(22);
    void s.flow.write(patternBytes(60 * MSS, 2));
    await step(s);
    assert.equal(s.sent().length, 10);
    // The peer's data arrives out of order (a gap before it): our segments now carry a SACK block
    // of 12 bytes, so a full segment holds 1448 bytes instead of 1460.
    s.ackWith({ ack: 0, data: { offset: 1000, length: 500 } });
    await step(s);
    s.sent();
    for (const to of [2, 3, 4]) s.ackWith({ ack: 0, sack: [[1, to]] });
    await step(s);
    const retransmission = s.sent().at(-1);
    assert.deepEqual(retransmission, [0, MSS - 12], "the fast retransmission, shortened by the SACK option");
    // More SACKs open the window of recovery: the 12 bytes left of segment 0 go first.
    for (const to of [5, 6, 7, 8, 9, 10]) s.ackWith({ ack: 0, sack: [[1, to]] });
    await step(s);
    const next = s.sent();
    assert.deepEqual(next[0], [MSS - 12, 12], `the rest of segment 0; sent: ${JSON.stringify(next)}`);
  });

  it("ACKs carrying data count toward fast retransmit when they SACK new data", async () => {
    const s = await session(23);
    void s.flow.write(patternBytes(60 * MSS, 3));
    await step(s);
    assert.equal(s.sent().length, 10);
    // The peer keeps sending as it SACKs segments 1-3 (segment 0 lost): each ACK carries data.
    s.ackWith({ ack: 0, sack: [[1, 2]], data: { offset: 0, length: 100 } });
    s.ackWith({ ack: 0, sack: [[1, 3]], data: { offset: 100, length: 100 } });
    s.ackWith({ ack: 0, sack: [[1, 4]], data: { offset: 200, length: 100 } });
    await step(s);
    const next = s.sent();
    assert.ok(next.some(([offset]) => offset === 0), `segment 0 sent again at once; sent: ${JSON.stringify(next)}`);
    assert.equal(s.flow.counters.fastRecoveries, 1);
  });
});

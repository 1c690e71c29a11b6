/**
 * Listeners: the accept queue, the half-open backlog, and SYN cookies under a SYN flood
 * (RFC 4987): a legitimate client still gets through, with its options recovered from the cookie.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TcpFlag, type TcpRepr } from "../../../src/lib/wire/tcp.ts";
import type { Ipv4Address } from "atoll/wire/address";
import { NetError } from "../../../src/lib/net/ipv4.ts";
import type { TcpFlow } from "../../../src/lib/net/tcp/flow.ts";
import { seqAdd } from "../../../src/lib/net/tcp/seq.ts";
import { SeededRandom } from "../../../src/lib/net/testing/virtual-link.ts";
import { TcpNetwork, patternBytes, type RawPeer, type TcpHost } from "./harness.ts";

/** SYNs from `count` random ports that never complete their handshakes (ARP resolved first). */
async function flood(net: TcpNetwork, peer: RawPeer, to: Ipv4Address, port: number, count: number, seed = 1): Promise<void> {
  await net.drive(peer.stack.ping(to));
  const random = new SeededRandom(seed);
  for (let i = 0; i < count; i++) {
    peer.send(to, {
      srcPort: 1024 + random.below(60000),
      dstPort: port,
      seq: random.nextUint32(),
      flags: TcpFlag.Syn,
      options: { mss: 1460, sackPermitted: true, windowScale: 7, timestamps: { value: random.nextUint32(), echo: 0 } },
    });
  }
}

/**
 * A listener with a backlog of one, filled by one flooding SYN, so that the raw peer's SYN from
 * port 7777 (ISN 5000, with `options`) is answered with a cookie SYN-ACK, returned here.
 */
async function cookieHandshake(options: TcpRepr["options"]): Promise<{ net: TcpNetwork; server: TcpHost; peer: RawPeer; synAck: TcpRepr; accepted: () => TcpFlow | undefined }> {
  const net = new TcpNetwork();
  const server = net.host("198.18.0.1/24", { tcp: { backlog: 1 } });
  const peer = net.rawPeer("198.18.0.9/24");
  let accepted: TcpFlow | undefined;
  server.tcp.listen(80, (flow) => {
    accepted = flow;
  });
  await flood(net, peer, server.address, 80, 1, 99);
  await net.advance(10);
  peer.received.length = 0;
  peer.send(server.address, { srcPort: 7777, dstPort: 80, seq: 5000, flags: TcpFlag.Syn, options });
  await net.advance(10);
  const synAck = peer.received.find((segment) => segment.flags === (TcpFlag.Syn | TcpFlag.Ack));
  assert.ok(synAck !== undefined);
  return { net, server, peer, synAck, accepted: () => accepted };
}

describe("tcp listeners", () => {
  it("accept() and for-await hand out flows in order; closing the listener ends the iteration", async () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24");
    const client = net.host("198.18.0.2/24");
    const listener = server.tcp.listen({ port: 80, backlog: 4 });
    const flows = await net.drive(Promise.all([client.tcp.connect(server.address, 80), client.tcp.connect(server.address, 80)]));
    const first = await net.drive(listener.accept());
    assert.equal(first.remotePort, flows[0].localPort);
    const accepted: TcpFlow[] = [];
    const iteration = (async () => {
      for await (const flow of listener) accepted.push(flow);
    })();
    await net.advance(1);
    assert.equal(accepted[0]?.remotePort, flows[1].localPort);
    listener.close();
    await net.drive(iteration);
    assert.equal(accepted.length, 1);
    await assert.rejects(listener.accept(), (error: unknown) => error instanceof NetError && error.code === "closed");
    // The port is free again; a new SYN to it is refused.
    await assert.rejects(net.drive(client.tcp.connect(server.address, 80)));
  });

  it("refuses a second listener on a port, and bad ports", () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24");
    server.tcp.listen(80);
    assert.throws(() => server.tcp.listen(80), (error: unknown) => error instanceof NetError && error.code === "address-in-use");
    assert.throws(() => server.tcp.listen(0), RangeError);
    assert.throws(() => server.tcp.listen(65536), RangeError);
  });

  it("under a SYN flood past the backlog it answers with cookies, and a legitimate client still connects", async () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24", { tcp: { backlog: 16 } });
    const client = net.host("198.18.0.2/24");
    const attacker = net.rawPeer("198.18.0.66/24");
    let accepted: TcpFlow | undefined;
    const listener = server.tcp.listen(80, (flow) => {
      accepted = flow;
    });
    await flood(net, attacker, server.address, 80, 1000);
    await net.advance(10);
    const counters = server.tcp.counters;
    assert.equal(listener.halfOpenCount, 16, "the half-open queue is bounded");
    assert.equal(counters.synCookiesSent, 1000 - 16);
    assert.equal(server.tcp.connectionList().length, 16, "no state for cookie SYN-ACKs");
    // The legitimate client arrives while the queue is still full: it completes through a cookie.
    const flow = await net.drive(client.tcp.connect(server.address, 80));
    await net.runUntil(() => accepted !== undefined);
    assert.ok(accepted !== undefined);
    assert.equal(counters.synCookiesValidated, 1);
    // The cookie carried window scaling and SACK in the timestamp (cookies.ts).
    const state = accepted.connection.inspect();
    assert.equal(state.sack, true);
    assert.equal(state.timestamps, true);
    assert.equal(state.sndScale, flow.connection.inspect().rcvScale);
    assert.equal(state.peerMss, 1460);
    const data = patternBytes(300_000, 1);
    const received: Uint8Array[] = [];
    const reading = (async () => {
      for await (const chunk of accepted) received.push(chunk);
    })();
    await net.drive(flow.write(data));
    await net.drive(flow.close());
    await net.drive(reading);
    assert.equal(received.reduce((sum, chunk) => sum + chunk.length, 0), data.length);
  });

  it("half-open connections from the flood time out and free the queue", async () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24", { tcp: { backlog: 8, maxSynRetransmits: 2 } });
    const attacker = net.rawPeer("198.18.0.66/24");
    const listener = server.tcp.listen(80);
    await flood(net, attacker, server.address, 80, 8);
    await net.advance(10);
    assert.equal(listener.halfOpenCount, 8);
    await net.advance(10_000);
    assert.equal(listener.halfOpenCount, 0);
    assert.equal(server.tcp.connectionList().length, 0);
  });

  it("a forged cookie ACK is answered with RST and makes no connection", async () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24", { tcp: { backlog: 1 } });
    const attacker = net.rawPeer("198.18.0.66/24");
    server.tcp.listen(80);
    await flood(net, attacker, server.address, 80, 5);
    await net.advance(10);
    assert.equal(server.tcp.counters.synCookiesSent, 4);
    attacker.received.length = 0;
    attacker.send(server.address, { srcPort: 5555, dstPort: 80, seq: 1000, ack: 0x12345678, flags: TcpFlag.Ack });
    await net.advance(10);
    assert.equal(server.tcp.counters.synCookiesFailed, 1);
    assert.equal(server.tcp.connectionList().length, 1);
    const reset = attacker.received.at(-1);
    assert.ok(reset !== undefined && reset.flags === TcpFlag.Rst && reset.seq === 0x12345678);
  });

  it("with synCookies: \"never\", SYNs past the backlog are dropped", async () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24", { tcp: { backlog: 4, synCookies: "never" } });
    const attacker = net.rawPeer("198.18.0.66/24");
    server.tcp.listen(80);
    await flood(net, attacker, server.address, 80, 10);
    await net.advance(10);
    assert.equal(server.tcp.counters.synCookiesSent, 0);
    assert.equal(server.tcp.counters.listenDrops, 6);
  });

  it("a cookie connection without timestamps goes without window scaling and SACK", async () => {
    const { net, server, peer, synAck, accepted: acceptedFlow } = await cookieHandshake({ mss: 1300, windowScale: 5, sackPermitted: true });
    assert.deepEqual(synAck.options, { mss: 1460 }, "no options it could not remember");
    peer.send(server.address, { srcPort: 7777, dstPort: 80, seq: 5001, ack: seqAdd(synAck.seq, 1), flags: TcpFlag.Ack, payload: Uint8Array.from([1, 2, 3]) });
    await net.runUntil(() => acceptedFlow() !== undefined);
    const accepted = acceptedFlow();
    assert.ok(accepted !== undefined);
    const state = accepted.connection.inspect();
    assert.deepEqual([state.sack, state.timestamps, state.sndScale, state.peerMss], [false, false, 0, 1300]);
    assert.deepEqual([...((await net.drive(accepted.read())) ?? [])], [1, 2, 3], "data on the cookie's ACK is kept");
  });

  it("a cookie connection whose first segments were lost is completed by their retransmission, not reset", async () => {
    const { net, server, peer, synAck, accepted: acceptedFlow } = await cookieHandshake({ mss: 1460 });
    const ack = seqAdd(synAck.seq, 1);
    // The handshake ACK and bytes 0-2 are lost; bytes 3-5 arrive first. Their sequence number
    // cannot check the cookie: dropped, with no reset that would end the client's connection.
    peer.received.length = 0;
    peer.send(server.address, { srcPort: 7777, dstPort: 80, seq: 5004, ack, flags: TcpFlag.Ack, payload: Uint8Array.from([4, 5, 6]) });
    await net.advance(10);
    const counters = server.tcp.counters;
    assert.deepEqual([counters.synCookiesFailed, counters.synCookiesDeferred, counters.resetsSent], [1, 1, 0]);
    assert.deepEqual(peer.received, []);
    assert.equal(counters.synCookiesValidated, 0, "no connection yet");
    // The client's retransmission from ISN + 1 checks the cookie; then the rest arrives in order.
    peer.send(server.address, { srcPort: 7777, dstPort: 80, seq: 5001, ack, flags: TcpFlag.Ack, payload: Uint8Array.from([1, 2, 3]) });
    await net.runUntil(() => acceptedFlow() !== undefined);
    peer.send(server.address, { srcPort: 7777, dstPort: 80, seq: 5004, ack, flags: TcpFlag.Ack, payload: Uint8Array.from([4, 5, 6]) });
    await net.advance(10);
    const accepted = acceptedFlow();
    assert.ok(accepted !== undefined);
    assert.equal(counters.synCookiesValidated, 1);
    const bytes: number[] = [];
    while (bytes.length < 6) bytes.push(...((await net.drive(accepted.read())) ?? []));
    assert.deepEqual(bytes, [1, 2, 3, 4, 5, 6]);
  });

  it("a pure ACK that fails the cookie is still reset while cookies are in use", async () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24", { tcp: { backlog: 1 } });
    const peer = net.rawPeer("198.18.0.9/24");
    server.tcp.listen(80);
    await flood(net, peer, server.address, 80, 2, 99);
    await net.advance(10);
    assert.equal(server.tcp.counters.synCookiesSent, 1);
    peer.received.length = 0;
    peer.send(server.address, { srcPort: 7777, dstPort: 80, seq: 5001, ack: 0x0badcafe, flags: TcpFlag.Ack });
    await net.advance(10);
    assert.deepEqual([server.tcp.counters.synCookiesFailed, server.tcp.counters.synCookiesDeferred], [1, 0]);
    const reset = peer.received.at(-1);
    assert.ok(reset !== undefined && reset.flags === TcpFlag.Rst && reset.seq === 0x0badcafe);
  });
});

/**
 * The RFC 9293 state machine's edge cases, on the virtual link: simultaneous open and close,
 * half-close, TIME-WAIT, RST handling (RFC 5961), zero windows and persist probes, the
 * retransmission limit, user timeout, keep-alive, ICMP errors and path MTU discovery.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Icmpv4Repr } from "../../../src/lib/wire/icmpv4.ts";
import { IPV4_MIN_HEADER_LENGTH, IpProtocol, Ipv4Repr } from "../../../src/lib/wire/ipv4.ts";
import { TcpFlag, TcpRepr } from "../../../src/lib/wire/tcp.ts";
import { EtherType } from "../../../src/lib/wire/ethernet.ts";
import { Ipv4Address } from "atoll/wire/address";
import { ethernetFrame } from "../../../src/lib/net/testing/virtual-link.ts";
import type { TcpFlow } from "../../../src/lib/net/tcp/flow.ts";
import { TcpError } from "../../../src/lib/net/tcp/error.ts";
import { seqAdd } from "../../../src/lib/net/tcp/seq.ts";
import { TcpNetwork, patternBytes, rawHandshake, type RawPeer, type TcpHost } from "./harness.ts";

function pair(options: { seed?: number; tcp?: Parameters<TcpNetwork["host"]>[1] } = {}): { net: TcpNetwork; a: TcpHost; b: TcpHost } {
  const net = new TcpNetwork({ seed: options.seed ?? 1 });
  const a = net.host("198.18.0.1/24", options.tcp);
  const b = net.host("198.18.0.2/24", options.tcp);
  return { net, a, b };
}

/** Connects b → a:port and returns both ends. */
async function connected(net: TcpNetwork, a: TcpHost, b: TcpHost, port = 80): Promise<{ server: TcpFlow; client: TcpFlow }> {
  let server: TcpFlow | undefined;
  a.tcp.listen(port, (flow) => {
    server = flow;
  });
  const client = await net.drive(b.tcp.connect(a.address, port));
  await net.runUntil(() => server !== undefined);
  if (server === undefined) throw new Error("no server flow");
  return { server, client };
}

/** Everything the flow reads until the end of the stream (does not run the clock). */
async function collect(flow: TcpFlow): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of flow) chunks.push(chunk);
  return concat(chunks);
}

/** Runs the clock until the flow's stream ends; returns what it read. */
function readAll(net: TcpNetwork, flow: TcpFlow): Promise<Uint8Array> {
  return net.drive(collect(flow));
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

describe("tcp opening", () => {
  it("simultaneous open: both ends in SYN-SENT, then SYN-RECEIVED, then ESTABLISHED (RFC 9293 §3.5)", async () => {
    const { net, a, b } = pair();
    const sniffed = net.sniff();
    const flowA = a.tcp.open(b.address, 6000, { localPort: 5000 });
    const flowB = b.tcp.open(a.address, 5000, { localPort: 6000 });
    assert.equal(flowA.state, "SYN-SENT");
    assert.equal(flowB.state, "SYN-SENT");
    await net.drive(Promise.all([flowA.waitEstablished(), flowB.waitEstablished()]));
    assert.equal(flowA.state, "ESTABLISHED");
    assert.equal(flowB.state, "ESTABLISHED");
    // Each side sent a SYN, then a SYN-ACK of the same ISS.
    for (const port of ["port1", "port2"]) {
      const syns = sniffed.filter((segment) => segment.from === port && segment.tcp.flags & TcpFlag.Syn);
      assert.deepEqual(
        syns.map((segment) => segment.tcp.flags),
        [TcpFlag.Syn, TcpFlag.Syn | TcpFlag.Ack],
      );
      assert.equal(syns[0]?.tcp.seq, syns[1]?.tcp.seq);
    }
    const message = patternBytes(3000, 1);
    await net.drive(flowA.write(message));
    await net.drive(flowA.shutdown());
    assert.deepEqual(await readAll(net, flowB), message);
  });

  it("a SYN to a closed port gets RST+ACK and connect rejects as refused (RFC 9293 §3.10.7.1)", async () => {
    const { net, a, b } = pair();
    const sniffed = net.sniff();
    await assert.rejects(net.drive(b.tcp.connect(a.address, 81)), (error: unknown) => error instanceof TcpError && error.reason === "refused" && error.code === "connection-refused");
    const syn = sniffed.find((segment) => segment.from === "port2");
    const reset = sniffed.find((segment) => segment.from === "port1");
    assert.ok(syn !== undefined && reset !== undefined);
    assert.equal(reset.tcp.flags, TcpFlag.Rst | TcpFlag.Ack);
    assert.equal(reset.tcp.seq, 0);
    assert.equal(reset.tcp.ack, seqAdd(syn.tcp.seq, 1));
    assert.equal(a.tcp.counters.noConnection, 1);
    assert.equal(a.tcp.counters.resetsSent, 1);
  });

  it("a SYN answered by nobody is retried with backoff, then connect fails with a timeout", async () => {
    const net = new TcpNetwork();
    const b = net.host("198.18.0.2/24", { tcp: { maxSynRetransmits: 3 } });
    const peer = net.rawPeer("198.18.0.1/24");
    const sniffed = net.sniff();
    const start = net.clock.now();
    await assert.rejects(net.drive(b.tcp.connect(peer.address, 80)), (error: unknown) => error instanceof TcpError && error.reason === "timeout");
    const times = sniffed.filter((segment) => segment.from === "port1").map((segment) => segment.time - start);
    assert.deepEqual(times, [0, 1000, 3000, 7000], "RFC 6298: 1 s initial RTO, doubled each time");
    assert.equal(net.clock.now() - start, 15_000);
  });

  it("a SYN to a host without TCP aborts at once on ICMP protocol unreachable (a hard error, RFC 1122 §4.2.3.9)", async () => {
    const net = new TcpNetwork();
    const b = net.host("198.18.0.2/24");
    const noTcp = net.host("198.18.0.3/24");
    noTcp.tcp.close();
    await assert.rejects(
      net.drive(b.tcp.connect(noTcp.address, 80)),
      (error: unknown) => error instanceof TcpError && error.reason === "unreachable" && error.code === "protocol-unreachable",
    );
    assert.ok(net.clock.now() < 1000, "before any retransmission");
    assert.equal(b.tcp.counters.icmpErrors, 1);
  });
});

describe("tcp closing", () => {
  it("half-close: the client shuts down, reads the server's reply, then both close", async () => {
    const { net, a, b } = pair();
    const { server, client } = await connected(net, a, b);
    const request = patternBytes(10_000, 2);
    await net.drive(client.write(request));
    await net.drive(client.shutdown());
    assert.equal(client.state, "FIN-WAIT-2");
    assert.deepEqual(await readAll(net, server), request, "EOF after the request");
    assert.equal(server.state, "CLOSE-WAIT");
    const reply = patternBytes(50_000, 3);
    await net.drive(server.write(reply));
    const replyRead = collect(client);
    await net.drive(server.close());
    assert.deepEqual(await net.drive(replyRead), reply);
    assert.equal(client.state, "TIME-WAIT");
    assert.equal(await net.drive(server.closed), undefined);
    assert.equal(server.state, "CLOSED");
  });

  it("simultaneous close: both ends pass through CLOSING to TIME-WAIT (RFC 9293 §3.6)", async () => {
    const { net, a, b } = pair();
    const { server, client } = await connected(net, a, b);
    const states = new Set<string>();
    for (const flow of [server, client]) {
      const connection = flow.connection;
      const original = connection.receive.bind(connection);
      connection.receive = (segment) => {
        original(segment);
        states.add(connection.state);
      };
    }
    const closing = Promise.all([server.close(), client.close()]);
    assert.equal(server.state, "FIN-WAIT-1");
    assert.equal(client.state, "FIN-WAIT-1");
    await net.drive(closing);
    assert.ok(states.has("CLOSING"), `states seen: ${[...states].join(", ")}`);
    assert.equal(server.state, "TIME-WAIT");
    assert.equal(client.state, "TIME-WAIT");
  });

  it("TIME-WAIT lasts 2·MSL, re-acknowledges a retransmitted FIN and restarts, then the connection is gone", async () => {
    const { net, a, b } = pair({ tcp: { tcp: { timeWaitMs: 10_000 } } });
    const { server, client } = await connected(net, a, b);
    const sniffed = net.sniff();
    await net.drive(client.close());
    assert.equal(client.state, "FIN-WAIT-2");
    // The client's ACKs are lost for 3 s: the server, in LAST-ACK, sends its FIN again at
    // 0.2, 0.6, 1.4 and 3.0 s; the last one is acknowledged.
    const send = b.port.send.bind(b.port);
    let dropping = true;
    b.port.send = (frame) => {
      if (!dropping) send(frame);
    };
    const start = net.clock.now();
    const serverClosed = server.close();
    await net.advance(2900);
    assert.equal(client.state, "TIME-WAIT");
    assert.equal(server.state, "LAST-ACK");
    dropping = false;
    await net.drive(serverClosed);
    const fins = sniffed.filter((segment) => segment.from === "port1" && segment.tcp.flags & TcpFlag.Fin);
    assert.deepEqual(
      fins.map((segment) => segment.time - start),
      [0, 200, 600, 1400, 3000],
    );
    assert.equal(server.state, "CLOSED");
    await net.advance(start + 11_000 - net.clock.now());
    assert.equal(client.state, "TIME-WAIT", "restarted by the FIN at 3 s: ends at 13 s, not 10 s");
    assert.equal(b.tcp.connectionList().length, 1);
    await net.advance(start + 13_001 - net.clock.now());
    assert.equal(client.state, "CLOSED");
    assert.equal(b.tcp.connectionList().length, 0);
  });

  it("close with unread data resets the connection (RFC 1122 §4.2.2.13)", async () => {
    const { net, a, b } = pair();
    const { server, client } = await connected(net, a, b);
    await net.drive(server.write(patternBytes(1000, 4)));
    await net.advance(100);
    await net.drive(client.close());
    const error = await net.drive(server.closed);
    assert.ok(error instanceof TcpError && error.reason === "reset" && error.code === "connection-reset", String(error));
    await assert.rejects(server.read(), TcpError);
    await assert.rejects(server.write(new Uint8Array(1)), TcpError);
  });

  it("abort sends RST; the peer's reads and writes reject with a reset error", async () => {
    const { net, a, b } = pair();
    const { server, client } = await connected(net, a, b);
    const pendingRead = server.read();
    client.abort();
    await assert.rejects(net.drive(pendingRead), (error: unknown) => error instanceof TcpError && error.reason === "reset");
    assert.equal(a.tcp.counters.resetsReceived, 1);
    assert.equal(client.error?.reason, "aborted");
  });
});

describe("tcp RST and SYN handling (RFC 5961)", () => {
  async function established(): Promise<{ net: TcpNetwork; peer: RawPeer; server: TcpHost; flow: TcpFlow; serverIsn: number; srcPort: number; peerNext: number }> {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24");
    const peer = net.rawPeer("198.18.0.9/24");
    const isn = 1_000_000;
    const { serverIsn, flow, srcPort } = await rawHandshake(net, peer, server, 80, isn);
    return { net, peer, server, flow, serverIsn, srcPort, peerNext: seqAdd(isn, 1) };
  }

  it("a RST in the window but not at RCV.NXT gets a challenge ACK; the connection lives", async () => {
    const { net, peer, server, flow, serverIsn, srcPort, peerNext } = await established();
    peer.send(server.address, { srcPort, dstPort: 80, seq: seqAdd(peerNext, 1000), flags: TcpFlag.Rst });
    await net.advance(1);
    assert.equal(flow.state, "ESTABLISHED");
    const challenge = peer.received.at(-1);
    assert.ok(challenge !== undefined && challenge.flags === TcpFlag.Ack);
    assert.equal(challenge.ack, peerNext);
    assert.equal(challenge.seq, seqAdd(serverIsn, 1));
    assert.equal(server.tcp.counters.challengeAcks, 1);
  });

  it("a RST outside the window is dropped silently", async () => {
    const { net, peer, server, flow, srcPort, peerNext } = await established();
    peer.send(server.address, { srcPort, dstPort: 80, seq: seqAdd(peerNext, 10_000_000), flags: TcpFlag.Rst });
    peer.send(server.address, { srcPort, dstPort: 80, seq: seqAdd(peerNext, -1), flags: TcpFlag.Rst });
    await net.advance(1);
    assert.equal(flow.state, "ESTABLISHED");
    assert.equal(peer.received.length, 0);
  });

  it("a RST exactly at RCV.NXT resets the connection", async () => {
    const { net, peer, server, flow, srcPort, peerNext } = await established();
    peer.send(server.address, { srcPort, dstPort: 80, seq: peerNext, flags: TcpFlag.Rst });
    const error = await net.drive(flow.closed);
    assert.ok(error instanceof TcpError && error.reason === "reset");
    assert.equal(server.tcp.connectionList().length, 0);
  });

  it("a SYN on an established connection gets a challenge ACK, whatever its sequence number", async () => {
    const { net, peer, server, flow, srcPort, peerNext } = await established();
    for (const seq of [peerNext, seqAdd(peerNext, 500), 12345]) {
      peer.send(server.address, { srcPort, dstPort: 80, seq, flags: TcpFlag.Syn });
    }
    await net.advance(1);
    assert.equal(flow.state, "ESTABLISHED");
    const acks = peer.received.filter((segment) => segment.flags === TcpFlag.Ack && segment.ack === peerNext);
    assert.ok(acks.length >= 2, `challenge ACKs: ${acks.length}`);
  });

  it("challenge ACKs are rate limited per connection (RFC 5961 §7)", async () => {
    const { net, peer, server, srcPort, peerNext } = await established();
    for (let i = 0; i < 50; i++) peer.send(server.address, { srcPort, dstPort: 80, seq: seqAdd(peerNext, 100 + i), flags: TcpFlag.Rst });
    await net.advance(1);
    assert.equal(server.tcp.counters.challengeAcks, 10);
    assert.equal(server.tcp.counters.challengeAcksLimited, 40);
    await net.advance(1000);
    peer.send(server.address, { srcPort, dstPort: 80, seq: seqAdd(peerNext, 100), flags: TcpFlag.Rst });
    await net.advance(1);
    assert.equal(server.tcp.counters.challengeAcks, 11, "a new second, a new allowance");
  });

  it("an ACK for data never sent is answered with an ACK and dropped (RFC 5961 §5.2)", async () => {
    const { net, peer, server, flow, serverIsn, srcPort, peerNext } = await established();
    peer.send(server.address, { srcPort, dstPort: 80, seq: peerNext, ack: seqAdd(serverIsn, 5000), flags: TcpFlag.Ack, payload: new Uint8Array([1, 2, 3]) });
    await net.advance(1);
    assert.equal(server.tcp.counters.badAcks, 1);
    assert.equal(flow.connection.readableBytes, 0, "the data of a segment with a bad ACK is not taken");
    assert.equal(peer.received.at(-1)?.flags, TcpFlag.Ack);
  });
});

describe("tcp windows", () => {
  it("a zero window held for 10 s: persist probes back off, and data resumes when the reader reads", async () => {
    const { net, a, b } = pair();
    const { server, client } = await connected(net, a, b);
    const sniffed = net.sniff();
    const total = 2 * 1024 * 1024;
    const data = patternBytes(total, 5);
    let written = false;
    const writer = client.write(data).then(() => {
      written = true;
    });
    // The server does not read: the window closes after 256 KiB.
    await net.advance(10_000);
    assert.ok(!written, "backpressure: the write is not done while the peer's window is shut");
    const zeroWindows = sniffed.filter((segment) => segment.from === "port1" && segment.tcp.window === 0);
    assert.ok(zeroWindows.length > 0, "the receiver advertised a zero window");
    const probes = sniffed.filter((segment) => segment.from === "port2" && segment.tcp.payload.length === 1);
    assert.ok(probes.length >= 4, `persist probes: ${probes.length}`);
    const gaps = probes.slice(1).map((probe, i) => probe.time - (probes[i]?.time ?? 0));
    for (let i = 1; i < gaps.length; i++) assert.ok((gaps[i] ?? 0) > (gaps[i - 1] ?? 0), `backoff: ${gaps.join(", ")}`);
    assert.equal(client.counters.windowProbes, probes.length);
    assert.equal(client.state, "ESTABLISHED");
    // Now read everything: the window reopens (window updates), and the transfer completes.
    const received = collect(server);
    await net.drive(writer);
    await net.drive(client.close());
    const bytes = await net.drive(received);
    assert.equal(bytes.length, total);
    assert.deepEqual(bytes, data);
    assert.ok(server.counters.windowUpdates > 0);
  });

  it("the advertised window is the free receive buffer and reopens as the application reads", async () => {
    const { net, a, b } = pair({ tcp: { tcp: { receiveBufferSize: 64 * 1024 } } });
    const { server, client } = await connected(net, a, b);
    const sniffed = net.sniff();
    void client.write(patternBytes(100_000, 6));
    await net.advance(1000);
    const windowOf = () => {
      const last = sniffed.filter((segment) => segment.from === "port1").at(-1);
      return (last?.tcp.window ?? -1) * 2 ** (server.connection.inspect().rcvScale);
    };
    assert.equal(server.connection.readableBytes, 64 * 1024);
    assert.equal(windowOf(), 0);
    const chunk = await server.read();
    assert.ok(chunk !== undefined && chunk.length === 64 * 1024);
    await net.advance(1);
    // Reopened, and then filled by the rest of the data (34,464 bytes): what is advertised is the
    // buffer's real free space, to the window scale's granularity.
    const free = 64 * 1024 - server.connection.readableBytes;
    const granularity = 2 ** server.connection.inspect().rcvScale;
    assert.ok(server.connection.readableBytes < 64 * 1024, "the reader made room");
    assert.ok(windowOf() > 0 && windowOf() <= free && windowOf() > free - granularity, `reopened to ${windowOf()} with ${free} bytes free`);
  });
});

describe("tcp failures", () => {
  it("the retransmission limit surfaces a timeout error to pending and later calls", async () => {
    const { net, a, b } = pair({ tcp: { tcp: { maxRetransmits: 5 } } });
    const { client } = await connected(net, a, b);
    net.link.impairments.loss = 1;
    const start = net.clock.now();
    await net.drive(client.write(patternBytes(10_000, 7)));
    const error = await net.drive(client.closed);
    // The link is dead both ways, ARP included: the timeout after the third retransmission gave
    // negative advice (RFC 1122 §4.2.3.5), ARP's re-validation got no answer, the next
    // resolution failed too, and that soft error is the timeout's cause (as Linux's EHOSTUNREACH).
    assert.ok(error instanceof TcpError && error.reason === "timeout" && error.code === "host-unreachable", String(error));
    // 200 ms minimum RTO, doubled five times: 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 6.4 s.
    assert.equal(net.clock.now() - start, 12_600);
    assert.equal(client.counters.timeouts, 5);
    const arp = b.stack.counters().arp;
    assert.deepEqual([arp.revalidations, arp.revalidationFailures, arp.resolutionFailures], [1, 1, 1]);
    await assert.rejects(client.write(new Uint8Array(1)), TcpError);
    await assert.rejects(client.read(), TcpError);
  });

  it("the user timeout gives up after N ms without acknowledgment (RFC 5482)", async () => {
    const { net, a, b } = pair();
    let server: TcpFlow | undefined;
    a.tcp.listen(80, (flow) => {
      server = flow;
    });
    const client = await net.drive(b.tcp.connect(a.address, 80, { userTimeoutMs: 3000 }));
    await net.runUntil(() => server !== undefined);
    net.link.impairments.loss = 1;
    const start = net.clock.now();
    await net.drive(client.write(patternBytes(5000, 8)));
    const error = await net.drive(client.closed);
    assert.ok(error instanceof TcpError && error.reason === "timeout");
    assert.equal(net.clock.now() - start, 3000);
  });

  it("keep-alive probes keep an idle connection, and end one whose peer is gone", async () => {
    const { net, a, b } = pair();
    let server: TcpFlow | undefined;
    a.tcp.listen(80, (flow) => {
      server = flow;
    });
    const keepAlive = { idleMs: 10_000, intervalMs: 1000, probes: 3 };
    const client = await net.drive(b.tcp.connect(a.address, 80, { keepAlive }));
    await net.runUntil(() => server !== undefined);
    await net.advance(60_000);
    assert.equal(client.state, "ESTABLISHED");
    assert.ok(client.counters.keepAliveProbes >= 5, `probes: ${client.counters.keepAliveProbes}`);
    net.link.impairments.loss = 1;
    const start = net.clock.now();
    const error = await net.drive(client.closed);
    assert.ok(error instanceof TcpError && error.reason === "timeout");
    assert.ok(net.clock.now() - start <= 10_000 + 4 * 1000, "idle time plus the probes");
  });

  it("ICMP fragmentation needed lowers the MSS and the data still arrives (RFC 1191)", async () => {
    const { net, a, b } = pair();
    const { server, client } = await connected(net, a, b);
    net.link.impairments.delayMs = 20; // so that the quoted segment is still in flight
    const sniffed = net.sniff();
    const received = collect(server);
    const writing = client.write(patternBytes(200_000, 9));
    await net.runUntil(() => sniffed.some((segment) => segment.from === "port2" && segment.tcp.payload.length > 1000));
    // The latest segment: still in flight when the ICMP message arrives.
    const big = sniffed.filter((segment) => segment.from === "port2" && segment.tcp.payload.length > 1000).at(-1);
    assert.ok(big !== undefined);
    // A router on the path (here: the server's address) says the next hop takes 1000 bytes.
    const quoted = ipPacket(big.src, big.dst, big.tcp).subarray(0, IPV4_MIN_HEADER_LENGTH + 8);
    const icmp = new Uint8Array(Icmpv4Repr.bufferLength({ kind: "destination-unreachable", code: 4, nextHopMtu: 1000, original: quoted }));
    Icmpv4Repr.emit({ kind: "destination-unreachable", code: 4, nextHopMtu: 1000, original: quoted }, icmp);
    const packet = rawIpPacket(a.address, b.address, IpProtocol.Icmp, icmp);
    a.port.send(ethernetFrame(b.port.mac, a.port.mac, EtherType.Ipv4, packet));
    await net.drive(writing);
    await net.drive(client.close());
    assert.equal((await net.drive(received)).length, 200_000);
    assert.equal(b.tcp.counters.pathMtuUpdates, 1);
    assert.equal(client.counters.sendMss, 1000 - 40 - 12);
    const after = sniffed.filter((segment) => segment.from === "port2" && segment.time > big.time);
    assert.ok(after.every((segment) => segment.tcp.payload.length <= 948), "every later segment fits the new MTU");
  });

  it("an ICMP MTU below 552 bytes is not followed: segments of 552 go without \"don't fragment\"", async () => {
    const { net, a, b } = pair();
    const { client } = await connected(net, a, b);
    net.link.impairments.delayMs = 20;
    const sniffed = net.sniff();
    const frames: Uint8Array[] = [];
    net.link.tap((frame, from) => {
      if (from === b.port) frames.push(frame);
    });
    const writing = client.write(patternBytes(100_000, 10));
    await net.runUntil(() => sniffed.some((segment) => segment.from === "port2" && segment.tcp.payload.length > 1000));
    const big = sniffed.filter((segment) => segment.from === "port2" && segment.tcp.payload.length > 1000).at(-1);
    assert.ok(big !== undefined);
    const quoted = ipPacket(big.src, big.dst, big.tcp).subarray(0, IPV4_MIN_HEADER_LENGTH + 8);
    const message: Icmpv4Repr = { kind: "destination-unreachable", code: 4, nextHopMtu: 300, original: quoted };
    const icmp = new Uint8Array(Icmpv4Repr.bufferLength(message));
    Icmpv4Repr.emit(message, icmp);
    a.port.send(ethernetFrame(b.port.mac, a.port.mac, EtherType.Ipv4, rawIpPacket(a.address, b.address, IpProtocol.Icmp, icmp)));
    const before = frames.length;
    await net.drive(writing);
    assert.ok(await net.runUntil(() => client.connection.inspect().sendBuffered === 0), "everything acknowledged");
    assert.equal(client.counters.sendMss, 552 - 40 - 12);
    const later = frames.slice(before + 1).filter((frame) => frame[23] === IpProtocol.Tcp);
    assert.ok(later.length > 0 && later.every((frame) => (frame[20] & 0x40) === 0), "DF clear");
  });

  it("a SYN to an address that never answers ARP fails when ARP gives up, host unreachable (as Linux's EHOSTUNREACH), before the SYN retries run out", async () => {
    const net = new TcpNetwork();
    const b = net.host("198.18.0.2/24", { tcp: { maxSynRetransmits: 2 } });
    const start = net.clock.now();
    const error = await net.drive(b.tcp.connect(Ipv4Address.fromOctets(198, 18, 0, 99), 80)).catch((caught: unknown) => caught);
    assert.ok(error instanceof TcpError && error.reason === "unreachable" && error.code === "host-unreachable", String(error));
    assert.equal(net.clock.now() - start, 3_000, "ARP's three requests, not the SYN retries' 7 s");
  });

  it("an ICMP error quoting a sequence number not in flight is ignored (RFC 5927)", async () => {
    const { net, a, b } = pair();
    const { client } = await connected(net, a, b);
    const local = client.connection;
    const fake = TcpRepr.bufferLength({ srcPort: local.localPort, dstPort: local.remotePort, seq: 12345, ack: 0, flags: TcpFlag.Ack, window: 0, urgentPointer: 0, options: {}, payload: new Uint8Array(0) });
    const segment = new Uint8Array(fake);
    TcpRepr.emit({ srcPort: local.localPort, dstPort: local.remotePort, seq: 12345, ack: 0, flags: TcpFlag.Ack, window: 0, urgentPointer: 0, options: {}, payload: new Uint8Array(0) }, segment, b.address, a.address);
    const quoted = rawIpPacket(b.address, a.address, IpProtocol.Tcp, segment).subarray(0, 28);
    const message: Icmpv4Repr = { kind: "destination-unreachable", code: 4, nextHopMtu: 600, original: quoted };
    const icmp = new Uint8Array(Icmpv4Repr.bufferLength(message));
    Icmpv4Repr.emit(message, icmp);
    a.port.send(ethernetFrame(b.port.mac, a.port.mac, EtherType.Ipv4, rawIpPacket(a.address, b.address, IpProtocol.Icmp, icmp)));
    await net.advance(10);
    assert.equal(b.tcp.counters.pathMtuUpdates, 0);
    assert.equal(client.counters.sendMss, 1448);
  });
});

function rawIpPacket(src: Ipv4Address, dst: Ipv4Address, protocol: number, payload: Uint8Array): Uint8Array {
  const repr: Ipv4Repr = {
    src,
    dst,
    protocol,
    ttl: 64,
    dscp: 0,
    ecn: 0,
    identification: 1,
    dontFragment: true,
    moreFragments: false,
    fragmentOffset: 0,
    payloadLength: payload.length,
  };
  const packet = new Uint8Array(IPV4_MIN_HEADER_LENGTH + payload.length);
  Ipv4Repr.emit(repr, packet);
  packet.set(payload, IPV4_MIN_HEADER_LENGTH);
  return packet;
}

function ipPacket(src: Ipv4Repr["src"], dst: Ipv4Repr["dst"], tcp: TcpRepr): Uint8Array {
  const segment = new Uint8Array(TcpRepr.bufferLength(tcp));
  TcpRepr.emit(tcp, segment, src, dst);
  return rawIpPacket(src, dst, IpProtocol.Tcp, segment);
}

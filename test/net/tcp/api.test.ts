/**
 * The socket API: backpressure, reads, errors, options (Nagle, delayed ACKs), counters, and
 * connections to our own address. (Web Streams are in streams.test.ts, which imports the
 * adapters: each test file runs in its own process, so here they are not installed.)
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
// The API under test through its public entry points, as an appliance imports it.
import { readCounters } from "atoll";
import { NetError } from "atoll/net";
import { attachTcp, TcpError, type TcpFlow } from "atoll/net/tcp";
import { TcpFlag } from "atoll/wire";
import { Ipv4Address } from "atoll/wire/address";
import { seededRandomSource } from "../../../src/lib/net/testing/virtual-link.ts";
import { bulkTransfer, TcpNetwork, patternBytes, silentLog, type HostOptions, type TcpHost } from "./harness.ts";

async function connectedPair(
  net: TcpNetwork,
  options: Parameters<TcpHost["tcp"]["connect"]>[2] = {},
  hosts: HostOptions = {},
): Promise<{ a: TcpHost; b: TcpHost; server: TcpFlow; client: TcpFlow }> {
  const a = net.host("198.18.0.1/24", hosts);
  const b = net.host("198.18.0.2/24", hosts);
  let server: TcpFlow | undefined;
  a.tcp.listen(80, (flow) => {
    server = flow;
  });
  const client = await net.drive(b.tcp.connect(a.address, 80, options));
  await net.runUntil(() => server !== undefined);
  if (server === undefined) throw new Error("not accepted");
  return { a, b, server, client };
}

describe("tcp flow API", () => {
  it("write resolves once buffered: a writer never holds more than the buffers", async () => {
    const net = new TcpNetwork();
    // Fixed sizes (no autotuning), so that the buffers' bounds are exact.
    const { server, client } = await connectedPair(net, {}, { tcp: { sendBufferSize: 256 * 1024, receiveBufferSize: 256 * 1024 } });
    let resolved = 0;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 64; i++) writes.push(client.write(patternBytes(16 * 1024, i)).then(() => void resolved++));
    await net.advance(5000);
    // 256 KiB in the server's receive buffer and 256 KiB in the client's send buffer.
    assert.equal(resolved, 32, `${resolved} writes of 16 KiB resolved`);
    assert.equal(client.connection.inspect().sendBuffered, 256 * 1024);
    assert.equal(server.connection.readableBytes, 256 * 1024);
    let read = 0;
    const reader = (async () => {
      for await (const chunk of server) read += chunk.length;
    })();
    await net.drive(Promise.all(writes));
    await net.drive(client.close());
    await net.drive(reader);
    assert.equal(read, 64 * 16 * 1024);
  });

  it("read returns chunks of at most 64 KiB in order, then undefined at the end, and again after", async () => {
    const net = new TcpNetwork();
    const { server, client } = await connectedPair(net);
    const data = patternBytes(200_000, 1);
    await net.drive(client.write(data));
    await net.drive(client.shutdown());
    const chunks: Uint8Array[] = [];
    for (let chunk = await server.read(); chunk !== undefined; chunk = await server.read()) {
      assert.ok(chunk.length <= 64 * 1024);
      chunks.push(chunk);
    }
    assert.deepEqual(Buffer.concat(chunks), Buffer.from(data));
    assert.equal(await server.read(), undefined);
    assert.equal(server.state, "CLOSE-WAIT");
  });

  it("concurrent reads are served in order", async () => {
    const net = new TcpNetwork();
    const { server, client } = await connectedPair(net);
    const first = server.read();
    const second = server.read();
    await net.drive(client.write(Uint8Array.from([1, 2, 3])));
    await net.advance(50);
    await net.drive(client.write(Uint8Array.from([4])));
    assert.deepEqual([...((await net.drive(first)) ?? [])], [1, 2, 3]);
    assert.deepEqual([...((await net.drive(second)) ?? [])], [4]);
  });

  it("readInto copies into the caller's buffer, mixes in order with read, and resolves 0 at the end", async () => {
    const net = new TcpNetwork();
    const { server, client } = await connectedPair(net);
    await assert.rejects(server.readInto(new Uint8Array(0)), RangeError);
    const buffer = new Uint8Array(1000);
    const waiting = server.readInto(buffer);
    const chunk = server.read();
    // More than the receive and send buffers hold together: the window must reopen as the one
    // reused buffer drains the data.
    const data = patternBytes(1_000_000, 7);
    const writing = client.write(data).then(() => client.shutdown());
    const first = await net.drive(waiting);
    assert.ok(first > 0 && first <= 1000);
    const received = [Buffer.from(buffer.subarray(0, first)), Buffer.from((await net.drive(chunk)) ?? [])];
    for (let count = await net.drive(server.readInto(buffer)); count > 0; count = await net.drive(server.readInto(buffer))) received.push(Buffer.from(buffer.subarray(0, count)));
    await net.drive(writing);
    assert.deepEqual(Buffer.concat(received), Buffer.from(data));
    assert.equal(await server.readInto(buffer), 0);
    assert.equal(await server.read(), undefined);
  });

  it("writes after shutdown reject; reads go on (half-close)", async () => {
    const net = new TcpNetwork();
    const { server, client } = await connectedPair(net);
    await net.drive(client.shutdown());
    await assert.rejects(client.write(new Uint8Array(1)), (error: unknown) => error instanceof TcpError && error.reason === "closed");
    const replying = server.write(Uint8Array.from([9, 9]));
    assert.deepEqual([...((await net.drive(client.read())) ?? [])], [9, 9]);
    await net.drive(replying);
  });

  it("connect errors: no route, port 0, a local port in use", async () => {
    const net = new TcpNetwork();
    const { a, b } = await connectedPair(net);
    assert.throws(() => b.tcp.open(Ipv4Address.fromOctets(203, 0, 113, 1), 80), (error: unknown) => error instanceof NetError && error.code === "no-route");
    await assert.rejects(b.tcp.connect(Ipv4Address.fromOctets(203, 0, 113, 1), 80), NetError);
    assert.throws(() => b.tcp.open(a.address, 0), RangeError);
    const flow = b.tcp.open(a.address, 80, { localPort: 40000 });
    assert.throws(() => b.tcp.open(a.address, 80, { localPort: 40000 }), (error: unknown) => error instanceof NetError && error.code === "address-in-use");
    await net.drive(flow.waitEstablished());
  });

  it("connects to our own address, through the IP layer's local delivery", async () => {
    const net = new TcpNetwork();
    const a = net.host("198.18.0.1/24");
    a.tcp.listen(7, (flow) => {
      void (async () => {
        for await (const chunk of flow) await flow.write(chunk);
        await flow.close();
      })();
    });
    const flow = await net.drive(a.tcp.connect(a.address, 7));
    const data = patternBytes(100_000, 2);
    const echoed: Uint8Array[] = [];
    const reader = (async () => {
      for await (const chunk of flow) echoed.push(chunk);
    })();
    await net.drive(flow.write(data));
    await net.drive(flow.shutdown());
    await net.drive(reader);
    assert.deepEqual(Buffer.concat(echoed), Buffer.from(data));
  });

  it("exposes endpoints, state and counters", async () => {
    const net = new TcpNetwork();
    const { a, b, server, client } = await connectedPair(net);
    assert.equal(client.remoteAddress, a.address);
    assert.equal(client.localAddress, b.address);
    assert.equal(server.remotePort, client.localPort);
    assert.equal(server.localPort, 80);
    assert.ok(client.localPort >= 49152);
    await net.drive(client.write(patternBytes(50_000, 3)));
    await net.advance(100);
    const counters = client.counters;
    assert.equal(counters.bytesSent, 50_000);
    assert.equal(server.counters.bytesReceived, 50_000);
    assert.equal(counters.sendMss, 1448);
    assert.ok(counters.segmentsOut >= 35);
    assert.equal(b.tcp.counters.activeOpens, 1);
    assert.equal(a.tcp.counters.passiveOpens, 1);
    assert.equal(a.tcp.counters.established, 1);
  });

  it("registers the layer's counters for the exit report", () => {
    const net = new TcpNetwork();
    const host = net.host("198.18.0.1/24");
    const tcp = attachTcp(host.stack, { timers: net.clock, random: seededRandomSource(1), log: silentLog, countersName: "test.tcp" });
    tcp.close();
    const counters = readCounters()["test.tcp"];
    assert.ok(counters !== undefined);
    assert.equal(counters.segmentsIn, 0);
  });

  it("Web Streams need the adapters module", async () => {
    const net = new TcpNetwork();
    const { client } = await connectedPair(net);
    assert.throws(() => client.readable, /atoll\/net\/tcp\/streams/);
  });
});

describe("tcp sending and acknowledging policy", () => {
  it("Nagle coalesces small writes while data is in flight; noDelay sends each at once", async () => {
    for (const noDelay of [false, true]) {
      const net = new TcpNetwork({ impairments: { delayMs: 20 } });
      const { client } = await connectedPair(net, { noDelay });
      const sniffed = net.sniff();
      for (let i = 0; i < 20; i++) {
        void client.write(Uint8Array.of(i));
        await net.advance(2);
      }
      await net.advance(200);
      const dataSegments = sniffed.filter((segment) => segment.from === "port2" && segment.tcp.payload.length > 0);
      const bytes = dataSegments.reduce((sum, segment) => sum + segment.tcp.payload.length, 0);
      assert.equal(bytes, 20);
      if (noDelay) assert.equal(dataSegments.length, 20);
      else assert.ok(dataSegments.length <= 3, `Nagle: ${dataSegments.length} segments`);
    }
  });

  it("Nagle in Minshall's form: a full segment plus a short tail goes out at once (no wait for a delayed ACK)", async () => {
    const net = new TcpNetwork({ impairments: { delayMs: 20 } });
    const { client } = await connectedPair(net);
    const sniffed = net.sniff();
    // One response of a segment and a half, as an HTTP answer often is.
    void client.write(patternBytes(1448 + 500, 9));
    await net.advance(5);
    const sent = sniffed.filter((segment) => segment.from === "port2" && segment.tcp.payload.length > 0).map((segment) => segment.tcp.payload.length);
    assert.equal(sent.reduce((sum, length) => sum + length, 0), 1948, `both segments left before any ACK could come back: ${sent.join(", ")}`);
    // A second small write while the first small segment is unacknowledged does wait.
    void client.write(Uint8Array.of(1));
    await net.advance(5);
    const after = sniffed.filter((segment) => segment.from === "port2" && segment.tcp.payload.length > 0);
    assert.equal(after.reduce((sum, segment) => sum + segment.tcp.payload.length, 0), 1948);
  });

  it("ACKs every second full-sized segment at once, a lone one within the delayed ACK time", async () => {
    const net = new TcpNetwork();
    const { server, client } = await connectedPair(net);
    void server;
    const sniffed = net.sniff();
    await net.drive(client.write(patternBytes(1448 * 10, 4)));
    await net.advance(1);
    const acks = () => sniffed.filter((segment) => segment.from === "port1" && segment.tcp.payload.length === 0 && segment.tcp.flags === TcpFlag.Ack);
    assert.equal(acks().length, 5, "ten segments, five ACKs");
    const start = net.clock.now();
    await net.drive(client.write(Uint8Array.of(1)));
    await net.advance(100);
    const last = acks().at(-1);
    assert.ok(last !== undefined && acks().length === 6);
    assert.equal(last.time - start, 40, "delayed by 40 ms");
  });

  it("sends full-MSS segments during a bulk transfer", async () => {
    const net = new TcpNetwork();
    const { client } = await connectedPair(net);
    const sniffed = net.sniff();
    await net.drive(client.write(patternBytes(1448 * 100, 5)));
    await net.advance(10);
    const sizes = sniffed.filter((segment) => segment.from === "port2" && segment.tcp.payload.length > 0).map((segment) => segment.tcp.payload.length);
    assert.equal(sizes.length, 100);
    assert.ok(sizes.every((size) => size === 1448));
  });
});

describe("tcp receive buffer autotuning (dynamic right-sizing)", () => {
  // 20 ms each way: 256 KiB a round trip is 6.5 MiB/s, so a window that never grows shows.
  const delayed = { impairments: { delayMs: 20 } };

  it("grows the buffer while the application keeps up, beyond what 256 KiB a round trip allows", async () => {
    const net = new TcpNetwork(delayed);
    const server = net.host("198.18.0.1/24");
    const client = net.host("198.18.0.2/24");
    const size = 32 * 1024 * 1024;
    const result = await bulkTransfer(net, client, server, size, { limitMs: 3_600_000 });
    assert.equal(result.receivedHash, result.sentHash);
    const counters = result.serverFlow?.counters;
    assert.ok(counters !== undefined && counters.receiveBufferGrowths > 0, "the buffer grew");
    const bytesPerSecond = size / (result.virtualMs / 1000);
    assert.ok(bytesPerSecond > 2 * ((256 * 1024) / 0.04), `${(bytesPerSecond / 1024 / 1024).toFixed(1)} MiB/s`);
    const state = result.serverFlow?.connection.inspect();
    assert.ok(state !== undefined && state.receiveCapacity <= 4 * 1024 * 1024 + 128, "within receiveBufferMax");
  });

  it("does not grow for a slow reader, nor when receiveBufferSize is given alone", async () => {
    for (const tcp of [{}, { receiveBufferSize: 256 * 1024 }]) {
      const net = new TcpNetwork(delayed);
      const server = net.host("198.18.0.1/24", { tcp });
      const client = net.host("198.18.0.2/24");
      let flow: TcpFlow | undefined;
      server.tcp.listen(80, (accepted) => {
        flow = accepted;
      });
      const sender = await net.drive(client.tcp.connect(server.address, 80));
      await net.runUntil(() => flow !== undefined);
      assert.ok(flow !== undefined);
      // Settled by the abort below for the slow reader, which never takes it all.
      const writing = sender.write(patternBytes(4 * 1024 * 1024, 3));
      writing.catch(() => undefined);
      const buffer = new Uint8Array(1024);
      if (Object.keys(tcp).length === 0) {
        // 1 KiB every 50 ms: far less than the window carries a round trip.
        for (let i = 0; i < 100; i++) {
          await net.advance(50);
          await net.drive(flow.readInto(buffer));
        }
      } else {
        for (let total = 0; total < 4 * 1024 * 1024; ) total += await net.drive(flow.readInto(new Uint8Array(65536)));
        await net.drive(writing);
      }
      assert.equal(flow.counters.receiveBufferGrowths, 0, JSON.stringify(tcp));
      assert.ok(flow.connection.inspect().receiveCapacity < 256 * 1024 + 1024, JSON.stringify(tcp));
      flow.abort();
      sender.abort();
    }
  });
});

/**
 * Buffer memory: the rings grow as data is held (from 4 KiB, doubling up to the configured
 * size) and a finished direction gives its memory back. Regressions found against Linux
 * (test/net/tcp-linux/echo.test.ts): 1000 concurrent connections echoing 4 KiB each took the
 * tender to 350 MB, two full 256 KiB buffers per connection; and a connection in TIME-WAIT kept
 * its receive buffer for the minute it lasts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReceiveBuffer, SendBuffer } from "../../../src/lib/net/tcp/buffers.ts";
import type { TcpFlow } from "../../../src/lib/net/tcp/flow.ts";
import { TcpNetwork, bulkTransfer, patternBytes } from "./harness.ts";

const KIB = 1024;

describe("buffer memory", () => {
  it("the send ring grows by doubling and keeps wrapped bytes in order", () => {
    const buffer = new SendBuffer(100 * KIB);
    assert.equal(buffer.allocated, 0);
    const data = patternBytes(100 * KIB, 5);
    assert.equal(buffer.append(data, 0, 10 * KIB), 10 * KIB);
    assert.equal(buffer.allocated, 16 * KIB);
    buffer.release(8 * KIB);
    // Wraps around the 16 KiB ring, then needs 20 KiB: grows to 32 KiB.
    assert.equal(buffer.append(data, 10 * KIB, 28 * KIB), 18 * KIB);
    assert.equal(buffer.allocated, 32 * KIB);
    const out = new Uint8Array(20 * KIB);
    buffer.copyOut(0, 20 * KIB, out, 0);
    assert.deepEqual(out, data.subarray(8 * KIB, 28 * KIB));
    // At most the capacity, however much is asked.
    assert.equal(buffer.append(data, 28 * KIB, 100 * KIB), 72 * KIB);
    assert.equal(buffer.allocated, 100 * KIB);
    const all = new Uint8Array(92 * KIB);
    buffer.copyOut(0, 92 * KIB, all, 0);
    assert.deepEqual(all, data.subarray(8 * KIB, 100 * KIB));
  });

  it("the receive ring grows for data placed far ahead and keeps what was placed", () => {
    const buffer = new ReceiveBuffer(256 * KIB, 8);
    const data = patternBytes(200 * KIB, 6);
    buffer.place(0, data, 0, 1000);
    buffer.commit(1000);
    assert.deepEqual(buffer.read(600), data.subarray(0, 600));
    assert.equal(buffer.allocated, 4 * KIB);
    // Out of order, 100 KiB past the next byte expected: the ring grows to 128 KiB, with the 400
    // unread bytes and the new piece at their places.
    buffer.place(100 * KIB, data, 1000 + 100 * KIB, 1000 + 101 * KIB);
    assert.equal(buffer.allocated, 128 * KIB);
    // The gap fills; everything reads back in order.
    buffer.place(0, data, 1000, 1000 + 100 * KIB);
    buffer.commit(101 * KIB);
    const chunks: Uint8Array[] = [];
    for (let chunk = buffer.read(64 * KIB); chunk !== undefined; chunk = buffer.read(64 * KIB)) chunks.push(chunk);
    assert.deepEqual(Buffer.concat(chunks), Buffer.from(data.subarray(600, 1000 + 101 * KIB)));
  });

  it("connections that exchange a few kilobytes hold tens of kilobytes, not two full buffers", async () => {
    const net = new TcpNetwork({ seed: 31 });
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    const servers: TcpFlow[] = [];
    a.tcp.listen(7, (flow) => {
      servers.push(flow);
      void (async () => {
        for await (const chunk of flow) await flow.write(chunk);
      })();
    });
    const clients: TcpFlow[] = [];
    for (let i = 0; i < 50; i++) clients.push(await net.drive(b.tcp.connect(a.address, 7)));
    const echoed = clients.map(async (client, i) => {
      await client.write(patternBytes(4 * KIB, i));
      let got = 0;
      while (got < 4 * KIB) got += (await client.read())?.length ?? 4 * KIB;
    });
    await net.drive(Promise.all(echoed));
    const memory = [...clients, ...servers].map((flow) => flow.connection.inspect().bufferMemory);
    assert.equal(memory.length, 100);
    assert.ok(Math.max(...memory) <= 32 * KIB, `at most 16 KiB per buffer: ${Math.max(...memory)}`);
  });

  it("a bulk transfer still fills the window; after the close the buffers are gone, TIME-WAIT included", async () => {
    const net = new TcpNetwork({ seed: 32 });
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    const result = await bulkTransfer(net, b, a, 4 * 1024 * KIB);
    assert.equal(result.receivedHash, result.sentHash);
    // The full 256 KiB buffers were used: the window reached the buffer size.
    assert.ok(result.clientFlow.counters.sendWindow >= 200 * KIB, `send window ${result.clientFlow.counters.sendWindow}`);
    await net.advance(1000);
    const client = result.clientFlow.connection.inspect();
    assert.equal(client.state, "TIME-WAIT");
    assert.equal(client.bufferMemory, 0);
    assert.equal(result.serverFlow?.connection.inspect().bufferMemory, 0);
  });
});

/** Web Streams over flows (web-streams-polyfill's ponyfill, installed by importing streams.ts). */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { readableOf, writableOf } from "atoll/net/tcp/streams";
import { TcpError } from "../../../src/lib/net/tcp/error.ts";
import type { TcpFlow } from "../../../src/lib/net/tcp/flow.ts";
import { TcpNetwork, patternBytes } from "./harness.ts";

describe("tcp Web Streams", () => {
  it("an echo server is readable.pipeTo(writable); a client writes and reads through streams", async () => {
    const net = new TcpNetwork({ impairments: { loss: 0.02, delayMs: 1 } });
    const server = net.host("198.18.0.1/24");
    const client = net.host("198.18.0.2/24");
    server.tcp.listen(7, (flow) => {
      void flow.readable.pipeTo(flow.writable);
    });
    const flow = await net.drive(client.tcp.connect(server.address, 7));
    const sent = createHash("sha256");
    const received = createHash("sha256");
    let receivedBytes = 0;
    const writer = flow.writable.getWriter();
    const writing = (async () => {
      for (let i = 0; i < 64; i++) {
        const chunk = patternBytes(16 * 1024, i);
        sent.update(chunk);
        await writer.write(chunk);
      }
      await writer.close();
    })();
    const reading = (async () => {
      const reader = flow.readable.getReader();
      for (let result = await reader.read(); !result.done; result = await reader.read()) {
        received.update(result.value);
        receivedBytes += result.value.length;
      }
    })();
    await net.drive(Promise.all([writing, reading]));
    assert.equal(receivedBytes, 64 * 16 * 1024);
    assert.equal(received.digest("hex"), sent.digest("hex"));
    assert.equal(flow.readable, flow.readable, "one stream per flow");
  });

  it("a reset errors the readable stream; aborting the writable resets the connection", async () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24");
    const client = net.host("198.18.0.2/24");
    let accepted: TcpFlow | undefined;
    server.tcp.listen(80, (flow) => {
      accepted = flow;
    });
    const flow = await net.drive(client.tcp.connect(server.address, 80));
    await net.runUntil(() => accepted !== undefined);
    assert.ok(accepted !== undefined);
    const reader = readableOf(accepted).getReader();
    const pending = reader.read();
    await net.drive(writableOf(flow).abort());
    await assert.rejects(net.drive(pending), (error: unknown) => error instanceof TcpError && error.reason === "reset");
  });
});

/** The echo appliance's services (examples/echo), run on a stack on the virtual link. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DISCARD_PORT, ECHO_PORT, serveTcpDiscard, serveTcpEcho, serveUdpEcho } from "../../../examples/echo/src/services.ts";
import { TcpNetwork, patternBytes, type TcpHost } from "./harness.ts";

function echoServer(net: TcpNetwork): TcpHost {
  const server = net.host("198.18.0.2/24");
  const log = { debug() {} };
  serveUdpEcho(server.stack, log);
  serveTcpEcho(server.tcp, log);
  serveTcpDiscard(server.tcp, log);
  return server;
}

describe("examples/echo services", () => {
  it("TCP echo (RFC 862) sends every byte back until the client closes", async () => {
    const net = new TcpNetwork({ impairments: { loss: 0.01, reordering: 0.02, delayMs: 1 } });
    const server = echoServer(net);
    const client = net.host("198.18.0.1/24");
    const flow = await net.drive(client.tcp.connect(server.address, ECHO_PORT));
    const data = patternBytes(2 * 1024 * 1024, 1);
    const chunks: Uint8Array[] = [];
    const reading = (async () => {
      for await (const chunk of flow) chunks.push(chunk);
    })();
    await net.drive(flow.write(data));
    await net.drive(flow.shutdown());
    await net.drive(reading);
    assert.ok(Buffer.concat(chunks).equals(data));
    assert.equal(await net.drive(flow.closed), undefined, "the server closed after our FIN");
  });

  it("TCP discard (RFC 863) reads everything and sends nothing back", async () => {
    const net = new TcpNetwork();
    const server = echoServer(net);
    const client = net.host("198.18.0.1/24");
    const flow = await net.drive(client.tcp.connect(server.address, DISCARD_PORT));
    await net.drive(flow.write(patternBytes(1024 * 1024, 2)));
    await net.drive(flow.shutdown());
    assert.equal(await net.drive(flow.read()), undefined);
    assert.equal(flow.counters.bytesReceived, 0);
  });

  it("UDP echo (RFC 862) returns each datagram", async () => {
    const net = new TcpNetwork();
    const server = echoServer(net);
    const client = net.host("198.18.0.1/24");
    const socket = client.stack.udp.bind(0);
    socket.send(Uint8Array.from([1, 2, 3]), { address: server.address, port: ECHO_PORT });
    const reply = await net.drive(socket.receive());
    assert.deepEqual([...reply.payload], [1, 2, 3]);
  });
});

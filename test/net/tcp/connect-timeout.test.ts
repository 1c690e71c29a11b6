/**
 * A connect must not hang in silence: to an address that never answers it fails as Linux's does
 * (tcp_syn_retries = 6, about two minutes), sooner with `connectTimeoutMs` (per connect, or the
 * layer's default), at once when ARP gives up on an on-link address (about 3 s, as Linux's
 * EHOSTUNREACH), each with a clear error and a log line. On the virtual clock: no real time.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TcpError } from "../../../src/lib/net/tcp/error.ts";
import { ip, TcpNetwork, type SniffedSegment } from "./harness.ts";

function synTimes(sniffed: readonly SniffedSegment[], from: string, start: number): number[] {
  return sniffed.filter((segment) => segment.from === from).map((segment) => segment.time - start);
}

async function failure(net: TcpNetwork, connect: Promise<unknown>): Promise<TcpError> {
  try {
    await net.drive(connect);
  } catch (error) {
    assert.ok(error instanceof TcpError, String(error));
    return error;
  }
  assert.fail("connect succeeded");
}

describe("connect timeouts", () => {
  it("by default, 7 SYNs unanswered (tcp_syn_retries = 6) fail the connect after 123 s with a timeout, logged", async () => {
    const net = new TcpNetwork();
    const client = net.host("198.18.0.2/24", { log: net.log.factory });
    const silent = net.rawPeer("198.18.0.9/24");
    const sniffed = net.sniff();
    const start = net.clock.now();
    const error = await failure(net, client.tcp.connect(silent.address, 80));
    // RTO 1 s doubling, capped at maxRtoMs (60 s, RFC 6298 §2.5; Linux's cap of 120 s makes its 127 s).
    assert.deepEqual(synTimes(sniffed, "port1", start), [0, 1_000, 3_000, 7_000, 15_000, 31_000, 63_000]);
    assert.equal(net.clock.now() - start, 123_000);
    assert.equal(error.reason, "timeout");
    assert.equal(error.code, "timeout");
    assert.equal(error.message, "tcp: connect to 198.18.0.9:80 timed out after 123 s (7 SYNs unanswered)");
    assert.deepEqual(net.log.messages("info", "tcp"), ["connect to 198.18.0.9:80 timed out after 123 s (7 SYNs unanswered)"]);
  });

  it("connectTimeoutMs on one connect fails it after that long, between retransmissions", async () => {
    const net = new TcpNetwork();
    const client = net.host("198.18.0.2/24", { log: net.log.factory });
    const silent = net.rawPeer("198.18.0.9/24");
    const start = net.clock.now();
    const error = await failure(net, client.tcp.connect(silent.address, 80, { connectTimeoutMs: 10_000 }));
    assert.equal(net.clock.now() - start, 10_000);
    assert.equal(error.reason, "timeout");
    assert.equal(error.message, "tcp: connect to 198.18.0.9:80 timed out after 10 s (connectTimeoutMs)");
    assert.deepEqual(net.log.messages("info", "tcp"), ["connect to 198.18.0.9:80 timed out after 10 s (connectTimeoutMs)"]);
    assert.equal(client.tcp.connectionList().length, 0, "the connection is gone");
  });

  it("the layer's connectTimeoutMs is every connect's default; a connect may override it", async () => {
    const net = new TcpNetwork();
    const client = net.host("198.18.0.2/24", { tcp: { connectTimeoutMs: 2_500 } });
    const silent = net.rawPeer("198.18.0.9/24");
    let start = net.clock.now();
    await failure(net, client.tcp.connect(silent.address, 80));
    assert.equal(net.clock.now() - start, 2_500);
    start = net.clock.now();
    await failure(net, client.tcp.connect(silent.address, 81, { connectTimeoutMs: 0 }));
    assert.equal(net.clock.now() - start, 123_000, "0: the SYN retransmissions alone");
  });

  it("a connect that succeeds is not cut by its timeout later", async () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24");
    const client = net.host("198.18.0.2/24");
    server.tcp.listen(80, () => undefined);
    const flow = await net.drive(client.tcp.connect(server.address, 80, { connectTimeoutMs: 5_000 }));
    await net.advance(30_000);
    assert.equal(flow.state, "ESTABLISHED");
    const sent = new Uint8Array([1, 2, 3]);
    await net.drive(flow.write(sent));
  });

  it("an on-link address that never answers ARP fails after ARP's 3 requests (~3 s): host unreachable, logged", async () => {
    const net = new TcpNetwork();
    const client = net.host("198.18.0.2/24", { log: net.log.factory });
    const start = net.clock.now();
    const error = await failure(net, client.tcp.connect(ip("198.18.0.77"), 80));
    assert.equal(net.clock.now() - start, 3_000);
    assert.equal(error.reason, "unreachable");
    assert.equal(error.code, "host-unreachable");
    assert.equal(error.message, "tcp: connect to 198.18.0.77:80 host unreachable (no ARP reply)");
    assert.deepEqual(net.log.messages("info", "tcp"), ["connect to 198.18.0.77:80 host unreachable (no ARP reply)"]);
  });

  it("so does a gateway that never answers ARP, for an off-link address", async () => {
    const net = new TcpNetwork();
    const client = net.host("198.18.0.2/24@198.18.0.1");
    const start = net.clock.now();
    const error = await failure(net, client.tcp.connect(ip("203.0.113.5"), 443));
    assert.equal(net.clock.now() - start, 3_000);
    assert.equal(error.message, "tcp: connect to 203.0.113.5:443 host unreachable (no ARP reply)");
  });

  it("a bad connectTimeoutMs is a RangeError naming it", () => {
    const net = new TcpNetwork();
    const client = net.host("198.18.0.2/24");
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => client.tcp.open(ip("198.18.0.9"), 80, { connectTimeoutMs: bad }), (error: unknown) => error instanceof RangeError && /connectTimeoutMs/.test(error.message));
    }
    assert.throws(() => net.host("198.18.0.3/24", { tcp: { connectTimeoutMs: -5 } }), /connectTimeoutMs -5/);
  });
});

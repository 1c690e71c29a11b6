/**
 * A gateway that forwards nothing (the user-mode network's, Ipv4LayerOptions.refuseRouting)
 * answers datagrams routed through it with ICMP destination unreachable, communication
 * administratively prohibited (RFC 1812 §5.2.7.1): its guest's connects and pings to the outside
 * fail in one round trip instead of after the SYN retries. A plain host drops them in silence.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createStack, NetError, unbalancedCounters, type Stack } from "atoll/net";
import { attachTcp, TcpError } from "atoll/net/tcp";
import { seededRandomSource } from "../../../src/lib/net/testing/virtual-link.ts";
import { config, ip, TestNetwork } from "./network.ts";

function gatewayOn(net: TestNetwork, refuseRouting: boolean): Stack {
  return createStack({ link: net.link.attach({ name: "gateway" }), timers: net.clock, random: seededRandomSource(99), ipv4: config("10.0.2.2/24"), log: net.log.factory, refuseRouting });
}

describe("a gateway that refuses routing", () => {
  it("fails a guest's connect to the outside at once: unreachable, prohibited", async () => {
    const net = new TestNetwork();
    const gateway = gatewayOn(net, true);
    const guest = net.host("10.0.2.15/24@10.0.2.2");
    const tcp = attachTcp(guest.stack, { countersName: false });
    const started = net.clock.now();
    await assert.rejects(net.settle(tcp.connect(ip("192.0.2.1"), 80)), (error: unknown) => {
      assert.ok(error instanceof TcpError, String(error));
      assert.equal(error.reason, "unreachable");
      assert.equal(error.code, "prohibited");
      assert.match(error.message, /192\.0\.2\.1:80.*prohibited/);
      return true;
    });
    assert.ok(net.clock.now() - started < 100, `took ${net.clock.now() - started} ms of virtual time`);
    assert.equal(gateway.counters().icmp.errorsSent, 1);
    assert.deepEqual(unbalancedCounters(gateway.counters()), []);
  });

  it("fails a ping to the outside with prohibited, and still answers its own address", async () => {
    const net = new TestNetwork();
    gatewayOn(net, true);
    const guest = net.host("10.0.2.15/24@10.0.2.2");
    await assert.rejects(net.settle(guest.stack.ping(ip("198.51.100.7"))), (error: unknown) => error instanceof NetError && error.code === "prohibited");
    const reply = await net.settle(guest.stack.ping(ip("10.0.2.2")));
    assert.equal(reply.from, ip("10.0.2.2"));
  });

  it("a host that does not refuse routing drops such datagrams in silence (the connect waits)", async () => {
    const net = new TestNetwork();
    const gateway = gatewayOn(net, false);
    const guest = net.host("10.0.2.15/24@10.0.2.2");
    const tcp = attachTcp(guest.stack, { countersName: false });
    const connecting = tcp.connect(ip("192.0.2.1"), 80, { connectTimeoutMs: 30_000 });
    assert.equal(await net.drive(connecting, 10_000), false, "the connect is still waiting");
    assert.equal(gateway.counters().icmp.errorsSent, 0);
    assert.ok(gateway.counters().ipv4.notForUs >= 1);
    await assert.rejects(net.settle(connecting, 60_000), (error: unknown) => error instanceof TcpError && error.reason === "timeout");
  });

  it("sends no error about broadcasts or non-first fragments routed to it", async () => {
    const net = new TestNetwork();
    const gateway = gatewayOn(net, true);
    const guest = net.host("10.0.2.15/24@10.0.2.2");
    // A UDP datagram large enough to be fragmented: one error, for the first fragment only.
    const socket = guest.stack.udp.bind(0);
    socket.send(new Uint8Array(4000), { address: ip("192.0.2.9"), port: 9 });
    // The limited broadcast is for everyone on the link: never an error.
    socket.send(new Uint8Array(10), { address: ip("255.255.255.255"), port: 9 });
    await net.drive(new Promise(() => undefined), 500);
    assert.equal(gateway.counters().icmp.errorsSent, 1);
    assert.deepEqual(unbalancedCounters(gateway.counters()), []);
  });
});

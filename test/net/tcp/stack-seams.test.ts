/**
 * What the IPv4 stack offers TCP, on the virtual link: `attachTcp(stack)` runs on the stack's own
 * clock, entropy and logs; the NetError codes of resets and refusals; and negative advice (RFC
 * 1122 §3.3.1.4, §4.2.3.5): after three retransmissions of a segment TCP makes ARP re-validate
 * the next hop, which keeps a neighbour that answers and forgets one that does not.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { createStack, parseIpv4Config, type Stack } from "atoll/net";
import { attachTcp } from "../../../src/lib/net/tcp/socket.ts";
import { TcpError } from "../../../src/lib/net/tcp/error.ts";
import type { TcpFlow } from "../../../src/lib/net/tcp/flow.ts";
import { seededRandomSource, VirtualClock, VirtualLink } from "../../../src/lib/net/testing/virtual-link.ts";
import { ArpRepr } from "../../../src/lib/wire/arp.ts";
import { Ipv4Address, MacAddress } from "atoll/wire/address";
import { ETHERNET_HEADER_LENGTH, EtherType } from "../../../src/lib/wire/ethernet.ts";
import { WireError } from "../../../src/lib/wire/error.ts";
import { TcpNetwork, ip, patternBytes, silentLog, type TcpHost } from "./harness.ts";

/** ARP requests seen on the link: who sent them, to which MAC, for which address, when. */
function sniffArpRequests(net: TcpNetwork): { from: string; to: MacAddress; target: Ipv4Address; time: number }[] {
  const requests: { from: string; to: MacAddress; target: Ipv4Address; time: number }[] = [];
  net.link.tap((frame, from) => {
    if (((frame[12] << 8) | frame[13]) !== EtherType.Arp) return;
    const arp = ArpRepr.parse(frame.subarray(ETHERNET_HEADER_LENGTH));
    if (arp instanceof WireError || arp.operation !== "request") return;
    // Gratuitous announcements (sender = target) are not requests for a neighbour.
    if (arp.senderProtocolAddress === arp.targetProtocolAddress) return;
    requests.push({ from: from.name, to: MacAddress.read(frame, 0), target: arp.targetProtocolAddress, time: net.clock.now() });
  });
  return requests;
}

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

function sha256(chunks: readonly Uint8Array[]): string {
  const hash = createHash("sha256");
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest("hex");
}

describe("attachTcp on a stack", () => {
  it("takes the stack's timers, entropy and logs when given none", async () => {
    const clock = new VirtualClock();
    const link = new VirtualLink({ clock, seed: 3 });
    const stacks: Stack[] = ["198.18.0.1/24", "198.18.0.2/24"].map((cidr, index) => {
      const config = parseIpv4Config(cidr);
      if (typeof config === "string") throw new Error(config);
      return createStack({ link: link.attach(), timers: clock, random: seededRandomSource(10 + index), ipv4: config, log: silentLog });
    });
    const [a, b] = stacks;
    assert.ok(a !== undefined && b !== undefined);
    assert.equal(a.timers, clock);
    assert.equal(a.log, silentLog);
    // Outside an image, the old defaults (the running scheduler, the base's entropy) would throw here.
    const serverTcp = attachTcp(a, { countersName: false });
    const clientTcp = attachTcp(b, { countersName: false });
    assert.equal(serverTcp.timers, clock);
    const received: Uint8Array[] = [];
    serverTcp.listen(7, (flow) => {
      void (async () => {
        for await (const chunk of flow) received.push(chunk);
        await flow.close();
      })();
    });
    const net = { done: false };
    const flowPromise = clientTcp.connect(ip("198.18.0.1"), 7);
    const data = patternBytes(100_000, 9);
    const session = (async () => {
      const flow = await flowPromise;
      await flow.write(data);
      await flow.close();
      net.done = true;
    })();
    // Drive the virtual clock by hand (no TcpNetwork here): timers, then continuations.
    for (let step = 0; step < 10_000 && !net.done; step++) {
      await new Promise((resolve) => setImmediate(resolve));
      const next = clock.nextDeadline();
      if (next !== undefined) clock.advanceTo(next);
    }
    await session;
    assert.equal(sha256(received), sha256([data]));
  });
});

describe("NetError codes of TCP failures", () => {
  it("a RST on an established connection is connection-reset (ECONNRESET)", async () => {
    const net = new TcpNetwork({ seed: 4 });
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    const { server, client } = await connected(net, a, b);
    client.abort();
    const error = await net.drive(server.closed);
    assert.ok(error instanceof TcpError && error.reason === "reset" && error.code === "connection-reset", String(error));
    await assert.rejects(server.read(), (thrown: unknown) => thrown instanceof TcpError && thrown.code === "connection-reset");
  });

  it("a RST in answer to a SYN is connection-refused (ECONNREFUSED)", async () => {
    const net = new TcpNetwork({ seed: 5 });
    net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    await assert.rejects(
      net.drive(b.tcp.connect(ip("198.18.0.1"), 4242)),
      (error: unknown) => error instanceof TcpError && error.reason === "refused" && error.code === "connection-refused",
    );
  });
});

describe("negative advice (RFC 1122 §3.3.1.4, §4.2.3.5)", () => {
  it("ARP re-validation: a unicast poll, then broadcasts; silence forgets the entry, an answer keeps it", async () => {
    const net = new TcpNetwork({ seed: 6 });
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    await net.drive(b.stack.ping(a.address));
    assert.equal(b.stack.arp.peek(a.address), a.port.mac);
    const requests = sniffArpRequests(net);

    // Nothing cached, nothing to re-validate: the next send resolves anyway.
    assert.equal(b.stack.ipv4.adviseUnreachable(ip("198.18.0.77")), false);
    // Off-link destinations without a gateway have no next hop.
    assert.equal(b.stack.ipv4.adviseUnreachable(ip("203.0.113.1")), false);

    // The neighbour answers: one unicast request, and the entry stays.
    assert.equal(b.stack.ipv4.adviseUnreachable(a.address), true);
    assert.equal(b.stack.ipv4.adviseUnreachable(a.address), false, "one re-validation at a time");
    await net.advance(5000);
    assert.deepEqual(
      requests.map(({ from, to }) => [from, to]),
      [[b.port.name, a.port.mac]],
    );
    assert.equal(b.stack.arp.peek(a.address), a.port.mac);

    // The neighbour is gone: unicast, broadcast, broadcast, a second apart; then the entry goes.
    requests.length = 0;
    net.link.impairments.loss = 1;
    const start = net.clock.now();
    assert.equal(b.stack.ipv4.adviseUnreachable(a.address), true);
    await net.advance(2500);
    assert.equal(b.stack.arp.peek(a.address), a.port.mac, "still in use while being re-validated");
    await net.advance(2500);
    assert.deepEqual(
      requests.map(({ to, time }) => [to, time - start]),
      [
        [a.port.mac, 0],
        [MacAddress.BROADCAST, 1000],
        [MacAddress.BROADCAST, 2000],
      ],
    );
    assert.equal(b.stack.arp.peek(a.address), undefined);
    const counters = b.stack.counters().arp;
    assert.deepEqual([counters.revalidations, counters.revalidationFailures], [2, 1]);
  });

  it("a gateway is re-validated for an off-link destination", async () => {
    const net = new TcpNetwork({ seed: 7 });
    const gateway = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24@198.18.0.1");
    await net.drive(b.stack.ping(gateway.address));
    const requests = sniffArpRequests(net);
    assert.equal(b.stack.ipv4.adviseUnreachable(ip("203.0.113.9")), true);
    await net.advance(10);
    assert.deepEqual(
      requests.map(({ target, to }) => [target, to]),
      [[gateway.address, gateway.port.mac]],
    );
  });

  it("TCP advises after the third retransmission of a segment; a neighbour that answers is kept and the data arrives", async () => {
    const net = new TcpNetwork({ seed: 8 });
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    const { server, client } = await connected(net, a, b);
    const requests = sniffArpRequests(net);
    const received: Uint8Array[] = [];
    const reader = (async () => {
      for await (const chunk of server) received.push(chunk);
    })();
    net.link.impairments.loss = 1;
    const start = net.clock.now();
    const data = patternBytes(20_000, 11);
    await net.drive(client.write(data));
    // Timeouts at 0.2, 0.6, 1.4 and 3.0 s (200 ms minimum RTO, doubling): the fourth one comes
    // after three retransmissions, and advises. The link comes back before ARP's second request.
    await net.advance(3500);
    assert.equal(b.tcp.counters.negativeAdvice, 1);
    assert.equal(b.stack.counters().arp.revalidations, 1);
    net.link.impairments.loss = 0;
    await net.drive(client.close());
    await net.drive(reader);
    assert.equal(sha256(received), sha256([data]));
    // ARP's broadcast at 4 s is answered; the timeout at 6.2 s (the segment still unacknowledged)
    // advises again, and that poll is answered too. Both re-validations kept the entry.
    assert.equal(b.tcp.counters.negativeAdvice, 2);
    const arp = b.stack.counters().arp;
    assert.deepEqual([arp.revalidations, arp.revalidationFailures], [2, 0]);
    assert.equal(b.stack.arp.peek(a.address), a.port.mac);
    const fromClient = requests.filter(({ from }) => from === b.port.name).map(({ to, time }) => [to, time - start]);
    assert.deepEqual(fromClient, [
      [a.port.mac, 3000],
      [MacAddress.BROADCAST, 4000],
      [a.port.mac, 6200],
    ]);
  });

  it("SYNs advise too, from the fourth transmission's timeout on", async () => {
    const net = new TcpNetwork({ seed: 9 });
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24", { tcp: { maxSynRetransmits: 4 } });
    await net.drive(b.stack.ping(a.address));
    net.link.impairments.loss = 1;
    const error = await net.drive(b.tcp.connect(a.address, 80)).catch((thrown: unknown) => thrown);
    assert.ok(error instanceof TcpError && error.reason === "timeout", String(error));
    // SYN timeouts 1 to 4 retransmit; the fourth (after three retransmissions) advises; the fifth fails.
    assert.equal(b.tcp.counters.negativeAdvice, 1);
    assert.equal(b.stack.counters().arp.revalidations, 1);
  });
});

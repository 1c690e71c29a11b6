/**
 * The TCP layer consuming PROXY protocol v2 headers from a trusted relay (the user-mode gateway):
 * the application sees the client the header names, and exactly the bytes after it; nobody else
 * can name a client; a relay connection without a valid header is reset, never served under the
 * relay's address. On the virtual link and clock.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { boot } from "../../../src/lib/boot/index.ts";
import { openStack } from "atoll/net";
import { PROXY_HEADER_TIMEOUT_MS, ProxyHeaderReader } from "../../../src/lib/net/tcp/proxy-header.ts";
import type { TcpFlow } from "../../../src/lib/net/tcp/flow.ts";
import { Ipv4Address, ProxyHeaderRepr, type ProxyHeaderRepr as Header } from "atoll/wire";
import { FakeBase } from "../../helpers/fake-base.ts";
import { ip, patternBytes, TcpNetwork } from "./harness.ts";

const CLIENT = ip("127.0.0.1");

function header(fields: Partial<Header> = {}): Uint8Array {
  const repr: Header = {
    command: "proxy",
    family: "inet",
    transport: "stream",
    source: { address: CLIENT, port: 51234 },
    destination: { address: CLIENT, port: 8080 },
    tlvs: new Uint8Array(0),
    ...fields,
  };
  const bytes = new Uint8Array(ProxyHeaderRepr.bufferLength(repr));
  ProxyHeaderRepr.emit(repr, bytes);
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A server trusting 198.18.0.3 as its relay; a relay host and an ordinary client host. */
function network() {
  const net = new TcpNetwork();
  const relayAddress = ip("198.18.0.3");
  const server = net.host("198.18.0.1/24", { log: net.log.factory, tcp: { proxyProtocolFrom: relayAddress } });
  const relay = net.host("198.18.0.3/24");
  const other = net.host("198.18.0.4/24");
  const accepted: TcpFlow[] = [];
  server.tcp.listen(80, (flow) => accepted.push(flow));
  return { net, server, relay, other, accepted };
}

async function readAll(net: TcpNetwork, flow: TcpFlow): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await net.drive(
    (async () => {
      for await (const chunk of flow) chunks.push(chunk);
    })(),
  );
  return concat(...chunks);
}

describe("PROXY protocol v2 from the trusted relay", () => {
  it("the application sees the named client and exactly the bytes after the header, even when it comes byte by byte", async () => {
    const { net, relay, accepted } = network();
    const client = await net.drive(relay.tcp.connect(ip("198.18.0.1"), 80, { noDelay: true }));
    const bytes = header();
    for (const [index, byte] of bytes.entries()) {
      assert.equal(accepted.length, 0, `held back until the header is in (${index} of ${bytes.length} bytes)`);
      await net.drive(client.write(Uint8Array.of(byte)));
      await net.advance(10);
    }
    const data = patternBytes(200_000, 7);
    await net.drive(client.write(data));
    await net.drive(client.shutdown());
    await net.runUntil(() => accepted.length === 1);
    const [flow] = accepted;
    assert.ok(flow !== undefined);
    assert.equal(flow.remoteAddress, CLIENT);
    assert.equal(flow.remotePort, 51234);
    assert.deepEqual(flow.proxiedBy, { address: ip("198.18.0.3"), port: client.localPort });
    assert.deepEqual(await readAll(net, flow), data);
  });

  it("data in the header's own segment comes first through readInto, then the rest", async () => {
    const { net, relay, accepted } = network();
    const client = await net.drive(relay.tcp.connect(ip("198.18.0.1"), 80));
    await net.drive(client.write(concat(header(), new TextEncoder().encode("hello"))));
    await net.runUntil(() => accepted.length === 1);
    const flow = accepted[0];
    assert.ok(flow !== undefined);
    const buffer = new Uint8Array(3);
    assert.equal(await net.drive(flow.readInto(buffer)), 3);
    assert.equal(new TextDecoder().decode(buffer), "hel");
    assert.equal(await net.drive(flow.readInto(buffer)), 2);
    assert.equal(new TextDecoder().decode(buffer.subarray(0, 2)), "lo");
    await net.drive(client.write(new TextEncoder().encode("!")));
    assert.equal(new TextDecoder().decode(await net.drive(flow.read())), "!");
  });

  it("LOCAL (the relay's own connection) keeps the relay's endpoints", async () => {
    const { net, relay, accepted } = network();
    const client = await net.drive(relay.tcp.connect(ip("198.18.0.1"), 80));
    await net.drive(client.write(header({ command: "local", family: "unspec", transport: "unspec", source: undefined, destination: undefined })));
    await net.runUntil(() => accepted.length === 1);
    assert.equal(accepted[0]?.remoteAddress, ip("198.18.0.3"));
    assert.equal(accepted[0]?.proxiedBy, undefined);
  });

  it("a spoof: a header from anyone else is plain data, and the peer stays who it is", async () => {
    const { net, other, accepted } = network();
    const client = await net.drive(other.tcp.connect(ip("198.18.0.1"), 80));
    await net.runUntil(() => accepted.length === 1);
    const spoof = concat(header({ source: { address: ip("203.0.113.66"), port: 1 } }), new TextEncoder().encode("GET /"));
    await net.drive(client.write(spoof));
    await net.drive(client.shutdown());
    const flow = accepted[0];
    assert.ok(flow !== undefined);
    assert.equal(flow.remoteAddress, ip("198.18.0.4"));
    assert.equal(flow.proxiedBy, undefined);
    assert.deepEqual(await readAll(net, flow), spoof);
  });

  it("a relay connection without a valid header is reset and never reaches the application, with a warning", async () => {
    const { net, relay, accepted } = network();
    const garbage = await net.drive(relay.tcp.connect(ip("198.18.0.1"), 80));
    await net.drive(garbage.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n")));
    const garbageEnd = await net.drive(garbage.closed);
    assert.equal(garbageEnd?.reason, "reset");

    const silent = await net.drive(relay.tcp.connect(ip("198.18.0.1"), 80));
    const start = net.clock.now();
    const silentEnd = await net.drive(silent.closed);
    assert.equal(silentEnd?.reason, "reset");
    assert.equal(net.clock.now() - start, PROXY_HEADER_TIMEOUT_MS);

    const early = await net.drive(relay.tcp.connect(ip("198.18.0.1"), 80));
    await net.drive(early.write(header().subarray(0, 20)));
    await net.drive(early.shutdown().catch(() => undefined));
    await net.runUntil(() => net.log.messages("warn", "tcp").length === 3);

    assert.equal(accepted.length, 0);
    assert.deepEqual(net.log.messages("warn", "tcp"), [
      "port 80: a connection from the PROXY protocol relay was reset: proxy: no PROXY protocol v2 signature",
      `port 80: a connection from the PROXY protocol relay was reset: no PROXY header within ${PROXY_HEADER_TIMEOUT_MS / 1000} s`,
      "port 80: a connection from the PROXY protocol relay was reset: an incomplete PROXY header (20 bytes)",
    ]);
  });

  it("without a relay configured, a header is data for everyone", async () => {
    const net = new TcpNetwork();
    const server = net.host("198.18.0.1/24");
    const relay = net.host("198.18.0.3/24");
    let accepted: TcpFlow | undefined;
    server.tcp.listen(80, (flow) => (accepted = flow));
    const client = await net.drive(relay.tcp.connect(ip("198.18.0.1"), 80));
    await net.drive(client.write(header()));
    await net.drive(client.shutdown());
    await net.runUntil(() => accepted !== undefined);
    assert.ok(accepted !== undefined);
    assert.deepEqual(await readAll(net, accepted), header());
  });

  it("ProxyHeaderReader: more, then the header and the rest; refusal at the first impossible byte", () => {
    const reader = new ProxyHeaderReader();
    const bytes = concat(header(), Uint8Array.of(1, 2, 3));
    assert.equal(reader.push(bytes.subarray(0, 10)).kind, "more");
    const outcome = reader.push(bytes.subarray(10));
    assert.ok(outcome.kind === "header");
    assert.deepEqual(outcome.rest, Uint8Array.of(1, 2, 3));
    assert.equal(outcome.header.source?.port, 51234);
    const refused = new ProxyHeaderReader().push(Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0b));
    assert.equal(refused.kind, "refused");
  });
});

describe("openStack and the boot parameter net.<dev>.proxy-protocol", () => {
  it("sets the stack's relay, which attachTcp takes as its default", async () => {
    const base = new FakeBase({ args: [], params: { "net.service.ipv4": "10.0.2.15/24", "net.service.proxy-protocol": "10.0.2.2" } });
    base.addNet("service");
    let relay: Ipv4Address | undefined;
    boot(base, async (app) => {
      relay = (await openStack(app, "service")).proxyProtocolFrom;
      return 0;
    });
    const outcome = await base.outcome;
    assert.equal(outcome.code, 0, outcome.reason);
    assert.equal(relay, ip("10.0.2.2"));
  });

  it("a malformed one aborts, naming it", async () => {
    const base = new FakeBase({ args: [], params: { "net.service.ipv4": "10.0.2.15/24", "net.service.proxy-protocol": "gateway" } });
    base.addNet("service");
    boot(base, async (app) => {
      await openStack(app, "service");
      return 0;
    });
    const outcome = await base.outcome;
    assert.equal(outcome.code, "abort");
    assert.match(outcome.reason, /bad boot parameter net\.service\.proxy-protocol/);
  });
});

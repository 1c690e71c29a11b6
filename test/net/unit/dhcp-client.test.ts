import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Logger, type Message } from "atoll/logs";
import { DhcpClient, type DhcpClientState, type DhcpLease } from "../../../src/lib/net/dhcp-client.ts";
import { Ipv4Address, Ipv4Cidr, MacAddress } from "atoll/wire/address";
import { DhcpRepr } from "../../../src/lib/wire/dhcp.ts";
import { assertParsed, mutatedInputs } from "../../wire/fixtures/support.ts";
import { encodeDhcp, FakeDhcpServer, ip, seededRandom, VirtualTimers } from "./dhcp-fake-server.ts";

const MAC = MacAddress.fromOctets(0x02, 0x00, 0x00, 0x00, 0x00, 0x2a);
const OTHER_MAC = MacAddress.fromOctets(0x02, 0x00, 0x00, 0x00, 0x00, 0x2b);
const SERVER = ip("198.18.0.1");
const OTHER_SERVER = ip("198.18.0.2");
const ADDRESS = ip("198.18.0.50");
const OTHER_ADDRESS = ip("198.18.0.51");
const SECOND = 1000;
const STATES: ReadonlySet<string> = new Set<DhcpClientState>(["init", "selecting", "requesting", "bound", "renewing", "rebinding", "stopped"]);
const LEASED_STATES: ReadonlySet<DhcpClientState> = new Set<DhcpClientState>(["bound", "renewing", "rebinding"]);
/** Every received message lands in exactly one of these counters. */
const OUTCOME_COUNTERS = ["malformed", "ignored", "rejected", "offers", "acks", "naks"] as const;

/** Keeps every message, whatever the configured levels, so tests can read the log. */
class CapturingLogger extends Logger {
  readonly lines: string[] = [];

  constructor() {
    super("dhcp");
  }

  override error(message: Message): void {
    this.capture("error", message);
  }
  override warn(message: Message): void {
    this.capture("warn", message);
  }
  override info(message: Message): void {
    this.capture("info", message);
  }
  override debug(message: Message): void {
    this.capture("debug", message);
  }

  private capture(level: string, message: Message): void {
    this.lines.push(`${level} ${typeof message === "function" ? message() : message}`);
  }
}

interface Sent {
  repr: DhcpRepr;
  /** undefined: broadcast from 0.0.0.0. */
  server: Ipv4Address | undefined;
  atMs: number;
}

type Notification = { kind: "bound"; lease: DhcpLease } | { kind: "lost" };

function setup(options: { hostname?: string; seed?: number } = {}) {
  const timers = new VirtualTimers();
  const sent: Sent[] = [];
  const notifications: Notification[] = [];
  const log = new CapturingLogger();
  const client = new DhcpClient({
    mac: MAC,
    timers,
    random: seededRandom(options.seed ?? 1),
    transport: {
      send(message, server) {
        const repr = DhcpRepr.parse(message);
        assertParsed(repr);
        sent.push({ repr, server, atMs: timers.now() });
      },
    },
    hostname: options.hostname,
    onBound: (lease) => notifications.push({ kind: "bound", lease }),
    onLost: () => notifications.push({ kind: "lost" }),
    log,
  });
  const last = (): DhcpRepr => {
    const message = sent.at(-1);
    assert.ok(message !== undefined, "nothing sent");
    return message.repr;
  };
  const deliver = (repr: DhcpRepr): void => client.receive(encodeDhcp(repr));
  return { client, timers, sent, notifications, log, last, deliver };
}

type Harness = ReturnType<typeof setup>;

/** DISCOVER, OFFER, REQUEST, ACK with `server`, at the current time. */
function handshake(h: Harness, server = new FakeDhcpServer()): DhcpLease {
  h.client.start();
  h.deliver(server.offer(h.last()));
  h.deliver(server.ack(h.last()));
  assert.equal(h.client.state, "bound");
  const lease = h.client.lease;
  assert.ok(lease !== undefined);
  return lease;
}

/** The lease DEFAULT_SERVER grants, with changes; a gateway given as undefined is left out, as the client does. */
function lease(fields: Partial<DhcpLease> = {}): DhcpLease {
  const result: DhcpLease = {
    cidr: new Ipv4Cidr(ADDRESS, 24),
    gateway: SERVER,
    dns: [ip("198.18.0.53")],
    server: SERVER,
    leaseSeconds: 3600,
    renewSeconds: 1800,
    rebindSeconds: 3150,
    ...fields,
  };
  if (result.gateway === undefined) delete result.gateway;
  return result;
}

function intervals(sent: readonly Sent[]): number[] {
  return sent.slice(1).map((message, index) => message.atMs - sent[index].atMs);
}

/** Each interval is within ±1 s of the RFC 2131 §4.1 backoff in seconds. */
function assertBackoff(actualMs: readonly number[], expectedSeconds: readonly number[]): void {
  assert.equal(actualMs.length, expectedSeconds.length);
  actualMs.forEach((interval, index) => {
    const expected = expectedSeconds[index] * SECOND;
    assert.ok(Math.abs(interval - expected) <= SECOND, `retransmission ${index + 1} after ${interval} ms, expected ${expected} ± 1000`);
  });
}

function outcomeSum(client: DhcpClient): number {
  return OUTCOME_COUNTERS.reduce((sum, name) => sum + client.counters[name], 0);
}

describe("DhcpClient handshake", () => {
  it("DISCOVERs, REQUESTs the first offer and binds on the ACK", () => {
    const h = setup({ hostname: "atoll-test" });
    const server = new FakeDhcpServer();
    assert.equal(h.client.state, "init");
    h.client.start();

    assert.equal(h.client.state, "selecting");
    const [discover] = h.sent;
    assert.equal(discover.server, undefined, "DISCOVER is broadcast");
    assert.equal(discover.repr.operation, "boot-request");
    assert.equal(discover.repr.messageType, "discover");
    assert.equal(discover.repr.broadcast, true, "BROADCAST flag (RFC 2131 §4.1)");
    assert.equal(discover.repr.clientHardwareAddress, MAC);
    assert.equal(discover.repr.clientAddress, Ipv4Address.UNSPECIFIED);
    assert.deepEqual(discover.repr.clientIdentifier, Uint8Array.of(1, 0x02, 0, 0, 0, 0, 0x2a));
    assert.deepEqual(discover.repr.parameterRequestList, [1, 3, 6, 51, 58, 59]);
    assert.equal(discover.repr.maxMessageSize, 1500);
    assert.equal(discover.repr.hostname, "atoll-test");
    assert.equal(discover.repr.serverIdentifier, undefined);
    assert.equal(discover.repr.requestedAddress, undefined);

    h.timers.advance(2 * SECOND); // the offer comes late: 'secs' of the REQUEST is still the DISCOVER's
    h.deliver(server.offer(discover.repr));
    assert.equal(h.client.state, "requesting");
    const request = h.sent[1];
    assert.equal(request.server, undefined, "REQUEST in REQUESTING is broadcast");
    assert.equal(request.repr.messageType, "request");
    assert.equal(request.repr.transactionId, discover.repr.transactionId);
    assert.equal(request.repr.secs, discover.repr.secs);
    assert.equal(request.repr.broadcast, true);
    assert.equal(request.repr.clientAddress, Ipv4Address.UNSPECIFIED);
    assert.equal(request.repr.requestedAddress, ADDRESS);
    assert.equal(request.repr.serverIdentifier, SERVER);
    assert.equal(request.repr.hostname, "atoll-test");
    assert.deepEqual(request.repr.parameterRequestList, [1, 3, 6, 51, 58, 59]);

    h.timers.advance(SECOND);
    h.deliver(server.ack(request.repr));
    assert.equal(h.client.state, "bound");
    assert.deepEqual(h.notifications, [{ kind: "bound", lease: lease() }]);
    assert.deepEqual(h.client.lease, lease());
    assert.ok(h.log.lines.includes("info bound to 198.18.0.50/24 via 198.18.0.1, lease 3600 s"), h.log.lines.join("\n"));
    // §4.4.1: T1 counts from when the REQUEST was sent (t = 2 s), not from the ACK.
    assert.equal(h.timers.nextDeadline(), 2 * SECOND + 1800 * SECOND);
    assert.equal(h.timers.pending, 1);
    assert.equal(h.sent.length, 2);
    assert.deepEqual(
      { ...h.client.counters },
      {
        received: 2,
        malformed: 0,
        ignored: 0,
        rejected: 0,
        offers: 1,
        acks: 1,
        naks: 0,
        discovers: 1,
        requests: 1,
        releases: 0,
        leases: 1,
        renewals: 0,
        rebinds: 0,
        expiries: 0,
        requestTimeouts: 0,
      },
    );
  });

  it("sends no hostname option when none is given, and refuses a bad hostname", () => {
    const h = setup();
    h.client.start();
    assert.equal(h.last().hostname, undefined);
    for (const hostname of ["", "has space", "é", "x".repeat(256)]) {
      assert.throws(
        () => new DhcpClient({ mac: MAC, timers: h.timers, random: seededRandom(1), transport: { send() {} }, hostname, onBound() {}, onLost() {} }),
        RangeError,
      );
    }
  });

  it("retransmits DISCOVER after 4, 8, 16, 32, 64, 64 s (±1 s) with the same xid until an offer comes", () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const h = setup({ seed });
        h.client.start();
        for (let i = 0; i < 7; i++) assert.ok(h.timers.runNext());
        assert.equal(h.sent.length, 8);
        assertBackoff(intervals(h.sent), [4, 8, 16, 32, 64, 64, 64]);
        const xid = h.sent[0].repr.transactionId;
        for (const message of h.sent) {
          assert.equal(message.repr.messageType, "discover");
          assert.equal(message.repr.transactionId, xid);
          assert.equal(message.repr.secs, Math.floor(message.atMs / SECOND), "'secs' counts from the first DISCOVER");
        }
        // An offer to the latest DISCOVER is taken.
        h.deliver(new FakeDhcpServer().offer(h.last()));
        assert.equal(h.client.state, "requesting");
        assert.equal(h.last().secs, h.sent[7].repr.secs);
        assert.equal(h.client.counters.discovers, 8);
      }),
      { numRuns: 50 },
    );
  });

  it("logs retransmissions at debug", () => {
    const h = setup();
    h.client.start();
    h.timers.runNext();
    assert.ok(h.log.lines.includes("debug no offer: DISCOVER again (try 2)"), h.log.lines.join("\n"));
  });

  it("retransmits a REQUEST whose ACK is lost, and counts the lease from the first REQUEST", () => {
    const h = setup();
    const server = new FakeDhcpServer();
    h.client.start();
    h.timers.advance(500);
    h.deliver(server.offer(h.last()));
    const firstRequestAt = h.timers.now();
    h.timers.runNext();
    assert.equal(h.sent.length, 3);
    assertBackoff([h.sent[2].atMs - h.sent[1].atMs], [4]);
    assert.equal(h.last().messageType, "request");
    assert.equal(h.last().transactionId, h.sent[0].repr.transactionId);
    h.deliver(server.ack(h.last()));
    assert.equal(h.client.state, "bound");
    assert.equal(h.timers.nextDeadline(), firstRequestAt + 1800 * SECOND);
  });

  it("gives up REQUESTING after 4 REQUESTs (4, 8, 16, 32 s ±1 s) and DISCOVERs again with a new xid", () => {
    const h = setup({ seed: 7 });
    h.client.start();
    h.deliver(new FakeDhcpServer().offer(h.last()));
    for (let i = 0; i < 3; i++) h.timers.runNext();
    const requests = h.sent.slice(1);
    assert.equal(requests.length, 4);
    assertBackoff(intervals(requests), [4, 8, 16]);
    assert.ok(requests.every((message) => message.repr.requestedAddress === ADDRESS && message.server === undefined));

    h.timers.runNext();
    assert.equal(h.client.state, "init");
    assert.equal(h.sent.length, 5, "nothing sent when giving up");
    assertBackoff([h.timers.now() - requests[3].atMs], [32]);
    assert.equal(h.client.counters.requestTimeouts, 1);
    const gaveUpAt = h.timers.now();

    h.timers.runNext();
    assert.equal(h.client.state, "selecting");
    assert.equal(h.last().messageType, "discover");
    assert.equal(h.timers.now() - gaveUpAt, SECOND);
    assert.notEqual(h.last().transactionId, h.sent[0].repr.transactionId);
    assert.equal(h.last().secs, 0, "a new acquisition process");
    assert.deepEqual(h.notifications, []);
  });
});

describe("DhcpClient NAK", () => {
  it("restarts at INIT after a NAK in REQUESTING, backing off 1, 2, 4 s over repeated NAKs", () => {
    const h = setup();
    const server = new FakeDhcpServer();
    h.client.start();
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      h.deliver(server.offer(h.last()));
      h.deliver(server.nak(h.last()));
      assert.equal(h.client.state, "init");
      assert.equal(h.timers.pending, 1);
      const nakAt = h.timers.now();
      h.timers.runNext();
      assert.equal(h.client.state, "selecting");
      delays.push(h.timers.now() - nakAt);
    }
    assert.deepEqual(delays, [1000, 2000, 4000]);
    assert.deepEqual(h.notifications, [], "nothing was bound, so nothing is lost");
    assert.equal(h.client.counters.naks, 3);
    assert.ok(h.log.lines.includes("info NAK from 198.18.0.1 in state requesting: wrong network"), h.log.lines.join("\n"));

    // Binding resets the backoff: the next NAK waits 1 s again.
    h.deliver(server.offer(h.last()));
    h.deliver(server.ack(h.last()));
    h.timers.runNext(); // T1
    assert.equal(h.client.state, "renewing");
    h.deliver(server.nak(h.last()));
    const nakAt = h.timers.now();
    h.timers.runNext();
    assert.equal(h.timers.now() - nakAt, 1000);
  });

  it("loses the lease on a NAK in RENEWING and in REBINDING", () => {
    for (const state of ["renewing", "rebinding"] as const) {
      const h = setup();
      const server = new FakeDhcpServer();
      handshake(h, server);
      h.timers.runUntil((state === "renewing" ? 1800 : 3150) * SECOND);
      assert.equal(h.client.state, state);
      h.deliver(server.nak(h.last()));
      assert.equal(h.client.state, "init");
      assert.equal(h.client.lease, undefined);
      assert.deepEqual(
        h.notifications.map((notification) => notification.kind),
        ["bound", "lost"],
      );
    }
  });
});

describe("DhcpClient renewal", () => {
  it("renews at T1 with a unicast REQUEST (ciaddr set, no server id or requested address)", () => {
    const h = setup({ hostname: "atoll-test" });
    const server = new FakeDhcpServer();
    const first = handshake(h, server);
    const xid = h.last().transactionId;
    h.timers.runUntil(1800 * SECOND - 1);
    assert.equal(h.sent.length, 2, "nothing before T1");
    h.timers.runUntil(1800 * SECOND);
    assert.equal(h.client.state, "renewing");
    const renewal = h.sent[2];
    assert.equal(renewal.atMs, 1800 * SECOND);
    assert.equal(renewal.server, SERVER, "unicast to the server (§4.4.5)");
    assert.equal(renewal.repr.messageType, "request");
    assert.equal(renewal.repr.clientAddress, ADDRESS);
    assert.equal(renewal.repr.requestedAddress, undefined);
    assert.equal(renewal.repr.serverIdentifier, undefined);
    assert.equal(renewal.repr.broadcast, false);
    assert.equal(renewal.repr.secs, 0);
    assert.equal(renewal.repr.hostname, "atoll-test");
    assert.notEqual(renewal.repr.transactionId, xid);
    assert.ok(h.log.lines.includes("info renewing 198.18.0.50/24 with 198.18.0.1"));

    h.timers.advance(3 * SECOND);
    h.deliver(server.ack(renewal.repr, { leaseTime: 7200 }));
    assert.equal(h.client.state, "bound");
    const renewed = lease({ leaseSeconds: 7200, renewSeconds: 3600, rebindSeconds: 6300 });
    assert.deepEqual(h.notifications, [
      { kind: "bound", lease: first },
      { kind: "bound", lease: renewed },
    ]);
    assert.equal(h.timers.nextDeadline(), (1800 + 3600) * SECOND, "the new T1 counts from the renewal REQUEST");
    assert.equal(h.client.counters.renewals, 1);
    assert.ok(h.log.lines.includes("info renewed 198.18.0.50/24 via 198.18.0.1, lease 7200 s"));
  });

  it("when the server is silent: retransmits at half the time left (min 60 s), rebinds at T2 by broadcast, expires", () => {
    const h = setup();
    handshake(h);
    const boundAt = h.sent.length;
    h.timers.runUntil(3600 * SECOND - 1);
    const renewals = h.sent.slice(boundAt);
    // T1 1800, T2 3150, expiry 3600 (§4.4.5): RENEWING waits max(60, (3150 - now) / 2), capped at T2,
    // REBINDING waits max(60, (3600 - now) / 2), capped at the expiry.
    assert.deepEqual(
      renewals.map((message) => message.atMs / SECOND),
      [1800, 2475, 2812.5, 2981.25, 3065.625, 3125.625, 3150, 3375, 3487.5, 3547.5],
    );
    const renewing = renewals.slice(0, 6);
    const rebinding = renewals.slice(6);
    assert.ok(renewing.every((message) => message.server === SERVER && message.repr.transactionId === renewing[0].repr.transactionId));
    assert.ok(rebinding.every((message) => message.server === undefined && message.repr.transactionId === rebinding[0].repr.transactionId));
    assert.notEqual(rebinding[0].repr.transactionId, renewing[0].repr.transactionId);
    for (const message of renewals) {
      assert.equal(message.repr.clientAddress, ADDRESS);
      assert.equal(message.repr.serverIdentifier, undefined);
      assert.equal(message.repr.requestedAddress, undefined);
      assert.equal(message.repr.secs, Math.floor(message.atMs / SECOND) - 1800, "'secs' counts from the start of renewal");
    }
    assert.equal(h.client.state, "rebinding");
    assert.ok(h.log.lines.includes("info rebinding 198.18.0.50/24: no answer from 198.18.0.1"));

    h.timers.runUntil(3600 * SECOND);
    assert.equal(h.client.state, "init");
    assert.equal(h.client.lease, undefined);
    assert.deepEqual(
      h.notifications.map((notification) => notification.kind),
      ["bound", "lost"],
    );
    assert.equal(h.client.counters.expiries, 1);
    assert.ok(h.log.lines.includes("info lease on 198.18.0.50/24 expired"));
    h.timers.runNext();
    assert.equal(h.client.state, "selecting");
    assert.equal(h.last().messageType, "discover");
  });

  it("takes a REBINDING ACK from another server, and renews with that server afterwards", () => {
    const h = setup();
    handshake(h);
    h.timers.runUntil(3150 * SECOND);
    assert.equal(h.client.state, "rebinding");
    const otherServer = new FakeDhcpServer({ serverId: OTHER_SERVER });
    h.deliver(otherServer.ack(h.last()));
    assert.equal(h.client.state, "bound");
    assert.equal(h.client.lease?.server, OTHER_SERVER);
    assert.equal(h.client.counters.rebinds, 1);
    h.timers.runNext();
    assert.equal(h.client.state, "renewing");
    assert.equal(h.sent.at(-1)?.server, OTHER_SERVER);
  });

  it("ignores an ACK from another server while RENEWING", () => {
    const h = setup();
    handshake(h);
    h.timers.runUntil(1800 * SECOND);
    h.deliver(new FakeDhcpServer({ serverId: OTHER_SERVER }).ack(h.last()));
    assert.equal(h.client.state, "renewing");
    assert.equal(h.client.counters.ignored, 1);
  });

  it("reports onLost then onBound when a renewal moves us to another address", () => {
    const h = setup();
    const server = new FakeDhcpServer();
    handshake(h, server);
    h.timers.runUntil(1800 * SECOND);
    h.deliver(server.ack(h.last(), { yourAddress: OTHER_ADDRESS }));
    assert.equal(h.client.state, "bound");
    assert.deepEqual(h.notifications, [
      { kind: "bound", lease: lease() },
      { kind: "lost" },
      { kind: "bound", lease: lease({ cidr: new Ipv4Cidr(OTHER_ADDRESS, 24) }) },
    ]);
  });

  it("holds an infinite lease with no timer at all", () => {
    const h = setup();
    const held = handshake(h, new FakeDhcpServer({ leaseTime: 0xffff_ffff, renewalTime: 100, rebindingTime: 200 }));
    assert.deepEqual([held.leaseSeconds, held.renewSeconds, held.rebindSeconds], [Infinity, Infinity, Infinity]);
    assert.equal(h.timers.pending, 0);
    assert.ok(h.log.lines.includes("info bound to 198.18.0.50/24 via 198.18.0.1, lease infinite"));
    h.timers.advance(1e12);
    assert.equal(h.client.state, "bound");
  });

  it("goes straight to REBINDING when T1 equals T2", () => {
    const h = setup();
    handshake(h, new FakeDhcpServer({ leaseTime: 1000, renewalTime: 500, rebindingTime: 500 }));
    h.timers.runNext();
    assert.equal(h.client.state, "rebinding");
    assert.equal(h.sent.at(-1)?.server, undefined);
    assert.equal(h.timers.now(), 500 * SECOND);
  });
});

describe("DhcpClient lease options", () => {
  const cases: { name: string; config: ConstructorParameters<typeof FakeDhcpServer>[0]; expected: DhcpLease }[] = [
    { name: "no router", config: { routers: undefined }, expected: lease({ gateway: undefined }) },
    {
      name: "several routers and DNS servers: the first router, every DNS server in order",
      config: { routers: [ip("198.18.0.3"), SERVER], dnsServers: [ip("9.9.9.9"), ip("198.18.0.53"), ip("1.1.1.1")] },
      expected: lease({ gateway: ip("198.18.0.3"), dns: [ip("9.9.9.9"), ip("198.18.0.53"), ip("1.1.1.1")] }),
    },
    { name: "no DNS servers", config: { dnsServers: undefined }, expected: lease({ dns: [] }) },
    {
      name: "missing T1 and T2: 1/2 and 7/8 of the lease (§4.4.5)",
      config: { leaseTime: 1000 },
      expected: lease({ leaseSeconds: 1000, renewSeconds: 500, rebindSeconds: 875 }),
    },
    {
      name: "T1 and T2 given",
      config: { leaseTime: 1000, renewalTime: 100, rebindingTime: 200 },
      expected: lease({ leaseSeconds: 1000, renewSeconds: 100, rebindSeconds: 200 }),
    },
    {
      name: "only T2, below the default T1: T1 becomes T2",
      config: { leaseTime: 1000, rebindingTime: 300 },
      expected: lease({ leaseSeconds: 1000, renewSeconds: 300, rebindSeconds: 300 }),
    },
    {
      name: "T1 after T2 and T2 after the lease: the defaults",
      config: { leaseTime: 1000, renewalTime: 950, rebindingTime: 2000 },
      expected: lease({ leaseSeconds: 1000, renewSeconds: 500, rebindSeconds: 875 }),
    },
    {
      name: "a router off the subnet is no gateway",
      config: { routers: [ip("10.0.0.1")] },
      expected: lease({ gateway: undefined }),
    },
    {
      name: "a /32 lease, as some clouds give",
      config: { subnetMask: ip("255.255.255.255"), routers: undefined },
      expected: lease({ cidr: new Ipv4Cidr(ADDRESS, 32), gateway: undefined }),
    },
  ];
  for (const { name, config, expected } of cases) {
    it(name, () => {
      const h = setup();
      assert.deepEqual(handshake(h, new FakeDhcpServer(config)), expected);
    });
  }

  it("warns about a router it cannot use", () => {
    const h = setup();
    handshake(h, new FakeDhcpServer({ routers: [ip("10.0.0.1")] }));
    assert.ok(h.log.lines.includes("warn router 10.0.0.1 is not a usable host on 198.18.0.50/24: no default gateway"), h.log.lines.join("\n"));
    assert.ok(h.log.lines.includes("info bound to 198.18.0.50/24 (no router), lease 3600 s"));
  });

  const refusals: { name: string; change: Partial<DhcpRepr>; reason: string }[] = [
    { name: "no subnet mask", change: { subnetMask: undefined }, reason: "no subnet mask (option 1)" },
    { name: "no lease time", change: { leaseTime: undefined }, reason: "no lease time (option 51)" },
    { name: "a zero lease time", change: { leaseTime: 0 }, reason: "a lease of 0 s" },
    { name: "a non-contiguous mask", change: { subnetMask: ip("255.0.255.0") }, reason: "non-contiguous netmask 255.0.255.0" },
    { name: "the subnet's broadcast address", change: { yourAddress: ip("198.18.0.255") }, reason: "198.18.0.255 is not a host address on /24" },
    { name: "a multicast address", change: { yourAddress: ip("224.0.0.1") }, reason: "unusable address 224.0.0.1" },
  ];
  for (const { name, change, reason } of refusals) {
    it(`refuses an ACK with ${name} and starts over`, () => {
      const h = setup();
      const server = new FakeDhcpServer();
      h.client.start();
      h.deliver(server.offer(h.last()));
      h.deliver(server.ack(h.last(), change));
      assert.equal(h.client.state, "init");
      assert.deepEqual(h.notifications, []);
      assert.equal(h.client.counters.rejected, 1);
      assert.ok(h.log.lines.includes(`warn rejected an ack: ${reason}`), h.log.lines.join("\n"));
    });
  }

  it("keeps the lease and retransmits when a renewal ACK is unusable", () => {
    const h = setup();
    const server = new FakeDhcpServer();
    handshake(h, server);
    h.timers.runUntil(1800 * SECOND);
    h.deliver(server.ack(h.last(), { subnetMask: undefined }));
    assert.equal(h.client.state, "renewing");
    assert.deepEqual(h.client.lease, lease());
    assert.equal(h.client.counters.rejected, 1);
    h.timers.runNext();
    assert.equal(h.last().messageType, "request");
    assert.equal(h.timers.now(), 2475 * SECOND);
  });

  it("takes the server from the offer when the ACK has no server identifier", () => {
    const h = setup();
    const server = new FakeDhcpServer();
    h.client.start();
    h.deliver(server.offer(h.last()));
    h.deliver(server.ack(h.last(), { serverIdentifier: undefined }));
    assert.equal(h.client.lease?.server, SERVER);
  });
});

describe("DhcpClient filtering", () => {
  it("rejects unusable offers and requests the next acceptable one", () => {
    const h = setup();
    const server = new FakeDhcpServer();
    h.client.start();
    const discover = h.last();
    h.deliver(server.offer(discover, { serverIdentifier: undefined }));
    h.deliver(server.offer(discover, { yourAddress: Ipv4Address.UNSPECIFIED }));
    h.deliver(server.offer(discover, { yourAddress: ip("127.0.0.1") }));
    assert.equal(h.client.state, "selecting");
    assert.equal(h.client.counters.rejected, 3);
    h.deliver(new FakeDhcpServer({ serverId: OTHER_SERVER, address: OTHER_ADDRESS }).offer(discover));
    assert.equal(h.client.state, "requesting");
    assert.equal(h.last().serverIdentifier, OTHER_SERVER);
    assert.equal(h.last().requestedAddress, OTHER_ADDRESS);
  });

  it("ignores replies that are not for the exchange in progress", () => {
    const h = setup();
    const server = new FakeDhcpServer();
    h.deliver(server.offer(emptyRequest()));
    assert.equal(h.client.counters.ignored, 1, "before start");
    h.client.start();
    const discover = h.last();
    const notOurs: DhcpRepr[] = [
      server.offer(discover, { transactionId: (discover.transactionId + 1) >>> 0 }),
      server.offer(discover, { clientHardwareAddress: OTHER_MAC }),
      server.offer(discover, { operation: "boot-request" }),
      server.offer(discover, { clientIdentifier: Uint8Array.of(1, 2, 0, 0, 0, 0, 0x2b) }),
      server.ack(discover),
      server.nak(discover),
      { ...server.offer(discover), messageType: "inform" },
    ];
    for (const reply of notOurs) h.deliver(reply);
    assert.equal(h.client.state, "selecting");
    assert.equal(h.client.counters.ignored, 1 + notOurs.length);

    h.deliver(server.offer(discover, { clientIdentifier: Uint8Array.of(1, 2, 0, 0, 0, 0, 0x2a) }));
    assert.equal(h.client.state, "requesting", "an echoed client identifier (RFC 6842) that is ours is fine");
    const request = h.last();
    const otherServer = new FakeDhcpServer({ serverId: OTHER_SERVER });
    h.deliver(otherServer.offer(discover));
    h.deliver(otherServer.ack(request));
    h.deliver(otherServer.nak(request));
    assert.equal(h.client.state, "requesting", "only the server we chose answers a REQUEST (§3.1)");

    h.deliver(server.ack(request));
    assert.equal(h.client.state, "bound");
    h.deliver(server.ack(request));
    h.deliver(server.nak(request));
    assert.equal(h.client.state, "bound", "nothing is pending while bound");
    assert.equal(h.client.counters.ignored, 1 + notOurs.length + 5);
    assert.equal(h.client.counters.received, outcomeSum(h.client));
  });

  it("counts malformed messages and carries on", () => {
    const h = setup();
    h.client.start();
    h.client.receive(new Uint8Array(0));
    h.client.receive(new Uint8Array(300));
    const noCookie = encodeDhcp(new FakeDhcpServer().offer(h.last()));
    noCookie[236] = 0;
    h.client.receive(noCookie);
    assert.equal(h.client.counters.malformed, 3);
    assert.equal(h.client.state, "selecting");
  });
});

describe("DhcpClient stop", () => {
  it("releases a held lease by unicast (§4.4.6), reports it lost, and cancels its timer", () => {
    const h = setup({ hostname: "atoll-test" });
    const server = new FakeDhcpServer();
    handshake(h, server);
    const request = h.last();
    h.client.stop();
    assert.equal(h.client.state, "stopped");
    assert.equal(h.timers.pending, 0);
    const release = h.sent.at(-1);
    assert.ok(release !== undefined);
    assert.equal(release.server, SERVER);
    assert.equal(release.repr.messageType, "release");
    assert.equal(release.repr.clientAddress, ADDRESS);
    assert.equal(release.repr.serverIdentifier, SERVER);
    assert.equal(release.repr.requestedAddress, undefined);
    assert.equal(release.repr.parameterRequestList, undefined);
    assert.equal(release.repr.hostname, undefined);
    assert.deepEqual(release.repr.clientIdentifier, Uint8Array.of(1, 0x02, 0, 0, 0, 0, 0x2a));
    assert.equal(h.client.counters.releases, 1);
    assert.deepEqual(
      h.notifications.map((notification) => notification.kind),
      ["bound", "lost"],
    );
    h.deliver(server.ack(request));
    assert.equal(h.client.counters.ignored, 1);
    h.timers.advance(1e9);
    assert.equal(h.sent.length, 3);
  });

  it("stops quietly when nothing is held, and starts afresh", () => {
    const h = setup();
    h.client.start();
    h.client.stop();
    assert.equal(h.sent.length, 1);
    assert.equal(h.timers.pending, 0);
    assert.deepEqual(h.notifications, []);
    h.client.start();
    h.client.start(); // a second start does nothing
    assert.equal(h.client.state, "selecting");
    assert.equal(h.sent.length, 2);
    assert.equal(h.timers.pending, 1);
  });
});

/** A REQUEST from nobody in particular, for replies that must be ignored. */
function emptyRequest(): DhcpRepr {
  return {
    operation: "boot-request",
    messageType: "discover",
    transactionId: 0,
    secs: 0,
    broadcast: true,
    hops: 0,
    clientAddress: Ipv4Address.UNSPECIFIED,
    yourAddress: Ipv4Address.UNSPECIFIED,
    serverAddress: Ipv4Address.UNSPECIFIED,
    relayAgentAddress: Ipv4Address.UNSPECIFIED,
    clientHardwareAddress: MAC,
  };
}

// ---- Properties ----

/**
 * What must hold after anything: a known state, at most one timer, the timer a state needs,
 * a lease exactly in the leased states (the one onBound last gave), and every received message
 * counted once.
 */
function assertConsistent(h: Harness, started: boolean, heldByCallbacks: DhcpLease | undefined): void {
  const { client } = h;
  const state = client.state;
  assert.ok(STATES.has(state), `unknown state ${state}`);
  assert.ok(h.timers.pending <= 1, `${h.timers.pending} timers armed in ${state}`);
  const leased = LEASED_STATES.has(state);
  assert.equal(client.lease !== undefined, leased, `lease ${client.lease === undefined ? "absent" : "present"} in ${state}`);
  assert.deepEqual(client.lease, heldByCallbacks, "the lease is the one last reported");
  if (state === "stopped" || !started) assert.equal(h.timers.pending, 0, `a timer armed in ${state}`);
  else if (state === "bound") assert.equal(h.timers.pending, Number.isFinite(client.lease?.renewSeconds) ? 1 : 0);
  else assert.equal(h.timers.pending, 1, `no timer in ${state}`);
  const held = client.lease;
  if (held !== undefined) {
    assert.ok(held.renewSeconds <= held.rebindSeconds && held.rebindSeconds <= held.leaseSeconds && held.renewSeconds > 0);
    assert.ok(held.gateway === undefined || held.cidr.contains(held.gateway));
  }
  assert.equal(client.counters.received, outcomeSum(client));
}

describe("DhcpClient properties", () => {
  /** Clients brought to each state the network can see, with a server that answers. */
  function inState(state: "selecting" | "requesting" | "bound" | "renewing" | "rebinding", seed: number): Harness {
    const h = setup({ seed });
    const server = new FakeDhcpServer();
    h.client.start();
    if (state === "selecting") return h;
    h.deliver(server.offer(h.last()));
    if (state === "requesting") return h;
    h.deliver(server.ack(h.last()));
    if (state === "renewing") h.timers.runUntil(1800 * SECOND);
    if (state === "rebinding") h.timers.runUntil(3150 * SECOND);
    assert.equal(h.client.state, state);
    return h;
  }

  it("never throws on arbitrary or mutated replies, in any state, and counts each once", () => {
    const state = fc.constantFrom("selecting" as const, "requesting" as const, "bound" as const, "renewing" as const, "rebinding" as const);
    fc.assert(
      fc.property(
        state.chain((name) => {
          const template = inState(name, 1);
          const request = template.last();
          const server = new FakeDhcpServer();
          const valid = fc.constantFrom(encodeDhcp(server.offer(request)), encodeDhcp(server.ack(request)), encodeDhcp(server.nak(request)));
          return fc.tuple(fc.constant(name), fc.array(mutatedInputs(valid, 400), { minLength: 1, maxLength: 10 }));
        }),
        ([name, inputs]) => {
          const tracked = inState(name, 1);
          let held = tracked.client.lease;
          const before = tracked.client.counters.received;
          for (const input of inputs) {
            tracked.client.receive(input);
            if (tracked.notifications.length > 0) {
              const last = tracked.notifications.at(-1);
              held = last?.kind === "bound" ? last.lease : undefined;
            }
            assertConsistent(tracked, true, held);
          }
          assert.equal(tracked.client.counters.received - before, inputs.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  type Step =
    | {
        kind: "reply";
        type: "answer" | "offer" | "ack" | "nak";
        address: Ipv4Address;
        server: Ipv4Address;
        leaseTime: number | undefined;
        mask: boolean;
        renewalTime: number | undefined;
        /** false: another client's chaddr. */
        forUs: boolean;
        /** true: an xid other than our latest message's. */
        stale: boolean;
      }
    | { kind: "wait"; ms: number }
    | { kind: "next-timer" }
    | { kind: "garbage"; bytes: Uint8Array }
    | { kind: "stop" }
    | { kind: "start" };

  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant("reply" as const),
        // "answer": what a server answers to our latest message (an OFFER to a DISCOVER, an ACK to a REQUEST).
        type: fc.constantFrom("answer" as const, "answer" as const, "offer" as const, "ack" as const, "nak" as const),
        address: fc.constantFrom(ADDRESS, ADDRESS, OTHER_ADDRESS, ip("198.18.0.255"), Ipv4Address.UNSPECIFIED),
        server: fc.constantFrom(SERVER, OTHER_SERVER),
        leaseTime: fc.constantFrom(undefined, 0, 1, 30, 600, 3600, 3600, 86_400, 0xffff_ffff),
        mask: fc.constantFrom(true, true, true, false),
        renewalTime: fc.constantFrom(undefined, 0, 10, 400, 0xffff_ffff),
        // Mostly replies to our latest message, so that runs get past SELECTING.
        forUs: fc.constantFrom(true, true, true, true, false),
        stale: fc.constantFrom(false, false, false, false, true),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant("wait" as const), ms: fc.oneof(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 2_000_000 })) }),
    },
    { weight: 2, arbitrary: fc.constant({ kind: "next-timer" as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("garbage" as const), bytes: fc.uint8Array({ maxLength: 320 }) }) },
    { weight: 1, arbitrary: fc.constantFrom({ kind: "stop" as const }, { kind: "start" as const }, { kind: "start" as const }) },
  );

  it("stays consistent through any sequence of replies, timeouts, garbage, stops and starts", () => {
    fc.assert(
      fc.property(fc.integer(), fc.array(step, { minLength: 1, maxLength: 40, size: "max" }), (seed, steps) => {
        const h = setup({ seed });
        let held: DhcpLease | undefined;
        h.client.start();
        let started = true;
        // The callback contract: onLost only with a lease; onBound for another address only after onLost.
        const reported = h.notifications;
        let seen = 0;
        const followCallbacks = (): void => {
          for (; seen < reported.length; seen++) {
            const notification = reported[seen];
            if (notification.kind === "lost") {
              assert.ok(held !== undefined, "onLost without a lease");
              held = undefined;
            } else {
              assert.ok(held === undefined || held.cidr.address === notification.lease.cidr.address, "onBound for a new address without onLost");
              held = notification.lease;
            }
          }
        };
        for (const action of steps) {
          switch (action.kind) {
            case "reply": {
              const request = h.sent.at(-1)?.repr ?? emptyRequest();
              const server = new FakeDhcpServer({
                serverId: action.server,
                address: action.address,
                subnetMask: action.mask ? ip("255.255.255.0") : undefined,
                leaseTime: action.leaseTime,
                renewalTime: action.renewalTime,
              });
              const type = action.type !== "answer" ? action.type : request.messageType === "discover" ? "offer" : "ack";
              const reply = server[type](request);
              if (!action.forUs) reply.clientHardwareAddress = OTHER_MAC;
              if (action.stale) reply.transactionId = (reply.transactionId + 1) >>> 0;
              h.deliver(reply);
              break;
            }
            case "wait":
              h.timers.advance(action.ms);
              break;
            case "next-timer":
              h.timers.runNext();
              break;
            case "garbage":
              h.client.receive(action.bytes);
              break;
            case "stop":
              h.client.stop();
              started = false;
              break;
            case "start":
              h.client.start();
              started = true;
              break;
          }
          followCallbacks();
          assertConsistent(h, started, held);
          for (const message of h.sent) {
            assert.equal(message.repr.operation, "boot-request");
            assert.equal(message.repr.clientHardwareAddress, MAC);
          }
        }
      }),
      { numRuns: 400 },
    );
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { boot } from "../../../src/lib/boot/index.ts";
import { readCounters } from "../../../src/lib/runtime/counters.ts";
import {
  EPHEMERAL_PORT_FIRST,
  EPHEMERAL_PORT_LAST,
  NetError,
  openStack,
  unbalancedCounters,
  UDP_MAX_PAYLOAD,
  type UdpDatagram,
} from "atoll/net";
import { ethernetFrame, ipv4Packet, udpDatagram } from "../../../src/lib/net/testing/virtual-link.ts";
import {
  ArpRepr,
  DhcpRepr,
  EtherType,
  EthernetRepr,
  IpProtocol,
  Ipv4Address,
  Ipv4Repr,
  MacAddress,
  UdpPacket,
  UdpRepr,
  WireError,
} from "atoll/wire";
import { FakeBase } from "../../helpers/fake-base.ts";
import { ip, TestNetwork } from "./network.ts";

function u32(bytes: Uint8Array): number {
  return ((bytes[0] ?? 0) * 2 ** 24 + ((bytes[1] ?? 0) << 16) + ((bytes[2] ?? 0) << 8) + (bytes[3] ?? 0)) >>> 0;
}

function request(id: number, length: number): Uint8Array {
  const bytes = new Uint8Array(Math.max(4, length));
  bytes[0] = id >>> 24;
  bytes[1] = id >>> 16;
  bytes[2] = id >>> 8;
  bytes[3] = id;
  for (let i = 4; i < bytes.length; i++) bytes[i] = (i + id) & 0xff;
  return bytes;
}

describe("udp", () => {
  it("echoes 100 requests between two stacks under 5% loss, with retries in the application", () => {
    const net = new TestNetwork({ seed: 5, impairments: { loss: 0.05, jitterMs: 2 } });
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    const server = b.stack.udp.bind(7);
    server.onDatagram((payload, from) => server.send(payload, from));
    const client = a.stack.udp.bind();
    const total = 100;
    let current = 0;
    let retries = 0;
    let retry: { cancel(): void } | undefined;
    const sizeOf = (id: number): number => (id * 97) % 3000;
    const sendCurrent = (): void => {
      client.send(request(current, sizeOf(current)), { address: ip("198.18.0.2"), port: 7 });
      retry = net.clock.at(net.clock.now() + 250, () => {
        retries++;
        sendCurrent();
      });
    };
    client.onDatagram((payload) => {
      if (u32(payload) !== current) return; // a late answer to an earlier try
      assert.deepEqual(payload, request(current, sizeOf(current)));
      retry?.cancel();
      current++;
      if (current < total) sendCurrent();
    });
    sendCurrent();
    assert.ok(net.clock.runUntil(() => current === total, 600_000), `stuck at request ${current}`);
    assert.ok(retries > 0, "5% loss should have cost a retry or two");
    assert.ok(net.link.counters.lost > 0);
    assert.deepEqual(unbalancedCounters(a.stack.counters()), []);
    assert.deepEqual(unbalancedCounters(b.stack.counters()), []);
  });

  it("drops corrupted datagrams on their checksums and delivers only intact ones", () => {
    const net = new TestNetwork({ seed: 11, impairments: { corruption: 0.5 } });
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    net.link.impairments = {};
    const warmUp = a.stack.udp.bind(9);
    b.stack.udp.bind(9).send(new Uint8Array(1), { address: ip("198.18.0.1"), port: 9 });
    net.clock.runUntilIdle();
    warmUp.close();
    net.link.impairments = { corruption: 0.5 };
    const delivered: Uint8Array[] = [];
    const server = b.stack.udp.bind(7);
    server.onDatagram((payload) => delivered.push(payload.slice()));
    const client = a.stack.udp.bind();
    for (let id = 0; id < 200; id++) client.send(request(id, 200), { address: ip("198.18.0.2"), port: 7 });
    net.clock.runUntilIdle();
    for (const payload of delivered) assert.deepEqual(payload, request(u32(payload), 200));
    const counters = b.stack.counters();
    assert.ok(net.link.counters.corrupted > 50);
    assert.ok(counters.udp.badChecksum > 0 && counters.ipv4.badChecksum > 0);
    assert.ok(delivered.length < 200);
    assert.deepEqual(unbalancedCounters(counters), []);
  });

  it("accepts a zero checksum as none (RFC 768) and generates one that verifies", () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    const received: number[] = [];
    b.stack.udp.bind(7).onDatagram((payload) => received.push(payload.length));
    const datagram = udpDatagram(ip("198.18.0.1"), ip("198.18.0.2"), 1000, 7, new Uint8Array(10));
    new UdpPacket(datagram).checksum = 0;
    b.port.inject(ethernetFrame(b.stack.mac, a.stack.mac, EtherType.Ipv4, ipv4Packet({ src: ip("198.18.0.1"), dst: ip("198.18.0.2"), protocol: IpProtocol.Udp }, datagram)));
    const checked: boolean[] = [];
    net.link.tap((frame) => {
      const header = Ipv4Repr.parse(frame.subarray(14));
      if (header instanceof WireError || header.protocol !== IpProtocol.Udp) return;
      const udp = UdpRepr.parse(frame.subarray(34, 34 + header.payloadLength), header.src, header.dst);
      checked.push(!(udp instanceof WireError) && new UdpPacket(frame.subarray(34)).checksum !== 0);
    });
    a.stack.udp.bind().send(new Uint8Array(11), { address: ip("198.18.0.2"), port: 7 });
    net.clock.runUntilIdle();
    assert.deepEqual(received, [10, 11]);
    assert.deepEqual(checked, [true]);
  });

  it("carries 65507-byte datagrams and refuses larger ones", () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    let received: Uint8Array | undefined;
    b.stack.udp.bind(7).onDatagram((payload) => (received = payload.slice()));
    const socket = a.stack.udp.bind();
    const big = request(1, UDP_MAX_PAYLOAD);
    socket.send(big, { address: ip("198.18.0.2"), port: 7 });
    net.clock.runUntilIdle();
    assert.deepEqual(received, big);
    assert.throws(
      () => socket.send(new Uint8Array(UDP_MAX_PAYLOAD + 1), { address: ip("198.18.0.2"), port: 7 }),
      (error: unknown) => error instanceof NetError && error.code === "message-too-long",
    );
  });

  it("queues at most 64 datagrams for receive(), dropping and counting the rest, and iterates until closed", async () => {
    const net = new TestNetwork();
    const a = net.host("198.18.0.1/24");
    const b = net.host("198.18.0.2/24");
    const server = b.stack.udp.bind(7);
    const client = a.stack.udp.bind();
    for (let id = 0; id < 70; id++) {
      client.send(request(id, 8), { address: ip("198.18.0.2"), port: 7 });
      net.clock.advance(1);
    }
    net.clock.runUntilIdle();
    assert.equal(b.stack.counters().udp.queueFull, 6);
    const first = await server.receive();
    assert.equal(u32(first.payload), 0);
    assert.equal(first.from.address, ip("198.18.0.1"));
    assert.equal(first.from.port, client.localPort);
    const rest: UdpDatagram[] = [];
    const iteration = (async () => {
      for await (const datagram of server) rest.push(datagram);
    })();
    await new Promise((resolve) => setImmediate(resolve));
    // A receive() waiting when a datagram arrives gets it directly.
    client.send(request(1000, 8), { address: ip("198.18.0.2"), port: 7 });
    net.clock.runUntilIdle();
    await new Promise((resolve) => setImmediate(resolve));
    server.close();
    await iteration;
    assert.deepEqual(
      rest.map((datagram) => u32(datagram.payload)),
      [...Array.from({ length: 63 }, (_, n) => n + 1), 1000],
    );
    await assert.rejects(server.receive(), (error: unknown) => error instanceof NetError && error.code === "closed");
    assert.throws(() => server.send(new Uint8Array(1), { address: ip("198.18.0.1"), port: 1 }), (error: unknown) => error instanceof NetError && error.code === "closed");
  });

  it("binds: address in use, ephemeral ports from 49152-65535, a port freed by close, an address filter", () => {
    const net = new TestNetwork();
    const b = net.host("198.18.0.2/24");
    const socket = b.stack.udp.bind(7);
    assert.throws(() => b.stack.udp.bind(7), (error: unknown) => error instanceof NetError && error.code === "address-in-use");
    assert.throws(() => b.stack.udp.bind(70000), RangeError);
    const ports = new Set<number>();
    for (let n = 0; n < 100; n++) {
      const ephemeral = b.stack.udp.bind();
      assert.ok(ephemeral.localPort >= EPHEMERAL_PORT_FIRST && ephemeral.localPort <= EPHEMERAL_PORT_LAST);
      ports.add(ephemeral.localPort);
    }
    assert.equal(ports.size, 100);
    socket.close();
    const again = b.stack.udp.bind({ port: 7, address: ip("198.18.0.99") });
    const received: number[] = [];
    again.onDatagram((payload) => received.push(payload.length));
    b.port.inject(
      ethernetFrame(b.stack.mac, MacAddress.fromOctets(2, 0, 0, 0, 0, 0x33), EtherType.Ipv4, ipv4Packet({ src: ip("198.18.0.3"), dst: ip("198.18.0.2"), protocol: IpProtocol.Udp }, udpDatagram(ip("198.18.0.3"), ip("198.18.0.2"), 1, 7, new Uint8Array(3)))),
    );
    net.clock.runUntilIdle();
    assert.deepEqual(received, [], "bound to another address");
    assert.equal(b.stack.counters().udp.noListener, 1);
  });

  it("lets a DHCP client broadcast from 0.0.0.0 without ARP and take port 68 whatever the destination (RFC 2131 §4.1)", () => {
    const net = new TestNetwork();
    const client = net.host(undefined);
    const frames: { dst: MacAddress; etherType: number; header?: Ipv4Repr }[] = [];
    net.link.tap((frame) => {
      const ethernet = EthernetRepr.parse(frame);
      if (ethernet instanceof WireError) return;
      const header = Ipv4Repr.parse(frame.subarray(14));
      frames.push({ dst: ethernet.dst, etherType: ethernet.etherType, ...(header instanceof WireError ? {} : { header }) });
    });
    const messages: number[] = [];
    const port = client.stack.openDhcpPort((message) => messages.push(message.length));
    port.send(new Uint8Array(300));
    net.clock.runUntilIdle();
    assert.equal(frames.length, 1);
    assert.equal(frames[0]?.dst, MacAddress.BROADCAST);
    assert.equal(frames[0]?.etherType, EtherType.Ipv4);
    assert.equal(frames[0]?.header?.src, Ipv4Address.UNSPECIFIED);
    assert.equal(frames[0]?.header?.dst, Ipv4Address.BROADCAST);
    // A server unicasting to the address it offers, and a broadcast; then a datagram not from port 67.
    const serverMac = MacAddress.fromOctets(2, 0, 0, 0, 0, 0x67);
    const offer = (dst: Ipv4Address, dstMac: MacAddress, srcPort: number): Uint8Array =>
      ethernetFrame(dstMac, serverMac, EtherType.Ipv4, ipv4Packet({ src: ip("198.18.0.1"), dst, protocol: IpProtocol.Udp }, udpDatagram(ip("198.18.0.1"), dst, srcPort, 68, new Uint8Array(300))));
    client.port.inject(offer(ip("198.18.0.50"), client.stack.mac, 67));
    client.port.inject(offer(Ipv4Address.BROADCAST, MacAddress.BROADCAST, 67));
    client.port.inject(offer(ip("198.18.0.50"), client.stack.mac, 1234));
    net.clock.runUntilIdle();
    assert.deepEqual(messages, [300, 300]);
    port.close();
    client.port.inject(offer(ip("198.18.0.50"), client.stack.mac, 67));
    net.clock.runUntilIdle();
    assert.equal(client.stack.counters().ipv4.notForUs, 1, "without the DHCP port, a datagram to another address is not for us");
  });
});

describe("openStack", () => {
  it("configures the device statically from the boot parameter and registers the counters", async () => {
    const base = new FakeBase({ args: [], params: { "net.service.ipv4": "198.18.0.2/24@198.18.0.1" } });
    const net = base.addNet("service");
    let address = "";
    boot(base, async (app) => {
      const stack = await openStack(app, "service");
      address = stack.ipv4Config?.cidr.toString() ?? "";
      return 0;
    });
    const outcome = await base.outcome;
    assert.equal(outcome.code, 0, outcome.reason);
    assert.equal(address, "198.18.0.2/24");
    const counters = readCounters();
    assert.ok(counters["net.service.ipv4"] !== undefined && counters["net.service.arp"] !== undefined);
    const announcement = net.outbound[0];
    assert.ok(announcement !== undefined);
    const arp = ArpRepr.parse(announcement.subarray(14));
    assert.ok(!(arp instanceof WireError));
    assert.equal(arp.senderProtocolAddress, ip("198.18.0.2"));
    assert.equal(arp.targetProtocolAddress, ip("198.18.0.2"));
  });

  it("rejects a malformed boot parameter", async () => {
    const base = new FakeBase({ args: [], params: { "net.service.ipv4": "198.18.0.2" } });
    base.addNet("service");
    boot(base, async (app) => {
      await openStack(app, "service");
      return 0;
    });
    const outcome = await base.outcome;
    assert.equal(outcome.code, "abort");
    assert.match(outcome.reason, /bad boot parameter net\.service\.ipv4/);
  });

  it("leases an address by DHCP when there is no boot parameter", async () => {
    const base = new FakeBase();
    const net = base.addNet("service");
    const server = ip("198.18.0.1");
    const serverMac = MacAddress.fromOctets(2, 0, 0, 0, 0, 0x67);
    const offered = ip("198.18.0.50");
    let seen = 0;
    const arps: ArpRepr[] = [];
    base.onYield = () => {
      for (; seen < net.outbound.length; seen++) {
        const frame = net.outbound[seen];
        if (frame === undefined) continue;
        const arp = ArpRepr.parse(frame.subarray(14));
        if (!(arp instanceof WireError)) arps.push(arp);
        const header = Ipv4Repr.parse(frame.subarray(14));
        if (header instanceof WireError || header.protocol !== IpProtocol.Udp) continue;
        const udp = UdpRepr.parse(frame.subarray(34, 34 + header.payloadLength), header.src, header.dst);
        if (udp instanceof WireError || udp.dstPort !== 67) continue;
        const message = DhcpRepr.parse(udp.payload);
        if (message instanceof WireError) continue;
        const reply: DhcpRepr = {
          operation: "boot-reply",
          messageType: message.messageType === "discover" ? "offer" : "ack",
          transactionId: message.transactionId,
          secs: 0,
          broadcast: false,
          hops: 0,
          clientAddress: Ipv4Address.UNSPECIFIED,
          yourAddress: offered,
          serverAddress: server,
          relayAgentAddress: Ipv4Address.UNSPECIFIED,
          clientHardwareAddress: message.clientHardwareAddress,
          subnetMask: ip("255.255.255.0"),
          routers: [server],
          dnsServers: [server],
          leaseTime: 3600,
          serverIdentifier: server,
        };
        const bytes = new Uint8Array(DhcpRepr.bufferLength(reply));
        DhcpRepr.emit(reply, bytes);
        // Unicast to the offered address, before the client has it (the broadcast flag is clear).
        net.inbound.push(
          ethernetFrame(message.clientHardwareAddress, serverMac, EtherType.Ipv4, ipv4Packet({ src: server, dst: offered, protocol: IpProtocol.Udp }, udpDatagram(server, offered, 67, 68, bytes))),
        );
      }
    };
    let leased = "";
    let gateway = "";
    boot(base, async (app) => {
      const stack = await openStack(app, "service");
      leased = stack.ipv4Config?.cidr.toString() ?? "";
      gateway = stack.ipv4Config?.gateway === undefined ? "" : Ipv4Address.format(stack.ipv4Config.gateway);
      return 0;
    });
    const outcome = await base.outcome;
    assert.equal(outcome.code, 0, outcome.reason);
    assert.equal(leased, "198.18.0.50/24");
    assert.equal(gateway, "198.18.0.1");
    assert.ok(readCounters()["net.service.dhcp"] !== undefined);
    assert.ok(base.console.some((line) => line.includes("198.18.0.50/24")), base.console.join(""));
    assert.ok(arps.some((arp) => arp.senderProtocolAddress === offered && arp.targetProtocolAddress === offered), "announced the leased address");
  });
});

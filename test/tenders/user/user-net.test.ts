/**
 * User-mode networking (`--net <dev>=user`, the default, and `-p <host>:<guest>`): the DHCP
 * server and flag parsing as units, then the echo example run as a user would, with TCP through
 * published ports on 127.0.0.1 only. Needs no root (the spt variant does, and is skipped without).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { connect, createServer, type Server } from "node:net";
import { describe, test } from "node:test";

import { Ipv4Address, Ipv4Cidr, MacAddress } from "atoll/wire/address";
import { DhcpRepr, type DhcpRepr as Dhcp } from "../../../src/lib/wire/dhcp.ts";
import { WireError } from "../../../src/lib/wire/error.ts";
import { NetDeviceGone } from "../../../src/tenders/common/devices.ts";
import { loadNative } from "../../../src/tenders/common/native.ts";
import { parsePublish } from "../../../src/tenders/user/attach.ts";
import { DhcpServer } from "../../../src/tenders/user/dhcp-server.ts";
import { sentFrom } from "../../../src/tenders/user/gateway.ts";
import { SocketLink, userBackend } from "../../../src/tenders/user/link.ts";
import { ATOLL, atoll, exampleImage, ROOT } from "../../helpers/cli.ts";
import { freePort } from "../../helpers/published.ts";
import { halfCloseExchange } from "../../helpers/serve.ts";

const GATEWAY = Ipv4Address.fromOctets(10, 0, 2, 2);
const GUEST = new Ipv4Cidr(Ipv4Address.fromOctets(10, 0, 2, 15), 24);
const CLIENT_MAC = MacAddress.fromOctets(0x02, 0, 0, 0, 0, 1);

function request(messageType: Dhcp["messageType"], extra: Partial<Dhcp> = {}): Uint8Array {
  const repr: Dhcp = {
    operation: "boot-request",
    messageType,
    transactionId: 0x1234,
    secs: 0,
    broadcast: false,
    hops: 0,
    clientAddress: Ipv4Address.UNSPECIFIED,
    yourAddress: Ipv4Address.UNSPECIFIED,
    serverAddress: Ipv4Address.UNSPECIFIED,
    relayAgentAddress: Ipv4Address.UNSPECIFIED,
    clientHardwareAddress: CLIENT_MAC,
    ...extra,
  };
  const bytes = new Uint8Array(DhcpRepr.bufferLength(repr));
  DhcpRepr.emit(repr, bytes);
  return bytes;
}

function parseReply(bytes: Uint8Array): Dhcp {
  const repr = DhcpRepr.parse(bytes);
  assert.ok(!(repr instanceof WireError), String(repr));
  return repr;
}

describe("DHCP server", () => {
  const server = (): DhcpServer => new DhcpServer({ server: GATEWAY, guest: GUEST, leaseSeconds: 3600 });

  test("DISCOVER gets an OFFER of 10.0.2.15/24, router and server 10.0.2.2, 1 h", () => {
    const reply = server().handle(request("discover"));
    assert.ok(reply !== undefined);
    assert.equal(reply.type, "offer");
    assert.equal(reply.to, Ipv4Address.BROADCAST);
    const offer = parseReply(reply.message);
    assert.equal(offer.operation, "boot-reply");
    assert.equal(offer.messageType, "offer");
    assert.equal(offer.transactionId, 0x1234);
    assert.equal(offer.yourAddress, GUEST.address);
    assert.equal(offer.clientHardwareAddress, CLIENT_MAC);
    assert.equal(offer.subnetMask, Ipv4Address.fromOctets(255, 255, 255, 0));
    assert.deepEqual(offer.routers, [GATEWAY]);
    assert.equal(offer.serverIdentifier, GATEWAY);
    assert.equal(offer.leaseTime, 3600);
  });

  test("REQUEST for the offered address is ACKed; the server is then bound", () => {
    const dhcp = server();
    assert.equal(dhcp.bound, false);
    const reply = dhcp.handle(request("request", { requestedAddress: GUEST.address, serverIdentifier: GATEWAY }));
    assert.equal(reply?.type, "ack");
    const ack = parseReply(reply.message);
    assert.equal(ack.messageType, "ack");
    assert.equal(ack.yourAddress, GUEST.address);
    assert.equal(ack.leaseTime, 3600);
    assert.equal(dhcp.bound, true);
  });

  test("a renewing REQUEST (ciaddr) is ACKed by unicast", () => {
    const reply = server().handle(request("request", { clientAddress: GUEST.address }));
    assert.equal(reply?.type, "ack");
    assert.equal(reply.to, GUEST.address);
  });

  test("REQUEST for another address is NAKed (broadcast); another server's is ignored", () => {
    const dhcp = server();
    const nak = dhcp.handle(request("request", { requestedAddress: Ipv4Address.fromOctets(192, 168, 1, 9) }));
    assert.equal(nak?.type, "nak");
    assert.equal(nak.to, Ipv4Address.BROADCAST);
    assert.equal(parseReply(nak.message).messageType, "nak");
    assert.equal(parseReply(nak.message).yourAddress, Ipv4Address.UNSPECIFIED);
    assert.equal(dhcp.handle(request("request", { requestedAddress: GUEST.address, serverIdentifier: Ipv4Address.fromOctets(10, 0, 2, 3) })), undefined);
    assert.equal(dhcp.bound, false);
  });

  test("RELEASE, DECLINE, INFORM, replies and garbage get no answer", () => {
    const dhcp = server();
    for (const type of ["release", "decline", "inform"] as const) assert.equal(dhcp.handle(request(type)), undefined);
    assert.equal(dhcp.handle(request("offer", { operation: "boot-reply" })), undefined);
    assert.equal(dhcp.handle(new Uint8Array(100)), undefined);
    assert.equal(dhcp.counters.malformed, 1);
  });
});

describe("-p parsing", () => {
  test("accepts <host>:<guest> and <dev>=<host>:<guest>", () => {
    assert.deepEqual(parsePublish("8080:80"), { hostPort: 8080, guestPort: 80, protocol: "tcp", device: undefined, spec: "8080:80" });
    assert.deepEqual(parsePublish("service=1:65535"), { hostPort: 1, guestPort: 65535, protocol: "tcp", device: "service", spec: "service=1:65535" });
  });

  test("rejects bad specs with one line", () => {
    for (const [spec, pattern] of [
      ["80", /expected \[<dev>=\]<host port>:<guest port>/],
      ["0:80", /host port '0' is not a port number from 1 to 65535/],
      ["8080:65536", /guest port '65536' is not a port number/],
      ["a:b", /host port 'a'/],
      ["127.0.0.1:8080:80", /expected/],
      ["8080:", /guest port ''/],
    ] as const) {
      const result = parsePublish(spec);
      assert.equal(typeof result, "string", spec);
      assert.match(String(result), pattern, spec);
      assert.ok(!String(result).includes("\n"));
    }
  });
});

describe("the link: socketpair, watcher, backpressure", () => {
  const EAGAIN = 11;

  test("socketpair keeps frame boundaries; the tender's backend reads one frame per call", () => {
    const native = loadNative();
    const [a, b] = native.socketpair();
    const backend = userBackend(native, a);
    try {
      for (const size of [60, 1514, 14]) assert.equal(native.write(b, new Uint8Array(size).fill(size & 0xff)), size);
      const buffer = new Uint8Array(1518);
      assert.equal(backend.read(buffer), 60);
      assert.equal(backend.read(buffer), 1514);
      assert.equal(buffer[1513], 1514 & 0xff);
      assert.equal(backend.read(buffer), 14);
      assert.equal(backend.read(buffer), -EAGAIN);
      assert.equal(native.waitWritable(a, 0), 1);
    } finally {
      backend.close();
      native.close(b);
    }
  });

  test("the backend fails reads once the gateway's end is closed (as a deleted TAP's do)", () => {
    const native = loadNative();
    const [a, b] = native.socketpair();
    const backend = userBackend(native, a);
    native.write(b, new Uint8Array(60));
    native.close(b);
    const buffer = new Uint8Array(1518);
    assert.equal(backend.read(buffer), 60, "what was sent before still arrives");
    assert.throws(() => backend.read(buffer), (error: unknown) => error instanceof NetDeviceGone && /the user-mode network gateway exited/.test(error.message));
    backend.close();
  });

  test("also when the gateway died with frames from us unread (the socketpair says ECONNRESET then)", () => {
    const native = loadNative();
    const [a, b] = native.socketpair();
    const backend = userBackend(native, a, 4242);
    assert.equal(backend.write(new Uint8Array(60)), 60);
    native.close(b);
    assert.throws(() => backend.read(new Uint8Array(1518)), (error: unknown) => error instanceof NetDeviceGone && /gateway \(pid 4242\) exited/.test(error.message));
    backend.close();
  });

  test("SocketLink: frames in through the libuv watcher; a full socket queues, then flushes in order", async () => {
    const native = loadNative();
    const [tender, gateway] = native.socketpair();
    let closed = false;
    const link = new SocketLink(native, gateway, MacAddress.fromOctets(2, 0, 0, 0, 0, 2), () => (closed = true));
    const received: number[] = [];
    link.onFrame((frame) => received.push(frame.length));
    try {
      native.write(tender, new Uint8Array(100));
      native.write(tender, new Uint8Array(200));
      for (let i = 0; i < 100 && received.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.deepEqual(received, [100, 200]);

      // More than the socket holds (at least when not root: ~90 frames at the default wmem_max),
      // less than socket plus queue (4096): the link queues, loses nothing, and keeps the order.
      const count = 4000;
      for (let i = 0; i < count; i++) {
        const frame = new Uint8Array(1514);
        new DataView(frame.buffer).setUint32(0, i);
        link.send(frame);
      }
      const buffer = new Uint8Array(1518);
      let next = 0;
      const deadline = Date.now() + 20_000;
      while (next < count && Date.now() < deadline) {
        const n = native.read(tender, buffer);
        if (n === -EAGAIN) {
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        assert.equal(n, 1514);
        assert.equal(new DataView(buffer.buffer).getUint32(0), next, "in order");
        next++;
      }
      assert.equal(link.dropped, 0);
      assert.equal(next, count, "every frame arrived");
    } finally {
      link.close();
      native.close(tender);
      native.close(gateway);
    }
    assert.equal(closed, false);
  });

  test("sentFrom: ARP and IPv4 frames from the guest's address", () => {
    const guest = GUEST.address;
    const arp = new Uint8Array(42);
    arp.set([0x08, 0x06], 12);
    arp.set([10, 0, 2, 15], 28);
    assert.equal(sentFrom(arp, guest), true);
    const ip = new Uint8Array(60);
    ip.set([0x08, 0x00], 12);
    ip.set([10, 0, 2, 15], 26);
    assert.equal(sentFrom(ip, guest), true);
    ip.set([0, 0, 0, 0], 26);
    assert.equal(sentFrom(ip, guest), false);
    assert.equal(sentFrom(new Uint8Array(20), guest), false);
  });
});

interface Running {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** Starts `atoll run` and resolves once the appliance's log shows its DHCP lease. */
async function startRun(args: readonly string[]): Promise<Running> {
  const child = spawn(process.execPath, [ATOLL, "run", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal === null ? null : 128 + (signal === "SIGTERM" ? 15 : 9)))));
  const deadline = Date.now() + 20_000;
  while (!/echo on UDP and TCP port 7/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`atoll run did not come up:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, output: () => output, exited };
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The tender's gateway processes (`atoll __gateway`), among its children. */
function gatewayPids(pid: number): number[] {
  return childPids(pid).filter((child) => {
    try {
      return readFileSync(`/proc/${child}/cmdline`, "utf8").split("\0").includes("__gateway");
    } catch {
      return false;
    }
  });
}

/** False once the process has exited: a zombie whose threads are all gone (its fds are closed then). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // A zombie leader's other threads may still be exiting, holding the fd table (and the ports).
    return !/\) Z /.test(stat) || readdirSync(`/proc/${pid}/task`).length > 1;
  } catch {
    return false;
  }
}

async function waitGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  return !alive(pid);
}

function oneLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${text}`);
  return lines[0] ?? "";
}

describe("atoll run with user-mode networking (node tender)", () => {
  test("echo: DHCP by default, 1 MiB byte-exact through -p, concurrent connections, half-close, clean exit", async () => {
    const image = exampleImage("echo");
    const [echoPort, discardPort] = [await freePort(), await freePort()];
    const run = await startRun([image, "-p", `${echoPort}:7`, "--publish", `${discardPort}:9`]);
    try {
      assert.match(run.output(), /dhcp: bound to 10\.0\.2\.15\/24 via 10\.0\.2\.2/);
      assert.match(run.output(), /service: 10\.0\.2\.15\/24, gateway 10\.0\.2\.2 \(DHCP from 10\.0\.2\.2, 3600 s\)/);

      const mib = randomBytes(1 << 20);
      assert.ok((await halfCloseExchange(echoPort, mib)).equals(mib), "1 MiB echoed byte-exact");

      const payloads = Array.from({ length: 6 }, (_, i) => randomBytes(100_000 + i * 37_000));
      const echoed = await Promise.all(payloads.map((payload) => halfCloseExchange(echoPort, payload)));
      for (const [i, payload] of payloads.entries()) assert.ok(echoed[i]?.equals(payload), `connection ${i}`);

      // Discard answers nothing and closes after our FIN: an empty reply, not a reset.
      assert.equal((await halfCloseExchange(discardPort, randomBytes(300_000))).length, 0);

      const gateways = gatewayPids(run.child.pid ?? -1);
      assert.equal(gateways.length, 1, "one gateway process");
      run.child.kill("SIGTERM");
      assert.equal(await run.exited, 143, "the appliance's status (SIGTERM), not the gateway's");
      assert.ok(await waitGone(gateways[0] ?? -1), "the gateway ends with the tender");
    } finally {
      run.child.kill("SIGKILL");
    }
  });

  test("the gateway dies with a SIGKILLed tender; the host port is free again", async () => {
    const image = exampleImage("echo");
    const port = await freePort();
    const run = await startRun([image, "--net", "service=user", "-p", `${port}:7`]);
    const gateways = gatewayPids(run.child.pid ?? -1);
    assert.equal(gateways.length, 1, "one gateway process");
    run.child.kill("SIGKILL");
    await run.exited;
    assert.ok(await waitGone(gateways[0] ?? -1), "gateway gone");
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test("a killed gateway ends the appliance as a deleted TAP does (255, says why), not in a busy loop", async () => {
    const image = exampleImage("echo");
    const run = await startRun([image]);
    try {
      const gateways = gatewayPids(run.child.pid ?? -1);
      assert.equal(gateways.length, 1);
      process.kill(gateways[0] ?? -1, "SIGKILL");
      assert.equal(await run.exited, 255);
      assert.match(run.output(), /atoll: appliance 'echo' aborted: net device 'service': the user-mode network gateway \(pid \d+\) exited: the appliance has lost its network/);
      assert.doesNotMatch(run.output(), /\n\s+at /, "one line, no stack");
    } finally {
      run.child.kill("SIGKILL");
    }
  });

  test("a static --ipv4 on the user-mode link works too (no DHCP)", async () => {
    const image = exampleImage("echo");
    const port = await freePort();
    const run = await startRun([image, "--ipv4", "service=10.0.2.15/24@10.0.2.2", "-p", `${port}:7`]);
    try {
      assert.match(run.output(), /service: 10\.0\.2\.15\/24, gateway 10\.0\.2\.2 \(static\)/);
      const data = randomBytes(50_000);
      assert.ok((await halfCloseExchange(port, data)).equals(data));
    } finally {
      run.child.kill("SIGKILL");
      await run.exited;
    }
  });

  test("a connection to a guest port without a listener is refused, not hung", async () => {
    // Port 8 has no listener in the echo appliance: the guest resets, so the host sees a reset or EOF.
    const image = exampleImage("echo");
    const port = await freePort();
    const run = await startRun([image, "-p", `${port}:8`]);
    try {
      const outcome = await new Promise<string>((resolve) => {
        const socket = connect({ host: "127.0.0.1", port });
        socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
        socket.on("end", () => resolve("end"));
        socket.on("close", () => resolve("close"));
        socket.setTimeout(10_000, () => resolve("timeout"));
      });
      assert.notEqual(outcome, "timeout");
    } finally {
      run.child.kill("SIGKILL");
      await run.exited;
    }
  });

  test("errors are one line with status 125", async () => {
    const echo = exampleImage("echo");
    const hello = exampleImage("hello");
    const busy: Server = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const busyPort = (busy.address() as { port: number }).port;
    try {
      const cases: [string[], RegExp][] = [
        [[echo, "-p", "8080"], /atoll run: -p 8080: expected \[<dev>=\]<host port>:<guest port>/],
        [[echo, "-p", "0:7"], /host port '0' is not a port number from 1 to 65535/],
        [[echo, "-p", "18007:99999"], /guest port '99999' is not a port number/],
        [[echo, "-p", "18007:7", "-p", "18007:9"], /host port 18007 is already published by -p 18007:7/],
        [[echo, "-p", `${busyPort}:7`], new RegExp(`-p ${busyPort}:7: host port 127\\.0\\.0\\.1:${busyPort} is already in use: pick another host port`)],
        [[hello, "--net", "service=user", "-p", "18080:80"], /--net service=\.\.\.: image 'hello' declares no net device 'service'/],
        [[hello, "-p", "18080:80"], /-p 18080:80: image 'hello' declares no net device to publish a port of/],
        [[echo, "-p", "other=18080:80"], /-p other=18080:80: image 'echo' declares no net device 'other'/],
        [[echo, "--net", "service=tap:tap0", "-p", "service=18080:80"], /net device 'service' is on a TAP; publishing ports needs --net service=user/],
        [[echo, "--net", "service=slirp"], /unknown attachment; use tap:<iface> or user/],
      ];
      for (const [args, pattern] of cases) {
        const result = atoll(["run", ...args], { timeout: 30_000 });
        assert.equal(result.status, 125, `${args.join(" ")}: ${result.stderr}`);
        assert.match(oneLine(result.stderr), pattern, args.join(" "));
      }
    } finally {
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    }
  });
});

const sptAddon = join(ROOT, "build", "Release", "atoll_spt.node");

describe("atoll run with user-mode networking (spt tender)", { skip: existsSync(sptAddon) ? false : "needs the atoll_spt addon (npm run build)" }, () => {
  test("echo under the seccomp filter: DHCP, 1 MiB and concurrent connections through -p, clean exit", async () => {
    const image = exampleImage("echo");
    const port = await freePort();
    const run = await startRun([image, "--tender", "spt", "-p", `${port}:7`]);
    try {
      assert.match(run.output(), /service: 10\.0\.2\.15\/24, gateway 10\.0\.2\.2 \(DHCP from 10\.0\.2\.2, 3600 s\)/);
      const mib = randomBytes(1 << 20);
      assert.ok((await halfCloseExchange(port, mib)).equals(mib), "1 MiB echoed byte-exact");
      const payloads = Array.from({ length: 4 }, (_, i) => randomBytes(200_000 + i * 11_000));
      const echoed = await Promise.all(payloads.map((payload) => halfCloseExchange(port, payload)));
      for (const [i, payload] of payloads.entries()) assert.ok(echoed[i]?.equals(payload), `connection ${i}`);
      const gateways = gatewayPids(run.child.pid ?? -1);
      assert.equal(gateways.length, 1, "one gateway process, the launcher's child");
      run.child.kill("SIGTERM");
      assert.equal(await run.exited, 143);
      assert.ok(await waitGone(gateways[0] ?? -1), "the gateway ends with the launcher");
      assert.doesNotMatch(run.output(), /SIGSYS|forbidden/);
    } finally {
      run.child.kill("SIGKILL");
    }
  });

  test("a host port in use: one line, 125", async () => {
    const busy: Server = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const busyPort = (busy.address() as { port: number }).port;
    try {
      const result = atoll(["run", exampleImage("echo"), "--tender", "spt", "-p", `${busyPort}:7`], { timeout: 30_000 });
      assert.equal(result.status, 125, result.stderr);
      assert.match(oneLine(result.stderr), /is already in use: pick another host port/);
    } finally {
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    }
  });
});

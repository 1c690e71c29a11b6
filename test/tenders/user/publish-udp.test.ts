/**
 * Publishing UDP ports (`-p <host>:<guest>/udp`): the spec's parsing, the flow table (one flow per
 * host client, conntrack's idle timeouts, a bound with the least recently active evicted) as a
 * unit, and the echo example's UDP echo through the gateway with real sockets: several clients at
 * once, datagrams up to the largest IPv4 allows, TCP and UDP on the same host port.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { connect } from "node:net";
import { describe, test } from "node:test";

import { parsePublish } from "../../../src/tenders/user/attach.ts";
import { DEFAULT_UDP_FLOW_LIMITS, UdpFlowTable, type UdpFlowEnd } from "../../../src/tenders/user/udp-flows.ts";
import { USER_LINK_MTU } from "../../../src/tenders/user/link.ts";
import { ATOLL, atoll, exampleImage, ROOT } from "../../helpers/cli.ts";

describe("-p .../udp parsing", () => {
  test("/udp and /tcp as Docker spells them; TCP without a suffix", () => {
    assert.deepEqual(parsePublish("8053:53/udp"), { hostPort: 8053, guestPort: 53, protocol: "udp", device: undefined, spec: "8053:53/udp" });
    assert.deepEqual(parsePublish("service=8080:80/tcp"), { hostPort: 8080, guestPort: 80, protocol: "tcp", device: "service", spec: "service=8080:80/tcp" });
    const plain = parsePublish("8080:80");
    assert.ok(typeof plain !== "string");
    assert.equal(plain.protocol, "tcp");
  });

  test("a bad protocol or a port with a slash is one line naming it", () => {
    for (const [spec, pattern] of [
      ["8053:53/sctp", /^-p 8053:53\/sctp: protocol 'sctp' is not tcp or udp \(published ports are TCP, or UDP with \/udp\), e\.g\. -p 8080:80 .* or -p 8053:53\/udp$/],
      ["8053:53/", /^-p 8053:53\/: protocol '' is not tcp or udp/],
      ["8053:53/UDP", /protocol 'UDP' is not tcp or udp/],
      ["8053/udp:53", /host port '8053\/udp' is not a port number/],
      ["8053:/udp", /guest port '' is not a port number/],
      ["8053:53/udp/tcp", /protocol 'udp\/tcp' is not tcp or udp/],
    ] as const) {
      const result = parsePublish(spec);
      assert.equal(typeof result, "string", spec);
      assert.match(String(result), pattern, spec);
    }
  });
});

describe("UDP flow table", () => {
  function table(limits = { idleMs: 30_000, streamIdleMs: 120_000, maxFlows: 3 }) {
    const ended: [string, number, UdpFlowEnd][] = [];
    let made = 0;
    const flows = new UdpFlowTable<number>(limits, (key, flow, why) => ended.push([key, flow, why]));
    return { flows, ended, make: () => ++made };
  }

  test("the defaults are conntrack's: 30 s, 120 s for streams", () => {
    assert.deepEqual(DEFAULT_UDP_FLOW_LIMITS, { idleMs: 30_000, streamIdleMs: 120_000, maxFlows: 1024 });
  });

  test("one flow per client, reused while active", () => {
    const { flows, make } = table();
    const a = flows.outbound("127.0.0.1:1000", 0, make);
    const b = flows.outbound("127.0.0.1:1001", 0, make);
    assert.notEqual(a, b);
    assert.equal(flows.outbound("127.0.0.1:1000", 10_000, make), a);
    assert.equal(flows.size, 2);
    assert.equal(flows.counters.created, 2);
  });

  test("a flow without replies ends after 30 s idle; with replies, after 120 s; activity postpones both", () => {
    const { flows, ended, make } = table();
    flows.outbound("one-way", 0, make);
    flows.outbound("stream", 0, make);
    assert.equal(flows.inbound("stream", 1_000), true);
    assert.equal(flows.inbound("unknown", 1_000), false, "a reply for no flow");
    assert.equal(flows.expire(29_999), 30_000, "the next expiry");
    assert.deepEqual(ended, []);
    assert.equal(flows.expire(30_000), 121_000);
    assert.deepEqual(ended, [["one-way", 1, "idle"]]);
    flows.outbound("stream", 100_000, make); // client activity moves the deadline too
    assert.equal(flows.expire(219_999), 220_000);
    assert.equal(flows.expire(220_000), undefined, "empty");
    assert.deepEqual(ended, [["one-way", 1, "idle"], ["stream", 2, "idle"]]);
    assert.equal(flows.counters.expired, 2);
  });

  test("bounded: a new client beyond the limit evicts the least recently active flow", () => {
    const { flows, ended, make } = table();
    flows.outbound("a", 0, make);
    flows.outbound("b", 1, make);
    flows.outbound("c", 2, make);
    flows.outbound("a", 3, make); // a is now the most recent: b is the oldest
    flows.inbound("c", 4); // and c more recent than b
    flows.outbound("d", 5, make);
    assert.deepEqual(ended, [["b", 2, "evicted"]]);
    assert.equal(flows.size, 3);
    flows.outbound("e", 6, make);
    assert.deepEqual(ended.at(-1), ["a", 1, "evicted"]);
    assert.equal(flows.counters.evicted, 2);
    flows.clear();
    assert.equal(flows.size, 0);
    assert.deepEqual(
      ended.slice(2).map(([key, , why]) => [key, why]),
      [
        ["c", "closed"],
        ["d", "closed"],
        ["e", "closed"],
      ],
    );
  });

  test("limits must be positive", () => {
    assert.throws(() => new UdpFlowTable({ idleMs: 0, streamIdleMs: 1, maxFlows: 1 }, () => undefined), RangeError);
    assert.throws(() => new UdpFlowTable({ idleMs: 1, streamIdleMs: 1, maxFlows: 0 }, () => undefined), RangeError);
  });
});

async function freePort(): Promise<number> {
  // Free for both TCP and UDP on 127.0.0.1 a moment ago.
  for (;;) {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    const port = socket.address().port;
    socket.close();
    const free = await new Promise<boolean>((resolve) => {
      const probe = connect({ host: "127.0.0.1", port });
      probe.on("connect", () => {
        probe.destroy();
        resolve(false);
      });
      probe.on("error", () => resolve(true));
    });
    if (free) return port;
  }
}

/** Sends `payload` from `socket` to 127.0.0.1:port until the same bytes come back (UDP may lose one). */
async function echoDatagram(socket: Socket, port: number, payload: Buffer): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const reply = new Promise<Buffer | undefined>((resolve) => {
      const timer = setTimeout(() => {
        socket.off("message", onMessage);
        resolve(undefined);
      }, 2_000);
      const onMessage = (message: Buffer): void => {
        if (!message.equals(payload)) return;
        clearTimeout(timer);
        socket.off("message", onMessage);
        resolve(message);
      };
      socket.on("message", onMessage);
    });
    socket.send(payload, port, "127.0.0.1");
    if ((await reply) !== undefined) return;
  }
  assert.fail(`no echo of ${payload.length} bytes`);
}

async function clientSocket(): Promise<Socket> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return socket;
}

describe("atoll run -p <host>:<guest>/udp (echo example)", () => {
  test("UDP echo through the gateway: many clients at once, datagrams up to 65507 bytes, TCP on the same host port", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [ATOLL, "run", exampleImage("echo"), "-p", `${port}:7/udp`, "-p", `${port}:7`], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      const deadline = Date.now() + 20_000;
      while (!/echo on UDP and TCP port 7/.test(output)) {
        assert.ok(child.exitCode === null && Date.now() < deadline, `atoll run did not come up:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const sockets = await Promise.all(Array.from({ length: 24 }, () => clientSocket()));
      try {
        // Every client at once, several datagrams each: each gets its own echoes back.
        await Promise.all(
          sockets.map(async (socket, i) => {
            for (let n = 0; n < 5; n++) await echoDatagram(socket, port, Buffer.from(`client ${i} datagram ${n} ${randomBytes(8).toString("hex")}`));
          }),
        );
        // Sizes: tiny, an Ethernet MTU's worth, the user link's MTU (65520 - 28), and the IPv4 maximum (fragmented on the link).
        const [first] = sockets;
        assert.ok(first !== undefined);
        for (const size of [1, 1472, USER_LINK_MTU - 28, 65_507]) await echoDatagram(first, port, randomBytes(size));
      } finally {
        for (const socket of sockets) socket.close();
      }
      // TCP on the same host port still reaches the TCP echo.
      const tcpEcho = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
        let text = "";
        socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
        socket.on("end", () => {
          socket.end();
          resolve(text);
        });
        socket.on("error", reject);
        socket.end("over tcp");
      });
      assert.equal(tcpEcho, "over tcp");
    } finally {
      child.kill("SIGTERM");
      assert.equal(await exited, 143);
    }
  });

  test("bad -p protocols are one line with status 125", () => {
    const echo = exampleImage("echo");
    for (const [spec, pattern] of [
      ["18353:53/sctp", /^atoll run: -p 18353:53\/sctp: protocol 'sctp' is not tcp or udp/],
      ["18353:53/", /^atoll run: -p 18353:53\/: protocol '' is not tcp or udp/],
    ] as const) {
      const result = atoll(["run", echo, "-p", spec], { timeout: 30_000 });
      assert.equal(result.status, 125, result.stderr);
      const lines = result.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0] ?? "", pattern);
    }
  });

  test("a host UDP port in use: one line, 125", async () => {
    const busy = await clientSocket();
    try {
      const port = busy.address().port;
      const result = atoll(["run", exampleImage("echo"), "-p", `${port}:7/udp`], { timeout: 30_000 });
      assert.equal(result.status, 125, result.stderr);
      assert.equal(result.stderr, `atoll run: -p ${port}:7/udp: host port 127.0.0.1:${port} is already in use: pick another host port\n`);
    } finally {
      busy.close();
    }
  });

  test("the same host port twice for one protocol is a usage error", () => {
    const echo = exampleImage("echo");
    const twice = atoll(["run", echo, "-p", "18353:7/udp", "-p", "18353:9/udp"], { timeout: 30_000 });
    assert.equal(twice.status, 125);
    assert.match(twice.stderr, /^atoll run: -p 18353:9\/udp: host port 18353 is already published by -p 18353:7\/udp\n$/);
  });
});

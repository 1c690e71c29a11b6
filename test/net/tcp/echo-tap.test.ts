/**
 * The echo appliance against Linux's TCP over a TAP in a private namespace (needs root, like
 * test/net/ping-tap.test.ts): Linux clients echo megabytes through port 7, discard through port
 * 9, a UDP datagram through port 7; the --pcap capture must hold no malformed packet and no TCP
 * checksum error (tshark with checksum validation on). Once with each `--offload` mode: all (the
 * default: partial checksums and 64 KiB segments, which the capture shows as the wire segments),
 * checksum only, and none.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ATOLL, exampleImage } from "../../helpers/cli.ts";
import { canUseNamespaces, Netns, run, waitFor } from "../../helpers/netns.ts";

const skip = canUseNamespaces();
const CLIENT = join(import.meta.dirname, "fixtures", "linux-client.mjs");
let ns: Netns | undefined;
let dir = "";

before(() => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-echo-"));
  ns = new Netns(`atoll-echo-${process.pid}`);
  ns.addTap("tap0", "198.18.0.1/24");
});

after(() => {
  ns?.destroy();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

interface ClientResult {
  sent: number;
  received: number;
  match: boolean;
  ms: number;
  error?: string;
}

function client(mode: "tcp" | "udp" | "discard", port: number, bytes: number): ClientResult {
  assert.ok(ns !== undefined);
  const output = ns.exec([process.execPath, CLIENT, "198.18.0.2", mode, String(port), String(bytes)], { timeoutMs: 60_000 });
  return JSON.parse(output.trim().split("\n").at(-1) ?? "{}") as ClientResult;
}

for (const offload of ["all", "checksum", "none"] as const) {
  test(`Linux TCP and UDP clients against the echo appliance (--offload service=${offload}); the capture is clean`, { skip }, async () => {
    assert.ok(ns !== undefined);
    const image = exampleImage("echo");
    const pcap = join(dir, `service-${offload}.pcap`);
    const appliance = ns.spawn([
      process.execPath, ATOLL, "run", image,
      "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2/24", "--pcap", `service=${pcap}`, "--offload", `service=${offload}`,
    ]);
    await waitFor("the appliance to start", () => appliance.output().includes("discard on TCP port 9"));

    const small = client("tcp", 7, 1000);
    assert.deepEqual([small.received, small.match], [1000, true], JSON.stringify(small));
    const large = client("tcp", 7, 16 * 1024 * 1024);
    assert.deepEqual([large.received, large.match], [16 * 1024 * 1024, true], JSON.stringify(large));
    const discarded = client("discard", 9, 8 * 1024 * 1024);
    assert.deepEqual([discarded.received, discarded.match], [0, true], JSON.stringify(discarded));
    const datagram = client("udp", 7, 1400);
    assert.deepEqual([datagram.received, datagram.match], [1400, true], JSON.stringify(datagram));

    appliance.kill("SIGTERM");
    assert.equal(await appliance.exited, 143, appliance.output());
    // Payloads are random bytes: decode them as data, or tshark's heuristic dissectors (Thrift, ...)
    // misread them and report their own "errors" about what is not their protocol. Only the
    // appliance's segments are judged: Linux now and then sends a checksum of 0xFFFF (the same
    // value as 0 in ones' complement), which tshark flags.
    const problems = run("tshark", ["-r", pcap, "-d", "tcp.port==7,data", "-d", "tcp.port==9,data", "-o", "tcp.check_checksum:TRUE", "-Y", "ip.src == 198.18.0.2 && (_ws.malformed || tcp.checksum.status == 0 || _ws.expert.severity >= error)"]).trim();
    assert.equal(problems, "", "malformed packets or bad checksums in the capture");
    const handshakes = run("tshark", ["-r", pcap, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.options.sack_perm && tcp.options.wscale.shift && tcp.options.timestamp.tsval", "-T", "fields", "-e", "tcp.srcport"]).trim().split("\n");
    assert.equal(handshakes.length, 3, "every SYN-ACK offered SACK, window scaling and timestamps");
    const largest = Math.max(...run("tshark", ["-r", pcap, "-T", "fields", "-e", "frame.len"]).trim().split("\n").map(Number));
    assert.ok(largest <= 1514, `the capture holds wire frames (largest ${largest} bytes)`);
  });
}

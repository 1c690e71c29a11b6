/**
 * Atoll's TCP against Linux's over a TAP, each test in its own namespace (needs root, like
 * test/net/ping-tap.test.ts, and python3, tshark and dumpcap):
 *
 * - a Linux client sends 64 MiB to examples/echo and reads them back: SHA-256 match;
 * - the Atoll client fixture sends 64 MiB to a Linux echo server (tcp_tool.py serve) and reads
 *   them back: it compares the SHA-256 of both inside the image and exits 0;
 * - 1000 concurrent Linux connections to examples/echo, 4 KiB each, all echoed.
 *
 * Each capture (dumpcap on the TAP, headers only, for the transfers; the tender's --pcap, whole
 * frames with checksums checked, for the 1000 connections) must show SACK, window scaling and
 * timestamps in every SYN and SYN-ACK, no malformed packet, and no expert error on Atoll's packets.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Netns } from "../../helpers/netns.ts";
import {
  Capture,
  MIB,
  analyzeCapture,
  buildImages,
  incompleteHandshakes,
  memory,
  namespaceName,
  resultLine,
  skipReason,
  start,
  startAppliance,
  tool,
  waitForOutput,
  type Images,
} from "./fixtures/lab.ts";

const skip = skipReason();
const SIZE = 64 * MIB;
let dir = "";
let images: Images | undefined;
const namespaces: Netns[] = [];

before(() => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-tcp-linux-"));
  images = buildImages(dir);
});

after(() => {
  for (const ns of namespaces) ns.destroy();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

function namespace(what: string): Netns {
  const ns = new Netns(namespaceName(what));
  namespaces.push(ns);
  ns.addTap("tap0", "198.18.0.1/24");
  return ns;
}

interface BulkEcho {
  sent: number;
  received: number;
  sentSha256: string;
  receivedSha256: string;
  match: boolean;
  ms: number;
  error: string | null;
}

describe("TCP against Linux over a TAP", { skip }, () => {
  it("a Linux client sends 64 MiB to examples/echo and reads back the same bytes (SHA-256)", { timeout: 180_000 }, async () => {
    assert.ok(images !== undefined);
    const ns = namespace("le");
    const capture = await Capture.start(ns, "tap0", join(dir, "linux-to-atoll.pcapng"));
    const appliance = startAppliance(ns, images.echo, { ipv4: "198.18.0.2/24" });
    let status: number | null = null;
    try {
      await waitForOutput(appliance, "discard on TCP port 9");
      const result = await tool<BulkEcho>(ns, ["bulk-echo", "198.18.0.2", "7", String(SIZE)]);
      assert.equal(result.error, null);
      assert.equal(result.received, SIZE);
      assert.equal(result.receivedSha256, result.sentSha256);
      const { hwmKiB } = memory(appliance.pid);
      console.log(`linux → atoll echo: ${SIZE} bytes in ${result.ms} ms (${((SIZE * 8) / result.ms / 1e6).toFixed(3)} Gbit/s each way), sha256 ${result.sentSha256}, tender VmHWM ${hwmKiB} KiB`);
    } finally {
      status = await appliance.stop();
      await capture.stop();
      ns.destroy();
    }
    // SIGTERM ends the appliance with 128 + 15: it was still running, it had not failed.
    assert.equal(status, 143, appliance.output());
    const report = analyzeCapture(capture.file, "198.18.0.2");
    assert.equal(report.handshakes.length, 1);
    assert.deepEqual(incompleteHandshakes(report), []);
    assert.deepEqual(report.problems, []);
    // The whole transfer was captured: with the TAP's segmentation offload a frame carries up to
    // 64 KiB (dumpcap sees the frames before the kernel cuts them), so 2 × 64 MiB in both directions
    // takes at least 2 × SIZE / 64 KiB frames.
    assert.ok(report.packets > (2 * SIZE) / 65536, `${report.packets} packets captured`);
  });

  it("the Atoll client sends 64 MiB to a Linux echo server and reads back the same bytes (SHA-256 in the image)", { timeout: 180_000 }, async () => {
    assert.ok(images !== undefined);
    const ns = namespace("ae");
    const server = start(ns, ["python3", join(import.meta.dirname, "fixtures", "tcp_tool.py"), "serve", "7000"]);
    const capture = await Capture.start(ns, "tap0", join(dir, "atoll-to-linux.pcapng"));
    try {
      await waitForOutput(server, "ready");
      const client = startAppliance(ns, images.client, { ipv4: "198.18.0.2/24", args: ["198.18.0.1", "7000", String(SIZE)] });
      const status = await client.exited;
      const output = client.output();
      assert.equal(status, 0, output);
      const sent = /^sent +(\d+) bytes sha256 ([0-9a-f]{64})$/m.exec(output);
      const received = /^received +(\d+) bytes sha256 ([0-9a-f]{64})$/m.exec(output);
      assert.ok(sent !== null && received !== null, output);
      assert.deepEqual([Number(received[1]), received[2]], [SIZE, sent[2]]);
      const result = resultLine<{ ms: number; gbps: number; counters: Record<string, number> }>(output);
      console.log(`atoll → linux echo: ${SIZE} bytes in ${result.ms.toFixed(0)} ms (${result.gbps} Gbit/s each way), sha256 ${sent[2]}, retransmits ${result.counters.retransmits}`);
    } finally {
      await server.stop();
      await capture.stop();
      ns.destroy();
    }
    const report = analyzeCapture(capture.file, "198.18.0.2");
    assert.equal(report.handshakes.length, 1);
    assert.deepEqual(incompleteHandshakes(report), []);
    assert.deepEqual(report.problems, []);
  });

  it("1000 concurrent connections to examples/echo, 4 KiB each, are all echoed", { timeout: 180_000 }, async () => {
    assert.ok(images !== undefined);
    const ns = namespace("cc");
    // The TAP's queue toward the appliance holds 1000 frames by default, fewer than a burst of
    // 1000 SYNs and then their data: a SYN cookie connection whose first segments are all dropped
    // there cannot be completed (RFC 4987 §3.6; Linux resets it too). A NIC's ring would be
    // drained by the kernel in softirq; the tender drains it at its own pace.
    ns.exec(["ip", "link", "set", "tap0", "txqueuelen", "10000"]);
    const pcap = join(dir, "concurrent.pcap");
    const appliance = startAppliance(ns, images.echo, { ipv4: "198.18.0.2/24", pcap });
    let status: number | null = null;
    try {
      await waitForOutput(appliance, "discard on TCP port 9");
      const result = await tool<{ connections: number; ok: number; failures: Record<string, number>; ms: number }>(ns, ["many", "198.18.0.2", "7", "1000", "4096"]);
      const { hwmKiB } = memory(appliance.pid);
      console.log(`1000 concurrent connections: ${result.ok} echoed in ${result.ms} ms; tender VmHWM ${hwmKiB} KiB`);
      assert.deepEqual([result.ok, result.failures], [1000, {}]);
    } finally {
      // The tender writes the capture out as it stops.
      status = await appliance.stop();
      ns.destroy();
    }
    assert.equal(status, 143, appliance.output());
    const report = analyzeCapture(pcap, "198.18.0.2", { checksums: true });
    assert.equal(report.handshakes.length, 1000);
    assert.deepEqual(incompleteHandshakes(report), []);
    assert.deepEqual(report.problems, []);
  });
});

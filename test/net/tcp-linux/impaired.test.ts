/**
 * The 64 MiB echo transfers of echo.test.ts again, over an impaired wire: 3% loss, 1 ms delay,
 * 10% reordering (50% correlated) and 1% duplication, in BOTH directions, as
 * `tc qdisc add dev tap0 root netem loss 3% delay 1ms reorder 10% 50% duplicate 1%` would do to
 * one direction (and an ifb device to the other).
 *
 * netem is not in every kernel (this lab's has no CONFIG_NET_SCH_NETEM and no modules), so the
 * impairment is fixtures/impair.py, a user-space relay with netem's semantics: Linux's TAP (tap0,
 * 198.18.0.1) is held by the relay, the appliance attaches to a second TAP (tap1, no address, ARP
 * off), and every frame in either direction goes through the relay's loss, duplication, delay
 * and reordering. The capture is on tap1: exactly what the appliance sent and received.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Netns } from "../../helpers/netns.ts";
import {
  Capture,
  ISSUE_IMPAIRMENT,
  MIB,
  TCP_TOOL,
  addWire,
  analyzeCapture,
  applianceCounters,
  buildImages,
  incompleteHandshakes,
  namespaceName,
  resultLine,
  skipReason,
  start,
  startAppliance,
  startImpairment,
  tool,
  waitForOutput,
  type ImpairCounts,
  type Images,
} from "./fixtures/lab.ts";

const skip = skipReason();
const SIZE = Number(process.env.ATOLL_TCP_IMPAIRED_MIB ?? 64) * MIB;
let dir = "";
let images: Images | undefined;
const namespaces: Netns[] = [];

before(() => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-tcp-impaired-"));
  images = buildImages(dir);
});

after(() => {
  for (const ns of namespaces) ns.destroy();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

function impairedNamespace(what: string): Netns {
  const ns = new Netns(namespaceName(what));
  namespaces.push(ns);
  ns.addTap("tap0", "198.18.0.1/24");
  addWire(ns, "tap1");
  return ns;
}

/** Both directions lost, duplicated and reordered frames. */
function assertImpaired(counts: ImpairCounts): void {
  for (const direction of [counts.toAtoll, counts.toLinux]) {
    assert.ok((direction.lost ?? 0) > 0 && (direction.duplicated ?? 0) > 0 && (direction.reordered ?? 0) > 0, JSON.stringify(counts));
  }
}

function describeCounts(counts: ImpairCounts): string {
  const one = (c: Record<string, number>): string => `${c.in} frames, ${c.lost} lost, ${c.duplicated} duplicated, ${c.reordered} sent ahead`;
  return `to Atoll ${one(counts.toAtoll)}; to Linux ${one(counts.toLinux)}`;
}

describe("TCP against Linux over an impaired wire (loss 3%, delay 1 ms, reorder 10% 50%, duplicate 1%)", { skip }, () => {
  it("a Linux client sends 64 MiB to the echo service and reads back the same bytes", { timeout: 300_000 }, async () => {
    assert.ok(images !== undefined);
    const ns = impairedNamespace("li");
    const relay = await startImpairment(ns, "tap0", "tap1", ISSUE_IMPAIRMENT, 11);
    const capture = await Capture.start(ns, "tap1", join(dir, "impaired-linux-client.pcapng"));
    // examples/echo's services, with the control port that reports their counters.
    const appliance = startAppliance(ns, images.server, { tap: "tap1", ipv4: "198.18.0.2/24" });
    try {
      await waitForOutput(appliance, "control on UDP port");
      const result = await tool<{ received: number; sentSha256: string; receivedSha256: string; ms: number; error: string | null }>(
        ns,
        ["bulk-echo", "198.18.0.2", "7", String(SIZE)],
        280_000,
      );
      assert.equal(result.error, null);
      assert.equal(result.received, SIZE);
      assert.equal(result.receivedSha256, result.sentSha256);
      const tcp = (await applianceCounters(ns, "198.18.0.2"))["net.service.tcp"] ?? {};
      const counts = await relay.counts();
      console.log(
        `impaired linux → atoll echo: ${SIZE} bytes in ${result.ms} ms (${((SIZE * 8) / result.ms / 1e3).toFixed(1)} Mbit/s each way), sha256 ${result.sentSha256}; ` +
          `atoll retransmits ${tcp.retransmits}, timeouts ${tcp.timeouts}; ${describeCounts(counts)}`,
      );
      assertImpaired(counts);
      assert.ok((tcp.retransmits ?? 0) > 0, JSON.stringify(tcp));
    } finally {
      await appliance.stop();
      await relay.stop();
      await capture.stop();
      ns.destroy();
    }
    const report = analyzeCapture(capture.file, "198.18.0.2");
    assert.equal(report.handshakes.length, 1);
    assert.deepEqual(incompleteHandshakes(report), []);
    assert.deepEqual(report.problems, []);
  });

  it("the Atoll client sends 64 MiB to a Linux echo server and reads back the same bytes", { timeout: 300_000 }, async () => {
    assert.ok(images !== undefined);
    const ns = impairedNamespace("ai");
    const relay = await startImpairment(ns, "tap0", "tap1", ISSUE_IMPAIRMENT, 12);
    const server = start(ns, ["python3", TCP_TOOL, "serve", "7000"]);
    const capture = await Capture.start(ns, "tap1", join(dir, "impaired-atoll-client.pcapng"));
    try {
      await waitForOutput(server, "ready");
      const client = startAppliance(ns, images.client, { tap: "tap1", ipv4: "198.18.0.2/24", args: ["198.18.0.1", "7000", String(SIZE)] });
      const status = await client.exited;
      const output = client.output();
      assert.equal(status, 0, output);
      const result = resultLine<{ receivedBytes: number; sent: string; received: string; match: boolean; ms: number; counters: Record<string, number> }>(output);
      assert.deepEqual([result.receivedBytes, result.received, result.match], [SIZE, result.sent, true]);
      const counts = await relay.counts();
      console.log(
        `impaired atoll → linux echo: ${SIZE} bytes in ${result.ms.toFixed(0)} ms (${((SIZE * 8) / result.ms / 1e3).toFixed(1)} Mbit/s each way), sha256 ${result.sent}; ` +
          `atoll retransmits ${result.counters.retransmits}, timeouts ${result.counters.timeouts}, fast recoveries ${result.counters.fastRecoveries}; ${describeCounts(counts)}`,
      );
      assertImpaired(counts);
    } finally {
      await server.stop();
      await relay.stop();
      await capture.stop();
      ns.destroy();
    }
    const report = analyzeCapture(capture.file, "198.18.0.2");
    assert.equal(report.handshakes.length, 1);
    assert.deepEqual(incompleteHandshakes(report), []);
    assert.deepEqual(report.problems, []);
  });
});

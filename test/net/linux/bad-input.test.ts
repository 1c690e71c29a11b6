/**
 * Bad input from the wire: a battery of crafted frames (test/net/linux/fixtures/battery.ts) goes
 * onto the TAP through an AF_PACKET socket in the namespace, to the counting appliance
 * (fixtures/counting: the stack, ping, UDP echo, and its counters as JSON on UDP port 9999).
 * Truncated, oversized (cut by the TAP), wrong checksums (IP, ICMP, UDP), wrong lengths, bogus
 * IHL, bad addresses, overlapping and excess fragments, a ping of death, random bytes, and a
 * flood of 10,000 incomplete reassemblies.
 *
 * - Each phase moves the drop counters exactly as expected, frame by frame (the random frames'
 *   reasons come from an in-process stack fed the same frames; the flood's from the reassembly
 *   limits), and no other drop counter moves.
 * - Linux's own frames on the link in the meantime (the report requests, ARP, ICMP errors about
 *   our echoes) are accounted for from the tender's capture: the frames received in each phase
 *   are exactly the phase's frames plus Linux's, and none of Linux's is a drop.
 * - The tender's memory stays bounded (VmRSS/VmHWM from /proc), and afterwards the appliance
 *   still answers ping and echo. tshark finds nothing malformed among the appliance's own packets.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Netns } from "../../helpers/netns.ts";
import { EtherType, IpProtocol, MacAddress, WireError } from "atoll/wire";
import { ethernetFrame, ipv4Packet, udpDatagram } from "../../../src/lib/net/testing/virtual-link.ts";
import type { StackCounters } from "atoll/net";
import { buildBattery, counter, CRAFTED_MAC, dropKeys, expectedChanges, frameCount, OURS, writeFrames, type Phase } from "./fixtures/battery.ts";
import {
  APPLIANCE_ADDRESS,
  APPLIANCE_CIDR,
  FIXTURES,
  HOST_CIDR,
  buildAppliance,
  expertProblems,
  linkMac,
  linkStats,
  memory,
  python,
  script,
  skipReason,
  startAppliance,
  tryExec,
  tsharkFields,
  waitForPing,
  type RunningAppliance,
} from "./fixtures/lab.ts";

const skip = skipReason("python3", "tshark", "ping");
const CONTROL_PORT = 9999;
const FLOOD_IDS = 10_000;
/** Growth of the tender's resident memory the battery may cause (VmHWM after − VmRSS before). */
const MEMORY_BOUND_KIB = 64 * 1024;

interface Report {
  mac: string;
  address: string;
  counters: StackCounters;
}

let ns: Netns | undefined;
let dir = "";
let pcap = "";
let appliance: RunningAppliance | undefined;
/** For each phase sent: the reports before and after it. */
const windows: { phase: Phase; before: Report; after: Report }[] = [];

before(async () => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-linux-bad-"));
  pcap = join(dir, "service.pcap");
  const image = buildAppliance(join(FIXTURES, "counting"), dir);
  ns = new Netns(`atoll-lbad-${process.pid}`);
  ns.addTap("tap0", HOST_CIDR);
  // Room in the TAP's queue for a whole phase, so that none of it is dropped before the tender reads it.
  ns.exec(["ip", "link", "set", "tap0", "txqueuelen", "20000"]);
  appliance = startAppliance(ns, image, { ipv4: APPLIANCE_CIDR, pcap });
  await waitForPing(ns, APPLIANCE_ADDRESS, appliance);
});

after(async () => {
  await appliance?.stop();
  ns?.destroy();
  if (dir !== "" && process.env.ATOLL_KEEP_TEST_FILES === undefined) rmSync(dir, { recursive: true, force: true });
});

function report(netns: Netns): Report {
  const output = netns.exec(["python3", script("udp-query.py"), APPLIANCE_ADDRESS, String(CONTROL_PORT), "report"], { timeoutMs: 20_000 });
  return JSON.parse(output) as Report;
}

function changes(from: StackCounters, to: StackCounters): Map<string, number> {
  const moved = new Map<string, number>();
  for (const key of [...dropKeys(), "ipv4.fragmentsPending"]) {
    const change = counter(to, key) - counter(from, key);
    if (change !== 0) moved.set(key, change);
  }
  return moved;
}

const sorted = (map: Map<string, number>): [string, number][] => [...map].sort(([a], [b]) => a.localeCompare(b));

test("the battery: every bad frame lands in the drop counter expected, memory stays bounded", { skip, timeout: 120_000 }, async (t) => {
  assert.ok(ns !== undefined && appliance !== undefined);
  const first = report(ns);
  assert.equal(first.address, APPLIANCE_CIDR);
  const mac = MacAddress.parse(first.mac);
  assert.ok(!(mac instanceof WireError), `appliance MAC ${first.mac}`);
  const phases = buildBattery(mac, { floodIds: FLOOD_IDS });
  const memoryBefore = memory(appliance.pid);
  const tapBefore = linkStats(ns, "tap0");

  for (const phase of phases) {
    const file = join(dir, `${phase.name.replace(/\W+/g, "-")}.frames`);
    writeFrames(file, phase.items.flatMap((item) => item.frames));
    if (phase.linuxMtu !== undefined) ns.exec(["ip", "link", "set", "tap0", "mtu", String(phase.linuxMtu)]);
    const reportBefore = report(ns);
    const written: { sent: number; errors: Record<string, number> } = python(ns, "send-frames.py", ["tap0", file, "--batch", "64", "--pause-ms", "1"], 120_000);
    assert.deepEqual(written, { sent: frameCount(phase), errors: {} }, `${phase.name}: frames written`);
    // The report request queues behind the phase's frames, so its answer counts them all.
    const reportAfter = report(ns);
    if (phase.linuxMtu !== undefined) ns.exec(["ip", "link", "set", "tap0", "mtu", "1500"]);
    windows.push({ phase, before: reportBefore, after: reportAfter });

    const moved = changes(reportBefore.counters, reportAfter.counters);
    if (phase.name === "fragment flood") {
      // Each new datagram beyond maxReassemblies (16) evicts the oldest reassembly, counting the
      // fragments it held under reassemblyLimit (or reassemblyTimeout, had one run out first).
      const pendingBefore = reportBefore.counters.ipv4.fragmentsPending;
      const evicted = (moved.get("ipv4.reassemblyLimit") ?? 0) + (moved.get("ipv4.reassemblyTimeout") ?? 0);
      assert.equal(evicted, pendingBefore + FLOOD_IDS - 16, `flood: fragments evicted (${JSON.stringify(sorted(moved))})`);
      assert.equal(reportAfter.counters.ipv4.reassembliesPending, 16, "flood: reassemblies left pending");
      assert.equal(reportAfter.counters.ipv4.fragmentsPending, 16, "flood: fragments left pending");
      assert.deepEqual([...moved.keys()].filter((key) => !["ipv4.reassemblyLimit", "ipv4.reassemblyTimeout", "ipv4.fragmentsPending"].includes(key)), [], "flood: other counters moved");
      t.diagnostic(`fragment flood: ${FLOOD_IDS} first fragments of 1480 bytes; ${JSON.stringify(Object.fromEntries(moved))}`);
    } else {
      assert.deepEqual(sorted(moved), sorted(expectedChanges(phase)), `${phase.name}: counter changes`);
      t.diagnostic(`${phase.name}: ${frameCount(phase)} frames, ${phase.items.length} kinds; drops ${JSON.stringify(Object.fromEntries(sorted(moved)))}`);
    }
  }

  const memoryAfter = memory(appliance.pid);
  const tapAfter = linkStats(ns, "tap0");
  assert.equal(tapAfter.tx.dropped - tapBefore.tx.dropped, 0, "frames the TAP dropped before the tender read them");
  const growth = memoryAfter.hwmKiB - memoryBefore.rssKiB;
  t.diagnostic(
    `tender memory: VmRSS ${memoryBefore.rssKiB} KiB before (VmHWM ${memoryBefore.hwmKiB}), after VmRSS ${memoryAfter.rssKiB} KiB, VmHWM ${memoryAfter.hwmKiB} KiB: peak growth ${growth} KiB`,
  );
  assert.ok(growth < MEMORY_BOUND_KIB, `the tender's memory grew by ${growth} KiB (bound ${MEMORY_BOUND_KIB} KiB)`);
});

test("afterwards the appliance still answers ping and UDP echo", { skip, timeout: 60_000 }, () => {
  assert.ok(ns !== undefined);
  const ping = tryExec(ns, ["ping", "-n", "-c", "5", "-i", "0.1", "-W", "2", "-s", "2000", APPLIANCE_ADDRESS]);
  assert.match(ping.output, /5 packets transmitted, 5 received, 0% packet loss/, ping.output);
  const echo = python<{ received: number; failed_sizes: number[] }>(ns, "udp-echo-client.py", [APPLIANCE_ADDRESS, "7", "--sizes", "0,1,1472,1473,8000", "--timeout", "2"]);
  assert.deepEqual({ received: echo.received, failed: echo.failed_sizes }, { received: 5, failed: [] });
});

test(
  "a datagram from the wire with our own address as its source is dropped as badSource",
  { skip, timeout: 30_000 },
  () => {
    assert.ok(ns !== undefined);
    const reportBefore = report(ns);
    const mac = MacAddress.parse(reportBefore.mac);
    assert.ok(!(mac instanceof WireError));
    // To port 9 (closed), not 7: to the echo, this datagram would start an endless echo to itself.
    const spoofed = ethernetFrame(mac, CRAFTED_MAC, EtherType.Ipv4, ipv4Packet({ src: OURS, dst: OURS, protocol: IpProtocol.Udp }, udpDatagram(OURS, OURS, 40000, 9, new Uint8Array(4))));
    const file = join(dir, "own-source.frames");
    writeFrames(file, [spoofed]);
    python(ns, "send-frames.py", ["tap0", file]);
    const reportAfter = report(ns);
    assert.deepEqual(sorted(changes(reportBefore.counters, reportAfter.counters)), [["ipv4.badSource", 1]]);
  },
);

test("the capture accounts for every frame, and the appliance sent nothing malformed", { skip, timeout: 120_000 }, async (t) => {
  assert.ok(ns !== undefined && appliance !== undefined);
  assert.ok(windows.length > 0, "the battery ran");
  assert.equal(await appliance.stop(), 143, appliance.output());
  const linuxMac = linkMac(ns, "tap0");
  const applianceMac = windows[0]?.before.mac ?? "";

  // Our own packets, among them the ICMP errors quoting bad input, are well formed. (The bad
  // input itself is malformed on purpose.)
  assert.equal(expertProblems(pcap, `eth.src == ${applianceMac}`), "", "malformed or erroneous packets sent by the appliance");

  // The frames the appliance read, in order; a report's ethernet.rxFrames counts them up to and
  // including its own request, so each phase's frames lie between its two reports' requests.
  const received = tsharkFields(pcap, `eth.src != ${applianceMac}`, ["frame.number", "eth.src", "udp.dstport", "arp.opcode", "icmp.type"]);
  const isReportRequest = (frame: string[] | undefined): boolean => frame !== undefined && frame[1] === linuxMac && frame[2] === String(CONTROL_PORT);
  for (const { phase, before: reportBefore, after: reportAfter } of windows) {
    const from = reportBefore.counters.ethernet.rxFrames;
    const to = reportAfter.counters.ethernet.rxFrames;
    assert.ok(isReportRequest(received[from - 1]) && isReportRequest(received[to - 1]), `${phase.name}: the capture's frames ${from} and ${to} are the report requests`);
    const inWindow = received.slice(from, to);
    const linux = inWindow.filter(([, src]) => src === linuxMac);
    const crafted = inWindow.filter(([, src]) => src !== linuxMac);
    assert.equal(crafted.length, frameCount(phase), `${phase.name}: crafted frames received`);
    // What Linux sent meanwhile: the report request, ARP, ICMP errors about our echoes; no drops (checked above).
    const kinds = linux.map(([, , port, arp, icmp]) => (port === String(CONTROL_PORT) ? "report" : arp !== "" ? `arp ${arp}` : icmp !== "" ? `icmp ${icmp}` : "other"));
    assert.deepEqual(kinds.filter((kind) => !["report", "arp 1", "arp 2", "icmp 3"].includes(kind)), [], `${phase.name}: Linux's frames`);
    t.diagnostic(`${phase.name}: ${crafted.length} crafted + ${linux.length} from Linux (${kinds.join(", ")}) = ${to - from} = the change of ethernet.rxFrames`);
  }
});

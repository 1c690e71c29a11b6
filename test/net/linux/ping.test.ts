/**
 * examples/ping against Linux's ping(8) over a TAP in a private namespace: every size from 0 to
 * 65000 bytes of ICMP data (Linux fragments the large requests and the appliance reassembles
 * them; the appliance fragments its replies and Linux reassembles them), a 10,000-request flood
 * with no loss, and two captures (the tender's --pcap and Linux's own on tap0) in which tshark
 * finds nothing malformed.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exampleImage } from "../../helpers/cli.ts";
import { Netns } from "../../helpers/netns.ts";
import {
  APPLIANCE_ADDRESS,
  APPLIANCE_CIDR,
  HOST_CIDR,
  expertProblems,
  linkMac,
  startAppliance,
  tryExec,
  tsharkFields,
  waitFor,
  skipReason,
  waitForPing,
  type RunningAppliance,
} from "./fixtures/lab.ts";

const skip = skipReason("ping", "tshark");
const SIZES = [0, 56, 1472, 1473, 8000, 65000];
const PINGS_PER_SIZE = 5;
const FLOOD = 10_000;

let ns: Netns | undefined;
let dir = "";
let appliance: RunningAppliance | undefined;
let capture: ReturnType<Netns["spawn"]> | undefined;
let pcap = "";
let linuxPcap = "";
let applianceMac = "";

before(async () => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-linux-ping-"));
  pcap = join(dir, "service.pcap");
  linuxPcap = join(dir, "tap0.pcapng");
  ns = new Netns(`atoll-lping-${process.pid}`);
  ns.addTap("tap0", HOST_CIDR);
  // Linux's view of the link, next to the tender's.
  const tshark = ns.spawn(["tshark", "-n", "-B", "64", "-i", "tap0", "-w", linuxPcap]);
  capture = tshark;
  await waitFor("tshark to capture on tap0", () => tshark.output().includes("Capturing on"), 20_000);
  appliance = startAppliance(ns, exampleImage("ping"), { ipv4: APPLIANCE_CIDR, pcap });
  await waitForPing(ns, APPLIANCE_ADDRESS, appliance);
  applianceMac = ns.exec(["ip", "neigh", "show", APPLIANCE_ADDRESS]).split(/\s+/)[4] ?? "";
});

after(async () => {
  await appliance?.stop();
  ns?.destroy();
  if (dir !== "" && process.env.ATOLL_KEEP_TEST_FILES === undefined) rmSync(dir, { recursive: true, force: true });
});

test(`ping from Linux gets every reply for ${SIZES.join(", ")} bytes of data`, { skip, timeout: 60_000 }, async () => {
  assert.ok(ns !== undefined && capture !== undefined);
  for (const size of SIZES) {
    const { status, output } = tryExec(ns, ["ping", "-n", "-c", String(PINGS_PER_SIZE), "-i", "0.05", "-W", "5", "-s", String(size), APPLIANCE_ADDRESS]);
    assert.equal(status, 0, `ping -s ${size}:\n${output}`);
    assert.match(output, new RegExp(`${PINGS_PER_SIZE} packets transmitted, ${PINGS_PER_SIZE} received, 0% packet loss`), `ping -s ${size}`);
    // ping(8) checks the returned data itself and says so when a byte differs or a reply repeats.
    assert.doesNotMatch(output, /wrong data|DUP!|truncated/i, `ping -s ${size}`);
    if (size >= 8) assert.match(output, new RegExp(`${size + 8} bytes from ${APPLIANCE_ADDRESS.replace(/\./g, "\\.")}`), `ping -s ${size}: reply size`);
  }
  // Linux's capture covers these pings, not the flood, which a capture on two busy cores may not keep up with.
  await new Promise((resolve) => setTimeout(resolve, 500)); // for dumpcap to take in the last frames
  capture.kill("SIGINT");
  await capture.exited;
});

test(`ping -f -c ${FLOOD} gets all ${FLOOD} replies`, { skip, timeout: 90_000 }, (t) => {
  assert.ok(ns !== undefined);
  const { status, output } = tryExec(ns, ["ping", "-n", "-q", "-f", "-c", String(FLOOD), "-w", "60", APPLIANCE_ADDRESS], 80_000);
  t.diagnostic(output.trim().split("\n").slice(-2).join(" | "));
  assert.equal(status, 0, output);
  assert.match(output, new RegExp(`${FLOOD} packets transmitted, ${FLOOD} received, 0% packet loss`));
});

test("tshark finds nothing malformed in either capture; replies above the MTU went out in fragments", { skip, timeout: 120_000 }, async () => {
  assert.ok(ns !== undefined && appliance !== undefined);
  assert.equal(await appliance.stop(), 143, appliance.output());
  assert.match(applianceMac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, "the appliance's MAC, from Linux's neighbour table");
  const linuxMac = linkMac(ns, "tap0");

  assert.equal(expertProblems(pcap), "", "malformed or erroneous packets in the tender's capture");
  assert.equal(expertProblems(linuxPcap), "", "malformed or erroneous packets in Linux's capture");

  // Every request got its reply in the capture: the flood, the warm-up pings and each size.
  const requests = tsharkFields(pcap, `icmp.type == 8 && eth.src == ${linuxMac}`, ["icmp.seq"]).length;
  const replies = tsharkFields(pcap, `icmp.type == 0 && eth.src == ${applianceMac} && icmp.resp_to`, ["icmp.seq"]).length;
  assert.equal(replies, requests, "echo replies matched to requests by tshark");
  assert.ok(requests >= FLOOD + SIZES.length * PINGS_PER_SIZE, `${requests} requests`);
  // Linux saw on tap0 the requests and replies of the sizes test (and of the warm-up, whose first
  // attempt may predate the appliance); after the first reply, every request has its reply.
  const linuxRequests = tsharkFields(linuxPcap, `icmp.type == 8 && eth.src == ${linuxMac}`, ["frame.number", "icmp.resp_in"]);
  const firstAnswered = linuxRequests.findIndex(([, answer]) => answer !== "");
  const unanswered = linuxRequests.slice(firstAnswered).filter(([, answer]) => answer === "").map(([frame]) => frame);
  assert.deepEqual(unanswered, [], "requests without a reply in Linux's capture (frame numbers)");
  const linuxReplies = tsharkFields(linuxPcap, `icmp.type == 0 && eth.src == ${applianceMac} && icmp.resp_to`, ["icmp.seq"]).length;
  assert.ok(linuxReplies >= SIZES.length * PINGS_PER_SIZE, `${linuxReplies} replies in Linux's capture`);

  // Replies of each size, reassembled by tshark, and their fragments: ours to Linux, Linux's to us.
  const replySizes = tsharkFields(pcap, `icmp.type == 0 && eth.src == ${applianceMac}`, ["ip.len", "ip.reassembled.length"]).map(
    ([ipLength, reassembled]) => (reassembled ? Number(reassembled) : Number(ipLength) - 20) - 8,
  );
  for (const size of SIZES) {
    const sized = replySizes.filter((replySize) => replySize === size).length;
    // 56 bytes is also the flood's size and the warm-up's.
    if (size === 56) assert.ok(sized >= PINGS_PER_SIZE + FLOOD, `${sized} replies with 56 bytes of data`);
    else assert.equal(sized, PINGS_PER_SIZE, `replies with ${size} bytes of data`);
  }
  const ourFragments = tsharkFields(pcap, `eth.src == ${applianceMac} && (ip.flags.mf == 1 || ip.frag_offset > 0)`, ["ip.id"]).length;
  const theirFragments = tsharkFields(pcap, `eth.src == ${linuxMac} && (ip.flags.mf == 1 || ip.frag_offset > 0)`, ["ip.id"]).length;
  // 1480 bytes of the ICMP message in each fragment (MTU 1500): 2 for 1473 bytes of data, 6 for 8000, 44 for 65000.
  const fragments = PINGS_PER_SIZE * SIZES.filter((size) => size + 8 > 1480).reduce((sum, size) => sum + Math.ceil((size + 8) / 1480), 0);
  assert.equal(ourFragments, fragments, "fragments of our replies");
  assert.equal(theirFragments, fragments, "fragments of Linux's requests");
  // No fragment of ours exceeds the MTU.
  const largest = Math.max(...tsharkFields(pcap, `eth.src == ${applianceMac}`, ["frame.len"]).map(([length]) => Number(length)));
  assert.ok(largest <= 1514, `largest frame sent: ${largest} bytes`);
});

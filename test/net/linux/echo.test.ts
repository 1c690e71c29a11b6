/**
 * examples/echo's UDP echo (RFC 862, port 7) against Linux clients over a TAP in a private
 * namespace: 1,000 datagrams of random sizes and contents through socat, one at a time, each
 * back byte for byte; 8,000-byte datagrams (Linux fragments them, the appliance reassembles,
 * answers in fragments, Linux reassembles); and the edge sizes (0 bytes, one MTU, one byte more,
 * the 65,507-byte maximum) from a Python client. tshark finds nothing malformed in the capture.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exampleImage } from "../../helpers/cli.ts";
import { Netns } from "../../helpers/netns.ts";
import { SeededRandom } from "../../../src/lib/net/testing/virtual-link.ts";
import {
  APPLIANCE_ADDRESS,
  APPLIANCE_CIDR,
  HOST_CIDR,
  expertProblems,
  linkMac,
  python,
  skipReason,
  startAppliance,
  tsharkFields,
  waitForPing,
  type RunningAppliance,
} from "./fixtures/lab.ts";

const skip = skipReason("socat", "python3", "tshark", "ping");
const ECHO_PORT = 7;

let ns: Netns | undefined;
let dir = "";
let pcap = "";
let appliance: RunningAppliance | undefined;
let applianceMac = "";
const clients = new Set<ChildProcessWithoutNullStreams>();

before(async () => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-linux-echo-"));
  pcap = join(dir, "service.pcap");
  ns = new Netns(`atoll-lecho-${process.pid}`);
  ns.addTap("tap0", HOST_CIDR);
  appliance = startAppliance(ns, exampleImage("echo"), { ipv4: APPLIANCE_CIDR, pcap });
  await waitForPing(ns, APPLIANCE_ADDRESS, appliance);
  applianceMac = ns.exec(["ip", "neigh", "show", APPLIANCE_ADDRESS]).split(/\s+/)[4] ?? "";
});

after(async () => {
  for (const client of clients) client.kill("SIGKILL");
  await appliance?.stop();
  ns?.destroy();
  if (dir !== "" && process.env.ATOLL_KEEP_TEST_FILES === undefined) rmSync(dir, { recursive: true, force: true });
});

/**
 * socat between a pipe and a connected UDP socket: each write to its stdin becomes one datagram
 * (one write, one read of at most -b bytes), each datagram received is written to its stdout.
 * Sends the payloads one at a time and waits for each echo; returns what differs.
 */
async function throughSocat(netns: Netns, payloads: readonly Uint8Array[], timeoutMs = 3000): Promise<string[]> {
  const child = spawn("ip", ["netns", "exec", netns.name, "socat", "-b", "65536", "-T", "60", "STDIO", `UDP4:${APPLIANCE_ADDRESS}:${ECHO_PORT}`], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  clients.add(child);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let wake: (() => void) | undefined;
  child.stdout.on("data", (chunk: Buffer) => {
    pending.push(chunk);
    pendingBytes += chunk.length;
    wake?.();
  });
  const problems: string[] = [];
  try {
    for (const [index, payload] of payloads.entries()) {
      child.stdin.write(payload);
      const deadline = Date.now() + timeoutMs;
      while (pendingBytes < payload.length && Date.now() < deadline && child.exitCode === null) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
      const echoed = Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      if (!echoed.equals(Buffer.from(payload.buffer, payload.byteOffset, payload.length))) {
        problems.push(`datagram ${index} (${payload.length} bytes): ${echoed.length === 0 ? "no echo" : `echo of ${echoed.length} bytes differs`}`);
        if (problems.length >= 10 || child.exitCode !== null) break;
      }
    }
  } finally {
    child.kill("SIGKILL");
    clients.delete(child);
  }
  if (problems.length > 0 && stderr !== "") problems.push(`socat: ${stderr.trim()}`);
  return problems;
}

function randomPayloads(seed: number, count: number, size: (random: SeededRandom) => number): Uint8Array[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, () => {
    const payload = new Uint8Array(size(random));
    random.fill(payload);
    return payload;
  });
}

test("1,000 datagrams of 1 to 1473 bytes come back byte for byte through socat", { skip, timeout: 120_000 }, async () => {
  assert.ok(ns !== undefined);
  // Random sizes, with the edges of one frame among them (1 byte, 1472 = the largest unfragmented, 1473).
  const payloads = randomPayloads(862, 1000, (random) => [1, 1472, 1473][random.below(40)] ?? 1 + random.below(1472));
  assert.deepEqual(await throughSocat(ns, payloads), []);
});

test("8,000-byte datagrams both ways: fragmented by Linux, reassembled, echoed in fragments, reassembled by Linux", { skip, timeout: 60_000 }, async () => {
  assert.ok(ns !== undefined);
  const payloads = randomPayloads(8000, 20, () => 8000);
  assert.deepEqual(await throughSocat(ns, payloads), []);
});

test("edge sizes from a Python client: 0, 1, 1472, 1473, 8000 and 65,507 bytes", { skip, timeout: 60_000 }, () => {
  assert.ok(ns !== undefined);
  const result = python<{ sent: number; received: number; mismatched: number; timeouts: number; failed_sizes: number[] }>(ns, "udp-echo-client.py", [
    APPLIANCE_ADDRESS, String(ECHO_PORT), "--sizes", "0,1,1472,1473,8000,65507", "--repeat", "3", "--timeout", "2",
  ]);
  assert.deepEqual({ received: result.received, mismatched: result.mismatched, failed: result.failed_sizes }, { received: 18, mismatched: 0, failed: [] });
});

test("the capture: nothing malformed, every datagram echoed, 8,000-byte datagrams in fragments both ways", { skip, timeout: 120_000 }, async () => {
  assert.ok(ns !== undefined && appliance !== undefined);
  assert.equal(await appliance.stop(), 143, appliance.output());
  const linuxMac = linkMac(ns, "tap0");
  assert.equal(expertProblems(pcap), "", "malformed or erroneous packets in the tender's capture");
  // Whole datagrams (tshark reassembles the fragments), by direction and UDP length.
  const datagrams = tsharkFields(pcap, `udp.port == ${ECHO_PORT}`, ["eth.src", "udp.length"]);
  const lengths = (mac: string): number[] => datagrams.filter(([src]) => src === mac).map(([, length]) => Number(length) - 8).sort((a, b) => a - b);
  const sent = lengths(linuxMac);
  const echoed = lengths(applianceMac);
  assert.equal(sent.length, 1000 + 20 + 18);
  assert.deepEqual(echoed, sent, "the lengths echoed are the lengths sent");
  for (const [size, count] of [[8000, 20 + 3], [65507, 3], [0, 3]] as const) {
    assert.equal(echoed.filter((length) => length === size).length, count, `${size}-byte echoes`);
  }
  const fragments = (mac: string): number => tsharkFields(pcap, `eth.src == ${mac} && (ip.flags.mf == 1 || ip.frag_offset > 0)`, ["ip.id"]).length;
  // Per 8,000-byte datagram (8,008 bytes of UDP) 6 fragments, per 65,507 45, per 1473 2: the same both ways.
  const expected = 23 * 6 + 3 * 45 + 2 * sent.filter((length) => length === 1473).length;
  assert.equal(fragments(linuxMac), expected, "fragments from Linux");
  assert.equal(fragments(applianceMac), expected, "fragments from the appliance");
});

/**
 * One persistent TAP (`ip tuntap add`), several tenders in turn (issue #12, finding 13). The node
 * tender turns on checksum and segmentation offload (TUNSETOFFLOAD) by default, and that state
 * belongs to the interface, not to the fd: it outlives the tender. spt, which moves plain frames,
 * then received every Linux TCP segment with a partial checksum and dropped it. Each tender now
 * sets the offload state it needs when it opens the TAP, so a Linux TCP client is answered by
 * each of: node (offloads on), spt after it, node with --offload none after that, and node
 * (offloads on) again followed by spt.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ATOLL, exampleImage } from "../helpers/cli.ts";
import { canUseNamespaces, Netns, waitFor } from "../helpers/netns.ts";

const skip = canUseNamespaces();
const CLIENT = join(import.meta.dirname, "..", "net", "tcp", "fixtures", "linux-client.mjs");
let ns: Netns | undefined;

before(() => {
  if (skip !== false) return;
  ns = new Netns(`atoll-handover-${process.pid}`);
  ns.addTap("tap0", "198.18.0.1/24");
});

after(() => {
  ns?.destroy();
});

/** Runs the echo appliance on `tender`, echoes 64 KiB through TCP port 7 from Linux, stops it. */
async function echoThroughTcp(tender: "node" | "spt", extra: readonly string[] = []): Promise<void> {
  assert.ok(ns !== undefined);
  ns.exec(["ip", "neigh", "flush", "dev", "tap0"]);
  const appliance = ns.spawn([
    process.execPath, ATOLL, "run", exampleImage("echo"), "--tender", tender,
    "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2/24", ...extra,
  ]);
  try {
    await waitFor("the appliance to start", () => appliance.output().includes("discard on TCP port 9"));
    const output = ns.exec([process.execPath, CLIENT, "198.18.0.2", "tcp", "7", String(64 * 1024)], { timeoutMs: 20_000 });
    const result = JSON.parse(output.trim().split("\n").at(-1) ?? "{}") as { received?: number; match?: boolean; error?: string };
    assert.deepEqual([result.received, result.match], [64 * 1024, true], `${tender} ${extra.join(" ")}: ${output}`);
  } finally {
    appliance.kill("SIGTERM");
    assert.equal(await appliance.exited, 143, appliance.output());
  }
}

test("node (offloads on), then spt, then node --offload none, then node and spt again, on one TAP: each answers Linux TCP", { skip }, async () => {
  await echoThroughTcp("node");
  await echoThroughTcp("spt");
  await echoThroughTcp("node", ["--offload", "service=none"]);
  await echoThroughTcp("node", ["--offload", "service=all"]);
  await echoThroughTcp("spt");
});

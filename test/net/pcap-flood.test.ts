/**
 * --pcap under a flood (issue #12, finding 10): `ping -f` from Linux over a TAP in a private
 * namespace sends ~4 MB of frames in a few seconds. With max=64K a single capture stops at
 * 64 KiB with one stderr line and the appliance goes on answering; with files=3 the capture
 * rotates through three files of at most 64 KiB each (on spt the sealed appliance empties a
 * reused file with ftruncate, which its seccomp filter allows on capture fds only). On each tender.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ATOLL, exampleImage } from "../helpers/cli.ts";
import { canUseNamespaces, Netns, run, waitFor } from "../helpers/netns.ts";

const skip = canUseNamespaces();
let ns: Netns | undefined;
let dir = "";
const CAP = 65536;

before(() => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-pcap-flood-"));
  ns = new Netns(`atoll-pcapf-${process.pid}`);
  ns.addTap("tap0", "198.18.0.1/24");
});

after(() => {
  ns?.destroy();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** Runs the ping appliance with `--pcap service=<pcapValue>` through a ping flood; returns its stderr and stdout. */
async function flood(tender: "node" | "spt", pcapValue: string): Promise<string> {
  assert.ok(ns !== undefined);
  ns.exec(["ip", "neigh", "flush", "dev", "tap0"]);
  const appliance = ns.spawn([
    process.execPath, ATOLL, "run", exampleImage("ping"), "--tender", tender,
    "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2/24", "--pcap", `service=${pcapValue}`,
  ]);
  await waitFor("the appliance to start", () => appliance.output().includes("answering ARP and ping"));
  const output = ns.exec(["ping", "-f", "-c", "2000", "-s", "1000", "-w", "20", "198.18.0.2"]);
  const received = /(\d+) received/.exec(output)?.[1];
  assert.ok(received !== undefined && Number(received) >= 1900, `the appliance kept answering: ${output}`);
  appliance.kill("SIGTERM");
  assert.equal(await appliance.exited, 143, appliance.output());
  return appliance.output();
}

for (const tender of ["node", "spt"] as const) {
  test(`${tender}: a flood stops a max=64K capture at 64 KiB with one line; the appliance goes on`, { skip }, async () => {
    const pcap = join(dir, `stop-${tender}.pcap`);
    const output = await flood(tender, `${pcap},max=64K`);
    assert.ok(statSync(pcap).size <= CAP && statSync(pcap).size > CAP - 2000, `size ${statSync(pcap).size}`);
    const stops = output.split("\n").filter((line) => line.includes("reached its limit"));
    assert.deepEqual(stops, [
      `atoll: pcap ${pcap} reached its limit of ${CAP} bytes: capture stopped (use --pcap service=${pcap},max=<size> to raise it or ,files=<n> to rotate)`,
    ]);
    assert.equal(run("tshark", ["-r", pcap, "-Y", "_ws.malformed"]).trim(), "", "a whole, readable capture");
  });

  test(`${tender}: a flood rotates a max=64K,files=3 capture through three files of at most 64 KiB`, { skip }, async () => {
    const pcap = join(dir, `ring-${tender}.pcap`);
    const output = await flood(tender, `${pcap},max=64K,files=3`);
    assert.doesNotMatch(output, /reached its limit/);
    assert.equal(existsSync(`${pcap}.3`), false);
    const lastSequences: number[] = [];
    for (const path of [pcap, `${pcap}.1`, `${pcap}.2`]) {
      assert.ok(statSync(path).size <= CAP, `${path}: ${statSync(path).size} bytes`);
      const seqs = run("tshark", ["-r", path, "-Y", "icmp.type == 8", "-T", "fields", "-e", "icmp.seq"]).trim().split("\n").map(Number);
      assert.ok(seqs.length > 10, `${path} holds echo requests`);
      lastSequences.push(Math.max(...seqs));
    }
    // ~4 MB went through 192 KiB of files: the ring wrapped, so all three hold late requests.
    assert.ok(Math.min(...lastSequences) > 1000, `the ring was overwritten: last sequence numbers ${lastSequences.join(", ")}`);
  });
}

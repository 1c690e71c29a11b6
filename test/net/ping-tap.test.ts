/**
 * The ping appliance against Linux over a TAP in a private namespace, on each tender (the same
 * image: the base ABI is the only seam): `ping -c 20` gets 20 replies, and the --pcap capture
 * (on spt written by the sealed appliance process through an fd its launcher opened) parses with
 * tshark, holds every request and reply, and nothing malformed.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ATOLL, exampleImage } from "../helpers/cli.ts";
import { canUseNamespaces, Netns, run, waitFor } from "../helpers/netns.ts";

const skip = canUseNamespaces();
let ns: Netns | undefined;
let dir = "";

before(() => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-ping-"));
  ns = new Netns(`atoll-ping-${process.pid}`);
  ns.addTap("tap0", "198.18.0.1/24");
});

after(() => {
  ns?.destroy();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

for (const tender of ["node", "spt"] as const) {
  test(`${tender}: ping -c 20 from Linux gets 20 replies; the pcap holds them all`, { skip }, async () => {
    assert.ok(ns !== undefined);
    const image = exampleImage("ping");
    const pcap = join(dir, `service-${tender}.pcap`);
    // Linux forgets the previous appliance's MAC, so each run starts with ARP.
    ns.exec(["ip", "neigh", "flush", "dev", "tap0"]);
    const appliance = ns.spawn([
      process.execPath, ATOLL, "run", image, "--tender", tender,
      "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2/24", "--pcap", `service=${pcap}`,
    ]);
    await waitFor("the appliance to start", () => appliance.output().includes("answering ARP and ping"));

    const output = ns.exec(["ping", "-c", "20", "-i", "0.05", "-W", "2", "198.18.0.2"]);
    assert.match(output, /20 packets transmitted, 20 received, 0% packet loss/);

    appliance.kill("SIGTERM");
    // SIGTERM ends the appliance with 128 + 15, after the capture was flushed.
    assert.equal(await appliance.exited, 143, appliance.output());

    const fields = run("tshark", ["-r", pcap, "-T", "fields", "-e", "icmp.type", "-e", "arp.opcode"]).trim().split("\n");
    const count = (predicate: (columns: string[]) => boolean): number => fields.map((line) => line.split("\t")).filter(predicate).length;
    assert.equal(count(([icmp]) => icmp === "8"), 20, "echo requests in capture");
    assert.equal(count(([icmp]) => icmp === "0"), 20, "echo replies in capture");
    assert.ok(count(([, arp]) => arp === "2") >= 1, "an ARP reply in capture");
    assert.equal(run("tshark", ["-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= error"]).trim(), "", "malformed or erroneous packets");
    const replies = run("tshark", ["-r", pcap, "-Y", "icmp.type == 0 && icmp.resp_to", "-T", "fields", "-e", "icmp.seq"]).trim().split("\n");
    assert.equal(replies.length, 20, "every reply matched to its request by tshark");
  });
}

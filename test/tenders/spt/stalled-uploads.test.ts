/**
 * Issue #12 finding 1, the second attack: real clients that `POST` 1 MB to `/echo` and never read
 * the answer. Each one fills the appliance's send buffer with the echo and its receive buffer with
 * the rest of the upload; before the TCP budget ~250 KB each, and two waves of ~4,000 killed the
 * appliance. Here 250 such clients (from one address, under maxConnectionsPerSource) stall for
 * 20 s against examples/website on `--tender spt --memory 64`, while curl from another address
 * keeps fetching `/`: the TCP budget's memory marks bite (pressure: windows and buffers stop
 * growing, new connections displace stalled ones; high: stalled ones are reset), the appliance
 * stays up with bounded memory and serves the real client, and is back at rest afterwards.
 *
 * What 250 uploads in progress hold is live, not garbage (a full collection at the peak freed
 * nothing): TCP's rings (bounded by memoryHigh: over it, data that would grow a ring is dropped
 * for the peer to retransmit), the HTTP server's 128 requests in flight, and the heap. Before
 * that drop, windows offered before the pressure began let TCP hold twice its high mark, and the
 * appliance ran out of its 64 MiB (which bounds array buffers too) in two runs of three.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ATOLL, exampleImage } from "../../helpers/cli.ts";
import { Netns } from "../../helpers/netns.ts";
import { APPLIANCE_ADDRESS, HOST_ADDRESS, HOST_CIDR, memory, probeUntil, script, skipReason, tryExec, waitFor, waitForPing } from "../../net/linux/fixtures/lab.ts";

const skip = skipReason("python3", "curl");
/** The uploaders' own address, so that the per-source cap they share does not hold curl back. */
const UPLOADERS_ADDRESS = "198.18.0.3";
const UPLOADERS = 250;
const STALL_SECONDS = 20;
/**
 * What TCP accounts stays within memoryHigh (16 MiB) plus what one operation allocates before the
 * budget sheds connections or drops data: the figures its log lines give.
 */
const TCP_MEMORY_BOUND_KIB = 17 * 1024;
/**
 * Resident memory may grow by this much: --memory 64 bounds the heap and array buffers together
 * (RLIMIT_DATA over what the process held at boot); the rest is slack for what that does not
 * count. Measured: 75-100 MiB.
 */
const MEMORY_GROWTH_BOUND_KIB = 192 * 1024;

let ns: Netns | undefined;

/** The TCP layer's last word is that it is back at rest: no limit has bitten since. */
function atRest(output: string): boolean {
  return output.lastIndexOf("tcp: back at rest:") > output.lastIndexOf("WARN  tcp:");
}

before(() => {
  if (skip !== false) return;
  ns = new Netns(`tb-stall-${process.pid}`);
  ns.addTap("tap0", HOST_CIDR);
  ns.exec(["ip", "addr", "add", `${UPLOADERS_ADDRESS}/24`, "dev", "tap0"]);
});

after(() => {
  ns?.destroy();
});

function fetchOnce(namespace: Netns): boolean {
  return tryExec(namespace, ["curl", "-s", "-f", "-m", "3", "--interface", HOST_ADDRESS, "-o", "/dev/null", `http://${APPLIANCE_ADDRESS}/`], 10_000).status === 0;
}

test("website on spt --memory 64 holds out against 250 uploads that never read their answer", { skip, timeout: 120_000 }, async () => {
  assert.ok(ns !== undefined);
  const namespace = ns;
  const appliance = namespace.spawn([
    process.execPath, ATOLL, "run", exampleImage("website"), "--tender", "spt", "--memory", "64",
    "--net", "service=tap:tap0", "--ipv4", `service=${APPLIANCE_ADDRESS}/24`, "--log", "http.access:quiet",
  ]);
  try {
    await waitForPing(namespace, APPLIANCE_ADDRESS);
    const cliPid = appliance.pid ?? assert.fail("no pid");
    let pid = 0;
    await waitFor("the appliance process", () => {
      // /proc rather than pgrep: procps is not among the packages CI installs.
      pid = Number(readFileSync(`/proc/${cliPid}/task/${cliPid}/children`, "utf8").trim().split(" ")[0] || 0);
      return pid > 0;
    });
    assert.ok(fetchOnce(namespace), "served before");
    const baseline = memory(pid).rssKiB;
    const uploads = namespace.spawn(["python3", script("stalled-posts.py"), APPLIANCE_ADDRESS, "80", String(UPLOADERS), String(1 << 20), String(STALL_SECONDS), "--bind", UPLOADERS_ADDRESS]);
    const { ok, failed, worstStreak } = await probeUntil(uploads.exited, () => fetchOnce(namespace));
    const ended = Date.now();
    assert.equal(await uploads.exited, 0, uploads.output());
    const stats = JSON.parse(uploads.output().trim().split("\n").pop() ?? "{}") as { connected?: number; sent?: number };
    const peak = memory(pid);
    const report = `client ${ok} ok, ${failed} failed (worst streak ${worstStreak}); RSS ${baseline} KiB before, peak ${peak.hwmKiB} KiB; uploads ${uploads.output().trim()}`;
    assert.ok((stats.connected ?? 0) >= UPLOADERS * 0.9 && (stats.sent ?? 0) > 20 << 20, `the uploads got going: ${report}`);
    assert.equal(appliance.exitCode, null, `the appliance is alive: ${appliance.output()}`);
    assert.ok(ok / (ok + failed) >= 0.9 && worstStreak <= 3, report);
    assert.ok(peak.hwmKiB - baseline <= MEMORY_GROWTH_BOUND_KIB, report);
    assert.match(appliance.output(), /tcp: .*(memoryPressure|memory high mark|memory pressure)/, "the memory marks bit, and were logged");
    const accounted = [...appliance.output().matchAll(/tcp: .* connections, (\d+) KiB/g)].map((match) => Number(match[1]));
    assert.ok(accounted.length > 0 && Math.max(...accounted) <= TCP_MEMORY_BOUND_KIB, `TCP accounted at most ${Math.max(...accounted)} KiB`);
    await waitFor("the TCP layer back at rest", () => atRest(appliance.output()), 30_000);
    console.log(`# ${report}; TCP accounted at most ${Math.max(...accounted)} KiB; back at rest within ${Date.now() - ended} ms of the uploads' end`);
    assert.ok(fetchOnce(namespace), "served after");
  } finally {
    appliance.kill("SIGTERM");
    await appliance.exited;
  }
});

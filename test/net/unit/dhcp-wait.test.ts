/**
 * openStack on a link without a DHCP server: the appliance must not wait in silence. It warns
 * after 5 s and then at growing gaps, naming --ipv4, while the client keeps sending DISCOVERs
 * (RFC 2131 §4.1). Runs on the FakeBase's virtual clock: a simulated hour takes no real time.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sleep } from "atoll";
import { DHCP_WAIT_FIRST_WARNING_MS, DHCP_WAIT_MAX_WARNING_GAP_MS, openStack } from "atoll/net";
import { boot } from "../../../src/lib/boot/index.ts";
import { DhcpRepr, Ipv4Repr, IpProtocol, UdpRepr, WireError } from "atoll/wire";
import { FakeBase, type FakeNet } from "../../helpers/fake-base.ts";

/** Virtual times (ms since the first DISCOVER) at which DISCOVERs left the device. */
function discoverTimes(net: FakeNet, sentAt: readonly number[]): number[] {
  const times: number[] = [];
  net.outbound.forEach((frame, index) => {
    const header = Ipv4Repr.parse(frame.subarray(14));
    if (header instanceof WireError || header.protocol !== IpProtocol.Udp) return;
    const udp = UdpRepr.parse(frame.subarray(34, 34 + header.payloadLength), header.src, header.dst);
    if (udp instanceof WireError || udp.dstPort !== 67) return;
    const message = DhcpRepr.parse(udp.payload);
    if (!(message instanceof WireError) && message.messageType === "discover") times.push(sentAt[index] ?? -1);
  });
  return times;
}

describe("openStack without a DHCP server", () => {
  it("warns at 5 s and then at doubling gaps (at most 5 min), naming --ipv4, and keeps discovering", async () => {
    const base = new FakeBase();
    const net = base.addNet("service");
    const hourMs = 3_600_000;
    // When each outbound frame was sent, on the virtual clock (ms).
    const sentAt: number[] = [];
    let startNs = 0;
    base.onYield = () => {
      while (sentAt.length < net.outbound.length) sentAt.push((base.clock - startNs) / 1e6);
    };
    let settled = "pending";
    boot(base, async (app) => {
      startNs = base.clock;
      const stack = openStack(app, "service").then(() => (settled = "leased"));
      await Promise.race([stack, sleep(hourMs)]);
      return 0;
    });
    const outcome = await base.outcome;
    assert.equal(outcome.code, 0, outcome.reason);
    assert.equal(settled, "pending", "no lease without a server");

    const warnings = base.console.filter((line) => line.includes("no DHCP lease after"));
    const expectedSeconds: number[] = [];
    for (let at = DHCP_WAIT_FIRST_WARNING_MS, gap = DHCP_WAIT_FIRST_WARNING_MS; at <= hourMs; gap = Math.min(gap * 2, DHCP_WAIT_MAX_WARNING_GAP_MS), at += gap) {
      expectedSeconds.push(at / 1000);
    }
    assert.deepEqual(
      warnings.map((line) => Number(/after (\d+) s/.exec(line)?.[1])),
      expectedSeconds,
      warnings.join(""),
    );
    assert.deepEqual(expectedSeconds.slice(0, 5), [5, 15, 35, 75, 155]);
    for (const line of warnings) {
      assert.match(line, /WARN +net: service: no DHCP lease after \d+ s \(\d+ DISCOVERs sent; still trying\): on a link without a DHCP server, give the address statically with --ipv4 service=<addr>\/<len>\[@<gateway>\] \(boot parameter net\.service\.ipv4\)\n$/);
    }
    // RFC 2131 §4.1: retransmissions at 4, 8, 16, 32, then every 64 s (±1 s), without end.
    const times = discoverTimes(net, sentAt);
    assert.ok(times.length >= 55, `${times.length} DISCOVERs in an hour`);
    const gaps = times.slice(1).map((time, i) => time - (times[i] ?? 0));
    for (const gap of gaps.slice(5)) assert.ok(gap >= 63_000 && gap <= 65_000, `gap ${gap} ms`);
  });

  it("says nothing with a static address", async () => {
    const base = new FakeBase({ args: [], params: { "net.service.ipv4": "198.18.0.2/24" } });
    base.addNet("service");
    boot(base, async (app) => {
      await openStack(app, "service");
      await sleep(60_000);
      return 0;
    });
    const outcome = await base.outcome;
    assert.equal(outcome.code, 0, outcome.reason);
    assert.ok(!base.console.some((line) => line.includes("no DHCP lease")), base.console.join(""));
  });
});

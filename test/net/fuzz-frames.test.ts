/**
 * The CI-sized run of the frame fuzzer (test/fuzz/): a million random and mutated
 * frames through an in-process stack, with no exception, balanced counters, bounded state and
 * well-formed output, and every receive drop reason reached at least once (so the fuzzer still
 * gets everywhere). Longer runs: `npm run fuzz -- --frames 100000000 --seed N`.
 *
 * ATOLL_FUZZ_FRAMES and ATOLL_FUZZ_SEED change the run (e.g. to replay a seed from a long run).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { dropSummary, runFuzz } from "../fuzz/fuzzer.ts";
import { virtualStack } from "../fuzz/virtual-stack.ts";
import { RECEIVE_DROP_COUNTERS, STACK_LAYERS } from "atoll/net";
import { ethernetFrame, ipv4Packet, udpDatagram } from "../../src/lib/net/testing/virtual-link.ts";
import { EtherType, IpProtocol, Ipv4Address, MacAddress } from "atoll/wire";

/** The address of the regression tests' stacks (198.18.0.2/24). */
const OURS = Ipv4Address.fromOctets(198, 18, 0, 2);
const FRAMES = Number(process.env.ATOLL_FUZZ_FRAMES ?? 1_000_000);
const SEED = Number(process.env.ATOLL_FUZZ_SEED ?? 20_240_611);

test(`${FRAMES.toLocaleString("en")} fuzzed frames (seed ${SEED}): nothing throws, the counters balance, the state stays bounded, every frame sent is well formed`, { timeout: 120_000 }, async (t) => {
  const report = await runFuzz({ frames: FRAMES, seed: SEED });
  t.diagnostic(`${Math.round(report.framesPerSecond).toLocaleString("en")} frames/s; ${report.sentFrames} frames sent and checked; ${report.sentDatagramsReassembled} fragmented datagrams of ours reassembled`);
  t.diagnostic(`drops: ${dropSummary(report.counters)}`);
  const { counters } = report;
  assert.equal(counters.ethernet.rxFrames, FRAMES);
  // What the run must have reached, beyond the drops: answers, reassembly, errors about our datagrams, completed pings.
  assert.ok(counters.icmp.echoRepliesSent > 0 && counters.udp.delivered > 0 && counters.ipv4.reassembled > 0, JSON.stringify(counters));
  assert.ok(counters.icmp.errorsDelivered > 0 && counters.icmp.echoReplies > 0 && counters.arp.repliesReceived > 0, JSON.stringify(counters));
  if (FRAMES >= 1_000_000) {
    const unreached: string[] = [];
    for (const layer of STACK_LAYERS) {
      const values: Readonly<Record<string, number>> = counters[layer];
      for (const name of RECEIVE_DROP_COUNTERS[layer]) if ((values[name] ?? 0) === 0) unreached.push(`${layer}.${name}`);
    }
    assert.deepEqual(unreached, [], "every receive drop reason is reached");
  }
});

test("a different seed, shorter: the same properties", { timeout: 60_000 }, async () => {
  const report = await runFuzz({ frames: 100_000, seed: SEED + 1 });
  assert.equal(report.counters.ethernet.rxFrames, 100_000);
});

test("the same seed gives the same run", { timeout: 60_000 }, async () => {
  const [a, b] = [await runFuzz({ frames: 20_000, seed: 7 }), await runFuzz({ frames: 20_000, seed: 7 })];
  assert.deepEqual(a.counters, b.counters);
  assert.deepEqual(a.generated, b.generated);
  assert.equal(a.sentFrames, b.sentFrames);
});

/**
 * Regression: a reassembly evicted to make room (reassemblyLimit) or dropped for an overlap
 * cancels its timer, but the TimerQueue removes cancelled entries lazily, so the entry lived on
 * until its original deadline, 30 s later, and with it the Reassembly's fragments. Cancelling now
 * drops the callback and removal releases the fragments, so memory follows maxReassemblyBytes.
 */
test("reassembly memory stays within maxReassemblyBytes under a flood of distinct IDs", () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const { port, stack } = virtualStack({ ipv4: "198.18.0.2/24", seed: 1 });
  const peer = MacAddress.fromOctets(2, 0, 0, 0, 0xee, 1);
  const payload = new Uint8Array(1480);
  const used = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  gc();
  const before = used();
  // 100,000 first fragments hold 148 MB of payload if anything keeps them; the bound below
  // leaves room for the timer entries and for the test runner's own allocations.
  for (let n = 0; n < 100_000; n++) {
    // First fragments (MF set, offset 0) of 100,000 different datagrams, all within one second.
    const packet = ipv4Packet({ src: Ipv4Address.fromOctets(198, 18, 0, 1), dst: OURS, protocol: IpProtocol.Udp, identification: n, moreFragments: true }, payload);
    port.deliver(ethernetFrame(stack.mac, peer, EtherType.Ipv4, packet));
  }
  gc();
  const growth = used() - before;
  assert.equal(stack.counters().ipv4.reassembliesPending, 16);
  assert.ok(growth < 40 * 2 ** 20, `heap grew by ${(growth / 2 ** 20).toFixed(1)} MiB with ${stack.counters().ipv4.reassemblyBytes} bytes held by reassembly`);
});

/**
 * Regression: Ipv4Layer.receive accepted a datagram from the wire whose source is our own address
 * (Linux drops such "martians"). To a UDP echo, one datagram from <our address>:7 to
 * <our address>:7 was an endless loop: the echo went to our own address, local delivery handed it
 * back to the echo socket, forever. It is now dropped as badSource.
 */
test("a datagram from the wire claiming our own address as source is dropped (no echo loop)", () => {
  const { clock, port, stack } = virtualStack({ ipv4: "198.18.0.2/24", seed: 1 });
  const echo = stack.udp.bind(7);
  echo.onDatagram((payload, from) => echo.send(payload, from));
  clock.runUntilIdle();
  const spoofed = ipv4Packet({ src: OURS, dst: OURS, protocol: IpProtocol.Udp }, udpDatagram(OURS, OURS, 7, 7, new Uint8Array([1, 2, 3])));
  port.deliver(ethernetFrame(stack.mac, MacAddress.fromOctets(2, 0, 0, 0, 0xee, 1), EtherType.Ipv4, spoofed));
  let loop = "";
  try {
    clock.runUntilIdle({ maxTimers: 10_000 });
  } catch (error) {
    loop = `: ${String(error)} (${stack.counters().ipv4.localDelivered} local deliveries)`;
  }
  assert.equal(stack.counters().ipv4.badSource, 1, `the datagram was not dropped as badSource${loop}`);
});

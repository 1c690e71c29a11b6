import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { createStack, parseIpv4Config, type Counters } from "atoll/net";
import { RecordingLog, SeededRandom, VirtualClock, VirtualLink, ethernetFrame, seededRandomSource } from "../../../src/lib/net/testing/virtual-link.ts";
import { EtherType, MacAddress } from "atoll/wire";

function frame(to: MacAddress, from: MacAddress, marker: number, length = 64): Uint8Array {
  const payload = new Uint8Array(length - 14);
  payload[0] = marker;
  return ethernetFrame(to, from, EtherType.Ipv4, payload);
}

describe("virtual clock", () => {
  it("fires timers in deadline order, ties in the order they were set, skipping cancelled ones", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 100 }), fc.boolean()), { maxLength: 100 }), (specs) => {
        const clock = new VirtualClock();
        const fired: [index: number, at: number][] = [];
        specs.forEach(([deadline, cancel], index) => {
          const timer = clock.at(deadline, () => fired.push([index, clock.now()]));
          if (cancel) timer.cancel();
        });
        clock.runUntilIdle();
        const expected = specs
          .map(([deadline, cancel], index) => ({ deadline, cancel, index }))
          .filter((spec) => !spec.cancel)
          .sort((a, b) => a.deadline - b.deadline || a.index - b.index)
          .map((spec): [number, number] => [spec.index, spec.deadline]);
        assert.deepEqual(fired, expected);
        assert.equal(clock.nextDeadline(), undefined);
      }),
    );
  });

  it("advances by steps, firing only what is due, and never goes backwards", () => {
    const clock = new VirtualClock(1000);
    const fired: number[] = [];
    clock.at(1500, () => fired.push(clock.now()));
    clock.at(900, () => fired.push(clock.now()));
    assert.equal(clock.advance(400), 1);
    assert.deepEqual(fired, [1000]);
    assert.equal(clock.now(), 1400);
    assert.equal(clock.advance(100), 1);
    assert.deepEqual(fired, [1000, 1500]);
    assert.throws(() => {
      const loop = (): void => void clock.at(clock.now() + 1, loop);
      loop();
      clock.runUntilIdle({ maxTimers: 1000 });
    }, /timer loop/);
  });
});

describe("virtual link", () => {
  it("delivers through the clock, never inside send, and copies frames", () => {
    const clock = new VirtualClock();
    const link = new VirtualLink({ clock });
    const a = link.attach();
    const b = link.attach();
    const received: number[] = [];
    b.onFrame((bytes) => received.push(bytes[14] ?? -1));
    const sent = frame(b.mac, a.mac, 7);
    a.send(sent);
    sent[14] = 99;
    assert.deepEqual(received, []);
    clock.runUntilIdle();
    assert.deepEqual(received, [7]);
  });

  it("as a hub repeats to every other port; as a switch learns and forwards unicast to one port", () => {
    for (const mode of ["hub", "switch"] as const) {
      const clock = new VirtualClock();
      const link = new VirtualLink({ clock, mode });
      const ports = [link.attach(), link.attach(), link.attach()];
      const [a, b, c] = ports;
      assert.ok(a !== undefined && b !== undefined && c !== undefined);
      b.send(frame(MacAddress.BROADCAST, b.mac, 1)); // lets a switch learn b
      a.send(frame(b.mac, a.mac, 2));
      clock.runUntilIdle();
      assert.deepEqual(
        ports.map((port) => port.received),
        mode === "hub" ? [1, 1, 2] : [1, 1, 1],
        mode,
      );
    }
  });

  it("applies loss, duplication, reordering, corruption, delay and an MTU, the same way for the same seed", () => {
    const run = (seed: number): { order: number[]; counters: Counters } => {
      const clock = new VirtualClock();
      const link = new VirtualLink({
        clock,
        seed,
        impairments: { loss: 0.1, duplication: 0.1, reordering: 0.2, reorderDelayMs: 5, corruption: 0.1, delayMs: 2, jitterMs: 1, mtu: 1000 },
      });
      const a = link.attach();
      const b = link.attach();
      const order: number[] = [];
      b.onFrame((bytes) => order.push(bytes[14] ?? -1));
      for (let n = 0; n < 200; n++) {
        a.send(frame(b.mac, a.mac, n & 0xff, n % 50 === 0 ? 1100 : 64));
        clock.advance(1);
      }
      clock.runUntilIdle();
      return { order, counters: link.counters };
    };
    const first = run(42);
    assert.deepEqual(run(42), first);
    assert.notDeepEqual(run(43).order, first.order);
    const { counters, order } = first;
    assert.equal(counters.tooBig, 4);
    assert.ok(counters.lost > 0 && counters.duplicated > 0 && counters.reordered > 0 && counters.corrupted > 0);
    assert.equal(order.length, counters.delivered);
    assert.ok(order.some((marker, i) => i > 0 && marker < (order[i - 1] ?? 0) && (order[i - 1] ?? 0) - marker < 100), "reordered");
  });

  it("gives seeded randomness that spreads evenly enough", () => {
    const random = new SeededRandom(7);
    const buckets = new Array<number>(10).fill(0);
    for (let n = 0; n < 10_000; n++) {
      const index = random.below(10);
      buckets[index] = (buckets[index] ?? 0) + 1;
    }
    for (const count of buckets) assert.ok(count > 850 && count < 1150, `${count}`);
  });

  it("joins stacks whose counters read as plain numbers by layer", () => {
    const clock = new VirtualClock();
    const link = new VirtualLink({ clock });
    const parsed = parseIpv4Config("198.18.0.1/24");
    assert.ok(typeof parsed !== "string");
    const stack = createStack({ link: link.attach(), timers: clock, random: seededRandomSource(1), ipv4: parsed, log: new RecordingLog().factory });
    const counters: Record<string, Counters> = stack.counters();
    assert.deepEqual(Object.keys(counters), ["ethernet", "arp", "ipv4", "icmp", "udp"]);
    for (const layer of Object.values(counters)) for (const value of Object.values(layer)) assert.equal(typeof value, "number");
  });
});

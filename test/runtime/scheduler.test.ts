import { test } from "node:test";
import assert from "node:assert/strict";
import { boot } from "../../src/lib/boot/index.ts";
import { Scheduler, DeadlockError } from "../../src/lib/runtime/scheduler.ts";
import { TimerQueue } from "../../src/lib/runtime/timers.ts";
import { FakeBase } from "../helpers/fake-base.ts";
import fc from "fast-check";

test("timer queue pops in deadline order, ties in insertion order, skipping cancelled", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.boolean()), { maxLength: 200 }), (specs) => {
      const queue = new TimerQueue();
      const fired: number[] = [];
      specs.forEach(([deadline, cancel], index) => {
        const timer = queue.add(deadline, () => fired.push(index));
        if (cancel) timer.cancel();
      });
      for (let callback = queue.popDue(Infinity); callback !== undefined; callback = queue.popDue(Infinity)) callback();
      const expected = specs
        .map(([deadline, cancel], index) => ({ deadline, cancel, index }))
        .filter((spec) => !spec.cancel)
        .sort((a, b) => a.deadline - b.deadline || a.index - b.index)
        .map((spec) => spec.index);
      assert.deepEqual(fired, expected);
      assert.equal(queue.nextDeadline(), undefined);
    }),
  );
});

test("sleeps wake in order on the virtual clock and main's number is the exit code", async () => {
  const base = new FakeBase();
  const scheduler = new Scheduler(base);
  const order: string[] = [];
  const code = await scheduler.run(async () => {
    const start = scheduler.now();
    await Promise.all([
      scheduler.sleep(30).then(() => order.push("30")),
      scheduler.sleep(10).then(() => order.push("10")),
      scheduler.sleep(20).then(() => order.push("20")),
    ]);
    assert.equal(scheduler.now() - start, 30_000_000);
    return 7;
  });
  assert.equal(code, 7);
  assert.deepEqual(order, ["10", "20", "30"]);
});

test("a timer set by a continuation is honoured even when it is earlier than the one pending", async () => {
  const base = new FakeBase();
  const scheduler = new Scheduler(base);
  const seen: number[] = [];
  const start = base.clock;
  await scheduler.run(async () => {
    scheduler.after(1000, () => seen.push(base.clock - start));
    await scheduler.sleep(1);
    // A chain of continuations before the next timer is armed.
    await Promise.resolve();
    await Promise.resolve();
    await scheduler.sleep(5);
    seen.push(base.clock - start);
  });
  // The 5 ms sleep fired at 6 ms, not after the 1000 ms timer.
  assert.deepEqual(seen, [6_000_000, 1_000_000_000]);
});

test("main returning nothing runs until no timer or device is left, then exits 0", async () => {
  const base = new FakeBase();
  const scheduler = new Scheduler(base);
  let ticks = 0;
  const code = await scheduler.run(() => {
    const tick = (): void => {
      if (++ticks < 5) scheduler.after(10, tick);
    };
    scheduler.after(10, tick);
  });
  assert.equal(code, 0);
  assert.equal(ticks, 5);
});

test("a main that waits on nothing is a deadlock, reported rather than hung", async () => {
  const scheduler = new Scheduler(new FakeBase());
  await assert.rejects(
    scheduler.run(() => new Promise<number>(() => undefined)),
    DeadlockError,
  );
});

test("errors from main and from timer callbacks reject the run", async () => {
  await assert.rejects(new Scheduler(new FakeBase()).run(async () => {
    throw new Error("boom");
  }), /boom/);
  const scheduler = new Scheduler(new FakeBase());
  await assert.rejects(
    scheduler.run(async () => {
      scheduler.after(1, () => {
        throw new Error("timer boom");
      });
      await scheduler.sleep(100);
    }),
    /timer boom/,
  );
});

test("a timer that re-arms itself at once cannot starve net input", async () => {
  const base = new FakeBase();
  const net = base.addNet("service");
  const scheduler = new Scheduler(base);
  let spins = 0;
  let received = 0;
  base.onYield = () => {
    if (base.yields === 3) net.inbound.push(new Uint8Array(60));
  };
  const code = await scheduler.run(async () => {
    const spin = (): void => {
      spins++;
      if (received === 0) scheduler.after(0, spin);
    };
    scheduler.after(0, spin);
    scheduler.watchNet(0, () => {
      const buffer = new Uint8Array(1518);
      while (base.netRead(0, buffer) > 0) received++;
    });
    while (received === 0) await scheduler.sleep(0);
    return 0;
  });
  assert.equal(code, 0);
  assert.equal(received, 1);
  assert.ok(spins > 0);
});

test("boot: devices, counters at exit with --log debug, exit status from main", async () => {
  const base = new FakeBase({ args: ["a"], params: { log: "info,atoll:debug" } });
  const net = base.addNet("service");
  net.inbound.push(new Uint8Array(64).fill(1));
  boot(base, async (app) => {
    const device = app.net("service");
    let frames = 0;
    device.onFrame((frame) => {
      frames++;
      device.send(frame);
    });
    await app.scheduler.sleep(5);
    assert.throws(() => app.net("missing"), /net device 'missing' is not declared/);
    assert.equal(frames, 1);
    return 4;
  });
  const outcome = await base.outcome;
  assert.equal(outcome.code, 4);
  assert.equal(net.outbound.length, 1);
  const text = base.console.join("");
  assert.match(text, /DEBUG atoll: counters net\.service: rxFrames=1 rxBytes=64 txFrames=1 txBytes=64 txErrors=0/);
});

test("boot: a thrown error aborts with its stack; a bad exit code aborts", async () => {
  const failing = new FakeBase();
  boot(failing, () => {
    throw new Error("bad thing");
  });
  const outcome = await failing.outcome;
  assert.equal(outcome.code, "abort");
  assert.match(outcome.reason, /Error: bad thing/);

  const badCode = new FakeBase();
  boot(badCode, () => 300);
  assert.match((await badCode.outcome).reason, /exit code 300/);

  const badLog = new FakeBase({ args: [], params: { log: "loud" } });
  boot(badLog, () => 0);
  assert.match((await badLog.outcome).reason, /unknown log level 'loud'/);
});

/**
 * bootModule, the image entry `atoll build` generates: globals before the appliance's modules,
 * the accepted default exports and the one-line aborts for the rest, and console streams; on the
 * FakeBase, so without a tender.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bootModule, type ApplianceModule } from "../../src/lib/boot/index.ts";
import { runFetchApp } from "../../src/lib/http/serve.ts";
import { FakeBase } from "../helpers/fake-base.ts";

const NOTHING = { net: [], block: [] };

function moduleOf(load: () => Promise<unknown>, extra: Partial<ApplianceModule> = {}): ApplianceModule {
  return { load, entryName: "src/main.ts", declared: NOTHING, loadFetchRunner: () => Promise.resolve(runFetchApp), ...extra };
}

test("the appliance's modules evaluate after the globals, and console.error/warn reach stderr", async () => {
  const base = new FakeBase();
  bootModule(
    base,
    moduleOf(async () => {
      // What a module's top level does: the image's console is already the base's.
      console.error("top-level error");
      console.log("top-level log");
      return {
        default: () => {
          console.warn("warned");
          return 0;
        },
      };
    }),
  );
  const outcome = await base.outcome;
  assert.equal(outcome.code, 0, outcome.reason);
  assert.deepEqual(base.consoleErrors, ["top-level error\n", "warned\n"]);
  assert.deepEqual(base.console, ["top-level error\n", "top-level log\n", "warned\n"]);
});

test("a throw while the modules evaluate aborts with the entry's name and the stack", async () => {
  const base = new FakeBase();
  bootModule(
    base,
    moduleOf(() => {
      throw new RangeError("no config");
    }),
  );
  const outcome = await base.outcome;
  assert.equal(outcome.code, "abort");
  assert.match(outcome.reason, /^src\/main\.ts failed while its modules were evaluated: RangeError: no config\n\s+at /);
});

test("a default export that is neither a function nor a fetch app aborts naming both shapes", async () => {
  for (const [value, described] of [
    [undefined, "missing (the entry has no default export)"],
    [42, "a number (42)"],
    [{ handler: () => 0 }, "an object without a fetch method"],
    [null, "null"],
  ] as const) {
    const base = new FakeBase();
    bootModule(base, moduleOf(() => Promise.resolve(value === undefined ? {} : { default: value })));
    const outcome = await base.outcome;
    assert.equal(outcome.code, "abort");
    assert.equal(
      outcome.reason,
      `src/main.ts must default-export a main function (export default function main(app) { ... }) or a fetch app (export default { fetch(request) { ... } }); its default export is ${described}`,
    );
  }
});

test("a fetch app without a declared net device aborts naming net: [\"service\"]", async () => {
  const base = new FakeBase();
  bootModule(base, moduleOf(() => Promise.resolve({ default: { fetch: () => undefined } })));
  const outcome = await base.outcome;
  assert.equal(outcome.code, "abort");
  assert.equal(
    outcome.reason,
    'src/main.ts: a fetch app needs a net device, and this appliance declares none: declare one in atoll.config.ts: defineConfig({ name: ..., net: ["service"] })',
  );
});

test("a fetch app with a bad port, or in an image built without the runner, aborts in one line", async () => {
  const badPort = new FakeBase();
  bootModule(badPort, moduleOf(() => Promise.resolve({ default: { fetch: () => undefined, port: 70000 } }), { declared: { net: ["service"], block: [] } }));
  assert.equal((await badPort.outcome).reason, "src/main.ts: the fetch app's port 70000 is not a TCP port: give an integer from 1 to 65535");

  const noRunner = new FakeBase();
  bootModule(noRunner, { load: () => Promise.resolve({ default: { fetch: () => undefined } }), entryName: "src/main.ts", declared: NOTHING });
  assert.match((await noRunner.outcome).reason, /default-exports a fetch app, but the image was built without the fetch-app runner: rebuild it with `atoll build`/);
});

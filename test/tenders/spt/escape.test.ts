/**
 * The escape battery: hostile images on the spt tender, each trying to reach the host from inside
 * the sealed context (fixtures/escape: one attack per run, selected by its argument; fixtures/
 * toplevel: an attack while the image loads). Every attack must fail, and each test checks how:
 * which error stopped it, and that every object it could reach belongs to the image's own realm.
 *
 * The appliance declares a net and a block device, so the runs happen in a private network
 * namespace with a TAP (root and /dev/net/tun; CI runs as root) and a scratch block file.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { canUseNamespaces, Netns } from "../../helpers/netns.ts";
import { atollRun, cleanupScratch, fixtureImage, scratchDir, verdicts, type RunResult } from "./fixtures/harness.ts";

const skip = canUseNamespaces();
let ns: Netns | undefined;
let disk = "";

const CODEGEN = "appliance EvalError: Code generation from strings disallowed for this context";
const NO_IMPORT = "appliance TypeError: import() is not available to an atoll appliance: bundle the module into the image";

before(() => {
  if (skip !== false) return;
  ns = new Netns(`atoll-spt-esc-${process.pid}`);
  ns.addTap("tap0", "198.18.0.1/24");
  disk = join(scratchDir(), "disk.img");
  // Larger than the spt base's staging buffer (256 KiB), so that big transfers go in pieces.
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
});

after(() => {
  ns?.destroy();
  cleanupScratch();
});

function attack(name: string, tender: "node" | "spt" = "spt"): Promise<RunResult> {
  assert.ok(ns !== undefined);
  return atollRun(fixtureImage("escape"), ["--net", "service=tap:tap0", "--block", `disk=${disk}`, "--", name], { netns: ns.name, tender });
}

/** The attack's final verdict, after checking that the run ended as a finished attack does. */
async function verdictOf(name: string): Promise<Record<string, unknown>> {
  const result = await attack(name);
  assert.equal(result.status, 0, `${name}: ${result.stderr}`);
  const found = verdicts(result.stdout).find((verdict) => verdict.attack === name);
  assert.ok(found !== undefined, `${name} printed no verdict: ${result.stdout}`);
  assert.equal(found.escaped, false, `${name} escaped: ${JSON.stringify(found)}`);
  return found;
}

describe("escape battery (spt)", { skip }, () => {
  test("globalThis.constructor.constructor is the image's Function, which compiles nothing", async () => {
    const verdict = await verdictOf("global-constructor");
    assert.equal(verdict.how, CODEGEN);
    assert.equal(verdict.sameFunction, true);
    assert.equal(verdict.globalChain, "appliance");
  });

  test("({}).constructor.constructor(\"return process\") is refused the same way", async () => {
    const verdict = await verdictOf("object-constructor");
    assert.equal(verdict.how, CODEGEN);
    assert.equal(verdict.sameFunction, true);
  });

  test("every Function constructor reachable from the base and the realm refuses to compile", async () => {
    const verdict = await verdictOf("function-constructors");
    assert.deepEqual(verdict.results, {
      "base.consoleWrite.constructor": `appliance: ${CODEGEN}`,
      "base.yield.constructor": `appliance: ${CODEGEN}`,
      "base.cmdline.constructor.constructor": `appliance: ${CODEGEN}`,
      AsyncFunction: `appliance: ${CODEGEN}`,
      GeneratorFunction: `appliance: ${CODEGEN}`,
      AsyncGeneratorFunction: `appliance: ${CODEGEN}`,
    });
  });

  test("eval and new Function are disabled (code generation from strings)", async () => {
    const verdict = await verdictOf("eval");
    assert.deepEqual(verdict.results, {
      eval: CODEGEN,
      "indirect eval": CODEGEN,
      "new Function": CODEGEN,
      "Reflect.construct(Function)": CODEGEN,
      "setTimeout(string)": "appliance TypeError: timer callback must be a function",
    });
  });

  test("import() rejects with an error of the image's realm, also with a warm code cache", async () => {
    // The first run may write the code cache; the second one then loads from it (where Node loses a
    // script's own import() callback, so the context's must answer).
    for (let run = 0; run < 2; run++) {
      const verdict = await verdictOf("import");
      assert.deepEqual(verdict.results, {
        "node:fs": NO_IMPORT,
        "node:fs: error.constructor.constructor": `appliance: ${CODEGEN}`,
        "data:text/javascript,export default typeof process": NO_IMPORT,
        "data:text/javascript,export default typeof process: error.constructor.constructor": `appliance: ${CODEGEN}`,
        "./image.js": NO_IMPORT,
        "./image.js: error.constructor.constructor": `appliance: ${CODEGEN}`,
      });
    }
  });

  test("WebAssembly is absent", async () => {
    const verdict = await verdictOf("webassembly");
    assert.equal(verdict.typeofWebAssembly, "undefined");
    assert.equal(verdict.inGlobal, false);
  });

  test("SharedArrayBuffer is absent, so Atomics works on unshared memory only", async () => {
    const verdict = await verdictOf("shared-memory");
    assert.equal(verdict.typeofSharedArrayBuffer, "undefined");
    assert.equal(verdict.typeofAtomics, "object");
    assert.equal(verdict.atomicsWaitOnUnshared, "appliance TypeError: [object Int32Array] is not a shared typed array.");
  });

  test("Error.prepareStackTrace gets CallSites of the image's realm and no host function or receiver", async () => {
    const verdict = await verdictOf("stack-trace-callsites");
    assert.equal(verdict.captureStackTrace, "appliance");
    const found = verdict.found;
    assert.ok(Array.isArray(found) && found.length === 4, JSON.stringify(found));
    for (const entry of found) {
      assert.equal(Reflect.get(entry, "arrayRealm"), "appliance", JSON.stringify(entry));
      assert.deepEqual(Reflect.get(entry, "foreign"), [], JSON.stringify(entry));
    }
  });

  test("an unhandled rejection is described inside the seal: the image's hook sees only its own realm", async () => {
    const result = await attack("uncaught-callsites");
    assert.equal(result.status, 255);
    assert.equal(result.stderr, "atoll: appliance 'escape' aborted: unhandled promise rejection: described by the image's own hook\n");
    const [hook] = verdicts(result.stdout);
    assert.deepEqual(hook, { hook: "prepareStackTrace", arrayRealm: "appliance", errorRealm: "appliance", foreign: 0, escaped: false });
  });

  test("a Proxy rejected to the host gets no host object in its traps, and no host caller", async () => {
    const result = await attack("uncaught-proxy");
    assert.equal(result.status, 255);
    assert.match(result.stderr, /^atoll: appliance 'escape' aborted: unhandled promise rejection: Error: proxied\n/);
    const hooks = verdicts(result.stdout);
    assert.ok(hooks.length >= 1, result.stdout);
    for (const hook of hooks) {
      assert.equal(hook.escaped, false, JSON.stringify(hook));
      assert.equal(hook.caller, "null");
    }
  });

  test("the base is frozen, and polluting the realm's prototypes makes it run no image code", async () => {
    const result = await attack("prototype-pollution");
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^POLLUTED-CONSOLE-OK$/m);
    const verdict = verdicts(result.stdout).find((item) => item.attack === "prototype-pollution");
    assert.ok(verdict !== undefined);
    assert.deepEqual(verdict.touched, [], "the base used a polluted intrinsic");
    assert.deepEqual(verdict.direct, {
      "assign base.consoleWrite": "returned false",
      "define base.extra": "returned false",
      "setPrototypeOf(base)": "returned false",
      "delete base.exit": "returned false",
      "base.consoleWrite.x = 1": "returned false",
      "args.push": "returned false",
      "params.x = 1": "returned false",
    });
    const results = verdict.results;
    assert.ok(typeof results === "object" && results !== null);
    assert.equal(Reflect.get(results, "consoleWrite"), 0);
    assert.equal(Reflect.get(results, "netAcquire"), "appliance");
    assert.equal(Reflect.get(results, "netWrite(13 bytes)"), -22);
    assert.equal(Reflect.get(results, "blockRead"), 0);
    assert.equal(Reflect.get(results, "entropy"), 0);
    assert.equal(Reflect.get(results, "yield while one is outstanding"), "appliance");
  });

  test("getters, Proxies and valueOf on arguments are never consulted", async () => {
    const result = await attack("argument-getters");
    assert.match(result.stdout, /^GETTER-CONSOLE-OK$/m, "the Uint8Array with lying own getters is written by its real length");
    const verdict = verdicts(result.stdout).find((item) => item.attack === "argument-getters");
    assert.ok(verdict !== undefined, result.stdout);
    assert.deepEqual(verdict.touched, []);
    assert.deepEqual(verdict.results, {
      consoleWriteOwnGetters: 0,
      consoleWriteProxy: -22,
      netReadProxy: -22,
      netReadHandleObject: -22,
      blockReadOffsetObject: -22,
      yieldDeadlineObject: "appliance",
      entropyProxy: -22,
      netAcquireNameObject: -22,
    });
  });

  test("bad arguments get the node tender's statuses, never an exception, and block writes persist", async () => {
    // One after the other: a TAP takes one process at a time.
    const spt = await attack("bad-arguments");
    const node = await attack("bad-arguments", "node");
    const verdictOfRun = (result: RunResult): Record<string, unknown> => {
      assert.equal(result.status, 0, result.stderr);
      const found = verdicts(result.stdout).find((item) => item.attack === "bad-arguments");
      assert.ok(found !== undefined, result.stdout);
      return found;
    };
    const sptVerdict = verdictOfRun(spt);
    const nodeVerdict = verdictOfRun(node);
    assert.deepEqual(sptVerdict.threw, []);
    // The node tender's objects are host objects; only the kinds are compared.
    const normalise = (results: unknown): unknown => JSON.parse(JSON.stringify(results).replace(/"object:[a-z-]+"/g, '"object"'));
    assert.deepEqual(normalise(sptVerdict.results), normalise(nodeVerdict.results));
    const results = sptVerdict.results;
    assert.ok(typeof results === "object" && results !== null);
    const expect = (label: string, value: unknown): void => assert.equal(Reflect.get(results, label), value, label);
    expect("pattern read back", true);
    expect("consoleWrite(empty, STDERR)", 0);
    for (const stream of ["-1", "1.5", "32", '"0"', "NaN", "null"]) expect(`consoleWrite(empty, stream ${stream})`, -22);
    expect("whole device read back", true);
    expect("blockWrite(h, 0, capacity bytes)", 0);
    expect("netWrite(h, 64 MiB)", -90);
    expect("netWrite(h, mtu + 19 bytes)", -90);
    expect("netWrite(h, valid frame)", 0);
    expect("netRead(h, mtu + 17 bytes)", -22);
    expect("netRead(2**32, buffer)", -22);
    expect("netAcquire(__proto__)", -19);
    expect("netAcquire(disk)", -19);
    expect("blockRead(h, 2**60)", -22);
    expect("blockRead(h, capacity - 512, 1024 bytes)", -22);
    expect("blockWrite(h, 0, 64 MiB)", -22);
    expect("blockRead(h, 1n, 512)", -22);
    expect("entropy(65537 bytes)", -22);
    expect("entropy(65536 bytes)", 0);
    expect("consoleWrite(DataView)", -22);
    expect("consoleWrite(revoked Proxy)", -22);
    expect("assets() without assets", "undefined");
    assert.equal(readFileSync(disk).subarray(1024, 1024 + 18).toString("latin1"), "ATOLL-SPT-BLOCK-OK");
  });

  test("calls at the edge of a stack overflow return statuses or throw the image's own RangeError", async () => {
    const verdict = await verdictOf("stack-overflow");
    const seen = verdict.seen;
    assert.ok(Array.isArray(seen));
    for (const kind of seen) assert.ok(["number", "object:appliance", "threw appliance"].includes(String(kind)), `unexpected ${String(kind)}`);
  });

  test("Function.prototype.caller never names a host function", async () => {
    const verdict = await verdictOf("caller");
    // "after a yield": called from the attack itself, which is module code and so strict: V8 names no strict caller.
    assert.deepEqual(verdict.callers, { "timer callback": "appliance", microtask: "null", "after a yield": "null" });
  });

  test("everything the base returns belongs to the image's realm, and the base is frozen", async () => {
    const verdict = await verdictOf("realms");
    const realms = verdict.realms;
    assert.ok(typeof realms === "object" && realms !== null);
    for (const [name, realm] of Object.entries(realms)) assert.equal(realm, "appliance", name);
    assert.deepEqual(verdict.frozen, { base: true, functions: true, cmdline: true, args: true, params: true });
    assert.deepEqual(verdict.baseKeys, [
      "abiVersion", "abort", "assets", "blockAcquire", "blockRead", "blockWrite", "clockMonotonic", "clockWall",
      "cmdline", "consoleWrite", "entropy", "exit", "netAcquire", "netRead", "netWrite", "yield",
    ]);
  });

  test("the image's global object holds ECMAScript, the library OS's globals and nothing else", async () => {
    const verdict = await verdictOf("globals");
    assert.deepEqual(verdict.names, [
      "AggregateError", "Array", "ArrayBuffer", "Atomics", "BigInt", "BigInt64Array", "BigUint64Array", "Boolean",
      "DataView", "Date", "Error", "EvalError", "FinalizationRegistry", "Float32Array", "Float64Array", "Function",
      "Infinity", "Int16Array", "Int32Array", "Int8Array", "Intl", "JSON", "Map", "Math", "NaN", "Number", "Object",
      "Promise", "Proxy", "RangeError", "ReferenceError", "Reflect", "RegExp", "Set", "String", "Symbol",
      "SyntaxError", "TextDecoder", "TextEncoder", "TypeError", "URIError", "Uint16Array", "Uint32Array", "Uint8Array", "Uint8ClampedArray",
      "WeakMap", "WeakRef", "WeakSet",
      // The image's own script variable, and the library OS's (src/lib/runtime/globals.ts).
      "__atollImage", "clearInterval", "clearTimeout", "console", "crypto",
      "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "eval", "globalThis",
      "isFinite", "isNaN", "parseFloat", "parseInt", "queueMicrotask", "setInterval", "setTimeout", "undefined", "unescape",
    ]);
  });

  test("exit and abort with bad arguments end the appliance with 255, as on the node tender", async () => {
    const badExit = await attack("exit-bad-status");
    const goodExit = await attack("exit-7");
    const badAbort = await attack("abort-bad-reason");
    assert.equal(badExit.status, 255, badExit.stderr);
    assert.equal(badExit.stderr, "");
    assert.equal(goodExit.status, 7, goodExit.stderr);
    assert.equal(badAbort.status, 255);
    assert.equal(badAbort.stderr, "atoll: appliance 'escape' aborted: abort called without a reason\n");
  });
});

describe("an image that attacks while it loads (spt)", () => {
  test("its stack-trace hook runs inside the seal and the appliance aborts with what it threw", async () => {
    // The appliance's modules evaluate inside start (after boot installs the globals), so a throw
    // there is the appliance's failure (an abort), described by the image itself.
    const image = fixtureImage("toplevel");
    const result = await atollRun(image, []);
    assert.equal(result.status, 255);
    assert.equal(
      result.stderr,
      "atoll: appliance 'toplevel' aborted: src/main.ts failed while its modules were evaluated: HOOK sites=appliance error=appliance exposed=0 foreign=0\n",
    );
  });
});

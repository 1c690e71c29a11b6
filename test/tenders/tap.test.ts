/**
 * The TAP wrapper and the native addon against a real Linux TAP.
 *
 * Each run builds a private network namespace (so nothing touches the host's interfaces or
 * routes), creates a TAP in it, and runs test/tenders/fixtures/tap-child.ts inside it with
 * `ip netns exec`, since a TAP can only be attached from its own namespace. Addresses come from
 * 198.18.0.0/15 (benchmarking space) and exist only in that namespace. Needs root and
 * /dev/net/tun; without them the namespace tests are skipped, and the argument checks still run.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { loadNative, type NativeAddon } from "../../src/tenders/common/native.ts";
import { openTap, TapError } from "../../src/tenders/common/tap.ts";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CHILD = join(REPO_ROOT, "test", "tenders", "fixtures", "tap-child.ts");
const NS = `atoll-tap-${process.pid}`;
const TAP = "atap0";
const TUN = "atun0";
const VETH = "aveth0";
const CHILD_TIMEOUT_MS = 30_000;

const MISSING_TAP = "tap device 'nosuch0' does not exist: create it with `ip tuntap add dev nosuch0 mode tap`";
const TOO_LONG = "tap device name 'abcdefghijklmnop' is too long (16 bytes, Linux allows at most 15): choose a shorter name";
const notTap = (name: string): string =>
  `interface '${name}' exists but is not a TAP device (or is a multi-queue one): pass the name of a tap created with \`ip tuntap add dev NAME mode tap\``;

function run(command: string, args: string[]): string {
  // A timeout plus SIGKILL guarantees no child outlives the test, even a wedged one.
  return execFileSync(command, args, { cwd: REPO_ROOT, encoding: "utf8", timeout: CHILD_TIMEOUT_MS, killSignal: "SIGKILL", stdio: ["ignore", "pipe", "pipe"] });
}

function inNs(args: string[]): string {
  return run("ip", ["netns", "exec", NS, ...args]);
}

function tryRun(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch {
    return false;
  }
}

/** Runs the fixture in the namespace (optionally behind a wrapper command) and parses its JSON. */
function child(args: string[], wrapper: string[] = []): unknown {
  const out = inNs([...wrapper, process.execPath, "--import", "tsx", CHILD, ...args]);
  return JSON.parse(out);
}

interface OpenOutcome {
  name: string;
  ok: boolean;
  isTapError: boolean;
  code?: string;
  message?: string;
}

function openOutcomes(names: string[], wrapper: string[] = []): OpenOutcome[] {
  const parsed = child(["open", ...names], wrapper);
  assert.ok(Array.isArray(parsed));
  return parsed.map((entry: unknown) => {
    assert.ok(typeof entry === "object" && entry !== null);
    return { name: "", ok: false, isTapError: false, ...entry };
  });
}

function field(value: unknown, ...keys: string[]): unknown {
  let current = value;
  for (const key of keys) current = typeof current === "object" && current !== null ? Reflect.get(current, key) : undefined;
  return current;
}

function skipReason(): string | false {
  if (process.platform !== "linux") return "TAP devices need Linux";
  if (process.getuid?.() !== 0) return "needs root to create a network namespace and a TAP";
  if (!existsSync("/dev/net/tun")) return "/dev/net/tun is missing";
  if (!tryRun(() => run("ip", ["-V"]))) return "iproute2 (`ip`) is not installed";
  return false;
}

test("addon rejects wrong argument types without crashing", () => {
  const native = loadNative();
  // Calls through an untyped reference, as plain JavaScript (or a buggy caller) could.
  const call = (name: keyof NativeAddon, ...args: unknown[]): unknown => {
    const fn: unknown = native[name];
    assert.ok(typeof fn === "function");
    return Reflect.apply(fn, undefined, args);
  };
  assert.throws(() => call("read", "3", new Uint8Array(1)), TypeError);
  assert.throws(() => call("read", 0, new Uint16Array(1)), TypeError);
  assert.throws(() => call("read", 0, new ArrayBuffer(4)), TypeError);
  assert.throws(() => call("write", 0), TypeError);
  assert.throws(() => call("poll", [0], 0), TypeError);
  assert.throws(() => call("poll", new Uint32Array(1), 0), TypeError);
  assert.throws(() => call("poll", new Int32Array(1), "1"), TypeError);
  assert.throws(() => call("tapOpen", 5), TypeError);
  assert.throws(() => call("ifMtu"), TypeError);
  assert.throws(() => call("close", null), TypeError);
  assert.throws(() => native.read(-1, new Uint8Array(1)), RangeError);
  assert.throws(() => native.read(1.5, new Uint8Array(1)), RangeError);
  assert.throws(() => native.tapOpen("x".repeat(16)), { code: "ENAMETOOLONG" });
  assert.throws(() => native.close(1 << 30), { code: "EBADF", syscall: "close" });
  assert.equal(native.read(1 << 30, new Uint8Array(4)), -9, "a bad fd is a negative errno, not an exception");
  assert.equal(native.write(1 << 30, new Uint8Array(4)), -9);
});

test("poll: limits, zero timeout and timing without any fd", () => {
  const native = loadNative();
  assert.equal(native.poll(new Int32Array(33).fill(-1), 0), -22, "more than 32 fds is EINVAL");
  assert.equal(native.poll(new Int32Array(32).fill(-1), 0), 0);
  let started = process.hrtime.bigint();
  assert.equal(native.poll(new Int32Array(0), -5), 0, "a negative timeout does not wait");
  assert.equal(native.poll(new Int32Array(0), Number.NaN), 0);
  assert.ok(Number(process.hrtime.bigint() - started) < 50e6);
  started = process.hrtime.bigint();
  assert.equal(native.poll(new Int32Array(0), 120e6), 0);
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(elapsedMs >= 115 && elapsedMs < 1000, `120 ms timeout took ${elapsedMs} ms`);
});

test("openTap validates the name before touching the kernel", () => {
  assert.throws(() => openTap("abcdefghijklmnop"), (error: unknown) => {
    assert.ok(error instanceof TapError);
    assert.equal(error.code, "ENAMETOOLONG");
    assert.equal(error.message, TOO_LONG);
    return true;
  });
  assert.throws(() => openTap(""), { name: "TapError", code: "EINVAL" });
  assert.throws(() => openTap("a/b"), { name: "TapError", code: "EINVAL" });
});

describe("TAP in a private network namespace", { skip: skipReason() }, () => {
  let nonTap: string[] = ["lo"];

  before(() => {
    run("ip", ["netns", "add", NS]);
    // IPv6 would send router solicitations and DAD probes at random times and break the
    // "nothing pending" checks; the tests only need IPv4.
    tryRun(() => inNs(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]));
    inNs(["ip", "link", "set", "lo", "up"]);
    // Owned by root: the kernel lets anyone attach to a TAP that has no owner or group
    // (tun_not_capable in drivers/net/tun.c), so the unprivileged case needs an owner to refuse.
    inNs(["ip", "tuntap", "add", "dev", TAP, "mode", "tap", "user", "0"]);
    inNs(["ip", "addr", "add", "198.18.0.1/24", "dev", TAP]);
    inNs(["ip", "link", "set", TAP, "up"]);
    inNs(["ip", "tuntap", "add", "dev", TUN, "mode", "tun"]);
    // Not every kernel has the dummy driver; veth is more common, and lo always exists.
    if (tryRun(() => inNs(["ip", "link", "add", VETH, "type", "veth", "peer", "name", "aveth1"]))) nonTap = [...nonTap, VETH];
  });

  after(() => {
    // Deleting the namespace removes its virtual links; the explicit deletes are belt and braces
    // for kernels that would move a persistent TAP back to the host namespace.
    for (const name of [TAP, TUN, VETH]) tryRun(() => inNs(["ip", "link", "del", name]));
    tryRun(() => run("ip", ["netns", "del", NS]));
  });

  test("frames flow both ways and poll wakes on input", () => {
    const result = child(["io", TAP]);
    const get = (...keys: string[]): unknown => field(result, ...keys);

    assert.equal(get("name"), TAP);
    assert.equal(get("mtu"), 1500);
    assert.equal(typeof get("fd"), "number");

    assert.equal(get("emptyRead"), 0, "read returns 0 when nothing is pending");
    assert.equal(get("pollZero", "mask"), 0);
    assert.ok(Number(get("pollZero", "elapsedMs")) < 50);
    assert.equal(get("pollTimeout", "mask"), 0, "poll times out with nothing pending");
    const timeoutMs = Number(get("pollTimeout", "elapsedMs"));
    assert.ok(timeoutMs >= 195 && timeoutMs < 1500, `200 ms poll took ${timeoutMs} ms`);

    assert.equal(get("pollReady", "mask"), 0b10, "readiness is reported at the tap's index");
    assert.deepEqual(get("arpRequest"), { length: 42, srcMac: get("arpRequest", "srcMac"), senderIp: "198.18.0.1" });
    assert.equal(get("bytesBeforeViewUntouched"), true, "read honours the view's byteOffset");
    assert.equal(get("bytesAfterViewUntouched"), true, "read honours the view's length");

    assert.equal(get("pollWake", "mask"), 1, "a blocked poll wakes on the ARP retransmission");
    const wakeMs = Number(get("pollWake", "elapsedMs"));
    assert.ok(wakeMs > 100 && wakeMs < 4000, `poll woke after ${wakeMs} ms`);

    assert.equal(get("replyWritten"), 42);
    assert.ok(Number(get("rxDelta")) >= 1, "Linux counted the written frame");
    assert.match(String(get("neigh")), /^198\.18\.0\.2 lladdr 02:00:00:00:0a:02 (REACHABLE|STALE|DELAY)$/);
    assert.deepEqual(get("udp"), { dstMac: "02:00:00:00:0a:02", dstIp: "198.18.0.2", dstPort: 9 }, "Linux released the held datagram to the MAC we announced");

    assert.equal(get("truncatedRead"), 20, "a long frame is cut to the buffer");
    assert.equal(get("truncatedReadStayedInView"), true);

    assert.equal(get("runtWrite"), -22, "a failed write returns -errno instead of throwing");
    assert.equal(get("writeAfterClose"), -9);
    assert.equal(get("readAfterClose"), "EBADF");

    assert.equal(get("busy", "code"), "EBUSY");
    assert.equal(get("busy", "message"), `tap device '${TAP}' is already in use by another process: stop that process or use another tap`);
  });

  test("opening fails with one-line, actionable TapErrors", () => {
    const outcomes = openOutcomes(["nosuch0", ...nonTap, TUN, "abcdefghijklmnop", TAP]);
    const byName = new Map(outcomes.map((o) => [o.name, o]));
    const expect = (name: string, code: string, message: string): void => {
      const outcome = byName.get(name);
      assert.ok(outcome !== undefined);
      assert.equal(outcome.isTapError, true, `${name}: ${outcome.message}`);
      assert.equal(outcome.code, code);
      assert.equal(outcome.message, message);
      assert.ok(!message.includes("\n"));
    };
    expect("nosuch0", "ENODEV", MISSING_TAP);
    for (const name of [...nonTap, TUN]) expect(name, "EINVAL", notTap(name));
    expect("abcdefghijklmnop", "ENAMETOOLONG", TOO_LONG);
    assert.equal(byName.get(TAP)?.ok, true, "the tap itself opens once the io child has exited");
  });

  test("an unprivileged user is told to get CAP_NET_ADMIN", { skip: tryRun(() => run("setpriv", ["--version"])) ? false : "setpriv is not installed" }, () => {
    const [outcome] = openOutcomes([TAP], ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]);
    assert.ok(outcome !== undefined);
    assert.equal(outcome.isTapError, true, outcome.message);
    assert.ok(outcome.code === "EPERM" || outcome.code === "EACCES", outcome.code);
    assert.match(outcome.message ?? "", /^permission denied .*tap device 'atap0' \((EPERM|EACCES)\): run as root or with CAP_NET_ADMIN/);
  });

  test("a missing /dev/net/tun is reported as such", () => {
    // A private mount namespace hides /dev/net under an empty tmpfs without touching the host.
    const script = `mount -t tmpfs tmpfs /dev/net && exec "$@"`;
    const [outcome] = openOutcomes([TAP], ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]);
    assert.ok(outcome !== undefined);
    assert.equal(outcome.code, "ENOENT");
    assert.match(outcome.message ?? "", /^\/dev\/net\/tun is missing \(ENOENT\): load the tun module with `modprobe tun`/);
  });
});

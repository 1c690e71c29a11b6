/**
 * Issue #12, finding 11: the node tender's base must not trust what the image's byte arguments
 * say about themselves. The values are made in a V8 context of their own, as an image's are:
 * `length`/`byteLength` getters that lie (and change between reads), subclasses, detached and
 * shared buffers, DataViews, Proxies, and offsets that are not block offsets. No write may land
 * outside the device or outside the real buffer, nothing may crash, and each call returns what
 * docs/abi.md says.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, beforeEach, test } from "node:test";
import * as vm from "node:vm";
import { Status, type Base, type BlockInfo, type NetFrameMeta } from "../../src/abi/base.ts";
import { FileBlockDevice } from "../../src/tenders/common/block.ts";
import type { HostNetBackend } from "../../src/tenders/common/devices.ts";
import { loadNative } from "../../src/tenders/common/native.ts";
import { encodeImage } from "../../src/image/format.ts";
import { atoll } from "../helpers/cli.ts";
import { testNodeBase } from "../helpers/node-base.ts";

const CAPACITY = 4096;
const dir = mkdtempSync(join(tmpdir(), "atoll-node-base-hostile-"));
const diskPath = join(dir, "disk.img");
/** The disk's content before each test: byte i is i & 0xff, so any stray write shows. */
const pristine = Uint8Array.from({ length: CAPACITY }, (_, i) => i & 0xff);
let device: FileBlockDevice | undefined;

beforeEach(() => {
  device?.close();
  writeFileSync(diskPath, pristine);
  device = FileBlockDevice.open("disk", diskPath);
});
after(() => {
  device?.close();
  device = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function blockBase(): { base: Base; handle: number } {
  if (device === undefined) throw new Error("no device");
  const base = testNodeBase({ blocks: [{ name: "disk", device }] });
  const info = base.blockAcquire("disk");
  assert.equal(typeof info, "object");
  return { base, handle: untyped<BlockInfo>(info).handle };
}

function assertDiskUnchanged(): void {
  assert.equal(statSync(diskPath).size, CAPACITY, "the backing file kept its size");
  assert.deepEqual(new Uint8Array(readFileSync(diskPath)), pristine, "no byte of the backing file changed");
}

/**
 * What an image may pass where the ABI's types say Uint8Array or number: anything. The base's
 * signatures are the ABI's, so the one place this test lies to the type checker is here.
 */
function untyped<T>(value: unknown): T {
  return value as T;
}

/** Evaluates `code` in a fresh context, as an image's code is evaluated, and returns its value. */
function imageValue(code: string): Uint8Array {
  return untyped(vm.runInContext(code, vm.createContext({ structuredClone })));
}

/** The hostile byte arguments, each made in the image's realm. */
const HOSTILE = {
  /** 64 KiB whose `length` says 512 for the checks, then the truth: the original 65,024-byte overrun. */
  countingLength: `(() => { const u = new Uint8Array(65536).fill(0x41); let reads = 0;
    Object.defineProperty(u, "length", { get: () => (reads++ < 3 ? 512 : 65536) });
    Object.defineProperty(u, "byteLength", { get: () => 65536 }); return u; })()`,
  /** 64 KiB that always claims 512 bytes. */
  shortLength: `(() => { const u = new Uint8Array(65536).fill(0x42);
    Object.defineProperty(u, "length", { value: 512 }); Object.defineProperty(u, "byteLength", { value: 512 }); return u; })()`,
  /** 1 KiB from a subclass whose prototype says 512. */
  subclass: `(() => { class Lying extends Uint8Array { get length() { return 512; } get byteLength() { return 512; } }
    return new Lying(1024).fill(0x43); })()`,
  /** Lies on the realm's own %TypedArray%.prototype, for every array of the image. */
  realmPrototype: `(() => { const proto = Object.getPrototypeOf(Uint8Array.prototype);
    Object.defineProperty(proto, "length", { get() { return 512; } }); Object.defineProperty(proto, "byteLength", { get() { return 512; } });
    return new Uint8Array(2048).fill(0x44); })()`,
  detached: `(() => { const u = new Uint8Array(512); structuredClone(u.buffer, { transfer: [u.buffer] }); return u; })()`,
  dataView: `new DataView(new ArrayBuffer(512))`,
  float64: `new Float64Array(64)`,
  proxy: `new Proxy(new Uint8Array(512), {})`,
  fake: `({ length: 512, byteLength: 512, buffer: new ArrayBuffer(512), byteOffset: 0, [Symbol.toStringTag]: "Uint8Array" })`,
} as const;

test("blockWrite: a length that says 512 for the checks and 64 KiB for the write is refused; nothing lands past the end", () => {
  const { base, handle } = blockBase();
  assert.equal(base.blockWrite(handle, CAPACITY - 512, imageValue(HOSTILE.countingLength)), Status.EINVAL);
  assertDiskUnchanged();
});

test("blockWrite and blockRead use the real length, however the array, its subclass or its realm lies", () => {
  for (const name of ["shortLength", "subclass", "realmPrototype"] as const) {
    const { base, handle } = blockBase();
    const bytes = imageValue(HOSTILE[name]);
    // At the last block, the real length (1 KiB and more) does not fit: refused, disk untouched.
    assert.equal(base.blockWrite(handle, CAPACITY - 512, bytes), Status.EINVAL, name);
    assert.equal(base.blockRead(handle, CAPACITY - 512, bytes), Status.EINVAL, name);
    assertDiskUnchanged();
  }
  // Where the real length fits, exactly the real bytes move: 1 KiB of 0x43 at 1024, nothing else.
  const { base, handle } = blockBase();
  assert.equal(base.blockWrite(handle, 1024, imageValue(HOSTILE.subclass)), Status.OK);
  const expected = pristine.slice();
  expected.fill(0x43, 1024, 2048);
  assert.deepEqual(new Uint8Array(readFileSync(diskPath)), expected);
  // A read fills the real 1 KiB, though the subclass says 512.
  const into = imageValue(`(() => { class Lying extends Uint8Array { get length() { return 512; } } return new Lying(1024); })()`);
  assert.equal(base.blockRead(handle, 0, into), Status.OK);
  assert.deepEqual(new Uint8Array(into.buffer), pristine.subarray(0, 1024));
});

test("blockRead with a length that grows after the checks fills only the real buffer", () => {
  const { base, handle } = blockBase();
  const small = imageValue(`(() => { const u = new Uint8Array(512); let reads = 0;
    Object.defineProperty(u, "length", { get: () => (reads++ < 3 ? 512 : 1 << 20) }); return u; })()`);
  assert.equal(base.blockRead(handle, 0, small), Status.OK);
  assert.deepEqual(new Uint8Array(small.buffer), pristine.subarray(0, 512));
});

test("detached buffers, DataViews, other typed arrays, Proxies and look-alikes are EINVAL for every byte argument", () => {
  for (const name of ["detached", "dataView", "float64", "proxy", "fake"] as const) {
    const { base, handle } = blockBase();
    const value = imageValue(HOSTILE[name]);
    assert.equal(base.blockWrite(handle, 0, value), Status.EINVAL, `blockWrite ${name}`);
    assert.equal(base.blockRead(handle, 0, value), Status.EINVAL, `blockRead ${name}`);
    assert.equal(base.entropy(value), Status.EINVAL, `entropy ${name}`);
    assert.equal(base.consoleWrite(value), Status.EINVAL, `consoleWrite ${name}`);
    assertDiskUnchanged();
  }
});

test("a SharedArrayBuffer-backed view is a Uint8Array like any other", () => {
  const { base, handle } = blockBase();
  const shared = imageValue(`new Uint8Array(new SharedArrayBuffer(512)).fill(0x45)`);
  assert.equal(base.blockWrite(handle, 512, shared), Status.OK);
  const expected = pristine.slice();
  expected.fill(0x45, 512, 1024);
  assert.deepEqual(new Uint8Array(readFileSync(diskPath)), expected);
});

test("block offsets that are not whole blocks inside the device are EINVAL", () => {
  const { base, handle } = blockBase();
  const block = new Uint8Array(512);
  const offsets: unknown[] = [-512, CAPACITY, CAPACITY + 512, 2 ** 53, 2 ** 64, Number.MAX_VALUE, Infinity, NaN, 1.5, 511, 0n, "0", null, undefined, { valueOf: () => 0 }];
  for (const offset of offsets) {
    assert.equal(base.blockWrite(handle, untyped<number>(offset), block), Status.EINVAL, `blockWrite at ${String(offset)}`);
    assert.equal(base.blockRead(handle, untyped<number>(offset), block), Status.EINVAL, `blockRead at ${String(offset)}`);
  }
  for (const bad of [-1, 1, 0.5, NaN, 0n, "0"]) assert.equal(base.blockWrite(untyped<number>(bad), 0, block), Status.EINVAL, `handle ${String(bad)}`);
  assert.equal(base.blockWrite(handle, 0, new Uint8Array(0)), Status.EINVAL, "zero length");
  assert.equal(base.blockWrite(handle, 0, new Uint8Array(100)), Status.EINVAL, "part of a block");
  assertDiskUnchanged();
});

test("the block device itself refuses ranges past its end, whoever calls it", () => {
  if (device === undefined) throw new Error("no device");
  const lying = imageValue(HOSTILE.shortLength);
  assert.throws(() => device?.write(CAPACITY - 512, lying), /65536 bytes at 3584 are not whole blocks inside its 4096 bytes/);
  assert.throws(() => device?.write(CAPACITY, new Uint8Array(512)), RangeError);
  assert.throws(() => device?.read(-512, new Uint8Array(512)), RangeError);
  assertDiskUnchanged();
});

test("entropy fills the real buffer only, and refuses more than 64 KiB however the length lies", () => {
  const base = testNodeBase();
  // 16 bytes in the middle of 64 whose byteLength and length claim 1 MiB: the bytes around stay 0.
  const context = vm.createContext({});
  const backing = untyped<ArrayBuffer>(vm.runInContext("new ArrayBuffer(64)", context));
  const middle = untyped<(buffer: ArrayBuffer) => Uint8Array>(vm.runInContext(
    `(buffer) => { const u = new Uint8Array(buffer, 16, 16); Object.defineProperty(u, "byteLength", { get: () => 1 << 20 }); Object.defineProperty(u, "length", { get: () => 16 }); return u; }`,
    context,
  ));
  for (let round = 0; round < 4; round++) assert.equal(base.entropy(middle(backing)), Status.OK);
  const all = new Uint8Array(backing);
  assert.deepEqual(all.subarray(0, 16), new Uint8Array(16));
  assert.deepEqual(all.subarray(32), new Uint8Array(32));
  assert.ok(all.subarray(16, 32).some((byte) => byte !== 0), "the real 16 bytes were filled");
  const big = imageValue(`(() => { const u = new Uint8Array(65537); Object.defineProperty(u, "length", { value: 16 }); return u; })()`);
  assert.equal(base.entropy(big), Status.EINVAL);
});

test("netWrite and netRead check the real frame length", () => {
  const written: Uint8Array[] = [];
  const backend: HostNetBackend = {
    fd: -1,
    mtu: 1500,
    read: () => 0,
    write(frame) {
      written.push(frame.slice());
      return frame.length;
    },
    close: () => undefined,
  };
  const base = testNodeBase({ nets: [{ name: "service", mac: Uint8Array.of(2, 0, 0, 0, 0, 1), backend }] });
  assert.equal(typeof base.netAcquire("service"), "object");
  // 10 real bytes claiming 60: shorter than an Ethernet header.
  const short = imageValue(`(() => { const u = new Uint8Array(10); Object.defineProperty(u, "length", { value: 60 }); return u; })()`);
  assert.equal(base.netWrite(0, short), Status.EINVAL);
  // 9000 real bytes claiming 60: larger than the MTU.
  const jumbo = imageValue(`(() => { const u = new Uint8Array(9000); Object.defineProperty(u, "length", { value: 60 }); return u; })()`);
  assert.equal(base.netWrite(0, jumbo), Status.EMSGSIZE);
  assert.equal(written.length, 0);
  // 60 real bytes claiming 9000 go out as 60.
  const honest = imageValue(`(() => { const u = new Uint8Array(60).fill(7); Object.defineProperty(u, "length", { value: 9000 }); return u; })()`);
  assert.equal(base.netWrite(0, honest), Status.OK);
  assert.deepEqual(written, [new Uint8Array(60).fill(7)]);
  // A read buffer whose length claims the MTU but is 100 bytes is too short for a frame.
  const shortRead = imageValue(`(() => { const u = new Uint8Array(100); Object.defineProperty(u, "length", { value: 1600 }); return u; })()`);
  assert.equal(base.netRead(0, shortRead), Status.EINVAL);
});

test("through `atoll run`: an image with lying lengths neither crashes the tender nor writes past its disk", () => {
  const disk = join(dir, "run-disk.img");
  writeFileSync(disk, pristine);
  // Each call once crashed the tender (SIGABRT from a C++ assertion in randomFillSync, or in
  // fs.writeSync's binding) or wrote 65,024 bytes past the disk's end.
  const code = `({ start(base) {
    const say = (s) => base.consoleWrite(new Uint8Array([...s].map((c) => c.charCodeAt(0))));
    // length says \`checked\` for the first three reads (the checks), then \`later\` (the transfer).
    const lie = (u, checked, later) => { let reads = 0; Object.defineProperty(u, "length", { get: () => (reads++ < 3 ? checked : later) });
      Object.defineProperty(u, "byteLength", { get: () => later }); return u; };
    const disk = base.blockAcquire("disk");
    const results = [
      base.blockWrite(disk.handle, disk.capacity - 512, lie(new Uint8Array(65536).fill(0x41), 512, 65536)),
      base.entropy(lie(new Uint8Array(16), 16, 1 << 20)),
      base.consoleWrite(lie(new Uint8Array([104, 105, 10]), 3, 1 << 20)),
      base.blockRead(disk.handle, 0, lie(new Uint8Array(512), 512, 1 << 20)),
    ];
    say("results " + results.join(" ") + "\\n");
    base.exit(0);
  } })`;
  const image = join(dir, "lying.atoll");
  writeFileSync(image, encodeImage({ manifest: { name: "lying", net: [], block: ["disk"], builtBy: "atoll 0.1.0", buildTime: "2026-12-01T00:00:00.000Z", abiVersion: 1 }, code }));
  const result = atoll(["run", image, "--block", `disk=${disk}`], { env: { ...process.env, ATOLL_CODE_CACHE: "0" } });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout, `hi\nresults ${Status.EINVAL} ${Status.OK} ${Status.OK} ${Status.OK}\n`);
  assert.equal(statSync(disk).size, CAPACITY);
  assert.deepEqual(new Uint8Array(readFileSync(disk)), pristine);
});

test("netWrite reads the frame metadata once: a getter cannot pass the checks with one value and reach the device with another", () => {
  const sent: NetFrameMeta[] = [];
  const backend: HostNetBackend = {
    fd: -1,
    mtu: 1500,
    read: () => 0,
    write: () => -1,
    close: () => undefined,
    offloads: {
      enable: () => 65535 + 18,
      read: () => 0,
      write(frame, meta) {
        sent.push({ ...meta });
        return frame.length;
      },
    },
  };
  const base = testNodeBase({ nets: [{ name: "service", mac: Uint8Array.of(2, 0, 0, 0, 0, 1), backend }] });
  assert.equal(typeof base.netAcquire("service", { offloads: true }), "object");
  // A plain 60-byte frame; segmentSize says 0 when checked, then asks for segmentation.
  const meta = untyped<NetFrameMeta>(
    vm.runInContext(`(() => { let reads = 0; return { checksumTrusted: false, checksumStart: 0, checksumOffset: 0, get segmentSize() { return reads++ === 0 ? 0 : 1448; } }; })()`, vm.createContext({})),
  );
  assert.equal(base.netWrite(0, new Uint8Array(60), meta), Status.OK);
  assert.deepEqual(sent, [{ checksumTrusted: false, checksumStart: 0, checksumOffset: 0, segmentSize: 0 }]);
  // Fields that are not small integers are EINVAL, and nothing is sent.
  for (const bad of [{ checksumStart: -1 }, { checksumOffset: 1.5 }, { segmentSize: 0x10000 }, { segmentSize: 1n }, { segmentSize: "0" }]) {
    assert.equal(base.netWrite(0, new Uint8Array(60), untyped<NetFrameMeta>({ checksumTrusted: false, checksumStart: 0, checksumOffset: 0, segmentSize: 0, ...bad })), Status.EINVAL);
  }
  assert.equal(sent.length, 1);
});

test("the native addon moves the engine's real length, whatever `length` says, and refuses detached buffers", () => {
  const native = loadNative();
  const [a, b] = native.socketpair("dgram");
  try {
    const lying = imageValue(`(() => { const u = new Uint8Array(8).fill(9); Object.defineProperty(u, "length", { value: 1 << 20 }); Object.defineProperty(u, "byteLength", { value: 1 << 20 }); return u; })()`);
    assert.equal(native.write(a, lying), 8);
    const into = imageValue(`(() => { const u = new Uint8Array(4); Object.defineProperty(u, "length", { value: 1 << 20 }); return u; })()`);
    // A datagram longer than the buffer is cut to the real 4 bytes (and the rest of it dropped).
    assert.equal(native.read(b, into), 4);
    assert.deepEqual(new Uint8Array(into.buffer), new Uint8Array(4).fill(9));
    const detached = imageValue(HOSTILE.detached);
    assert.throws(() => native.write(a, detached), { name: "TypeError", message: "buffer is detached" });
    assert.throws(() => native.read(b, detached), { name: "TypeError", message: "buffer is detached" });
    assert.throws(() => native.write(a, imageValue(HOSTILE.dataView)), { name: "TypeError", message: "buffer must be a Uint8Array" });
  } finally {
    native.close(a);
    native.close(b);
  }
});

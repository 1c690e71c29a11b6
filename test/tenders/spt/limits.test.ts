/**
 * The spt tender's bounds and honest reports (issue #12, findings 5, 6 and 12):
 *  - --memory bounds ArrayBuffer contents as well as the V8 heap, and says so in one line;
 *  - the engine giving up (out of memory, a V8 fatal error, abort()) and a crash (SIGSEGV) are
 *    reported as such, with their own statuses, never as a forbidden system call (SIGSYS);
 *  - a block transfer that would end past the device's capacity kills the appliance process, so
 *    native code in it cannot grow the block file.
 * The end-to-end checks need root for the namespaces only where the tender uses them (CI runs as
 * root); the native probe (fixtures/probe.c, probe-engine.cc) is built with cc and c++.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { blockBoundsFilter, encodeFilter, SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS, type BpfInstruction } from "../../../src/tenders/spt/block-bounds.ts";
import { arrayBufferRefusal, dataLimitBytes, engineFailureLines, semiSpaceMiB, vmDataKiB } from "../../../src/tenders/spt/memory.ts";
import { ATOLL, ROOT } from "../../helpers/cli.ts";
import { atollRun, buildProbe, cleanupScratch, fixtureImage, PROBE_TENDER, runAsync, scratchDir } from "./fixtures/harness.ts";

after(() => cleanupScratch());

const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The block bounds filter, run by a classic BPF interpreter on seccomp_data built here.
// ---------------------------------------------------------------------------------------------

const AUDIT_ARCH_X86_64 = 0xc000003e;
const PREAD64 = 17;
const PWRITE64 = 18;

interface SeccompData {
  readonly nr: number;
  readonly arch?: number;
  readonly args: readonly bigint[];
}

/** struct seccomp_data, little-endian, as the kernel hands it to a filter. */
function seccompData(data: SeccompData): DataView {
  const view = new DataView(new ArrayBuffer(64));
  view.setUint32(0, data.nr, true);
  view.setUint32(4, data.arch ?? AUDIT_ARCH_X86_64, true);
  data.args.forEach((arg, index) => view.setBigUint64(16 + 8 * index, BigInt.asUintN(64, arg), true));
  return view;
}

/** The subset of classic BPF the filter uses, with the kernel's semantics (32-bit unsigned A and X). */
function runFilter(program: readonly BpfInstruction[], data: SeccompData): number {
  const input = seccompData(data);
  const memory = new Uint32Array(16);
  let a = 0;
  let x = 0;
  for (let pc = 0; pc < program.length; pc++) {
    const { code, jt, jf, k } = program[pc] ?? assert.fail(`pc ${pc} outside the program`);
    const jump = (condition: boolean): void => {
      pc += condition ? jt : jf;
    };
    switch (code) {
      case 0x20:
        a = input.getUint32(k, true);
        break;
      case 0x60:
        a = memory[k] ?? assert.fail(`M[${k}]`);
        break;
      case 0x02:
        memory[k] = a;
        break;
      case 0x07:
        x = a;
        break;
      case 0x04:
        a = (a + k) >>> 0;
        break;
      case 0x0c:
        a = (a + x) >>> 0;
        break;
      case 0x15:
        jump(a === k);
        break;
      case 0x25:
        jump(a > k);
        break;
      case 0x35:
        jump(a >= k);
        break;
      case 0x3d:
        jump(a >= x);
        break;
      case 0x06:
        return k;
      default:
        assert.fail(`unexpected opcode 0x${code.toString(16)}`);
    }
  }
  return assert.fail("the program ran off its end");
}

describe("the block bounds filter (offset + count <= capacity)", () => {
  const small = { fd: 5, capacity: 1024 * 1024 };
  // Past 4 GiB, so that the carry into the high half matters.
  const large = { fd: 7, capacity: 6 * 1024 * MIB + 512 };
  const program = blockBoundsFilter([small, large], "x64");
  const verdict = (nr: number, fd: number, count: bigint, offset: bigint): number => runFilter(program, { nr, args: [BigInt(fd), 0x1000n, count, offset] });

  test("allows transfers that end within the device, up to its last byte", () => {
    for (const nr of [PREAD64, PWRITE64]) {
      assert.equal(verdict(nr, small.fd, 512n, 0n), SECCOMP_RET_ALLOW);
      assert.equal(verdict(nr, small.fd, 512n, BigInt(small.capacity - 512)), SECCOMP_RET_ALLOW);
      assert.equal(verdict(nr, small.fd, 262144n, BigInt(small.capacity - 262144)), SECCOMP_RET_ALLOW);
      assert.equal(verdict(nr, small.fd, 0n, BigInt(small.capacity)), SECCOMP_RET_ALLOW);
      assert.equal(verdict(nr, large.fd, 262144n, BigInt(large.capacity - 262144)), SECCOMP_RET_ALLOW);
      assert.equal(verdict(nr, large.fd, 512n, 2n ** 32n - 256n), SECCOMP_RET_ALLOW, "the low halves carry");
    }
  });

  test("kills transfers that would end past the device, however the sum is made", () => {
    for (const nr of [PREAD64, PWRITE64]) {
      // The finding: 256 KiB at capacity - 512.
      assert.equal(verdict(nr, small.fd, 262144n, BigInt(small.capacity - 512)), SECCOMP_RET_KILL_PROCESS);
      assert.equal(verdict(nr, small.fd, 513n, BigInt(small.capacity - 512)), SECCOMP_RET_KILL_PROCESS);
      assert.equal(verdict(nr, small.fd, 1n, BigInt(small.capacity)), SECCOMP_RET_KILL_PROCESS);
      assert.equal(verdict(nr, small.fd, 512n, 2n ** 32n), SECCOMP_RET_KILL_PROCESS, "an offset past 4 GiB on a 1 MiB device");
      assert.equal(verdict(nr, small.fd, 2n ** 32n, 0n), SECCOMP_RET_KILL_PROCESS, "a count past 4 GiB");
      assert.equal(verdict(nr, small.fd, 512n, -512n), SECCOMP_RET_KILL_PROCESS, "a negative offset");
      assert.equal(verdict(nr, small.fd, 0xffffffffn, 0xffffffffn), SECCOMP_RET_KILL_PROCESS, "a low-half sum that wraps");
      assert.equal(verdict(nr, large.fd, 262144n, BigInt(large.capacity - 512)), SECCOMP_RET_KILL_PROCESS);
      assert.equal(verdict(nr, large.fd, 1024n, 2n ** 32n * 6n), SECCOMP_RET_KILL_PROCESS, "the high halves equal, the low past");
    }
  });

  test("leaves every other call, fd and call number to the allowlist; kills other architectures", () => {
    assert.equal(verdict(PWRITE64, 6, 262144n, BigInt(small.capacity)), SECCOMP_RET_ALLOW, "not a block fd: the allowlist decides");
    assert.equal(verdict(PWRITE64, small.fd + 2 ** 32, 512n, 0n), SECCOMP_RET_ALLOW, "fd compared on 32 bits, as the kernel reads it");
    assert.equal(runFilter(program, { nr: 1, args: [1n, 0n, 5n] }), SECCOMP_RET_ALLOW, "write");
    assert.equal(runFilter(program, { nr: 0x40000000 | PWRITE64, args: [BigInt(small.fd), 0n, 262144n, BigInt(small.capacity)] }), SECCOMP_RET_ALLOW, "x32: the allowlist kills it");
    assert.equal(runFilter(program, { nr: PWRITE64, arch: 0x40000003, args: [] }), SECCOMP_RET_KILL_PROCESS, "i386");
  });

  test("refuses what it cannot express, and encodes struct sock_filter", () => {
    assert.throws(() => blockBoundsFilter([small], "s390x"), /knows no system call numbers for s390x/);
    assert.throws(() => blockBoundsFilter([{ fd: 5, capacity: 0 }], "x64"), /not a positive number of bytes/);
    assert.throws(() => blockBoundsFilter([{ fd: 5, capacity: 1.5 }], "x64"), /not a positive number of bytes/);
    const bytes = encodeFilter([{ code: 0x15, jt: 2, jf: 3, k: 0xc000003e }]);
    assert.deepEqual([...bytes], [0x15, 0, 2, 3, 0x3e, 0, 0, 0xc0]);
    // Without devices it still parses seccomp_data right and allows everything of this arch.
    assert.equal(runFilter(blockBoundsFilter([], "x64"), { nr: PWRITE64, args: [5n, 0n, 512n, 0n] }), SECCOMP_RET_ALLOW);
  });
});

describe("what --memory bounds (memory.ts)", () => {
  test("the data limit is what the process holds plus the appliance's MiB", () => {
    assert.equal(vmDataKiB("Name:\tnode\nVmData:\t   64936 kB\nVmStk:\t 132 kB\n"), 64936);
    assert.throws(() => vmDataKiB("Name:\tnode\n"), /cannot read VmData/);
    assert.equal(dataLimitBytes(64936, 64), 64936 * 1024 + 64 * MIB);
  });

  test("the young generation is kept in proportion to the bound", () => {
    assert.deepEqual([16, 32, 64, 256, 4096, 1048576].map(semiSpaceMiB), [1, 2, 4, 16, 16, 16]);
  });

  test("an unhandled ArrayBuffer refusal reads as out of memory only under --memory", () => {
    const line = "atoll: appliance 'x' ran out of memory: its heap and array buffers are limited to 64 MiB (--memory) (uncaught RangeError: Array buffer allocation failed)";
    assert.equal(arrayBufferRefusal("RangeError: Array buffer allocation failed\n    at new ArrayBuffer", "x", 64), line);
    assert.equal(arrayBufferRefusal("unhandled promise rejection: RangeError: Array buffer allocation failed", "x", 64), line);
    assert.equal(arrayBufferRefusal("RangeError: Array buffer allocation failed", "x", undefined), undefined);
    assert.equal(arrayBufferRefusal("RangeError: Invalid array length", "x", 64), undefined);
    assert.equal(engineFailureLines("x", undefined).outOfMemory, "atoll: appliance 'x' ran out of memory");
    assert.equal(engineFailureLines("x", 64).fatalStatus, 134);
  });
});

// ---------------------------------------------------------------------------------------------
// End to end: the appliance process under the bounds.
// ---------------------------------------------------------------------------------------------

/**
 * Runs a command and returns, with its status, the largest resident set of it and of every
 * descendant it waited for (getrusage(RUSAGE_CHILDREN).ru_maxrss, in KiB): here the launcher and the
 * appliance process. Python's resource module makes the call; undefined without python3.
 */
function peakResident(argv: readonly string[]): { status: number; stdout: string; stderr: string; maxRssKiB: number } | undefined {
  const script = "import resource, subprocess, sys\nr = subprocess.run(sys.argv[1:])\nsys.stderr.write('MAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)";
  const result = spawnSync("python3", ["-c", script, ...argv], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  if (result.error !== undefined) return undefined;
  const match = /MAXRSS (\d+)\n$/.exec(result.stderr);
  assert.ok(match?.[1] !== undefined, result.stderr);
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr.slice(0, match.index), maxRssKiB: Number(match[1]) };
}

describe("--memory bounds array buffers as well as the heap", () => {
  const python = spawnSync("python3", ["-c", "0"]).status === 0;

  test("an appliance that keeps ArrayBuffers ends with one out-of-memory line, and its memory stays within the bound", { skip: python ? false : "no python3 for getrusage" }, () => {
    const image = fixtureImage("ballast");
    const run = (args: readonly string[]): NonNullable<ReturnType<typeof peakResident>> =>
      peakResident([process.execPath, ATOLL, "run", image, "--tender", "spt", "--memory", "64", "--", ...args]) ?? assert.fail("python3 vanished");
    const idle = run(["hold", "0"]);
    assert.equal(idle.status, 0, idle.stderr);
    const grown = run(["grow"]);
    assert.equal(grown.status, 255);
    assert.match(grown.stderr, /^atoll: appliance 'ballast' ran out of memory: its heap and array buffers are limited to 64 MiB \(--memory\)( \[(V8|C\+\+): [^\]\n]+\]| \(uncaught RangeError: Array buffer allocation failed\))\n$/);
    // Resident memory: the bound's 64 MiB over the same appliance at rest, plus 16 MiB for the
    // engine's own growth (JIT code, the young generation's second half, page tables). Unbounded,
    // the loop took 2-3 GiB.
    const grewKiB = grown.maxRssKiB - idle.maxRssKiB;
    assert.ok(grewKiB <= (64 + 16) * 1024, `the appliance grew by ${Math.round(grewKiB / 1024)} MiB under --memory 64`);
  });

  test("a large ArrayBuffer past the bound is a RangeError the image can handle; unhandled, it is out of memory", async () => {
    const image = fixtureImage("ballast");
    const caught = await atollRun(image, ["--memory", "64", "--", "once", "128"]);
    assert.equal(caught.stdout, "REFUSED RangeError\n");
    assert.equal(caught.stderr, "");
    assert.equal(caught.status, 3);
    const uncaught = await atollRun(image, ["--memory", "64", "--", "once-uncaught", "128"]);
    assert.equal(uncaught.stderr, "atoll: appliance 'ballast' ran out of memory: its heap and array buffers are limited to 64 MiB (--memory) (uncaught RangeError: Array buffer allocation failed)\n");
    assert.equal(uncaught.status, 255);
  });

  test("array buffers within the bound are untouched", async () => {
    const image = fixtureImage("ballast");
    const held = await atollRun(image, ["--memory", "64", "--", "hold", "32"]);
    assert.equal(held.stderr, "");
    assert.equal(held.stdout, "HELD 32 MiB\n");
    assert.equal(held.status, 0);
    // Without --memory nothing is bounded but the host's memory: 128 MiB in one piece is fine.
    const unbounded = await atollRun(image, ["--", "once", "128"]);
    assert.equal(unbounded.stdout, "GOT\n");
    assert.equal(unbounded.status, 0);
  });
});

describe("the engine giving up is reported as such (test build with the native probe)", () => {
  const probe = buildProbe();
  const skip = "skip" in probe ? probe.skip : false;
  const env = { ...process.env, ATOLL_SPT_TEST_PROBE: "path" in probe ? probe.path : "" };

  test("abort() (V8's and Node's last resort): one line, status 134, not SIGSYS", { skip }, async () => {
    const result = await runAsync([process.execPath, "--import", "tsx", PROBE_TENDER, "run", fixtureImage("probe"), "--", "abort"], { env });
    assert.equal(result.stderr, "atoll: appliance 'probe' was aborted by the JavaScript engine (SIGABRT)\n");
    assert.equal(result.stdout, "", "abort() returned");
    assert.equal(result.status, 134);
  });

  test("a V8 fatal error: V8's reason in one line, status 134, not SIGSYS", { skip }, async () => {
    const result = await runAsync([process.execPath, "--import", "tsx", PROBE_TENDER, "run", fixtureImage("probe"), "--", "v8-fatal"], { env });
    assert.equal(result.stderr, "atoll: appliance 'probe' was aborted by the JavaScript engine [V8: EscapableHandleScope::Escape: Escape value set twice]\n");
    assert.equal(result.status, 134);
  });

  test("a C++ allocation that fails (operator new, as in V8's GC under the bound): out of memory, 255", { skip }, async () => {
    const result = await runAsync([process.execPath, "--import", "tsx", PROBE_TENDER, "run", fixtureImage("probe"), "--", "new-fail"], { env });
    assert.equal(result.stderr, "atoll: appliance 'probe' ran out of memory [C++: operator new]\n");
    assert.equal(result.stdout, "");
    assert.equal(result.status, 255);
  });

  test("a crash in native code (SIGSEGV): reported as a crash, 139, not SIGSYS", { skip }, async () => {
    const result = await runAsync([process.execPath, "--import", "tsx", PROBE_TENDER, "run", fixtureImage("probe"), "--", "segv"], { env });
    assert.equal(result.stderr, "atoll: appliance 'probe' crashed (SIGSEGV)\n");
    assert.equal(result.status, 139);
  });
});

describe("block writes cannot grow the block file (test build with the native probe)", () => {
  const probe = buildProbe();
  const skip = "skip" in probe ? probe.skip : false;
  const env = { ...process.env, ATOLL_SPT_TEST_PROBE: "path" in probe ? probe.path : "" };
  const capacity = MIB;
  // The image declares one block device and no net: its fd is the first device fd.
  const blockFd = 5;
  const writeWith = (disk: string, offset: number, count: number): ReturnType<typeof runAsync> =>
    runAsync([process.execPath, "--import", "tsx", PROBE_TENDER, "run", fixtureImage("probe-disk"), "--block", `disk=${disk}`, "--", `pwrite:${blockFd}:${offset}:${count}`], { env });

  test("native code writing 256 KiB at capacity - 512 is killed, and the file keeps its size and bytes", { skip }, async () => {
    const disk = join(scratchDir(), "grow.img");
    writeFileSync(disk, "");
    truncateSync(disk, capacity);
    const result = await writeWith(disk, capacity - 512, 256 * 1024);
    assert.equal(result.stderr, "atoll: appliance 'probe-disk' was killed for a forbidden system call (SIGSYS)\n");
    assert.equal(result.stdout, "", "the write returned");
    assert.equal(result.status, 159);
    assert.equal(statSync(disk).size, capacity);
    assert.ok(readFileSync(disk).every((byte) => byte === 0), "bytes were written");
  });

  test("the same probe may write the device's last block (the filter bounds, it does not forbid)", { skip }, async () => {
    const disk = join(scratchDir(), "last.img");
    writeFileSync(disk, "");
    truncateSync(disk, capacity);
    const result = await writeWith(disk, capacity - 512, 512);
    assert.equal(result.stdout, `PROBE pwrite:${blockFd}:${capacity - 512}:512 returned 512\n`);
    assert.equal(result.status, 0);
    assert.equal(statSync(disk).size, capacity);
    assert.equal(readFileSync(disk)[capacity - 1], 0xab);
  });
});

/**
 * Issue #12, finding 2: the user-mode network gateway runs with least privilege. Checked through
 * /proc on the running gateway of each tender while it serves: as root, nobody with no groups, no
 * capabilities (bounding set too), no_new_privs, the seccomp filter on every thread, a mount
 * namespace of its own holding one empty read-only tmpfs, and the host's network namespace (it
 * publishes ports there); without root (setpriv as nobody), the filter and no_new_privs. The
 * filter itself: read back from libseccomp's listing, it refuses what a compromised gateway would
 * want (socket, connect, open, execve ...) and kills on everything else. An addon that cannot
 * build the filter is refused in one line unless ATOLL_GATEWAY_UNSEALED=1 opts in.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";

import { filterRules } from "../../../src/tenders/spt/allowlist.ts";
import { loadSptNative } from "../../../src/tenders/spt/native.ts";
import { GATEWAY_ALLOWED_SYSCALLS, gatewayAllowlist } from "../../../src/tenders/user/allowlist.ts";
import { socketInodes } from "../../../src/tenders/user/seal.ts";
import { planGatewaySeal, tenderPrivileges } from "../../../src/tenders/user/spawn.ts";
import { exampleImage, ROOT } from "../../helpers/cli.ts";
import { exercise, startEcho } from "./fixtures/gateway.ts";

const isRoot = process.getuid?.() === 0;
const sptAddon = join(ROOT, "build", "Release", "atoll_spt.node");

function statusField(pid: number, name: string): string {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((item) => item.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim() ?? "";
}

describe("the sealed gateway, as root", { skip: !isRoot ? "needs root (CI runs as root)" : !existsSync(sptAddon) ? "needs the atoll_spt addon" : false }, () => {
  for (const tender of ["node", "spt"] as const) {
    test(`${tender} tender: nobody, no capabilities, no_new_privs, filtered threads, an empty root, the host's network; traffic flows`, { timeout: 60_000 }, async () => {
      const run = await startEcho(tender);
      try {
        const gateway = run.gateway;
        assert.equal(statusField(gateway, "Uid"), "65534\t65534\t65534\t65534");
        assert.equal(statusField(gateway, "Gid"), "65534\t65534\t65534\t65534");
        assert.equal(statusField(gateway, "Groups"), "");
        for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) assert.equal(statusField(gateway, set), "0000000000000000", set);
        assert.equal(statusField(gateway, "NoNewPrivs"), "1");
        assert.equal(statusField(gateway, "Seccomp"), "2");
        const threads = readdirSync(`/proc/${gateway}/task`);
        assert.ok(threads.length > 1, "Node's threads");
        for (const task of threads) {
          const status = readFileSync(`/proc/${gateway}/task/${task}/status`, "utf8");
          assert.match(status, /^Seccomp:\t2$/m, `thread ${task}`);
          assert.match(status, /^NoNewPrivs:\t1$/m, `thread ${task}`);
          assert.match(status, /^CapEff:\t0000000000000000$/m, `thread ${task}`);
          assert.match(status, /^Uid:\t65534\t65534\t65534\t65534$/m, `thread ${task}`);
        }
        // Its own mount namespace, with one mount: the empty read-only tmpfs.
        assert.notEqual(readlinkSync(`/proc/${gateway}/ns/mnt`), readlinkSync("/proc/self/ns/mnt"), "mount namespace");
        const mounts = readFileSync(`/proc/${gateway}/mountinfo`, "utf8").trim().split("\n");
        assert.equal(mounts.length, 1, mounts.join("\n"));
        assert.match(mounts[0] ?? "", / \/ ro,nosuid,nodev,noexec,relatime - tmpfs atoll-empty /);
        // The host's network namespace: it publishes the ports there.
        assert.equal(readlinkSync(`/proc/${gateway}/ns/net`), readlinkSync("/proc/self/ns/net"), "network namespace");
        // And it still relays: TCP both ways with half-close, refusals, resets, UDP.
        await exercise(run, 2);
        assert.equal(readFileSync(`/proc/${gateway}/stat`, "utf8").split(" ")[2] !== "Z", true, "the gateway is alive after the traffic");
        assert.doesNotMatch(run.output(), /user-mode network gateway|atoll gateway/, "nothing said about the gateway");
      } finally {
        await run.stop();
      }
    });
  }
});

describe("the sealed gateway, without root", { skip: !isRoot ? "needs root to become nobody (setpriv)" : !existsSync("/usr/bin/setpriv") ? "needs setpriv (util-linux)" : false }, () => {
  test("as nobody: filtered with no_new_privs, in the host's mount namespace (no empty root without CAP_SYS_ADMIN); traffic flows", { timeout: 60_000 }, async () => {
    // The whole `atoll run` as nobody, on a copy of the image that nobody can read.
    const dir = mkdtempSync(join(tmpdir(), "atoll-gateway-nobody-"));
    chmodSync(dir, 0o755);
    const image = join(dir, "echo.atoll");
    copyFileSync(exampleImage("echo"), image);
    chmodSync(image, 0o644);
    const wrap = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"];
    const run = await startEcho("node", { wrap, image, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ATOLL_CODE_CACHE: "0" } }).catch((error: unknown) => {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    });
    try {
      const gateway = run.gateway;
      assert.equal(statusField(gateway, "Uid"), "65534\t65534\t65534\t65534");
      assert.equal(statusField(gateway, "NoNewPrivs"), "1");
      for (const task of readdirSync(`/proc/${gateway}/task`)) {
        assert.match(readFileSync(`/proc/${gateway}/task/${task}/status`, "utf8"), /^Seccomp:\t2$/m, `thread ${task}`);
      }
      assert.equal(readlinkSync(`/proc/${gateway}/ns/mnt`), readlinkSync("/proc/self/ns/mnt"), "mount namespace");
      await exercise(run, 1);
      assert.doesNotMatch(run.output(), /user-mode network gateway|atoll gateway/, "nothing said about the gateway");
    } finally {
      await run.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the sealed gateway under root without CAP_SYS_ADMIN (as in a default container)", { skip: !isRoot ? "needs root" : !existsSync("/usr/bin/setpriv") ? "needs setpriv (util-linux)" : false }, () => {
  test("nobody without capabilities, filtered, in the host's mount namespace (no empty root without CAP_SYS_ADMIN); traffic flows", { timeout: 60_000 }, async () => {
    const wrap = ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-all", "--"];
    const run = await startEcho("node", { wrap });
    try {
      const gateway = run.gateway;
      assert.equal(statusField(gateway, "Uid"), "65534\t65534\t65534\t65534");
      assert.equal(statusField(gateway, "Groups"), "");
      for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) assert.equal(statusField(gateway, set), "0000000000000000", set);
      assert.equal(statusField(gateway, "NoNewPrivs"), "1");
      for (const task of readdirSync(`/proc/${gateway}/task`)) {
        assert.match(readFileSync(`/proc/${gateway}/task/${task}/status`, "utf8"), /^Seccomp:\t2$/m, `thread ${task}`);
      }
      assert.equal(readlinkSync(`/proc/${gateway}/ns/mnt`), readlinkSync("/proc/self/ns/mnt"), "mount namespace");
      await exercise(run, 1);
      assert.doesNotMatch(run.output(), /user-mode network gateway|atoll gateway/, "nothing said about the gateway");
    } finally {
      await run.stop();
    }
  });
});

describe("the gateway's filter", { skip: existsSync(sptAddon) ? false : "needs the atoll_spt addon" }, () => {
  const fds = { listeners: [19, 21], datagrams: [20], epolls: [4, 10], pid: 1234 };

  test("every entry has a reason; no call twice", () => {
    assert.equal(new Set(GATEWAY_ALLOWED_SYSCALLS).size, GATEWAY_ALLOWED_SYSCALLS.length);
    for (const call of gatewayAllowlist(fds)) assert.ok(call.why.length >= 10, call.syscall);
  });

  test("nothing that makes a socket, a file, a process or a privilege is allowed", () => {
    for (const forbidden of ["socket", "socketpair", "connect", "bind", "listen", "accept", "open", "openat", "openat2", "execve", "execveat", "fork", "vfork", "clone", "clone3", "ptrace", "kill", "setuid", "mount", "unshare", "setns", "sendto", "memfd_create", "pipe2", "dup", "dup2", "dup3"]) {
      assert.ok(!GATEWAY_ALLOWED_SYSCALLS.includes(forbidden), forbidden);
    }
  });

  test("libseccomp's listing: kills by default and on other architectures; accept4 only on the listeners, datagrams only on the UDP sockets", { skip: loadSptNativeOrSkip() }, () => {
    const listing = loadSptNative().compileFilter(filterRules(gatewayAllowlist(fds)), "pfc").toString("utf8");
    assert.match(listing, /# default action\n\s*action KILL_PROCESS;/, "the default action");
    assert.match(listing, /# invalid architecture action\n\s*action KILL_PROCESS;/, "other architectures");
    for (const name of GATEWAY_ALLOWED_SYSCALLS) assert.match(listing, new RegExp(`# filter for syscall "${name}" `), name);
    const section = (name: string): string => {
      const start = listing.indexOf(`# filter for syscall "${name}" `);
      const end = listing.indexOf("# filter for syscall", start + 1);
      return listing.slice(start, end < 0 ? undefined : end);
    };
    // Argument 0 (the fd) compared with exactly the listening fds, UDP sockets.
    const fdsCompared = (name: string): number[] => [...section(name).matchAll(/\$a0\.lo32 & 0xffffffff == (\d+)/g)].map((match) => Number(match[1])).sort((a, b) => a - b);
    assert.deepEqual(fdsCompared("accept4"), [19, 21]);
    assert.deepEqual(fdsCompared("sendmsg"), [20]);
    assert.deepEqual(fdsCompared("recvmsg"), [20]);
  });

  test("the published sockets are found by inode in /proc/net tables: listeners by state, every UDP socket", () => {
    const tcp = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 0100007F:A0C8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 24402 1 0000000000000000 100 0 0 10 0",
      "   1: 0100007F:A0C8 0100007F:D3A4 01 00000000:00000000 00:00000000 00000000     0        0 25555 1 0000000000000000 20 4 30 10 -1",
      "   2: 0100007F:A0C9 0100007F:D3A5 06 00000000:00000000 03:00000DD5 00000000     0        0 0 3 0000000000000000",
    ].join("\n");
    assert.deepEqual([...socketInodes(tcp, "0A")], ["24402"]);
    assert.deepEqual([...socketInodes(tcp)], ["24402", "25555"]);
    assert.deepEqual([...socketInodes("header only\n")], []);
  });
});

const SEALED_PROBE = join(ROOT, "test", "tenders", "user", "fixtures", "sealed-probe.ts");

/** Runs the sealed probe (fd 3 taken, as the gateway's link takes it); its status (128 + signal when killed) and stdout. */
function sealedProbe(action: string): { status: number; stdout: string } {
  const result = spawnSync(process.execPath, ["--import", "tsx", SEALED_PROBE, action], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe", "pipe"], encoding: "utf8", timeout: 30_000 });
  const status = result.status ?? 128 + (result.signal === null ? 0 : constants.signals[result.signal]);
  return { status, stdout: result.stdout };
}

describe("a forbidden call after the gateway's lockdown (a process sealed by sealGateway: no debug hook in the gateway itself)", { skip: loadSptNativeOrSkip() }, () => {
  test("an allowed life (timers, a write, exit) goes on", () => {
    assert.deepEqual(sealedProbe("allowed"), { status: 0, stdout: "SEALED\nRETURNED\n" });
  });
  for (const action of ["open", "socket", "execve"]) {
    test(`${action}: killed by SIGSYS before it returns`, () => {
      assert.deepEqual(sealedProbe(action), { status: 128 + constants.signals.SIGSYS, stdout: "SEALED\n" });
    });
  }
});

function loadSptNativeOrSkip(): string | false {
  try {
    loadSptNative().compileFilter([], "bpf");
    return false;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

const ROOT_PRIVILEGES = { emptyRoot: true, dropPrivileges: true };

describe("how the tender plans the gateway's seal (an addon without libseccomp, the tender's privileges)", () => {
  const withoutLibseccomp = {
    compileFilter(): Buffer {
      throw Object.assign(new Error("atoll: the spt tender was built without libseccomp: install libseccomp-dev and run `npm run build:native`"), { code: "ENOSYS" });
    },
  };

  test("runs unfiltered (still isolated as root), with a one-line warning naming what is missing and the fix", () => {
    const plan = planGatewaySeal("service", withoutLibseccomp, ROOT_PRIVILEGES);
    assert.deepEqual(plan.seal, { emptyRoot: true, dropPrivileges: true, uid: 65534, gid: 65534, filter: false });
    assert.equal(
      plan.warning,
      "atoll: warning: net device 'service': the user-mode network gateway runs without its seccomp filter: the spt tender was built without libseccomp: install libseccomp-dev and run `npm run build:native`",
    );
    const user = { emptyRoot: false, dropPrivileges: false };
    assert.deepEqual(planGatewaySeal("service", withoutLibseccomp, user).seal, { ...user, uid: 65534, gid: 65534, filter: false });
  });

  test("a working addon: filtered always, isolated as far as the tender's privileges go", () => {
    const working = { compileFilter: (): Buffer => Buffer.alloc(8) };
    assert.deepEqual(planGatewaySeal("service", working, ROOT_PRIVILEGES), { seal: { emptyRoot: true, dropPrivileges: true, uid: 65534, gid: 65534, filter: true } });
    const user = { emptyRoot: false, dropPrivileges: false };
    assert.deepEqual(planGatewaySeal("service", working, user), { seal: { ...user, uid: 65534, gid: 65534, filter: true } });
  });

  test("the tender's privileges, from its effective capabilities: root, root in a default Docker container, a user", () => {
    const status = (capEff: string): string => `Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\nCapBnd:\t${capEff}\n`;
    assert.deepEqual(tenderPrivileges(status("000001ffffffffff")), ROOT_PRIVILEGES);
    // Docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    assert.deepEqual(tenderPrivileges(status("00000000a80425fb")), { emptyRoot: false, dropPrivileges: true });
    assert.deepEqual(tenderPrivileges(status("0000000000000000")), { emptyRoot: false, dropPrivileges: false });
    assert.deepEqual(tenderPrivileges("no capability lines"), { emptyRoot: false, dropPrivileges: false });
  });
});

describe("a package whose spt addon does not load (another Node major version, or not built)", () => {
  /** The CLI and the atoll_native addon, without atoll_spt: enough for `atoll run`. */
  const makePackage = (): string => {
    const dir = mkdtempSync(join(tmpdir(), "atoll-gateway-noaddon-"));
    for (const path of ["package.json", join("bin", "atoll.cjs"), join("build", "atoll.cjs"), join("build", "Release", "atoll_native.node")]) {
      mkdirSync(join(dir, dirname(path)), { recursive: true });
      copyFileSync(join(ROOT, path), join(dir, path));
    }
    return dir;
  };

  test("atoll run refuses in one line (status 125) naming what is missing, the fix and the opt-in", () => {
    const dir = makePackage();
    try {
      const result = spawnSync(process.execPath, [join(dir, "bin", "atoll.cjs"), "run", exampleImage("echo")], { encoding: "utf8", timeout: 30_000 });
      assert.equal(result.status, 125);
      assert.equal(
        result.stderr,
        "atoll run: net device 'service': the user-mode network gateway cannot be sealed: the spt tender's addon is not built (build/Release/atoll_spt.node missing): install libseccomp-dev and run `npm run build:native`; or set ATOLL_GATEWAY_UNSEALED=1 to run it unsealed\n",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("with ATOLL_GATEWAY_UNSEALED=1 the gateway runs unsealed, says so in one line, and relays", { timeout: 60_000 }, async () => {
    const dir = makePackage();
    try {
      const run = await startEcho("node", { cli: join(dir, "bin", "atoll.cjs"), env: { ...process.env, ATOLL_GATEWAY_UNSEALED: "1" } });
      try {
        assert.match(run.output(), /^atoll: warning: net device 'service': the user-mode network gateway runs unsealed \(ATOLL_GATEWAY_UNSEALED=1\): the spt tender's addon is not built/);
        assert.equal(statusField(run.gateway, "Seccomp"), "0");
        await exercise(run, 1);
      } finally {
        await run.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The spt tender's process-level guarantees: the seccomp filter kills the appliance process for
 * any call outside the allowlist (proven with a test-only native probe), the process runs as
 * nobody without capabilities in namespaces of its own with an empty root, signals and the
 * launcher's death end it, --memory bounds its heap with a one-line message, and the boot trace
 * works. Needs root for the namespaces (CI runs as root); the non-root checks use setpriv.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { allowlist, ALLOWED_SYSCALLS, filterRules } from "../../../src/tenders/spt/allowlist.ts";
import { loadSptNative } from "../../../src/tenders/spt/native.ts";
import { ATOLL, exampleImage } from "../../helpers/cli.ts";
import { canUseNamespaces, Netns, waitFor } from "../../helpers/netns.ts";
import { atollRun, buildProbe, cleanupScratch, fixtureImage, PROBE_TENDER, runAsync, scratchDir } from "./fixtures/harness.ts";

const isRoot = process.getuid?.() === 0;
const SIGSYS_LINE = "atoll: appliance 'probe' was killed for a forbidden system call (SIGSYS)\n";

after(() => cleanupScratch());

/** The appliance process: the launcher's only child. */
function applianceOf(launcherPid: number): number {
  const children = readFileSync(`/proc/${launcherPid}/task/${launcherPid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  assert.equal(children.length, 1, `launcher ${launcherPid} has children ${children.join(", ")}`);
  return children[0] ?? 0;
}

function statusField(pid: number, name: string): string {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((item) => item.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim() ?? "";
}

function isGone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(" ")[2] === "Z";
  } catch {
    return true;
  }
}

describe("the seccomp filter (test build of the tender with the native probe)", () => {
  const probe = buildProbe();
  const skip = "skip" in probe ? probe.skip : false;
  const runProbe = (call: string, env: NodeJS.ProcessEnv = {}): ReturnType<typeof runAsync> =>
    runAsync([process.execPath, "--import", "tsx", PROBE_TENDER, "run", fixtureImage("probe"), "--", call], {
      env: { ...process.env, ...env, ATOLL_SPT_TEST_PROBE: "path" in probe ? probe.path : "" },
    });

  test("an allowed call made by the probe returns (the probe works, and the process is PID 1 of its namespace)", { skip }, async () => {
    const result = await runProbe("getpid");
    assert.equal(result.stderr, "");
    if (isRoot) assert.equal(result.stdout, "PROBE getpid returned 1\n");
    else assert.match(result.stdout, /^PROBE getpid returned [0-9]+\n$/);
    assert.equal(result.status, 0);
  });

  for (const call of ["open", "openat", "socket", "execve", "fork", "clone", "ptrace", "write-stdin", "mmap-exec"]) {
    test(`${call} after lockdown: killed by SIGSYS, reported in one line`, { skip }, async () => {
      const result = await runProbe(call);
      assert.equal(result.status, 128 + 31, result.stderr);
      assert.equal(result.stderr, SIGSYS_LINE);
      assert.equal(result.stdout, "", "the call returned instead of killing the process");
    });
  }

  test("the production tender has no probe, whatever the environment says", { skip }, async () => {
    const result = await atollRun(fixtureImage("probe"), ["--", "open"], { env: { ...process.env, ATOLL_SPT_TEST_PROBE: "path" in probe ? probe.path : "" } });
    assert.equal(result.stdout, "NO-PROBE\n");
    assert.equal(result.status, 3);
  });
});

describe("the appliance process (ping on a TAP)", { skip: canUseNamespaces() }, () => {
  let ns: Netns | undefined;
  before(() => {
    ns = new Netns(`atoll-spt-lock-${process.pid}`);
    ns.addTap("tap0", "198.18.0.1/24");
  });
  after(() => ns?.destroy());

  const startPing = async (): Promise<{ launcher: ReturnType<Netns["spawn"]>; appliance: number }> => {
    assert.ok(ns !== undefined);
    const launcher = ns.spawn([process.execPath, ATOLL, "run", exampleImage("ping"), "--tender", "spt", "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2/24"]);
    await waitFor("the appliance to start", () => launcher.output().includes("answering ARP and ping"));
    assert.ok(launcher.pid !== undefined);
    return { launcher, appliance: applianceOf(launcher.pid) };
  };

  test("is nobody, without capabilities, filtered, in its own namespaces, with an empty root and only its devices", async () => {
    assert.ok(ns !== undefined);
    const { launcher, appliance } = await startPing();
    assert.ok(launcher.pid !== undefined);
    try {
      checkIsolation(launcher.pid, appliance);
      // The TAP opened in the launcher's namespace works from the new one.
      assert.match(ns.exec(["ping", "-c", "3", "-i", "0.1", "-W", "2", "198.18.0.2"]), /3 packets transmitted, 3 received/);
    } finally {
      launcher.kill("SIGTERM");
    }
    assert.equal(await launcher.exited, 143, launcher.output());
    await waitFor("the appliance process to be gone", () => isGone(appliance), 5000);
  });

  function checkIsolation(launcherPid: number, appliance: number): void {
    assert.equal(statusField(appliance, "Uid"), "65534\t65534\t65534\t65534");
    assert.equal(statusField(appliance, "Gid"), "65534\t65534\t65534\t65534");
    assert.equal(statusField(appliance, "Groups"), "");
    for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) assert.equal(statusField(appliance, set), "0000000000000000", set);
    assert.equal(statusField(appliance, "NoNewPrivs"), "1");
    assert.equal(statusField(appliance, "Seccomp"), "2");
    // Every thread is filtered (TSYNC) and unprivileged.
    for (const task of readdirSync(`/proc/${appliance}/task`)) {
      const status = readFileSync(`/proc/${appliance}/task/${task}/status`, "utf8");
      assert.match(status, /^Seccomp:\t2$/m, `thread ${task}`);
      assert.match(status, /^CapEff:\t0000000000000000$/m, `thread ${task}`);
    }
    assert.equal(statusField(appliance, "NSpid").split("\t").pop(), "1", "PID 1 of its own PID namespace");
    for (const kind of ["mnt", "pid", "ipc", "net"]) {
      assert.notEqual(readlinkSync(`/proc/${appliance}/ns/${kind}`), readlinkSync(`/proc/${launcherPid}/ns/${kind}`), `${kind} namespace`);
    }
    const mounts = readFileSync(`/proc/${appliance}/mountinfo`, "utf8").trim().split("\n");
    assert.equal(mounts.length, 1, mounts.join("\n"));
    assert.match(mounts[0] ?? "", / \/ ro,nosuid,nodev,noexec,relatime - tmpfs atoll-empty /);
    const fds = Object.fromEntries(readdirSync(`/proc/${appliance}/fd`).map((fd) => [fd, readlinkSync(`/proc/${appliance}/fd/${fd}`)]));
    assert.equal(fds["0"], "/dev/null");
    assert.equal(fds["5"], "/dev/net/tun", "the TAP");
    for (const [fd, target] of Object.entries(fds)) {
      if (["0", "1", "2", "5"].includes(fd)) continue;
      // libuv's own: wake-up pipes and eventfds, epoll instances, and a /dev/null it keeps open
      // to survive EMFILE (shown relative to the device's mount, outside the empty root).
      assert.match(target, /^(pipe:|anon_inode:\[(eventfd|eventpoll)\]$|(\/dev)?\/null$)/, `fd ${fd} -> ${target}`);
    }
  }

  test("a SIGTERM during boot is held until the appliance process handles signals, then ends it with 143", async () => {
    assert.ok(ns !== undefined);
    const launcher = ns.spawn([process.execPath, ATOLL, "run", exampleImage("ping"), "--tender", "spt", "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2/24"]);
    assert.ok(launcher.pid !== undefined);
    const pid = launcher.pid;
    // As soon as the appliance process exists: it is still starting Node, long before its handlers.
    await waitFor("the appliance process", () => {
      try {
        return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim() !== "";
      } catch {
        return false;
      }
    });
    launcher.kill("SIGTERM");
    assert.equal(await launcher.exited, 143, launcher.output());
  });

  test("SIGINT ends it with 130", async () => {
    const { launcher, appliance } = await startPing();
    launcher.kill("SIGINT");
    assert.equal(await launcher.exited, 130, launcher.output());
    await waitFor("the appliance process to be gone", () => isGone(appliance), 5000);
  });

  test("a launcher killed with SIGKILL takes the appliance process with it", async () => {
    const { launcher, appliance } = await startPing();
    launcher.kill("SIGKILL");
    await launcher.exited;
    await waitFor("the appliance process to be gone", () => isGone(appliance), 5000);
  });
});

describe("--memory", () => {
  test("an appliance that runs out of heap ends with one line and status 255, promptly", async () => {
    const started = Date.now();
    const result = await atollRun(fixtureImage("hog"), ["--memory", "32"]);
    assert.equal(result.status, 255);
    assert.equal(result.stderr, "atoll: appliance 'hog' ran out of memory: its V8 heap is limited to 32 MiB (--memory)\n");
    assert.ok(Date.now() - started < 30_000, "it took too long");
  });

  test("a heap well within the limit runs to the end", async () => {
    const result = await atollRun(fixtureImage("hog"), ["--memory", "64", "--", "steady"]);
    assert.equal(result.stderr, "");
    assert.match(result.stdout, /steady: kept 20 rows/);
    assert.equal(result.status, 0);
  });

  test("refuses values that are not a size, and the node tender", async () => {
    const hello = exampleImage("hello");
    for (const value of ["0", "15", "1.5", "64M", "-1", "9999999"]) {
      const result = await atollRun(hello, [`--memory=${value}`]);
      assert.equal(result.status, 125, value);
      assert.equal(result.stderr, `atoll run: --memory ${value}: give a whole number of MiB from 16 to 1048576, e.g. --memory 256\n`);
    }
    const node = await atollRun(hello, ["--memory", "64"], { tender: "node" });
    assert.equal(node.status, 125);
    assert.equal(node.stderr, "atoll run: --memory needs --tender spt (the node tender runs the appliance in atoll's own heap)\n");
  });
});

describe("running hello on spt", () => {
  test("prints, exits with the status it chooses, and refuses --inspect", async () => {
    const hello = exampleImage("hello");
    const result = await atollRun(hello, ["--", "spt", "--exit", "3"]);
    assert.equal(result.stdout.split("\n")[0], "Hello, spt! (from an Atoll appliance)");
    assert.equal(result.status, 3, result.stderr);
    const inspect = await atollRun(hello, ["--inspect"]);
    assert.equal(inspect.status, 125);
    assert.equal(inspect.stderr, "atoll run: --inspect is not available on the spt tender: the sealed appliance may open no socket for a debugger (debug it with --tender node)\n");
  });

  test("on a terminal too: Node's exit path restores the terminal under the filter", { skip: existsSync("/usr/bin/script") ? false : "needs script (util-linux)" }, async () => {
    const command = `${process.execPath} ${ATOLL} run ${exampleImage("hello")} --tender spt -- tty; echo "status=$?"`;
    const result = await runAsync(["script", "-qec", command, "/dev/null"]);
    assert.match(result.stdout, /Hello, tty! \(from an Atoll appliance\)/);
    assert.match(result.stdout, /status=0/, result.stdout);
    assert.doesNotMatch(result.stdout, /SIGSYS/);
  });

  test("ATOLL_BOOT_TRACE reports both processes' milestones in the launcher's clock, and the code cache", async () => {
    const cache = mkdtempSync(join(tmpdir(), "atoll-spt-cache-"));
    try {
      const traces: Record<string, unknown>[] = [];
      for (let run = 0; run < 2; run++) {
        const tracePath = join(scratchDir(), `trace-${run}.json`);
        const result = await atollRun(exampleImage("hello"), ["--log", "quiet"], { env: { ...process.env, ATOLL_BOOT_TRACE: tracePath, XDG_CACHE_HOME: cache } });
        assert.equal(result.status, 0, result.stderr);
        const trace: unknown = JSON.parse(readFileSync(tracePath, "utf8"));
        assert.ok(typeof trace === "object" && trace !== null);
        traces.push(Object.fromEntries(Object.entries(trace)));
      }
      const milestones = ["tenderStart", "imageRead", "imageVerified", "devicesOpen", "applianceSpawned", "applianceStart", "contextReady", "lockedDown", "imageEvaluated", "startCalled"];
      for (const trace of traces) {
        const times = milestones.map((name) => trace[name]);
        for (const [index, time] of times.entries()) assert.equal(typeof time, "number", milestones[index]);
        assert.deepEqual([...times].sort((a, b) => Number(a) - Number(b)), times, `milestones out of order: ${JSON.stringify(trace)}`);
      }
      assert.equal(traces[0]?.codeCache, "miss");
      assert.equal(traces[1]?.codeCache, "hit");
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});

describe("without root", { skip: isRoot ? false : "needs root to become another user (setpriv); CI runs as root" }, () => {
  test("an unprivileged user gets the seal and the filter, without namespaces", async () => {
    // Somewhere nobody can read the image from.
    const dir = mkdtempSync(join(tmpdir(), "atoll-spt-nobody-"));
    chmodSync(dir, 0o755);
    try {
      const image = join(dir, "probe.atoll");
      const copy = await runAsync(["cp", fixtureImage("probe"), image]);
      assert.equal(copy.status, 0);
      chmodSync(image, 0o644);
      const probe = buildProbe();
      if ("skip" in probe) return;
      const probeCopy = join(dir, "probe.node");
      await runAsync(["cp", probe.path, probeCopy]);
      chmodSync(probeCopy, 0o755);
      const asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"];
      const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ATOLL_CODE_CACHE: "0", ATOLL_SPT_TEST_PROBE: probeCopy };
      const hello = await runAsync([...asNobody, process.execPath, ATOLL, "run", image, "--tender", "spt", "--", "getpid"], { env });
      assert.equal(hello.stdout, "NO-PROBE\n", hello.stderr);
      const allowed = await runAsync([...asNobody, process.execPath, "--import", "tsx", PROBE_TENDER, "run", image, "--", "getpid"], { env });
      assert.match(allowed.stdout, /^PROBE getpid returned [0-9]+\n$/, allowed.stderr);
      assert.notEqual(allowed.stdout, "PROBE getpid returned 1\n", "no PID namespace without root");
      const forbidden = await runAsync([...asNobody, process.execPath, "--import", "tsx", PROBE_TENDER, "run", image, "--", "socket"], { env });
      assert.equal(forbidden.stderr, SIGSYS_LINE);
      assert.equal(forbidden.status, 159);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("the allowlist names each call once, libseccomp knows them all, and x32 and other architectures are killed", () => {
  assert.equal(new Set(ALLOWED_SYSCALLS).size, ALLOWED_SYSCALLS.length);
  const rules = filterRules(
    allowlist({ taps: [{ fd: 5, mtu: 1500 }], pcaps: [6], blocks: [{ fd: 7, capacity: 65536 }], blockTransferMax: 262144, wakeups: [8, 9], epolls: [10], control: 3, pid: 1 }),
  );
  const listing = loadSptNative().compileFilter(rules, "pfc").toString();
  for (const name of ALLOWED_SYSCALLS) assert.match(listing, new RegExp(`# filter for syscall "${name}" `), name);
  assert.match(listing, /# default action\n\s+action KILL_PROCESS;\n# invalid architecture action\naction KILL_PROCESS;/);
  // BPF: load the architecture, kill unless x86_64; load the number, kill x32 calls (bit 30).
  const program = loadSptNative().compileFilter(rules, "bpf");
  const instruction = (index: number): [number, number] => [program.readUInt16LE(index * 8), program.readUInt32LE(index * 8 + 4)];
  assert.deepEqual(instruction(1), [0x15, 0xc000003e], "jeq AUDIT_ARCH_X86_64");
  assert.deepEqual(instruction(3), [0x35, 0x40000000], "jge __X32_SYSCALL_BIT");
});

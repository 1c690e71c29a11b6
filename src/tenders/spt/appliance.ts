/**
 * The appliance process of the spt tender (started by launcher.ts, with the boot plan on fd 3).
 *
 * Order of work, all before the image's first instruction:
 *  1. read the boot plan, load the addons, read and verify the image from the fd the launcher
 *     verified it from, and adopt the devices' fds;
 *  2. build the sealed context (sealed.ts) and compile the image, with its V8 code cache;
 *  3. install the signal and error handlers and warm up what Node and glibc would otherwise
 *     initialise lazily with a forbidden call (a file open, a thread) after lockdown;
 *  4. when isolated (run as root): enter an empty root and become nobody, with no capabilities;
 *  5. lock down: PR_SET_NO_NEW_PRIVS and the seccomp allowlist, on every thread;
 *  6. evaluate the image and call its start; send the boot trace to the launcher.
 */
import { randomFillSync } from "node:crypto";
import { closeSync, fstatSync, readdirSync, readFileSync, readlinkSync, readSync, writeSync } from "node:fs";
import { ABORT_EXIT_STATUS } from "../../abi/base.ts";
import { MAX_WAIT_NS } from "../common/base.ts";
import { FileBlockDevice } from "../common/block.ts";
import type { HostBlock, HostNet } from "../common/devices.ts";
import { loadNative } from "../common/native.ts";
import { openedPcapFiles, PcapWriter } from "../common/pcap.ts";
import { readHandedPayload, writeHandedPayload } from "../common/code-cache.ts";
import { tapBackend, verifyImage } from "../common/setup.ts";
import { SourcePositions } from "../common/source-positions.ts";
import { adoptTap } from "../common/tap.ts";
import { userBackend } from "../user/link.ts";
import { allowlist, filterRules, type LockdownFds } from "./allowlist.ts";
import { blockBoundsFilter, encodeFilter } from "./block-bounds.ts";
import type { SptHooks } from "./launcher.ts";
import { arrayBufferRefusal, dataLimitBytes, engineFailureLines, vmDataKiB } from "./memory.ts";
import { loadSptNative } from "./native.ts";
import { CODE_CACHE_WRITTEN_LINE, CONTROL_FD, IMAGE_FD, READY_LINE, readBootPlan, type ApplianceTrace, type BootPlan } from "./plan.ts";
import { say } from "./say.ts";
import { boundText, escapeLine, escapeMultiline } from "../common/terminal-text.ts";
import { createSealedAppliance } from "./sealed.ts";

/** `atoll run`'s status when it could not start the appliance (as under the node tender). */
const EXIT_RUN_FAILED = 125;

/** The whole image file, by positioned reads: the launcher's read left the shared offset at the end. */
function readImage(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const bytes = Buffer.alloc(size);
  for (let done = 0; done < size; ) {
    const n = readSync(fd, bytes, done, size - done, done);
    if (n === 0) throw new Error(`the image file shrank while being read (${done} of ${size} bytes)`);
    done += n;
  }
  return bytes;
}

/** Checks that the image read here is the one the launcher planned devices for. */
function checkPlanMatches(plan: BootPlan, name: string, netNames: readonly string[], blockNames: readonly string[]): void {
  const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((item, index) => item === b[index]);
  if (name !== plan.name || !same(netNames, plan.nets.map((net) => net.name)) || !same(blockNames, plan.blocks.map((block) => block.name))) {
    throw new Error(`${plan.imagePath} changed while the tender was starting it: run it again`);
  }
}

/**
 * libuv's fds, found by what they are (the plan's own fds aside: a capture "file" may be a FIFO):
 * the allowlist lets the event loop use them and nothing else.
 */
export function eventLoopFds(planned: ReadonlySet<number>): { wakeups: number[]; epolls: number[] } {
  const wakeups: number[] = [];
  const epolls: number[] = [];
  for (const entry of readdirSync("/proc/self/fd")) {
    const fd = Number(entry);
    if (!Number.isInteger(fd) || fd <= CONTROL_FD || planned.has(fd)) continue;
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${entry}`);
    } catch {
      continue; // the directory's own fd, closed by now
    }
    if (target === "anon_inode:[eventfd]" || target.startsWith("pipe:")) wakeups.push(fd);
    else if (target === "anon_inode:[eventpoll]") epolls.push(fd);
  }
  return { wakeups, epolls };
}

/**
 * What Node, V8 and glibc would otherwise do lazily, on first use, with a call the allowlist
 * forbids (each measured on Node 20 under a seccomp filter; docs/spt.md lists them).
 */
function warmUp(prepare: () => void): void {
  // process.stdout and process.stderr are created lazily (ioctl, fstat, open), but nothing uses
  // them here: the tender writes to fds 1 and 2 directly, and runs Node with --no-warnings.
  // The first local-time conversion reads the host's time zone (/etc/localtime). Intl needs
  // nothing more: ICU's data is compiled into Node.
  void new Date(0).toString();
  // OpenSSL's generator seeds itself on first use.
  randomFillSync(new Uint8Array(16));
  // glibc's malloc, SIGUSR1 (Node's inspector), core dumps.
  prepare();
}

/** Summarises a described error as node does: its first line and where it was thrown. */
function summarize(description: string): string {
  const [first = ""] = description.split("\n");
  const frame = /\n\s+at (?:.*\()?([^()\s]+:\d+:\d+)\)?/.exec(description)?.[1];
  return `${first}${frame === undefined ? "" : ` (${frame})`}`;
}

/** Runs the appliance stage; never returns control to the CLI (the process ends through exit). */
export function runApplianceStage(controlFd: number, hooks?: SptHooks): void {
  const applianceStart = performance.now();
  const plan = readBootPlan(controlFd);
  const native = loadNative();
  const spt = loadSptNative();
  const failures = engineFailureLines(plan.name, plan.memoryMiB);
  if (plan.memoryMiB !== undefined) spt.exitOnHeapLimit(`${failures.heapLimit}\n`, failures.outOfMemoryStatus);
  spt.exitOnEngineFailure(failures.outOfMemory, failures.outOfMemoryStatus, failures.fatal, failures.fatalStatus);

  const image = verifyImage(plan.imagePath, readImage(IMAGE_FD));
  closeSync(IMAGE_FD);
  checkPlanMatches(plan, image.manifest.name, image.manifest.net, image.manifest.block);

  const nets: HostNet[] = plan.nets.map((net) => ({
    name: net.name,
    mac: Uint8Array.from(net.mac),
    backend: net.ifname === "" ? userBackend(native, net.fd) : tapBackend(adoptTap(net.fd, net.ifname, net.mtu)),
    pcap:
      net.pcap === undefined
        ? undefined
        : new PcapWriter(net.name, { path: net.pcap.path, maxBytes: net.pcap.maxBytes, files: net.pcap.fds.length }, openedPcapFiles(net.pcap.fds), say),
  }));
  const blocks: HostBlock[] = plan.blocks.map((block) => ({ name: block.name, device: new FileBlockDevice(block.name, block.path, block.fd, block.capacity) }));

  let ended = false;
  const end = (status: number): never => {
    if (!ended) {
      ended = true;
      try {
        for (const net of nets) net.pcap?.close();
        for (const net of nets) net.backend.close();
        for (const block of blocks) block.device.close();
      } catch (error) {
        say(`atoll: closing devices failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    process.exit(status);
  };
  const positions = new SourcePositions(plan.name, image.sourceMap);
  const abort = (reason: string): never => {
    // An ArrayBuffer refused under --memory that the image did not handle: out of memory, not a crash.
    const refusal = arrayBufferRefusal(reason, plan.name, plan.memoryMiB);
    if (refusal !== undefined) {
      if (!ended) say(refusal);
      return end(failures.outOfMemoryStatus);
    }
    if (!ended) say(`atoll: appliance '${plan.name}' aborted: ${escapeMultiline(positions.rewrite(boundText(reason)))}`);
    return end(ABORT_EXIT_STATUS);
  };
  const failToStart = (reason: string): never => {
    say(`atoll run: ${plan.imagePath}: ${reason}`);
    return end(EXIT_RUN_FAILED);
  };

  const sealed = createSealedAppliance({
    name: plan.name,
    cmdline: plan.cmdline,
    nets,
    blocks,
    maxWaitNs: MAX_WAIT_NS,
    poll: (fds, timeoutNs) => native.poll(fds, timeoutNs),
    onExit: end,
    onAbort: abort,
    warn: (message) => say(`atoll: ${message}`),
    assets: image.assets,
    positions,
    extraGates: hooks?.extraGates?.(),
  });
  const contextReady = performance.now();

  // The cache is written now if it missed: after lockdown nothing can be written but the devices.
  // A cache made before the first run holds only eagerly compiled functions; that is most of the
  // boot's worth. This process opens no cache file and holds no key: the launcher authenticated
  // the cache and hands it over as fds (code-cache-handoff.ts); V8 gets its bytes only if they
  // still hash to what the launcher verified.
  const handed = plan.codeCache;
  const cachedData = handed?.read === undefined ? undefined : readHandedPayload(handed.read.fd, handed.read.length, handed.read.sha256);
  const script = sealed.compile(image.code, `atoll://${plan.name}/image.js`, cachedData);
  let codeCache: ApplianceTrace["codeCache"] = "off";
  if (handed !== undefined) {
    codeCache = cachedData !== undefined && !script.cachedDataRejected ? "hit" : "miss";
    if (codeCache === "miss" && writeHandedPayload(handed.write, script.createCachedData())) {
      try {
        writeSync(controlFd, `${CODE_CACHE_WRITTEN_LINE}\n`);
      } catch {
        // The launcher is gone; its death signal ends this process too.
      }
    }
    if (handed.read !== undefined) closeSync(handed.read.fd);
    closeSync(handed.write);
  }

  // Handlers first: SIGINT/SIGTERM create libuv's signal pipe and install handlers, both forbidden later.
  process.on("SIGINT", () => end(130));
  process.on("SIGTERM", () => end(143));
  process.on("SIGHUP", () => end(129));
  // Image values reach the host only here, and only the sealed context looks inside them.
  process.on("uncaughtException", (error) => abort(sealed.describe(error)));
  process.on("unhandledRejection", (reason) => abort(`unhandled promise rejection: ${sealed.describe(reason)}`));
  process.on("beforeExit", () => abort("the image stopped without calling exit (its scheduler is no longer yielding)"));
  try {
    writeSync(controlFd, `${READY_LINE}\n`);
  } catch {
    // The launcher is gone; its death signal ends this process too.
  }
  warmUp(() => spt.prepare());
  if (!plan.trace) closeSync(controlFd);

  const plannedFds = new Set([...plan.nets.flatMap((net) => [net.fd, ...(net.pcap?.fds ?? [])]), ...plan.blocks.map((block) => block.fd)]);
  const { wakeups, epolls } = eventLoopFds(plannedFds);
  const fds: LockdownFds = {
    taps: plan.nets.map((net) => ({ fd: net.fd, mtu: net.mtu })),
    pcaps: plan.nets.flatMap((net) => net.pcap?.fds ?? []),
    blocks: plan.blocks.map((block) => ({ fd: block.fd, capacity: block.capacity })),
    blockTransferMax: sealed.stagingBytes,
    wakeups,
    epolls,
    control: plan.trace ? controlFd : undefined,
    pid: process.pid,
  };
  const program = spt.compileFilter(filterRules(allowlist(fds)), "bpf");
  const blockBounds = fds.blocks.length === 0 ? undefined : encodeFilter(blockBoundsFilter(fds.blocks, process.arch));
  // --memory: from here on the heap and array buffers share the appliance's MiB (memory.ts).
  if (plan.memoryMiB !== undefined) spt.limitData(dataLimitBytes(vmDataKiB(readFileSync("/proc/self/status", "utf8")), plan.memoryMiB));
  if (plan.isolate) {
    spt.enterEmptyRoot();
    spt.dropPrivileges(plan.uid, plan.gid);
  }
  // Block transfers must end within their device: a sum of two arguments, which the allowlist
  // cannot check; its own filter goes first, while seccomp(2) is still allowed (block-bounds.ts).
  if (blockBounds !== undefined) spt.installFilter(blockBounds);
  spt.installFilter(program);
  const lockedDown = performance.now();

  const loaded = sealed.evaluate(script);
  const imageEvaluated = performance.now();
  if (loaded.kind === "load-failed") failToStart(`the image failed to load: ${escapeLine(positions.rewrite(boundText(summarize(loaded.description))))}`);
  const started = sealed.start();
  if (started.kind === "not-an-entry") failToStart("the image's code did not evaluate to an entry with start(base): rebuild it with `atoll build`");
  if (started.kind === "start-threw") abort(`start threw: ${started.description}`);
  const startCalled = performance.now();

  if (plan.trace) {
    // Milestones in the launcher's time base: both processes' clocks start at their timeOrigin.
    const shift = performance.timeOrigin - plan.launcherTimeOrigin;
    const trace: ApplianceTrace = {
      applianceStart: applianceStart + shift,
      contextReady: contextReady + shift,
      lockedDown: lockedDown + shift,
      imageEvaluated: imageEvaluated + shift,
      startCalled: startCalled + shift,
      codeCache,
    };
    try {
      writeSync(controlFd, `${JSON.stringify(trace)}\n`);
    } catch {
      // The launcher stopped listening; the trace is only a measurement.
    }
    closeSync(controlFd);
  }
}

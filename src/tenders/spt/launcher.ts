/**
 * The spt tender's launcher: the `atoll run --tender spt` process itself.
 *
 * It does everything that needs the host: reads and verifies the image, checks the devices, opens
 * exactly the declared and attached ones (TAPs, capture files, block files), and starts the
 * appliance process with those fds and nothing else: as root, in new mount, PID, IPC and network
 * namespaces (a TAP opened here keeps working there: the fd refers to the device, wherever it
 * lives). Then it only waits: it forwards SIGINT/SIGTERM/SIGHUP, relays the boot trace, and
 * turns the appliance process's end into its own exit status, with one line on stderr when a
 * signal killed it (SIGSYS: a forbidden system call).
 *
 * The appliance process is this same program started again (see tender.ts); its side is in
 * appliance.ts.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { Socket } from "node:net";
import { constants } from "node:os";
import { ABORT_EXIT_STATUS } from "../../abi/base.ts";
import { FileBlockDevice } from "../common/block.ts";
import { TenderError } from "../common/errors.ts";
import { parsePcapSpec, PCAP_OPEN_FLAGS, pcapFilePath, SPT_MAX_PCAP_FILES } from "../common/pcap.ts";
import { loadNative } from "../common/native.ts";
import { checkDevices, commandLine, openImageFile, randomMac, verifyImage, type BootTrace, type DeviceOptions } from "../common/setup.ts";
import { adoptTap, openTap, type TapHandle } from "../common/tap.ts";
import { resolveNets } from "../user/attach.ts";
import { USER_LINK_MTU } from "../user/link.ts";
import { startGateway } from "../user/spawn.ts";
import { CodeCacheHandoff } from "./code-cache-handoff.ts";
import { semiSpaceMiB } from "./memory.ts";
import { loadSptNative } from "./native.ts";
import { say } from "./say.ts";
import {
  APPLIANCE_GID,
  APPLIANCE_UID,
  BOOT_FD_ENV,
  CODE_CACHE_WRITTEN_LINE,
  CONTROL_FD,
  FIRST_DEVICE_FD,
  MAX_APPLIANCE_FDS,
  parseApplianceTrace,
  READY_LINE,
  type ApplianceTrace,
  type BootPlan,
  type PlannedBlock,
  type PlannedNet,
} from "./plan.ts";

export interface SptRunOptions extends DeviceOptions {
  readonly imagePath: string;
  readonly inspect?: "inspect" | "inspect-brk" | undefined;
  /** --memory: the appliance's V8 heap limit in MiB. */
  readonly memoryMiB?: number | undefined;
}

/** The shared boot milestones (launcher-relative ms) and the spt tender's own. */
export interface SptBootTrace extends BootTrace {
  /** The launcher started the appliance process. */
  applianceSpawned: number;
  /** The appliance process began its work (Node had started and loaded atoll). */
  applianceStart: number;
  /** The seccomp filter was installed. */
  lockedDown: number;
}

/**
 * How a test build of the tender adds pieces (test/tenders/spt/fixtures/probe-tender.ts); the
 * production CLI passes none. The appliance process is started as this process was (its script and
 * loader options), so a test build's appliance process runs the test build too.
 */
export interface SptHooks {
  /** Extra environment for the appliance process. */
  readonly stageEnv?: Readonly<Record<string, string>> | undefined;
  /** Creates extra base functions in the appliance process, before lockdown. */
  readonly extraGates?: (() => ReadonlyMap<string, (argument: string) => number>) | undefined;
}

/** Node options of the appliance process (see docs/spt.md). */
function applianceNodeOptions(memoryMiB: number | undefined): string[] {
  return [
    // Lets the tender answer import() with an error of the appliance's own realm.
    "--experimental-vm-modules",
    // Defence in depth: even a host Function constructor reached by some unknown path compiles nothing.
    "--disallow-code-generation-from-strings",
    "--no-expose-wasm",
    // A warning would make Node create process.stderr (files, ioctls) after lockdown. The tender
    // writes its own messages to fd 2 directly (say.ts).
    "--no-warnings",
    // --memory: the heap's limit, and a young generation in proportion (memory.ts).
    ...(memoryMiB === undefined ? [] : [`--max-old-space-size=${memoryMiB}`, `--max-semi-space-size=${semiSpaceMiB(memoryMiB)}`]),
  ];
}

/** Loader options the launcher itself runs with (e.g. --import tsx in development), which the stage needs too. */
function loaderOptions(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let index = 0; index < execArgv.length; index++) {
    const option = execArgv[index] ?? "";
    if (/^--(import|require|loader|experimental-loader)=/.test(option)) kept.push(option);
    else if (/^(--import|--require|-r|--loader|--experimental-loader)$/.test(option) && execArgv[index + 1] !== undefined) {
      kept.push(option, execArgv[index + 1] ?? "");
      index++;
    }
  }
  return kept;
}

/** Locale and time zone reach the image through Intl and Date, as under the node tender. */
const PASSED_ENVIRONMENT = ["TZ", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_TIME", "LC_NUMERIC", "LC_COLLATE", "LC_MONETARY", "LC_MESSAGES"];

function signalName(signal: number): string {
  for (const [name, value] of Object.entries(constants.signals)) if (value === signal) return name;
  return `signal ${signal}`;
}

interface OpenDevices {
  readonly taps: TapHandle[];
  readonly pcapFds: number[];
  readonly blocks: FileBlockDevice[];
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

function closeDevices(devices: OpenDevices): void {
  for (const tap of devices.taps) tap.close();
  for (const fd of devices.pcapFds) closeQuietly(fd);
  // The launcher never wrote to them; durability is the appliance process's business.
  for (const block of devices.blocks) closeQuietly(block.fd);
}

function openPcap(device: string, path: string): number {
  try {
    return openSync(path, PCAP_OPEN_FLAGS, 0o644);
  } catch (error) {
    const code = error instanceof Error && "code" in error ? String(error.code) : "";
    throw new TenderError(`--pcap ${device}=${path}: cannot create the capture file (${code || String(error)}): check the directory and its permissions`);
  }
}

/**
 * Runs an image on the spt tender and exits with its status; never returns normally. Throws a
 * TenderError (one line, exit 125) when the image cannot be started.
 */
export async function launchSpt(given: SptRunOptions, onTrace?: (trace: SptBootTrace) => void, hooks?: SptHooks): Promise<never> {
  const tenderStart = performance.now();
  if (given.inspect !== undefined) {
    throw new TenderError(`--${given.inspect} is not available on the spt tender: the sealed appliance may open no socket for a debugger (debug it with --tender node)`);
  }
  const spt = loadSptNative();
  loadNative();

  const { fd: imageFd, bytes } = openImageFile(given.imagePath);
  const imageRead = performance.now();
  let options: SptRunOptions = given;
  const image = (() => {
    try {
      const verified = verifyImage(given.imagePath, bytes);
      options = { ...given, nets: resolveNets(verified, given.nets, given.publish ?? []) };
      checkDevices(verified, options);
      return verified;
    } catch (error) {
      closeSync(imageFd);
      throw error;
    }
  })();
  const imageVerified = performance.now();
  const { manifest } = image;

  // Child fds: 0 /dev/null, 1 and 2 ours, 3 the control socket, 4 the image, then the devices.
  const devices: OpenDevices = { taps: [], pcapFds: [], blocks: [] };
  const childFds: number[] = [];
  const nets: PlannedNet[] = [];
  const blocks: PlannedBlock[] = [];
  const nextFd = (): number => FIRST_DEVICE_FD + childFds.length;
  try {
    for (const name of manifest.net) {
      const attachment = options.nets.get(name);
      if (attachment === undefined) continue;
      // The user-mode link's end is passed like a TAP fd (same read/write rules in the allowlist);
      // its gateway process stays the launcher's child, outside the appliance's namespaces.
      const tap = attachment.kind === "tap" ? openTap(attachment.ifname) : adoptTap(startGateway(loadNative(), name, attachment.publish).fd, "", USER_LINK_MTU);
      devices.taps.push(tap);
      const tapFd = nextFd();
      childFds.push(tap.fd);
      const pcapValue = options.pcaps.get(name);
      let pcap: PlannedNet["pcap"];
      if (pcapValue !== undefined) {
        const spec = parsePcapSpec(pcapValue);
        if (typeof spec === "string") throw new TenderError(`--pcap ${name}=${pcapValue}: ${spec}`);
        if (spec.files > SPT_MAX_PCAP_FILES) {
          throw new TenderError(`--pcap ${name}=${pcapValue}: the spt tender rotates through at most ${SPT_MAX_PCAP_FILES} files; use files=${SPT_MAX_PCAP_FILES} or fewer with a larger max=<size>`);
        }
        // The sealed appliance may open nothing: the whole ring is opened here.
        const fds: number[] = [];
        for (let index = 0; index < spec.files; index++) {
          const fd = openPcap(name, pcapFilePath(spec.path, index));
          devices.pcapFds.push(fd);
          fds.push(nextFd());
          childFds.push(fd);
        }
        pcap = { path: spec.path, fds, maxBytes: spec.maxBytes };
      }
      nets.push({ name, ifname: attachment.kind === "tap" ? attachment.ifname : "", fd: tapFd, mtu: tap.mtu, mac: [...randomMac()], pcap });
    }
    for (const name of manifest.block) {
      const path = options.blocks.get(name);
      if (path === undefined) continue;
      const block = FileBlockDevice.open(name, path);
      devices.blocks.push(block);
      blocks.push({ name, path, fd: nextFd(), capacity: block.capacity });
      childFds.push(block.fd);
    }
  } catch (error) {
    closeDevices(devices);
    closeSync(imageFd);
    throw error;
  }
  const devicesOpen = performance.now();

  // The launcher does the cache's file work, not the appliance process (code-cache-handoff.ts).
  const codeCache = CodeCacheHandoff.prepare(image, applianceNodeOptions(options.memoryMiB), options.memoryMiB, MAX_APPLIANCE_FDS - nextFd(), say);
  const plannedCodeCache = codeCache?.plan(nextFd());
  if (codeCache !== undefined) childFds.push(...codeCache.fds);

  const isolate = process.getuid?.() === 0;
  const traceWanted = onTrace !== undefined;
  const plan: BootPlan = {
    name: manifest.name,
    imagePath: options.imagePath,
    nets,
    blocks,
    cmdline: commandLine(options),
    isolate,
    uid: APPLIANCE_UID,
    gid: APPLIANCE_GID,
    memoryMiB: options.memoryMiB,
    codeCache: plannedCodeCache,
    trace: traceWanted,
    launcherTimeOrigin: performance.timeOrigin,
  };

  // Signals for the appliance go to it; a second one of the same kind ends it for good. A signal
  // that comes before the appliance process has its handlers would be lost (a PID 1 ignores
  // signals it does not handle), so it waits for the process's "ready" line.
  const received = new Map<NodeJS.Signals, number>();
  let pid: number | undefined;
  let ready = false;
  const deliver = (signal: NodeJS.Signals): void => {
    if (pid === undefined) return;
    try {
      process.kill(pid, (received.get(signal) ?? 0) > 1 ? "SIGKILL" : signal);
    } catch {
      // Already gone: waiting tells how it ended.
    }
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      received.set(signal, (received.get(signal) ?? 0) + 1);
      if (ready || (received.get(signal) ?? 0) > 1) deliver(signal);
    });
  }
  // Job control: the appliance process has a session of its own (so that group signals reach it
  // once, through us), which takes it out of the terminal's Ctrl-Z. Stop it with us, and let it go on with us.
  process.on("SIGTSTP", () => {
    if (pid !== undefined) {
      try {
        process.kill(pid, "SIGSTOP");
      } catch {
        // Already gone.
      }
    }
    process.kill(process.pid, "SIGSTOP");
  });
  process.on("SIGCONT", () => {
    if (pid === undefined) return;
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // Already gone.
    }
  });
  const onReady = (): void => {
    // A cache the appliance process wrote came before "ready", so before the image's first instruction.
    codeCache?.settle();
    ready = true;
    for (const signal of received.keys()) deliver(signal);
  };

  const [launcherEnd, applianceEnd] = spt.socketPair();
  const devNull = openSync("/dev/null", "r");
  const stage = [...loaderOptions(process.execArgv), process.argv[1] ?? ""];
  const argv = [process.execPath, ...applianceNodeOptions(options.memoryMiB), ...stage, "run", options.imagePath, "--tender", "spt"];
  const environment = { ...Object.fromEntries(PASSED_ENVIRONMENT.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]]]))), ...hooks?.stageEnv, [BOOT_FD_ENV]: String(CONTROL_FD) };
  let spawned: number;
  try {
    spawned = spt.spawnSealed(
      process.execPath,
      argv,
      Object.entries(environment).map(([name, value]) => `${name}=${value}`),
      Int32Array.from([devNull, 1, 2, applianceEnd, imageFd, ...childFds]),
      isolate,
    );
  } catch (error) {
    closeQuietly(launcherEnd);
    codeCache?.abandon();
    const code = error instanceof Error && "code" in error ? String(error.code) : "";
    throw new TenderError(`cannot start the appliance process (${code || String(error)})${code === "EPERM" ? ": creating namespaces needs root" : ""}`);
  } finally {
    // The appliance process has its own copies now: the devices must be held by it alone.
    closeDevices(devices);
    closeSync(imageFd);
    closeSync(devNull);
    closeSync(applianceEnd);
    codeCache?.spawned();
  }
  pid = spawned;
  const applianceSpawned = performance.now();

  try {
    writeSync(launcherEnd, `${JSON.stringify(plan)}\n`);
  } catch {
    // The appliance process is gone already; waiting for it tells how it ended.
  }

  const traced = relayControl(
    launcherEnd,
    onReady,
    (applianceTrace) => {
      const rejected = codeCache?.rejection(applianceTrace.codeCache);
      onTrace?.({
        tenderStart,
        imageRead,
        imageVerified,
        devicesOpen,
        applianceSpawned,
        ...applianceTrace,
        ...(rejected === undefined ? {} : { codeCacheRejected: rejected }),
      });
    },
    () => codeCache?.markWritten(),
  );
  const status = await spt.waitChild(spawned);
  await traced;
  // Ended before "ready": whatever it wrote is not signed.
  codeCache?.abandon();

  if (status.code !== null) process.exit(status.code);
  const signal = status.signal ?? 0;
  const name = signalName(signal);
  // After a forwarded signal, dying of it (or of the SIGKILL that follows a second one) is expected.
  if (received.size === 0) {
    const what =
      name === "SIGSYS"
        ? "was killed for a forbidden system call (SIGSYS)"
        : name === "SIGABRT"
          ? "was aborted by the JavaScript engine (SIGABRT)"
          : name === "SIGKILL"
            ? "was killed (SIGKILL; perhaps by the kernel's out-of-memory killer)"
            : name === "SIGSEGV" || name === "SIGBUS" || name === "SIGILL"
              ? `crashed (${name})`
              : `was killed by ${name}`;
    say(`atoll: appliance '${manifest.name}' ${what}`);
  }
  process.exit(signal > 0 ? 128 + signal : ABORT_EXIT_STATUS);
}

/** The control lines are a few hundred bytes; anything longer is not one (and must not grow our heap). */
const MAX_LINE_BYTES = 64 * 1024;

/**
 * Reads the appliance process's control lines (READY_LINE, then the trace if asked for) until the
 * process closes the socket. The appliance process is not trusted here: lines are bounded, and the
 * trace is parsed field by field.
 */
function relayControl(fd: number, onReady: () => void, deliver: (trace: ApplianceTrace) => void, onCodeCacheWritten: () => void): Promise<void> {
  return new Promise((resolve) => {
    const socket = new Socket({ fd, readable: true, writable: false });
    let buffered = "";
    let ready = false;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      for (let newline = buffered.indexOf("\n"); newline >= 0; newline = buffered.indexOf("\n")) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line === READY_LINE) {
          ready = true;
          onReady();
          continue;
        }
        // Only before "ready": the image runs after it, and must not get a cache signed.
        if (line === CODE_CACHE_WRITTEN_LINE && !ready) {
          onCodeCacheWritten();
          continue;
        }
        const trace = parseApplianceTrace(line);
        if (trace !== undefined) deliver(trace);
        // One trace per run: whatever follows it is ignored.
        socket.destroy();
        return;
      }
      if (buffered.length > MAX_LINE_BYTES) socket.destroy();
    });
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
  });
}

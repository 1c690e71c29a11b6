/**
 * The `node` tender: runs an image in a plain Node.js process, in a fresh V8 context that holds
 * nothing but the base ABI. It is the developer loop (fast start, --inspect with source maps);
 * the sealed `spt` tender builds on the same pieces.
 *
 * Order of work: read and verify the image, check that its declared devices and the attached ones
 * match, open the devices, build the base, evaluate the image's code (with a V8 code cache bound to
 * the image hash and authenticated before V8 sees it: code-cache.ts), and call its start. From then on the image drives everything through the base.
 */
import { closeSync } from "node:fs";
import * as inspector from "node:inspector";
import { types } from "node:util";
import * as vm from "node:vm";
import { ABORT_EXIT_STATUS, type Base } from "../../abi/base.ts";
import { MAX_WAIT_NS } from "../common/base.ts";
import { FileBlockDevice } from "../common/block.ts";
import { openCodeCache, type CodeCacheBinding } from "../common/code-cache.ts";
import type { NetAttachment } from "../common/attachments.ts";
import type { HostBlock, HostNet, HostNetBackend } from "../common/devices.ts";
import { TenderError } from "../common/errors.ts";
import { loadNative } from "../common/native.ts";
import { parsePcapSpec, PcapWriter } from "../common/pcap.ts";
import {
  checkDevices,
  frozenCommandLine,
  randomMac,
  readImageFile,
  tapBackend,
  verifyImage,
  type BootTrace,
  type DeviceOptions,
} from "../common/setup.ts";
import { SourcePositions } from "../common/source-positions.ts";
import { boundText, escapeLine, escapeMultiline } from "../common/terminal-text.ts";
import { openTap } from "../common/tap.ts";
import { createNodeBase } from "./base.ts";
import { resolveNets } from "../user/attach.ts";
import { userBackend } from "../user/link.ts";
import { startGateway } from "../user/spawn.ts";

export interface RunOptions extends DeviceOptions {
  readonly imagePath: string;
  readonly inspect?: "inspect" | "inspect-brk" | undefined;
}

/** Under --inspect yield waits at most 20 ms at once, so that the inspector's messages get the event loop. */
const INSPECT_MAX_WAIT_NS = 20_000_000;

/**
 * How long after SIGINT, SIGTERM or SIGHUP the orderly stop (devices closed, exit 130/143/129)
 * may take before the addon's watchdog thread ends the process itself, with the same status:
 * long enough for closing devices and flushing a capture, short enough for `docker stop`'s 10 s
 * and systemd's 90 s before their SIGKILL. docs/cli.md ("Signals") states it.
 */
const STOP_GRACE_MS = 2000;

function openNet(name: string, attachment: NetAttachment): HostNetBackend {
  if (attachment.kind === "tap") return tapBackend(openTap(attachment.ifname, { vnetHeader: true }), { offload: attachment.offload ?? "all" });
  const native = loadNative();
  const gateway = startGateway(native, name, attachment.publish);
  return userBackend(native, gateway.fd, gateway.pid);
}

/** An error's stack or message, also for errors from the image's realm (where instanceof Error fails). */
export function describeError(error: unknown): string {
  if (types.isNativeError(error)) {
    const stack: unknown = Reflect.get(error, "stack");
    return typeof stack === "string" ? stack : `${error.name}: ${error.message}`;
  }
  return String(error);
}

/** "TypeError: x is undefined (atoll://name/image.js:27:5)": the error and where it was thrown, on one line. */
function summarizeError(error: unknown): string {
  if (!types.isNativeError(error)) return String(error).split("\n")[0] ?? "";
  const stack: unknown = Reflect.get(error, "stack");
  const frame = typeof stack === "string" ? /\n\s+at (?:.*\()?([^()\s]+:\d+:\d+)\)?/.exec(stack)?.[1] : undefined;
  return `${error.name}: ${error.message.split("\n")[0] ?? ""}${frame === undefined ? "" : ` (${frame})`}`;
}

function isImageEntry(value: unknown): value is { start: (base: Base) => void } {
  return typeof value === "object" && value !== null && typeof Reflect.get(value, "start") === "function";
}

/**
 * Runs an image to completion. Never returns: the process exits with the appliance's status, or
 * with 125 (reported on stderr) when the tender cannot start it.
 */
export function runImage(given: RunOptions, onTrace?: (trace: BootTrace) => void): void {
  const trace: BootTrace = {
    tenderStart: performance.now(),
    imageRead: 0,
    imageVerified: 0,
    devicesOpen: 0,
    contextReady: 0,
    imageEvaluated: 0,
    startCalled: 0,
    codeCache: "off",
  };
  const bytes = readImageFile(given.imagePath);
  trace.imageRead = performance.now();
  const image = verifyImage(given.imagePath, bytes);
  trace.imageVerified = performance.now();
  const options: RunOptions = { ...given, nets: resolveNets(image, given.nets, given.publish ?? []) };
  checkDevices(image, options);

  const native = loadNative();
  const nets: HostNet[] = [];
  const blocks: HostBlock[] = [];
  const pcaps: PcapWriter[] = [];
  const closeAll = (): void => {
    for (const pcap of pcaps) pcap.close();
    for (const net of nets) net.backend.close();
    for (const block of blocks) block.device.close();
  };
  try {
    for (const name of image.manifest.net) {
      const attachment = options.nets.get(name);
      if (attachment === undefined) continue;
      const pcapValue = options.pcaps.get(name);
      const pcapSpec = pcapValue === undefined ? undefined : parsePcapSpec(pcapValue);
      if (typeof pcapSpec === "string") throw new TenderError(`--pcap ${name}=${pcapValue ?? ""}: ${pcapSpec}`);
      const pcap = pcapSpec === undefined ? undefined : new PcapWriter(name, pcapSpec);
      if (pcap !== undefined) pcaps.push(pcap);
      nets.push({ name, mac: randomMac(), backend: openNet(name, attachment), pcap });
    }
    for (const name of image.manifest.block) {
      const path = options.blocks.get(name);
      if (path !== undefined) blocks.push({ name, device: FileBlockDevice.open(name, path) });
    }
  } catch (error) {
    closeAll();
    throw error;
  }
  trace.devicesOpen = performance.now();

  const cmdline = frozenCommandLine(options);

  let ended = false;
  const end = (status: number): never => {
    if (!ended) {
      ended = true;
      try {
        closeAll();
      } catch (error) {
        process.stderr.write(`atoll: closing devices failed: ${describeError(error)}\n`);
      }
    }
    process.exit(status);
  };
  const positions = new SourcePositions(image.manifest.name, image.sourceMap);
  const abort = (reason: string): never => {
    if (!ended) process.stderr.write(`atoll: appliance '${image.manifest.name}' aborted: ${escapeMultiline(positions.rewrite(boundText(reason)))}\n`);
    return end(ABORT_EXIT_STATUS);
  };

  const base = createNodeBase({
    cmdline,
    nets,
    blocks,
    maxWaitNs: options.inspect === undefined ? MAX_WAIT_NS : INSPECT_MAX_WAIT_NS,
    poll: (fds, timeoutNs) => native.poll(fds, timeoutNs),
    onExit: end,
    onAbort: abort,
    warn: (message) => process.stderr.write(`atoll: ${message}\n`),
    assets: image.assets,
    positions,
  });


  const context = vm.createContext({}, { name: `atoll:${image.manifest.name}` });
  trace.contextReady = performance.now();

  let code = image.code;
  const filename = `atoll://${image.manifest.name}/image.js`;
  if (options.inspect !== undefined) {
    // DevTools reads source maps from the script itself; only debugging sessions pay for it.
    if (image.sourceMap !== undefined) code += `\n//# sourceMappingURL=data:application/json;base64,${Buffer.from(image.sourceMap).toString("base64")}`;
    inspector.open(undefined, "127.0.0.1");
    process.stderr.write(`atoll: debugger listening on ${inspector.url() ?? "?"} (open chrome://inspect)\n`);
    if (options.inspect === "inspect-brk") {
      process.stderr.write("atoll: waiting for a debugger to attach\n");
      inspector.waitForDebugger();
    }
  }
  // No cache under --inspect: the code carries its source map there, so it is other code.
  const cacheStore = options.inspect === undefined ? openCodeCache((line) => process.stderr.write(`${line}\n`)) : undefined;
  const cacheBinding: CodeCacheBinding = { imageSha256: image.sha256, variant: "", flags: [] };
  const cached = cacheStore?.read(cacheBinding);
  if (cached?.kind === "authenticated") closeSync(cached.fd);
  if (cached?.kind === "rejected") trace.codeCacheRejected = cached.reason;
  const cachedData = cached?.kind === "authenticated" ? cached.payload : undefined;
  const script = new vm.Script(code, { filename, ...(cachedData === undefined ? {} : { cachedData }) });
  let entry: unknown;
  try {
    entry = script.runInContext(context);
  } catch (error) {
    closeAll();
    throw new TenderError(`${options.imagePath}: the image failed to load: ${escapeLine(positions.rewrite(boundText(summarizeError(error))))}`);
  }
  trace.imageEvaluated = performance.now();
  if (!isImageEntry(entry)) {
    closeAll();
    throw new TenderError(`${options.imagePath}: the image's code did not evaluate to an entry with start(base): rebuild it with \`atoll build\``);
  }
  // Not process.on: a handler on the JS thread never runs while the appliance is busy. The addon
  // calls back here from the event loop (the orderly path), and ends the process from another
  // thread if that has not happened within STOP_GRACE_MS.
  try {
    native.armStopWatchdog(
      (signal) => end(128 + signal),
      STOP_GRACE_MS,
      Int32Array.from(blocks, (block) => block.device.fd),
      `atoll: appliance '${escapeLine(image.manifest.name)}' did not stop within ${STOP_GRACE_MS / 1000} s of `,
      ": ended without closing its devices (block devices synced, a capture may lack its last frames)\n",
    );
  } catch (error) {
    closeAll();
    // Only resources can fail here (a thread, a semaphore): say which, and start nothing.
    throw new TenderError(`cannot set up the signal watchdog: ${error instanceof Error ? error.message : String(error)}`);
  }
  // From here on the appliance is running: its failures end it with abort's status, not 125.
  process.on("uncaughtException", (error) => abort(describeError(error)));
  process.on("unhandledRejection", (reason) => abort(`unhandled promise rejection: ${describeError(reason)}`));
  process.on("beforeExit", () => abort("the image stopped without calling exit (its scheduler is no longer yielding)"));
  if (options.inspect === "inspect-brk") debuggerBreak(context);
  entry.start(base);
  trace.startCalled = performance.now();
  if (cacheStore !== undefined) {
    trace.codeCache = cachedData !== undefined && !script.cachedDataRejected ? "hit" : "miss";
    if (cachedData !== undefined && script.cachedDataRejected === true) trace.codeCacheRejected = "v8";
    if (trace.codeCache === "miss") cacheStore.write(cacheBinding, script.createCachedData());
    cacheStore.close();
  }
  onTrace?.(trace);
}

function debuggerBreak(context: vm.Context): void {
  vm.runInContext("debugger;", context, { filename: "atoll://break-before-start.js" });
}

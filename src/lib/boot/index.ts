/**
 * Boot: what an image does when the tender calls its `start(base)`. Installs the base, the
 * scheduler and the globals, applies boot parameters, then evaluates the appliance's modules (so
 * that their top level already has console, timers, crypto and TextEncoder), runs what the entry
 * default-exports, and ends the image through exit or abort. It sits above the runtime and logs
 * (it uses both, and logs uses the runtime) and below everything an appliance imports.
 */
import type { Base } from "../../abi/base.ts";
import * as logs from "../logs/index.ts";
import { AbiError, installBase } from "../runtime/base.ts";
import { formatCounters, readCounters, registerCounters } from "../runtime/counters.ts";
import { BlockDevice, NetDevice } from "../runtime/devices.ts";
import { installGlobals } from "../runtime/globals.ts";
import { Scheduler, type MainResult } from "../runtime/scheduler.ts";

/** What an appliance's main function receives. */
export interface Appliance {
  /** Arguments after `--` on the `atoll run` command line. */
  readonly args: readonly string[];
  /** Boot parameters from the tender (see CommandLine.params in the base ABI). */
  readonly params: Readonly<Record<string, string>>;
  /**
   * The net device declared under `name` in atoll.config.ts (acquired on first use). With
   * `offloads`, the first use asks the tender for checksum and TCP segmentation offloads: only
   * for code that handles coalesced frames and trusted checksums (the network stack does).
   */
  net(name: string, options?: { offloads?: boolean }): NetDevice;
  /** The block device declared under `name` in atoll.config.ts (acquired on first use). */
  block(name: string): BlockDevice;
  /** The scheduler: timers and sleeps on the monotonic clock. */
  readonly scheduler: Scheduler;
  /** The logger for source "app". */
  readonly log: logs.Logger;
  /** Ends the appliance now with `code` (0..255). */
  exit(code: number): never;
  /** The devices atoll.config.ts declares (the image's manifest), in declaration order. */
  readonly declared: { readonly net: readonly string[]; readonly block: readonly string[] };
}

export type Main = (appliance: Appliance) => MainResult | Promise<MainResult>;

/**
 * Runs a fetch-shaped default export (`export default { fetch(request) { ... } }`, atoll/http's
 * runFetchApp) on the appliance; resolves to a one-line reason when it cannot (no net device, a
 * bad port), which boot turns into an abort. The runner lives in atoll/http: the runtime layer
 * does not depend on it, and images whose entry exports a function do not carry it.
 */
export type FetchAppRunner = (app: object, appliance: Appliance) => Promise<string | undefined>;

/** What `atoll build` hands boot: how to evaluate the appliance's modules, and what the image needs to run them. */
export interface ApplianceModule {
  /** Evaluates the entry and its imports (not before: see boot), resolving to its module namespace. */
  load(): Promise<unknown>;
  /** The entry's path in the appliance, for messages ("src/main.ts"). */
  readonly entryName: string;
  /** The devices the manifest declares. */
  readonly declared: { readonly net: readonly string[]; readonly block: readonly string[] };
  /** Loads the fetch-app runner; absent when the build saw that the entry default-exports a function. */
  loadFetchRunner?(): Promise<FetchAppRunner>;
}

let activeScheduler: Scheduler | undefined;
let activeAppliance: Appliance | undefined;

/** The running image's scheduler (for library modules that need timers). */
export function scheduler(): Scheduler {
  if (activeScheduler === undefined) throw new Error("atoll: the scheduler is not running (is this code running outside an image?)");
  return activeScheduler;
}

/** The running image's Appliance (for library shortcuts such as atoll/http's serve). */
export function appliance(): Appliance {
  if (activeAppliance === undefined) throw new Error("atoll: no appliance is running (is this code running outside an image?)");
  return activeAppliance;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return `uncaught value: ${String(error)}`;
}

const NOTHING_DECLARED = { net: [], block: [] };

export function createAppliance(base: Base, scheduler: Scheduler, declared: Appliance["declared"] = NOTHING_DECLARED): Appliance {
  const nets = new Map<string, NetDevice>();
  const blocks = new Map<string, BlockDevice>();
  return {
    args: base.cmdline.args,
    params: base.cmdline.params,
    scheduler,
    declared,
    log: logs.source("app"),
    net(name, options) {
      let device = nets.get(name);
      if (device === undefined) {
        const info = options?.offloads === true ? base.netAcquire(name, { offloads: true }) : base.netAcquire(name);
        if (typeof info === "number") throw new AbiError("netAcquire", info, `net device '${name}' is not declared in atoll.config.ts`);
        device = new NetDevice(base, scheduler, name, info.handle, info.mac, info.mtu, info.offloads);
        const counters = device.counters;
        registerCounters(`net.${name}`, () => ({ ...counters }));
        nets.set(name, device);
      }
      return device;
    },
    block(name) {
      let device = blocks.get(name);
      if (device === undefined) {
        const info = base.blockAcquire(name);
        if (typeof info === "number") throw new AbiError("blockAcquire", info, `block device '${name}' is not declared in atoll.config.ts`);
        device = new BlockDevice(base, name, info.handle, info.capacity, info.blockSize);
        blocks.set(name, device);
      }
      return device;
    },
    exit(code) {
      return finish(base, code);
    },
  };
}

function finish(base: Base, code: number): never {
  if (!Number.isInteger(code) || code < 0 || code > 255) {
    return base.abort(`main returned exit code ${String(code)}; an exit code is an integer from 0 to 255`);
  }
  if (logs.enabled("atoll", "debug")) {
    const log = logs.source("atoll");
    for (const line of formatCounters(readCounters())) log.debug(`counters ${line}`);
  }
  return base.exit(code);
}

/** Installs base, log levels, scheduler and globals; returns the scheduler. */
function prepare(base: Base): Scheduler {
  installBase(base);
  logs.markStart();
  const levels = base.cmdline.params.log;
  if (levels !== undefined) {
    try {
      logs.setLevels(levels);
    } catch (error) {
      base.abort(`bad boot parameter log=${levels}: ${describeError(error)}`);
    }
  }
  const scheduler = new Scheduler(base);
  activeScheduler = scheduler;
  installGlobals(base, scheduler);
  return scheduler;
}

function run(base: Base, scheduler: Scheduler, main: () => MainResult | Promise<MainResult>): void {
  scheduler.run(main).then(
    (code) => finish(base, code),
    (error: unknown) => base.abort(describeError(error)),
  );
}

/** Runs a main function given directly as an image (tests on the FakeBase; `atoll build` images use bootModule). */
export function boot(base: Base, main: Main): void {
  const scheduler = prepare(base);
  const app = createAppliance(base, scheduler);
  activeAppliance = app;
  run(base, scheduler, () => main(app));
}

/** What an exported value is, for messages: "a number (42)", "an object without fetch". */
function describeExport(value: unknown): string {
  if (value === undefined) return "missing (the entry has no default export)";
  if (value === null) return "null";
  if (typeof value === "object") return Array.isArray(value) ? "an array" : "an object without a fetch method";
  if (typeof value === "string") return `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)})`;
  return `a ${typeof value} (${String(value)})`;
}

/** Any function is taken as main: its result is checked when it returns (see finish). */
function isMain(value: unknown): value is Main {
  return typeof value === "function";
}

function isFetchApp(value: unknown): value is object {
  return typeof value === "object" && value !== null && typeof Reflect.get(value, "fetch") === "function";
}

/**
 * The image's entry: called once by the tender through the image's `start`. The globals come
 * first, then the appliance's modules evaluate (an exception there aborts with its stack), then
 * the default export runs: a main function, or a fetch app served over HTTP.
 */
export function bootModule(base: Base, module: ApplianceModule): void {
  const scheduler = prepare(base);
  const app = createAppliance(base, scheduler, module.declared);
  activeAppliance = app;
  run(base, scheduler, async () => {
    let namespace: unknown;
    try {
      namespace = await module.load();
    } catch (error) {
      return base.abort(`${module.entryName} failed while its modules were evaluated: ${describeError(error)}`);
    }
    const exported: unknown = typeof namespace === "object" && namespace !== null ? Reflect.get(namespace, "default") : undefined;
    if (isMain(exported)) return exported(app);
    if (isFetchApp(exported)) {
      if (module.loadFetchRunner === undefined) {
        return base.abort(`${module.entryName} default-exports a fetch app, but the image was built without the fetch-app runner: rebuild it with \`atoll build\``);
      }
      const runFetchApp = await module.loadFetchRunner();
      const problem = await runFetchApp(exported, app);
      return problem === undefined ? undefined : base.abort(`${module.entryName}: ${problem}`);
    }
    return base.abort(
      `${module.entryName} must default-export a main function (export default function main(app) { ... }) or a fetch app (export default { fetch(request) { ... } }); its default export is ${describeExport(exported)}`,
    );
  });
}

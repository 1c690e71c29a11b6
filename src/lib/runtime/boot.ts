/**
 * Boot: what an image does when the tender calls its `start(base)`. Installs the base, the
 * scheduler and the globals, applies boot parameters, runs the appliance's main function, and
 * ends the image through exit or abort.
 */
import type { Base } from "../../abi/base.ts";
import * as logs from "../logs/index.ts";
import { AbiError, installBase } from "./base.ts";
import { formatCounters, readCounters, registerCounters } from "./counters.ts";
import { BlockDevice, NetDevice } from "./devices.ts";
import { installGlobals } from "./globals.ts";
import { Scheduler, type MainResult } from "./scheduler.ts";

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
}

export type Main = (appliance: Appliance) => MainResult | Promise<MainResult>;

let activeScheduler: Scheduler | undefined;

/** The running image's scheduler (for library modules that need timers). */
export function scheduler(): Scheduler {
  if (activeScheduler === undefined) throw new Error("atoll: the scheduler is not running (is this code running outside an image?)");
  return activeScheduler;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return `uncaught value: ${String(error)}`;
}

export function createAppliance(base: Base, scheduler: Scheduler): Appliance {
  const nets = new Map<string, NetDevice>();
  const blocks = new Map<string, BlockDevice>();
  return {
    args: base.cmdline.args,
    params: base.cmdline.params,
    scheduler,
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

/** The image's entry: called once by the tender through the image's `start`. */
export function boot(base: Base, main: Main): void {
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
  const appliance = createAppliance(base, scheduler);
  scheduler.run(() => main(appliance)).then(
    (code) => finish(base, code),
    (error: unknown) => base.abort(describeError(error)),
  );
}

/**
 * The library OS's front door: `import { type Appliance, sleep } from "atoll"`.
 * Network, logs and storage live in their own modules (atoll/logs, atoll/wire, ...), so that an
 * image bundles only what it imports.
 */
export type { Appliance, Main } from "./boot/index.ts";
/** What an appliance's entry may default-export: a main function, or a fetch app ({ fetch(request), port? }). */
export type { ApplianceExport, FetchApp } from "./http/serve.ts";
export { scheduler } from "./boot/index.ts";
export { AbiError } from "./runtime/base.ts";
export { NetDevice, BlockDevice, type NetCounters, type FrameListener } from "./runtime/devices.ts";
export { registerCounters, readCounters, type CounterSnapshot } from "./runtime/counters.ts";
export type { Timer } from "./runtime/timers.ts";
export { encodeUtf8, decodeUtf8 } from "./runtime/utf8.ts";

import { scheduler } from "./boot/index.ts";

/** Resolves after `ms` milliseconds of monotonic time. */
export function sleep(ms: number): Promise<void> {
  return scheduler().sleep(ms);
}

/** Monotonic time in milliseconds (fractional) since an arbitrary point before the image started. */
export function now(): number {
  return scheduler().now() / 1e6;
}

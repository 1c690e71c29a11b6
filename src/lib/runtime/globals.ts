/**
 * The few host-like globals that ordinary code expects, served from the base so that they work on
 * every tender: setTimeout/setInterval/queueMicrotask on the scheduler, console on the console
 * call, crypto.getRandomValues on the entropy call, TextEncoder/TextDecoder (UTF-8). Installed
 * only where the engine lacks them (console always: V8's talks only to the inspector). Boot
 * installs them before any appliance module evaluates, so module top level has them too;
 * src/lib/types/image-globals.d.ts declares exactly these (and the web classes the build injects).
 */
import { ConsoleStream, type Base, type ConsoleStreamId } from "../../abi/base.ts";
import { AbiError } from "./base.ts";
import type { Scheduler } from "./scheduler.ts";
import type { Timer } from "./timers.ts";
import { TextDecoder, TextEncoder } from "./encoding.ts";
import { encodeUtf8 } from "./utf8.ts";

type TimerCallback = (...args: unknown[]) => void;

function formatValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function" || typeof value === "symbol" || value === undefined) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export function formatConsoleArgs(args: readonly unknown[]): string {
  return args.map(formatValue).join(" ");
}

const ENTROPY_CHUNK = 65536;

export function installGlobals(base: Base, scheduler: Scheduler): void {
  const timers = new Map<number, Timer>();
  let nextId = 1;

  const schedule = (callback: TimerCallback, delay: unknown, args: unknown[], repeat: boolean): number => {
    if (typeof callback !== "function") throw new TypeError("timer callback must be a function");
    const id = nextId++;
    const ms = typeof delay === "number" && delay > 0 ? delay : 0;
    const arm = (): void => {
      timers.set(
        id,
        scheduler.after(repeat ? Math.max(ms, 1) : ms, () => {
          if (repeat) arm();
          else timers.delete(id);
          callback(...args);
        }),
      );
    };
    arm();
    return id;
  };
  const clear = (id: unknown): void => {
    if (typeof id !== "number") return;
    timers.get(id)?.cancel();
    timers.delete(id);
  };

  const definitions: Record<string, unknown> = {
    setTimeout: (callback: TimerCallback, delay?: unknown, ...args: unknown[]) => schedule(callback, delay, args, false),
    setInterval: (callback: TimerCallback, delay?: unknown, ...args: unknown[]) => schedule(callback, delay, args, true),
    clearTimeout: clear,
    clearInterval: clear,
    queueMicrotask: (callback: () => void) => {
      if (typeof callback !== "function") throw new TypeError("queueMicrotask callback must be a function");
      void Promise.resolve().then(callback);
    },
  };
  for (const [name, value] of Object.entries(definitions)) {
    if (typeof Reflect.get(globalThis, name) !== "function") Reflect.set(globalThis, name, value);
  }

  // As Node, Deno and Bun: errors, warnings and traces on standard error, the rest on standard output.
  const writeTo =
    (stream: ConsoleStreamId) =>
    (...args: unknown[]): void => {
      base.consoleWrite(encodeUtf8(formatConsoleArgs(args) + "\n"), stream);
    };
  const out = writeTo(ConsoleStream.STDOUT);
  const err = writeTo(ConsoleStream.STDERR);
  const trace = (...args: unknown[]): void => {
    const stack = new Error().stack?.split("\n").slice(2).join("\n") ?? "";
    err(`Trace${args.length === 0 ? "" : `: ${formatConsoleArgs(args)}`}\n${stack}`);
  };
  Reflect.set(globalThis, "console", { log: out, info: out, debug: out, warn: err, error: err, trace });

  // As Web IDL installs interfaces: writable, configurable, not enumerable.
  for (const [name, value] of Object.entries({ TextEncoder, TextDecoder })) {
    if (Reflect.get(globalThis, name) === undefined) {
      Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
    }
  }

  if (Reflect.get(globalThis, "crypto") === undefined) {
    Reflect.set(globalThis, "crypto", {
      getRandomValues<T extends ArrayBufferView>(array: T): T {
        const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
        if (bytes.length > ENTROPY_CHUNK) throw new RangeError(`getRandomValues takes at most ${ENTROPY_CHUNK} bytes`);
        const status = base.entropy(bytes);
        if (status !== 0) throw new AbiError("entropy", status);
        return array;
      },
    });
  }
}

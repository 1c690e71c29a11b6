/**
 * Helpers shared by the benchmark scripts (bench/*.ts): option parsing, exiting with a usage
 * error, cleaning up on signals, medians and quantiles, and Markdown tables.
 */

import type { Netns } from "../test/helpers/netns.ts";

/** Prints `<name>: <message>` to stderr and exits 2 (a usage or precondition error). */
export function fail(name: string, message: string): never {
  process.stderr.write(`${name}: ${message}\n`);
  process.exit(2);
}

/**
 * Parses `--key value` and `--key=value` options whose values are numbers, each within its
 * [min, max] limits, into a copy of `defaults`. `-h`/`--help` prints `usage` and exits 0; an
 * unknown argument or a bad value goes to fail(name, ...). Values must be whole numbers unless
 * their key is in `fractional`. `flags` are arguments without a value (e.g. `--profile`), matched
 * exactly, each with what to do when it is given.
 */
export function parseNumericOptions<K extends string>(
  name: string,
  argv: readonly string[],
  defaults: Readonly<Record<K, number>>,
  limits: Readonly<Record<K, readonly [number, number]>>,
  usage: string,
  more: { fractional?: readonly NoInfer<K>[]; flags?: Readonly<Record<string, () => void>> } = {},
): Record<K, number> {
  const options = { ...defaults } as Record<K, number>;
  const fractional = new Set<string>(more.fractional ?? []);
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] ?? "";
    if (arg === "-h" || arg === "--help") {
      process.stdout.write(usage);
      process.exit(0);
    }
    const flag = more.flags !== undefined && Object.hasOwn(more.flags, arg) ? more.flags[arg] : undefined;
    if (flag !== undefined) {
      flag();
      continue;
    }
    const [option, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const key = option.replace(/^--/, "") as K;
    if (!option.startsWith("--") || !Object.hasOwn(limits, key)) fail(name, `unknown argument ${JSON.stringify(arg)}\n\n${usage}`);
    const text = inline ?? argv[++index];
    const value = Number(text);
    const [min, max] = limits[key];
    const whole = !fractional.has(key);
    if (text === undefined || !Number.isFinite(value) || value < min || value > max || (whole && !Number.isInteger(value))) {
      fail(name, `${option} takes a ${whole ? "whole number" : "number"} from ${min} to ${max}, not ${JSON.stringify(text)}`);
    }
    options[key] = value;
  }
  return options;
}

/**
 * Runs `cleanup` when the process exits, and on SIGINT, SIGTERM and SIGHUP: says so on stderr
 * (`<prefix><name>: <signal>, cleaning up`), cleans up, and exits 130, 143 or 129.
 */
export function cleanupOnSignals(name: string, cleanup: () => void, prefix = ""): void {
  process.on("exit", cleanup);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      process.stderr.write(`${prefix}${name}: ${signal}, cleaning up\n`);
      cleanup();
      process.exit(signal === "SIGINT" ? 130 : signal === "SIGTERM" ? 143 : 129);
    });
  }
}

/** The median: the middle value, or the mean of the two middle values. NaN for no values. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** The q-quantile (0..1) by linear interpolation between closest ranks. */
export function quantile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  const lowValue = sorted[low] ?? Number.NaN;
  const highValue = sorted[high] ?? Number.NaN;
  return lowValue + (highValue - lowValue) * (position - low);
}

/**
 * A Markdown table, one line per row plus the separator, each line ending in a newline, the
 * columns padded to their widest cell. `align` "right": the first column left-aligned, the others
 * right-aligned (`---:`); "left": every column left-aligned.
 */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], align: "right" | "left" = "right"): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? "").length)));
  const right = (column: number): boolean => align === "right" && column > 0;
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, column) => (right(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0))).join(" | ")} |\n`;
  const separator = `|${widths.map((width, column) => (right(column) ? `${"-".repeat(width + 1)}:` : "-".repeat(width + 2))).join("|")}|\n`;
  return `${line(header)}${separator}${rows.map(line).join("")}`;
}

/**
 * Joins two namespaces with a veth pair, `near` (at `nearAddress`/24) in `client` and `far` (at
 * `farAddress`/24) in `server`, both up. The pair is made in the client's namespace with its peer
 * in the server's: the host's own namespace never sees either end.
 */
export function vethPair(client: Netns, server: Netns, near: string, far: string, nearAddress: string, farAddress: string): void {
  client.exec(["ip", "link", "add", near, "type", "veth", "peer", "name", far, "netns", server.name]);
  client.exec(["ip", "addr", "add", `${nearAddress}/24`, "dev", near]);
  client.exec(["ip", "link", "set", near, "up"]);
  server.exec(["ip", "addr", "add", `${farAddress}/24`, "dev", far]);
  server.exec(["ip", "link", "set", far, "up"]);
}

/**
 * Runs a benchmark's main: when it is done, cleans up and exits 0; when it throws, prints
 * `<name>: <the error's message>` (with `show` "stack", its stack) to stderr, cleans up and exits 1.
 */
export function runBench(name: string, main: () => Promise<void>, cleanup: () => void, show: "message" | "stack" = "message"): void {
  main().then(
    () => {
      cleanup();
      process.exit(0);
    },
    (error: unknown) => {
      const text = error instanceof Error ? (show === "stack" ? (error.stack ?? error.message) : error.message) : String(error);
      process.stderr.write(`${name}: ${text}\n`);
      cleanup();
      process.exit(1);
    },
  );
}

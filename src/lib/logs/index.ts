/**
 * Logging for appliances: named sources with per-source levels, written through the base's
 * console call with a monotonic timestamp (seconds since the image started):
 *
 *   [    1.234567] INFO  arp: 198.18.0.1 is at 02:00:00:00:00:01
 *
 * Messages below a source's level cost one comparison; pass a function to defer building them.
 */
import { base } from "../runtime/base.ts";
import { encodeUtf8 } from "../runtime/utf8.ts";
import { LEVEL_RANK, parseLevelSpec, type Level, type LevelSpec } from "./levels.ts";

export { LEVELS, parseLevelSpec, isLevel, type Level, type LevelSpec } from "./levels.ts";

export type Message = string | (() => string);
type MessageLevel = Exclude<Level, "quiet">;

const LABEL: Readonly<Record<MessageLevel, string>> = { error: "ERROR", warn: "WARN ", info: "INFO ", debug: "DEBUG" };

let spec: LevelSpec = { defaultLevel: "info", sources: new Map() };
let startNs: number | undefined;
const loggers = new Map<string, Logger>();

export class Logger {
  /** Rank threshold, recomputed when levels change, so a disabled call is one comparison. */
  private threshold: number;

  constructor(readonly source: string) {
    this.threshold = thresholdFor(source);
  }

  refresh(): void {
    this.threshold = thresholdFor(this.source);
  }

  enabled(level: MessageLevel): boolean {
    return LEVEL_RANK[level] <= this.threshold;
  }

  error(message: Message): void {
    if (LEVEL_RANK.error <= this.threshold) write("error", this.source, message);
  }
  warn(message: Message): void {
    if (LEVEL_RANK.warn <= this.threshold) write("warn", this.source, message);
  }
  info(message: Message): void {
    if (LEVEL_RANK.info <= this.threshold) write("info", this.source, message);
  }
  debug(message: Message): void {
    if (LEVEL_RANK.debug <= this.threshold) write("debug", this.source, message);
  }
}

function thresholdFor(source: string): number {
  // "tcp.rx" falls back to "tcp", then to the default.
  for (let name = source; ; ) {
    const level = spec.sources.get(name);
    if (level !== undefined) return LEVEL_RANK[level];
    const dot = name.lastIndexOf(".");
    if (dot === -1) return LEVEL_RANK[spec.defaultLevel];
    name = name.slice(0, dot);
  }
}

/** The logger for a source (one per name). */
export function source(name: string): Logger {
  let logger = loggers.get(name);
  if (logger === undefined) {
    logger = new Logger(name);
    loggers.set(name, logger);
  }
  return logger;
}

/** Sets levels from a spec such as "info,arp:debug". Throws on a malformed spec. */
export function setLevels(text: string): void {
  const parsed = parseLevelSpec(text);
  if (typeof parsed === "string") throw new Error(parsed);
  spec = parsed;
  for (const logger of loggers.values()) logger.refresh();
}

/** Whether `level` is enabled for `sourceName` (for work done only to be logged, such as counters at exit). */
export function enabled(sourceName: string, level: MessageLevel): boolean {
  return source(sourceName).enabled(level);
}

function timestamp(): string {
  const now = base().clockMonotonic();
  startNs ??= now;
  const micros = Math.floor((now - startNs) / 1000);
  const seconds = Math.floor(micros / 1_000_000);
  const fraction = String(micros % 1_000_000).padStart(6, "0");
  return `${String(seconds).padStart(5, " ")}.${fraction}`;
}

function write(level: MessageLevel, sourceName: string, message: Message): void {
  const text = typeof message === "function" ? message() : message;
  base().consoleWrite(encodeUtf8(`[${timestamp()}] ${LABEL[level]} ${sourceName}: ${text}\n`));
}

/** Marks the start of the image's clock for timestamps (called at boot). */
export function markStart(): void {
  startNs = base().clockMonotonic();
}

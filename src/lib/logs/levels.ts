/**
 * Log level specifications, as given to `atoll run --log`: a default level, then per-source
 * overrides, e.g. "info,arp:debug,tcp:warn" (in the manner of MirageOS's Logs and RUST_LOG).
 * Pure, so that the CLI can validate a flag with the same code the image uses.
 */

export const LEVELS = ["quiet", "error", "warn", "info", "debug"] as const;
export type Level = (typeof LEVELS)[number];
/** Severity rank: a message is shown when its rank is at most the source's threshold. */
export const LEVEL_RANK: Readonly<Record<Level, number>> = { quiet: 0, error: 1, warn: 2, info: 3, debug: 4 };

export interface LevelSpec {
  readonly defaultLevel: Level;
  readonly sources: ReadonlyMap<string, Level>;
}

export function isLevel(value: string): value is Level {
  return (LEVELS as readonly string[]).includes(value);
}

const SOURCE_PATTERN = /^[a-z][a-z0-9._-]*$/;

/** Parses a spec; returns it, or a one-line error message naming the bad part. */
export function parseLevelSpec(spec: string, defaultLevel: Level = "info"): LevelSpec | string {
  let level = defaultLevel;
  const sources = new Map<string, Level>();
  for (const part of spec.split(",")) {
    const item = part.trim();
    if (item === "") continue;
    const colon = item.indexOf(":");
    if (colon === -1) {
      if (!isLevel(item)) return `unknown log level '${item}': use one of ${LEVELS.join(", ")}`;
      level = item;
      continue;
    }
    const source = item.slice(0, colon);
    const sourceLevel = item.slice(colon + 1);
    if (!SOURCE_PATTERN.test(source)) return `bad log source '${source}' in '${item}': expected <source>:<level>, e.g. arp:debug`;
    if (!isLevel(sourceLevel)) return `unknown log level '${sourceLevel}' for source '${source}': use one of ${LEVELS.join(", ")}`;
    sources.set(source, sourceLevel);
  }
  return { defaultLevel: level, sources };
}

/**
 * Command-line parsing on node:util's parseArgs, with its errors rewritten as one line that names
 * the command and points to its --help.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed {
  readonly values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  readonly positionals: string[];
  /** Everything after a literal `--`. */
  readonly rest: string[];
}

export function parseCommandLine(command: string, argv: readonly string[], options: Options, maxPositionals: number): Parsed {
  const dashDash = argv.indexOf("--");
  const own = dashDash === -1 ? [...argv] : argv.slice(0, dashDash);
  const rest = dashDash === -1 ? [] : argv.slice(dashDash + 1);
  let parsed: { values: Parsed["values"]; positionals: string[] };
  try {
    parsed = parseArgs({ args: own, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`atoll ${command}: ${describeParseError(error)} (see \`atoll ${command} --help\`)`);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`atoll ${command}: unexpected argument '${parsed.positionals[maxPositionals]}' (see \`atoll ${command} --help\`)`);
  }
  return { values: parsed.values, positionals: parsed.positionals, rest };
}

function describeParseError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = "code" in error ? error.code : undefined;
  const option = /'(-[^' ]*)/.exec(error.message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option '${option ?? "?"}'`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    if (/argument missing/.test(error.message)) return `option '${option ?? "?"}' needs a value`;
    return `option '${option ?? "?"}' takes no value`;
  }
  return error.message.split("\n")[0] ?? "bad arguments";
}

export function stringValue(parsed: Parsed, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === "string" ? value : undefined;
}

export function flag(parsed: Parsed, name: string): boolean {
  return parsed.values[name] === true;
}

export function stringList(parsed: Parsed, name: string): string[] {
  const value = parsed.values[name];
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.filter((item): item is string => typeof item === "string");
}

/**
 * Parses repeated `<device>=<value>` flags into a map, refusing a device given twice.
 */
export function deviceMap(command: string, flagName: string, items: readonly string[], example: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const item of items) {
    const eq = item.indexOf("=");
    const device = eq === -1 ? "" : item.slice(0, eq);
    const value = eq === -1 ? "" : item.slice(eq + 1);
    if (device === "" || value === "") {
      throw new UsageError(`atoll ${command}: --${flagName} '${item}' is not <device>=<value>, e.g. --${flagName} ${example}`);
    }
    if (map.has(device)) throw new UsageError(`atoll ${command}: --${flagName} given twice for device '${device}'`);
    map.set(device, value);
  }
  return map;
}

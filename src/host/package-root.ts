/**
 * Where the atoll package lives. Host code runs both as ESM source (through tsx) and bundled by
 * esbuild into CommonJS under build/, so it cannot rely on its own location: it walks up to the
 * package.json named PACKAGE_NAME instead, which holds src/, build/ and examples/ in both layouts.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The path of the running file. In a CommonJS bundle `__filename` is the bundle itself (esbuild
 * turns `import.meta` into an empty object there); in ESM only `import.meta.url` exists.
 */
export function currentFile(): string {
  if (typeof __filename === "string") return __filename;
  let url: unknown;
  // Inside a try body esbuild does not warn that import.meta is empty in CommonJS output, which
  // is harmless here because the __filename branch above always wins in that format.
  try {
    url = import.meta.url;
  } catch {
    url = undefined;
  }
  if (typeof url === "string") return fileURLToPath(url);
  throw new Error("atoll: cannot determine the location of the running code");
}

/**
 * The npm package's name. The command is `atoll` and appliances import "atoll", "atoll/net"...,
 * but the package is "atoll-unikernel": on the registry, "atoll" is an unrelated library, which
 * `npx atoll` outside this repository would download. A scaffold exposes this package to its
 * tooling under the name "atoll" (a `file:` dependency keyed "atoll"); see src/cli/new.ts.
 */
export const PACKAGE_NAME = "atoll-unikernel";

let root: string | undefined;

/** The atoll package root; throws a one-line Error when run from outside a checkout or install. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  const here = currentFile();
  for (let dir = dirname(here); ; dir = dirname(dir)) {
    if (isAtollPackage(join(dir, "package.json"))) {
      root = dir;
      return dir;
    }
    if (dirname(dir) === dir) break;
  }
  throw new Error(`atoll: cannot find the atoll package root (no package.json named "${PACKAGE_NAME}" above ${here})`);
}

function isAtollPackage(manifest: string): boolean {
  try {
    const parsed: unknown = JSON.parse(readFileSync(manifest, "utf8"));
    return typeof parsed === "object" && parsed !== null && Reflect.get(parsed, "name") === PACKAGE_NAME;
  } catch {
    // Absent or unreadable manifests just mean "keep walking up".
    return false;
  }
}

/** The atoll version, from its package.json. */
export function atollVersion(): string {
  const parsed: unknown = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8"));
  const version = typeof parsed === "object" && parsed !== null ? Reflect.get(parsed, "version") : undefined;
  return typeof version === "string" ? version : "0.0.0";
}

/**
 * The library's public entry points: the "atoll/..." specifiers an appliance may import.
 *
 * package.json's "exports" is their one definition (Node resolves the package through it). The
 * build does not bind images through Node's resolution (esbuild bundles src/lib directly) and the
 * type check maps specifiers with `paths`, so both read the same list from here, derived from
 * "exports": an import of any other "atoll/..." module is refused in the build with a one-line
 * error naming the public ones, and does not resolve in the type check. The list is documented in
 * docs/api.md; test/public-api.test.ts holds the three together.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../host/package-root.ts";

/** The name appliances import the library under (see PACKAGE_NAME in src/host/package-root.ts). */
export const LIBRARY_SPECIFIER = "atoll";

/** Specifier ("atoll", "atoll/net", ...) to the file it names, relative to the package root. */
export type EntryPoints = ReadonlyMap<string, string>;

const cache = new Map<string, EntryPoints>();

/** The public entry points of the atoll package at `root` (default: this one), from its "exports". */
export function publicEntryPoints(root: string = packageRoot()): EntryPoints {
  let entryPoints = cache.get(root);
  if (entryPoints === undefined) {
    entryPoints = entryPointsFromManifest(JSON.parse(readFileSync(join(root, "package.json"), "utf8")));
    cache.set(root, entryPoints);
  }
  return entryPoints;
}

/** Reads "exports" of a package.json: each "./sub" (or ".") mapped to a single "./file" path. */
export function entryPointsFromManifest(manifest: unknown): EntryPoints {
  const exportsField: unknown = typeof manifest === "object" && manifest !== null ? Reflect.get(manifest, "exports") : undefined;
  if (typeof exportsField !== "object" || exportsField === null) throw new Error('atoll: package.json has no "exports" map of the library\'s entry points');
  const entries = new Map<string, string>();
  for (const [subpath, target] of Object.entries(exportsField)) {
    if (subpath === "./package.json") continue;
    if (subpath.includes("*")) throw new Error(`atoll: package.json "exports" has the wildcard ${subpath}: list each public entry point instead`);
    if (typeof target !== "string" || !target.startsWith("./src/lib/")) {
      throw new Error(`atoll: package.json "exports" maps ${subpath} to ${JSON.stringify(target)}: expected a "./src/lib/..." file`);
    }
    const specifier = subpath === "." ? LIBRARY_SPECIFIER : `${LIBRARY_SPECIFIER}/${subpath.replace(/^\.\//, "")}`;
    entries.set(specifier, target.slice(2));
  }
  return entries;
}

/** Whether a specifier names the library ("atoll" or "atoll/..."), public or not. */
export function isLibrarySpecifier(specifier: string): boolean {
  return specifier === LIBRARY_SPECIFIER || specifier.startsWith(`${LIBRARY_SPECIFIER}/`);
}

/** The one-line refusal of a library specifier that is not a public entry point. */
export function notPublicMessage(specifier: string, entryPoints: EntryPoints): string {
  return `'${specifier}' is not a public entry point of atoll: import one of ${[...entryPoints.keys()].join(", ")} (see docs/api.md)`;
}

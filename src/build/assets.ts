/**
 * The build side of baked assets: walks the appliance's assets directory and packs every file
 * into an assets section (docs/assets.md) with its content type, its SHA-256 (the strong ETag),
 * and gzip and brotli variants, each kept only when smaller than the file.
 *
 * Deterministic: files are taken in sorted order and compressed with fixed settings (gzip writes
 * no name and no time), so the same directory gives the same bytes, as SOURCE_DATE_EPOCH builds
 * require.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";
import { ConfinementError, confinedRealPath, type ApplianceRoot } from "./confine.ts";
import { contentTypeFor, isCompressible } from "../lib/assets/content-types.ts";
import { AssetFormatError, assetPathProblem, encodeAssets, type AssetEntry } from "../lib/assets/format.ts";

export class AssetBuildError extends Error {
  override readonly name = "AssetBuildError";
}

export interface AssetFile {
  /** URL path: "/" + the path relative to the assets directory, with "/" separators. */
  readonly path: string;
  readonly absolutePath: string;
}

/**
 * Lists the files under `dir`, sorted by path. Names starting with "." are skipped (.git,
 * .DS_Store), except the ".well-known" directory (RFC 8615). Symbolic links are followed while
 * they stay inside the appliance directory `root` (src/build/confine.ts); one that leads out of
 * it is an error naming it, and so is a directory reached twice (a link cycle). Each file's
 * `absolutePath` is its real path, the one that was checked.
 */
export function listAssetFiles(dir: string, root: ApplianceRoot): AssetFile[] {
  const files: AssetFile[] = [];
  const visited = new Set<string>();
  const shown = (path: string): string => `assets: ${relative(root.path, path) || "."}`;
  const walk = (current: string, real: string): void => {
    if (visited.has(real)) throw new AssetBuildError(`${shown(current)} is reached twice through symbolic links`);
    visited.add(real);
    for (const entry of readdirSync(real, { withFileTypes: true })) {
      if (entry.name.startsWith(".") && entry.name !== ".well-known") continue;
      // `current` is the path as the URL names it; `real` the checked one the bytes come from.
      const path = join(current, entry.name);
      const target = entry.isSymbolicLink() ? confined(root, shown(path), join(real, entry.name)) : join(real, entry.name);
      const stats = entry.isSymbolicLink() ? statSync(target) : entry;
      if (stats.isDirectory()) walk(path, target);
      else if (stats.isFile()) files.push({ path: `/${relative(dir, path).split(sep).join("/")}`, absolutePath: target });
    }
  };
  walk(dir, confined(root, shown(dir), dir));
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function confined(root: ApplianceRoot, shown: string, path: string): string {
  try {
    return confinedRealPath(root, shown, path);
  } catch (error) {
    if (error instanceof ConfinementError) throw new AssetBuildError(error.message);
    throw error;
  }
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

function smallerOrUndefined(candidate: Uint8Array, original: Uint8Array): Uint8Array | undefined {
  return candidate.length < original.length ? candidate : undefined;
}

/** Compresses a file both ways, at the strongest settings: this runs once, at build time. */
export function compressVariants(body: Uint8Array, contentType: string): { gzip?: Uint8Array; br?: Uint8Array } {
  if (body.length === 0 || !isCompressible(contentType)) return {};
  const gzip = new Uint8Array(gzipSync(body, { level: zlib.Z_BEST_COMPRESSION }));
  const br = new Uint8Array(
    brotliCompressSync(body, {
      params: {
        [zlib.BROTLI_PARAM_QUALITY]: zlib.BROTLI_MAX_QUALITY,
        [zlib.BROTLI_PARAM_MODE]: contentType.startsWith("text/") ? zlib.BROTLI_MODE_TEXT : zlib.BROTLI_MODE_GENERIC,
        [zlib.BROTLI_PARAM_SIZE_HINT]: body.length,
      },
    }),
  );
  const variants: { gzip?: Uint8Array; br?: Uint8Array } = {};
  const smallerGzip = smallerOrUndefined(gzip, body);
  const smallerBr = smallerOrUndefined(br, body);
  if (smallerGzip !== undefined) variants.gzip = smallerGzip;
  if (smallerBr !== undefined) variants.br = smallerBr;
  return variants;
}

/** Reads, hashes and compresses the files of `dir` and encodes the assets section. */
export function packAssets(dir: string, root: ApplianceRoot): Uint8Array {
  let files: AssetFile[];
  try {
    files = listAssetFiles(dir, root);
  } catch (error) {
    if (error instanceof AssetBuildError) throw error;
    throw new AssetBuildError(`assets: cannot list ${dir}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const entries: AssetEntry[] = files.map((file) => {
    const problem = assetPathProblem(file.path);
    if (problem !== undefined) throw new AssetBuildError(`assets: ${file.path} cannot be served: ${problem}`);
    let body: Uint8Array;
    try {
      body = new Uint8Array(readFileSync(file.absolutePath));
    } catch (error) {
      throw new AssetBuildError(`assets: cannot read ${file.absolutePath}: ${error instanceof Error ? error.message : String(error)}`);
    }
    const contentType = contentTypeFor(file.path);
    return { path: file.path, contentType, sha256: sha256(body), body, ...compressVariants(body, contentType) };
  });
  try {
    return encodeAssets(entries);
  } catch (error) {
    if (error instanceof AssetFormatError) throw new AssetBuildError(`assets: ${error.message}`);
    throw error;
  }
}

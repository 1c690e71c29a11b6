/**
 * The assets section's format (docs/assets.md), version 1: an index of files (path, content
 * type, SHA-256, and where each representation's bytes lie), then the bytes. All integers are
 * little-endian, as in the image format.
 *
 *   offset 0   8   magic "ATOLLAST"
 *          8   4   version, u32: 1
 *          12  4   entry count n, u32
 *          16  …   n entries, sorted by path (bytewise UTF-8), each:
 *                    u16 path length, path (UTF-8, "/a/b.html")
 *                    u8  content type length, content type (printable ASCII)
 *                    32  SHA-256 of the identity bytes
 *                    u8  representation count r (1..3), then r × { u8 coding, u32 offset, u32 length }
 *                        coding 0 identity (always first), 1 gzip, 2 br; offsets from the section start
 *          …   …   representation bytes, anywhere after the index
 *
 * Pure ECMAScript: the builder (host) encodes with it, the image decodes with it. Decoding
 * never copies a representation: bodies are views of the section.
 */
import { encodeUtf8 } from "../runtime/utf8.ts";
import { TextDecoder } from "../web/encoding.ts";

export const ASSETS_MAGIC = "ATOLLAST";
export const ASSETS_FORMAT_VERSION = 1;
const HEADER_SIZE = 16;
const HASH_SIZE = 32;
export const MAX_ASSET_PATH_BYTES = 4096;
/** Offsets and lengths are u32: a section holds at most 4 GiB - 1. */
const MAX_SECTION_BYTES = 0xffffffff;

export type ContentCoding = "gzip" | "br";
const CODING_IDS: Readonly<Record<"identity" | ContentCoding, number>> = { identity: 0, gzip: 1, br: 2 };

export class AssetFormatError extends Error {
  override readonly name = "AssetFormatError";
}

/** What the builder packs for one file. */
export interface AssetEntry {
  readonly path: string;
  readonly contentType: string;
  readonly sha256: Uint8Array;
  readonly body: Uint8Array;
  /** Precompressed representations, stored only if given (the builder gives them only when smaller). */
  readonly gzip?: Uint8Array | undefined;
  readonly br?: Uint8Array | undefined;
}

export interface AssetVariant {
  readonly coding: ContentCoding;
  readonly body: Uint8Array;
  /** Strong ETag of this representation: the identity ETag with the coding appended. */
  readonly etag: string;
}

export interface Asset {
  /** "/index.html" */
  readonly path: string;
  readonly contentType: string;
  /** Identity bytes. */
  readonly body: Uint8Array;
  readonly size: number;
  readonly sha256: Uint8Array;
  /** Strong ETag (RFC 9110 §8.8.3) from the SHA-256 of the content: `"<base64url>"`. */
  readonly etag: string;
  readonly variants: { readonly gzip?: AssetVariant | undefined; readonly br?: AssetVariant | undefined };
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** base64url without padding (RFC 4648 §5). */
export function base64url(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i] ?? 0;
    const b = bytes[i + 1] ?? 0;
    const c = bytes[i + 2] ?? 0;
    const triple = (a << 16) | (b << 8) | c;
    const chars = i + 2 < bytes.length ? 4 : i + 1 < bytes.length ? 3 : 2;
    for (let k = 0; k < chars; k++) out += BASE64URL[(triple >> (18 - 6 * k)) & 63] ?? "";
  }
  return out;
}

/** Why a path cannot name an asset, or undefined when it can. */
export function assetPathProblem(path: string): string | undefined {
  if (!path.startsWith("/")) return "it does not start with '/'";
  if (path.endsWith("/")) return "it ends with '/'";
  if (path.includes("\0")) return "it contains NUL";
  if (path.includes("\\")) return "it contains '\\', which URLs turn into '/'";
  for (const segment of path.slice(1).split("/")) {
    if (segment === "" || segment === "." || segment === "..") return "it has an empty, '.' or '..' segment";
  }
  if (encodeUtf8(path).length > MAX_ASSET_PATH_BYTES) return `it is longer than ${MAX_ASSET_PATH_BYTES} bytes`;
  if (/[\ud800-\udfff]/u.test(path.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ""))) return "it is not valid Unicode";
  return undefined;
}

function isContentType(text: string): boolean {
  return text.length > 0 && text.length <= 255 && /^[\x20-\x7e]+$/.test(text);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return a.length - b.length;
}

/** Packs entries into an assets section. Throws AssetFormatError for an entry the format cannot hold. */
export function encodeAssets(entries: readonly AssetEntry[]): Uint8Array {
  const prepared = entries.map((entry) => {
    const problem = assetPathProblem(entry.path);
    if (problem !== undefined) throw new AssetFormatError(`asset path ${JSON.stringify(entry.path)} is invalid: ${problem}`);
    if (!isContentType(entry.contentType)) throw new AssetFormatError(`asset ${entry.path}: content type ${JSON.stringify(entry.contentType)} is not printable ASCII of 1..255 bytes`);
    if (entry.sha256.length !== HASH_SIZE) throw new AssetFormatError(`asset ${entry.path}: the SHA-256 must be ${HASH_SIZE} bytes`);
    const representations: { coding: number; body: Uint8Array }[] = [{ coding: CODING_IDS.identity, body: entry.body }];
    if (entry.gzip !== undefined) representations.push({ coding: CODING_IDS.gzip, body: entry.gzip });
    if (entry.br !== undefined) representations.push({ coding: CODING_IDS.br, body: entry.br });
    return { path: encodeUtf8(entry.path), contentType: encodeUtf8(entry.contentType), sha256: entry.sha256, representations };
  });
  prepared.sort((a, b) => compareBytes(a.path, b.path));
  for (let i = 1; i < prepared.length; i++) {
    const previous = prepared[i - 1];
    const current = prepared[i];
    if (previous !== undefined && current !== undefined && compareBytes(previous.path, current.path) === 0) {
      throw new AssetFormatError("two assets have the same path");
    }
  }
  let indexSize = HEADER_SIZE;
  let dataSize = 0;
  for (const entry of prepared) {
    indexSize += 2 + entry.path.length + 1 + entry.contentType.length + HASH_SIZE + 1 + 9 * entry.representations.length;
    for (const representation of entry.representations) dataSize += representation.body.length;
  }
  const total = indexSize + dataSize;
  if (total > MAX_SECTION_BYTES) throw new AssetFormatError(`the assets come to ${total} bytes; the section holds at most ${MAX_SECTION_BYTES}`);

  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(encodeUtf8(ASSETS_MAGIC), 0);
  view.setUint32(8, ASSETS_FORMAT_VERSION, true);
  view.setUint32(12, prepared.length, true);
  let at = HEADER_SIZE;
  let dataAt = indexSize;
  for (const entry of prepared) {
    view.setUint16(at, entry.path.length, true);
    out.set(entry.path, at + 2);
    at += 2 + entry.path.length;
    out[at] = entry.contentType.length;
    out.set(entry.contentType, at + 1);
    at += 1 + entry.contentType.length;
    out.set(entry.sha256, at);
    at += HASH_SIZE;
    out[at++] = entry.representations.length;
    for (const representation of entry.representations) {
      out[at] = representation.coding;
      view.setUint32(at + 1, dataAt, true);
      view.setUint32(at + 5, representation.body.length, true);
      at += 9;
      out.set(representation.body, dataAt);
      dataAt += representation.body.length;
    }
  }
  return out;
}

/** A read-only view of the assets: lookups by path, never a copy of the bytes. */
export interface AssetStore {
  lookup(path: string): Asset | undefined;
  /** All paths, sorted. */
  paths(): string[];
  readonly count: number;
  /** Size of the section in bytes. */
  readonly byteLength: number;
}

class MapAssetStore implements AssetStore {
  constructor(
    private readonly assets: ReadonlyMap<string, Asset>,
    readonly byteLength: number,
  ) {}
  lookup(path: string): Asset | undefined {
    return this.assets.get(path);
  }
  paths(): string[] {
    return [...this.assets.keys()];
  }
  get count(): number {
    return this.assets.size;
  }
}

export const EMPTY_ASSET_STORE: AssetStore = new MapAssetStore(new Map(), 0);

/** Reads an assets section. Throws AssetFormatError (and nothing else) when it is malformed. */
export function decodeAssets(bytes: Uint8Array): AssetStore {
  const fail = (message: string): never => {
    throw new AssetFormatError(`assets section is malformed: ${message}`);
  };
  if (bytes.length < HEADER_SIZE) fail(`it has ${bytes.length} bytes, less than its ${HEADER_SIZE}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < ASSETS_MAGIC.length; i++) if (bytes[i] !== ASSETS_MAGIC.charCodeAt(i)) fail("bad magic");
  const version = view.getUint32(8, true);
  if (version !== ASSETS_FORMAT_VERSION) fail(`version ${version} is not supported (this atoll reads ${ASSETS_FORMAT_VERSION})`);
  const count = view.getUint32(12, true);
  const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const need = (at: number, size: number): void => {
    if (at + size > bytes.length) fail("the index runs past the end of the section");
  };

  const raw: { path: string; pathBytes: Uint8Array; contentType: string; sha256: Uint8Array; ranges: { coding: number; offset: number; length: number }[] }[] = [];
  let at = HEADER_SIZE;
  for (let index = 0; index < count; index++) {
    need(at, 2);
    const pathLength = view.getUint16(at, true);
    at += 2;
    need(at, pathLength);
    const pathBytes = bytes.subarray(at, at + pathLength);
    at += pathLength;
    let path = "";
    try {
      path = strict.decode(pathBytes);
    } catch {
      fail(`entry ${index}: the path is not valid UTF-8`);
    }
    const problem = assetPathProblem(path);
    if (problem !== undefined) fail(`entry ${index}: path ${JSON.stringify(path)} is invalid: ${problem}`);
    const previous = raw[raw.length - 1];
    if (previous !== undefined && compareBytes(previous.pathBytes, pathBytes) >= 0) fail(`entry ${index}: paths are not sorted or not unique`);
    need(at, 1);
    const typeLength = bytes[at] ?? 0;
    at += 1;
    need(at, typeLength + HASH_SIZE + 1);
    const contentType = String.fromCharCode(...bytes.subarray(at, at + typeLength));
    if (!isContentType(contentType)) fail(`entry ${index}: the content type is not printable ASCII`);
    at += typeLength;
    const sha256 = bytes.subarray(at, at + HASH_SIZE);
    at += HASH_SIZE;
    const representationCount = bytes[at] ?? 0;
    at += 1;
    if (representationCount < 1 || representationCount > 3) fail(`entry ${index}: ${representationCount} representations (1 to 3 allowed)`);
    need(at, 9 * representationCount);
    const ranges: { coding: number; offset: number; length: number }[] = [];
    for (let k = 0; k < representationCount; k++) {
      const coding = bytes[at] ?? 0;
      const last = ranges[ranges.length - 1];
      if (k === 0 ? coding !== CODING_IDS.identity : coding > CODING_IDS.br || last === undefined || coding <= last.coding) {
        fail(`entry ${index}: representations must be identity first, then gzip and br at most once each, in that order`);
      }
      ranges.push({ coding, offset: view.getUint32(at + 1, true), length: view.getUint32(at + 5, true) });
      at += 9;
    }
    raw.push({ path, pathBytes, contentType, sha256, ranges });
  }
  const indexEnd = at;
  const assets = new Map<string, Asset>();
  for (const entry of raw) {
    const bodies = entry.ranges.map((range) => {
      if (range.offset < indexEnd || range.offset + range.length > bytes.length) fail(`asset ${entry.path}: a representation lies outside the data area`);
      return { coding: range.coding, body: bytes.subarray(range.offset, range.offset + range.length) };
    });
    const tag = base64url(entry.sha256);
    const identity = bodies[0]?.body ?? new Uint8Array(0);
    const variantOf = (coding: ContentCoding): AssetVariant | undefined => {
      const found = bodies.find((body) => body.coding === CODING_IDS[coding]);
      return found === undefined ? undefined : { coding, body: found.body, etag: `"${tag}-${coding}"` };
    };
    assets.set(entry.path, {
      path: entry.path,
      contentType: entry.contentType,
      body: identity,
      size: identity.length,
      sha256: entry.sha256,
      etag: `"${tag}"`,
      variants: { gzip: variantOf("gzip"), br: variantOf("br") },
    });
  }
  return new MapAssetStore(assets, bytes.length);
}

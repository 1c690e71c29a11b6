/**
 * The `.atoll` image format (docs/image-format.md): one sealed file holding an appliance.
 *
 *   offset  size  field
 *   0       8     magic "ATOLLIMG"
 *   8       4     format version (u32 LE), currently 1
 *   12      4     section count n (u32 LE), 2..16
 *   16      24n   section table: kind u32, flags u32, offset u64, length u64 (LE)
 *   ...           section payloads, in table order, without gaps
 *   end-32  32    SHA-256 of every byte before it
 *
 * The hash is checked before anything else in the file is trusted, so a corrupted or truncated
 * image is refused whole rather than half-run.
 */
import { createHash } from "node:crypto";
import { parseManifest, type Manifest, ManifestError } from "./manifest.ts";

export const IMAGE_MAGIC = "ATOLLIMG";
export const IMAGE_FORMAT_VERSION = 1;
export const IMAGE_EXTENSION = ".atoll";

export const SectionKind = {
  manifest: 1,
  code: 2,
  sourceMap: 3,
  assets: 4,
} as const;
type SectionKindName = keyof typeof SectionKind;

/** A section whose flags carry this bit may be skipped by a tender that does not know its kind. */
const FLAG_OPTIONAL = 1;
const HEADER_SIZE = 16;
const TABLE_ENTRY_SIZE = 24;
const HASH_SIZE = 32;
const MAX_SECTIONS = 16;

export interface ImageContents {
  readonly manifest: Manifest;
  /** The bundled appliance: a script whose completion value is an ImageEntry. */
  readonly code: string;
  readonly sourceMap?: string;
  /** Baked assets (format defined by the assets library); opaque here. */
  readonly assets?: Uint8Array;
}

export interface Image extends ImageContents {
  /** Hex SHA-256 of the image, as stored in its trailer. */
  readonly sha256: string;
  readonly size: number;
  readonly formatVersion: number;
}

export class ImageError extends Error {
  override readonly name = "ImageError";
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export function encodeImage(contents: ImageContents): Uint8Array {
  const sections: { kind: number; flags: number; data: Uint8Array }[] = [
    { kind: SectionKind.manifest, flags: 0, data: utf8.encode(JSON.stringify(contents.manifest)) },
    { kind: SectionKind.code, flags: 0, data: utf8.encode(contents.code) },
  ];
  if (contents.sourceMap !== undefined) {
    sections.push({ kind: SectionKind.sourceMap, flags: FLAG_OPTIONAL, data: utf8.encode(contents.sourceMap) });
  }
  if (contents.assets !== undefined) sections.push({ kind: SectionKind.assets, flags: 0, data: contents.assets });

  const tableEnd = HEADER_SIZE + TABLE_ENTRY_SIZE * sections.length;
  const payloadSize = sections.reduce((sum, s) => sum + s.data.length, 0);
  const out = new Uint8Array(tableEnd + payloadSize + HASH_SIZE);
  const view = new DataView(out.buffer);
  out.set(utf8.encode(IMAGE_MAGIC), 0);
  view.setUint32(8, IMAGE_FORMAT_VERSION, true);
  view.setUint32(12, sections.length, true);
  let offset = tableEnd;
  sections.forEach((section, index) => {
    const entry = HEADER_SIZE + index * TABLE_ENTRY_SIZE;
    view.setUint32(entry, section.kind, true);
    view.setUint32(entry + 4, section.flags, true);
    view.setBigUint64(entry + 8, BigInt(offset), true);
    view.setBigUint64(entry + 16, BigInt(section.data.length), true);
    out.set(section.data, offset);
    offset += section.data.length;
  });
  out.set(createHash("sha256").update(out.subarray(0, offset)).digest(), offset);
  return out;
}

interface TableEntry {
  kind: number;
  flags: number;
  offset: number;
  length: number;
}

/** Reads and checks the section table; view covers at least the table, fileSize is the whole image's size. */
function readTable(view: DataView, fileSize: number): TableEntry[] {
  const count = view.getUint32(12, true);
  if (count < 2 || count > MAX_SECTIONS) throw new ImageError(`image declares ${count} sections; a valid image has 2 to ${MAX_SECTIONS}`);
  const tableEnd = HEADER_SIZE + TABLE_ENTRY_SIZE * count;
  const payloadEnd = fileSize - HASH_SIZE;
  if (tableEnd > payloadEnd) throw new ImageError("image is truncated: its section table runs past the end of the file");
  const entries: TableEntry[] = [];
  let expectedOffset = tableEnd;
  for (let index = 0; index < count; index++) {
    const at = HEADER_SIZE + index * TABLE_ENTRY_SIZE;
    const offset = Number(view.getBigUint64(at + 8, true));
    const length = Number(view.getBigUint64(at + 16, true));
    if (offset !== expectedOffset || offset + length > payloadEnd) {
      throw new ImageError(`image section ${index} lies outside the file (offset ${offset}, length ${length}, file ${fileSize} bytes)`);
    }
    expectedOffset = offset + length;
    entries.push({ kind: view.getUint32(at, true), flags: view.getUint32(at + 4, true), offset, length });
  }
  if (expectedOffset !== payloadEnd) throw new ImageError("image has bytes between its last section and its hash");
  return entries;
}

/** The most of an image's start that checkImagePrefix needs: the header and the longest section table. */
export const IMAGE_PREFIX_SIZE = HEADER_SIZE + TABLE_ENTRY_SIZE * MAX_SECTIONS;

function checkMagic(bytes: Uint8Array): void {
  if (bytes.length < 8 || String.fromCharCode(...bytes.subarray(0, 8)) !== IMAGE_MAGIC) {
    throw new ImageError("not an Atoll image (bad magic): build one with `atoll build`");
  }
}

/**
 * What can be checked of a file from its first bytes and its size, before reading the rest: the
 * magic, the minimum size and the section table against the size. A reader calls it with the
 * file's first min(size, IMAGE_PREFIX_SIZE) bytes, so that a huge or endless file that is no
 * image costs a few hundred bytes, not its size. Throws ImageError with a one-line reason.
 */
export function checkImagePrefix(prefix: Uint8Array, fileSize: number): void {
  checkMagic(prefix);
  const minimum = HEADER_SIZE + HASH_SIZE;
  if (fileSize < minimum) throw new ImageError(`image is truncated: ${fileSize} bytes, less than the ${minimum}-byte minimum`);
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const count = view.getUint32(12, true);
  // A table longer than the prefix is refused by readTable's count check before it is read.
  if (count >= 2 && count <= MAX_SECTIONS && prefix.length < Math.min(fileSize, HEADER_SIZE + TABLE_ENTRY_SIZE * count)) {
    throw new ImageError("image is truncated: its section table runs past the end of the file");
  }
  try {
    readTable(view, fileSize);
  } catch (error) {
    // The common case is a partial copy: say so in the words decodeImage uses for it.
    if (error instanceof ImageError && /truncated|outside the file/.test(error.message)) {
      throw new ImageError(`image is corrupt: its section table does not fit its ${fileSize} bytes (it looks truncated); rebuild it with \`atoll build\` or copy it again`);
    }
    throw error;
  }
}

/** Checks the hash, version and structure of an image and returns its contents. Throws ImageError with a one-line reason. */
export function decodeImage(bytes: Uint8Array): Image {
  const minimum = HEADER_SIZE + HASH_SIZE;
  checkMagic(bytes);
  if (bytes.length < minimum) throw new ImageError(`image is truncated: ${bytes.length} bytes, less than the ${minimum}-byte minimum`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = Buffer.from(bytes.subarray(bytes.length - HASH_SIZE)).toString("hex");
  const actual = createHash("sha256").update(bytes.subarray(0, bytes.length - HASH_SIZE)).digest("hex");
  if (stored !== actual) {
    // Say "truncated" when the table (if intact) shows the file is shorter than it claims: the common case of a partial copy.
    let hint = "";
    try {
      readTable(view, bytes.length);
    } catch (error) {
      if (error instanceof ImageError && /truncated|outside the file/.test(error.message)) hint = " (it looks truncated)";
    }
    throw new ImageError(`image is corrupt: SHA-256 does not match its contents${hint}; rebuild it with \`atoll build\` or copy it again`);
  }
  const formatVersion = view.getUint32(8, true);
  if (formatVersion !== IMAGE_FORMAT_VERSION) {
    throw new ImageError(
      `image format version ${formatVersion} is not supported (this atoll reads version ${IMAGE_FORMAT_VERSION}): rebuild the image with this atoll`,
    );
  }
  const found = new Map<number, Uint8Array>();
  for (const entry of readTable(view, bytes.length)) {
    const known = Object.values(SectionKind).some((kind) => kind === entry.kind);
    if (!known) {
      if ((entry.flags & FLAG_OPTIONAL) !== 0) continue;
      throw new ImageError(`image has a required section of unknown kind ${entry.kind}: it needs a newer atoll`);
    }
    if (found.has(entry.kind)) throw new ImageError(`image has more than one section of kind ${entry.kind}`);
    found.set(entry.kind, bytes.subarray(entry.offset, entry.offset + entry.length));
  }
  const text = (name: SectionKindName): string | undefined => {
    const data = found.get(SectionKind[name]);
    if (data === undefined) return undefined;
    try {
      return utf8Strict.decode(data);
    } catch {
      throw new ImageError(`image section '${name}' is not valid UTF-8`);
    }
  };
  const manifestText = text("manifest");
  const code = text("code");
  if (manifestText === undefined) throw new ImageError("image has no manifest section");
  if (code === undefined) throw new ImageError("image has no code section");
  let manifest: Manifest;
  try {
    manifest = parseManifest(manifestText);
  } catch (error) {
    if (error instanceof ManifestError) throw new ImageError(`image manifest is invalid: ${error.message}`);
    throw error;
  }
  const sourceMap = text("sourceMap");
  const assets = found.get(SectionKind.assets);
  return {
    manifest,
    code,
    ...(sourceMap === undefined ? {} : { sourceMap }),
    ...(assets === undefined ? {} : { assets }),
    sha256: actual,
    size: bytes.length,
    formatVersion,
  };
}

/**
 * Source positions for what an image writes: both tenders pass every console write, abort reason
 * and load error through here, so that `at main (atoll://api/image.js:14112:43)` reads
 * `at main (src/main.ts:12:9)`, and a library frame `atoll/lib/http/server.ts:301:17`, as the
 * image's source map names them (src/build/build.ts, applianceRelativeSources). DevTools maps
 * positions itself and is unaffected.
 *
 * The fast path is the common case: a console write that names no image position is handed back
 * as it is after one native substring search over its bytes. The map is parsed on first need.
 * Each write is rewritten on its own: a position split across two writes stays as it was, and a
 * position the map does not cover (no mapping on that generated line at or before the column)
 * too, as does everything when the image carries no map.
 */
import { SourceMap } from "node:module";

const searchBytes: (this: Uint8Array, value: Uint8Array) => number = Buffer.prototype.indexOf;

/** Maps image positions to source positions in text and in console bytes. */
export class SourcePositions {
  /** `atoll://<name>/image.js:`, what every image position starts with. */
  private readonly needle: Buffer;
  private readonly pattern: RegExp;
  /** `atoll://<name>/`, stripped from the map's source names. */
  private readonly sourcePrefix: string;
  private map: SourceMap | null | undefined;

  constructor(
    imageName: string,
    private readonly sourceMapText: string | undefined,
  ) {
    const imageFile = `atoll://${imageName}/image.js:`;
    this.needle = Buffer.from(imageFile, "latin1");
    this.pattern = new RegExp(`${imageFile.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}(\\d+):(\\d+)`, "g");
    this.sourcePrefix = `atoll://${imageName}/`;
  }

  /**
   * Whether `bytes` name an image position at all: the fast path, one native search (Buffer's
   * indexOf works on any Uint8Array, of any realm) with no decoding and no allocation.
   */
  mentionsImage(bytes: Uint8Array): boolean {
    if (this.sourceMapText === undefined) return false;
    return searchBytes.call(bytes, this.needle) !== -1;
  }

  /** `bytes` with image positions mapped, or `bytes` itself when there is nothing to map. */
  rewriteBytes(bytes: Uint8Array): Uint8Array {
    if (!this.mentionsImage(bytes)) return bytes;
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
    const rewritten = this.rewrite(text);
    return rewritten === text ? bytes : Buffer.from(rewritten, "utf8");
  }

  /** `text` with every `atoll://<name>/image.js:L:C` the map covers replaced by `source:line:column`. */
  rewrite(text: string): string {
    if (this.sourceMapText === undefined || !text.includes(this.sourcePrefix)) return text;
    const map = this.sourceMap();
    if (map === null) return text;
    return text.replace(this.pattern, (whole, line: string, column: string) => this.lookUp(map, Number(line), Number(column)) ?? whole);
  }

  /** The source position of a 1-based generated line and column, or undefined where the map says nothing. */
  private lookUp(map: SourceMap, line: number, column: number): string | undefined {
    if (line < 1 || column < 1) return undefined;
    const entry: unknown = map.findEntry(line - 1, column - 1);
    if (typeof entry !== "object" || entry === null) return undefined;
    // findEntry answers with the nearest mapping before the position, even from an earlier line.
    const generatedLine: unknown = Reflect.get(entry, "generatedLine");
    const source: unknown = Reflect.get(entry, "originalSource");
    const originalLine: unknown = Reflect.get(entry, "originalLine");
    const originalColumn: unknown = Reflect.get(entry, "originalColumn");
    if (generatedLine !== line - 1 || typeof source !== "string" || typeof originalLine !== "number" || typeof originalColumn !== "number") return undefined;
    const name = source.startsWith(this.sourcePrefix) ? source.slice(this.sourcePrefix.length) : source;
    return `${name}:${originalLine + 1}:${originalColumn + 1}`;
  }

  private sourceMap(): SourceMap | null {
    if (this.map === undefined) {
      try {
        const payload: unknown = JSON.parse(this.sourceMapText ?? "null");
        this.map = typeof payload === "object" && payload !== null ? new SourceMap(payloadOf(payload)) : null;
      } catch {
        // A map that does not parse maps nothing; the image's own positions are still true.
        this.map = null;
      }
    }
    return this.map;
  }
}

/** The source map payload Node's SourceMap takes, from a parsed object (checked field by field). */
function payloadOf(value: object): ConstructorParameters<typeof SourceMap>[0] {
  const strings = (key: string): string[] => {
    const list: unknown = Reflect.get(value, key);
    return Array.isArray(list) ? list.map((item: unknown) => (typeof item === "string" ? item : "")) : [];
  };
  const text = (key: string): string => {
    const field: unknown = Reflect.get(value, key);
    return typeof field === "string" ? field : "";
  };
  const version: unknown = Reflect.get(value, "version");
  return {
    version: typeof version === "number" ? version : 3,
    file: text("file"),
    sourceRoot: text("sourceRoot"),
    sources: strings("sources"),
    // Positions need no source text: leave it out rather than hold a second copy.
    sourcesContent: [],
    names: strings("names"),
    mappings: text("mappings"),
  };
}

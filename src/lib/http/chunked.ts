/**
 * The chunked transfer coding (RFC 9112 §7.1), decoded incrementally:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-size   = 1*HEXDIG
 *   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *
 * Chunk-size lines and trailers are held in bounded buffers; chunk data is passed through as
 * views of the input without copying. Extensions are validated and ignored; trailer fields are
 * validated and kept for the caller (the web API has no place for them).
 */
import { ProtocolError } from "./errors.ts";
import { HeadReader, parseFieldLines, type FieldLine } from "./head.ts";
import { CR, LF, isFieldValueOctet, isTokenOctet, isWhitespaceOctet } from "./syntax.ts";

export interface ChunkedLimits {
  /** Longest chunk-size line, extensions included. */
  readonly maxChunkLineBytes: number;
  readonly maxTrailerBytes: number;
  readonly maxTrailerCount: number;
}

/** Chunk sizes beyond this are refused outright (16 TiB): the body limit catches smaller ones. */
const MAX_CHUNK_SIZE = 2 ** 44;

function hexValue(octet: number): number {
  if (octet >= 0x30 && octet <= 0x39) return octet - 0x30;
  if (octet >= 0x41 && octet <= 0x46) return octet - 0x41 + 10;
  if (octet >= 0x61 && octet <= 0x66) return octet - 0x61 + 10;
  return -1;
}

function skipWhitespace(line: Uint8Array, at: number): number {
  while (at < line.length && isWhitespaceOctet(line[at] ?? 0)) at++;
  return at;
}

function skipToken(line: Uint8Array, at: number): number {
  while (at < line.length && isTokenOctet(line[at] ?? 0)) at++;
  return at;
}

/** quoted-string (RFC 9110 §5.6.4); returns the index after the closing quote, or -1. */
function skipQuotedString(line: Uint8Array, at: number): number {
  if (line[at] !== 0x22) return -1;
  for (at++; at < line.length; at++) {
    const octet = line[at] ?? 0;
    if (octet === 0x22) return at + 1;
    if (octet === 0x5c) {
      at++;
      if (at >= line.length || !isFieldValueOctet(line[at] ?? 0)) return -1;
    } else if (!isFieldValueOctet(octet)) {
      return -1;
    }
  }
  return -1;
}

/** Parses a chunk-size line (without CRLF): the size, or -1 when malformed. */
export function parseChunkSizeLine(line: Uint8Array): number {
  let size = 0;
  let at = 0;
  while (at < line.length) {
    const digit = hexValue(line[at] ?? 0);
    if (digit < 0) break;
    size = size * 16 + digit;
    if (size > MAX_CHUNK_SIZE) return -1;
    at++;
  }
  if (at === 0) return -1;
  // chunk-ext: each one is BWS ";" BWS name [ BWS "=" BWS value ].
  while (at < line.length) {
    at = skipWhitespace(line, at);
    if (line[at] !== 0x3b) return -1;
    at = skipWhitespace(line, at + 1);
    const nameEnd = skipToken(line, at);
    if (nameEnd === at) return -1;
    at = skipWhitespace(line, nameEnd);
    if (line[at] === 0x3d) {
      at = skipWhitespace(line, at + 1);
      const valueEnd = line[at] === 0x22 ? skipQuotedString(line, at) : skipToken(line, at);
      if (valueEnd <= at) return -1;
      at = skipWhitespace(line, valueEnd);
    }
  }
  return size;
}

type DecoderState = "size" | "data" | "dataCr" | "dataLf" | "trailers" | "done" | "failed";

export class ChunkedDecoder {
  private state: DecoderState = "size";
  private line: Uint8Array;
  private lineLength = 0;
  private sizeLineCr = false;
  private remaining = 0;
  private trailerReader: HeadReader | undefined;
  private failure: ProtocolError | undefined;
  private trailerFields: readonly FieldLine[] = [];

  constructor(private readonly limits: ChunkedLimits) {
    this.line = new Uint8Array(Math.min(64, limits.maxChunkLineBytes));
  }

  get done(): boolean {
    return this.state === "done";
  }
  get error(): ProtocolError | undefined {
    return this.failure;
  }
  get trailers(): readonly FieldLine[] {
    return this.trailerFields;
  }
  /** Bytes held in line buffers, for memory accounting. */
  get bufferedBytes(): number {
    return this.lineLength + (this.trailerReader?.bufferedBytes ?? 0);
  }

  /**
   * Decodes from `chunk` at `start`, passing chunk data to `onData` as views of `chunk`.
   * `onChunkSize` sees each chunk size as soon as it is known and may veto it with an error
   * (the body limit). Returns the number of bytes consumed; stops at the end of the body.
   */
  decode(chunk: Uint8Array, start: number, onData: (data: Uint8Array) => void, onChunkSize: (size: number) => ProtocolError | undefined): number {
    let at = start;
    while (at < chunk.length) {
      switch (this.state) {
        case "size": {
          const octet = chunk[at++] ?? 0;
          if (this.sizeLineCr) {
            this.sizeLineCr = false;
            if (octet !== LF) return this.fail(at - start, "badChunkSize", "a CR in a chunk-size line is not followed by LF");
            const size = parseChunkSizeLine(this.line.subarray(0, this.lineLength));
            this.lineLength = 0;
            if (size < 0) return this.fail(at - start, "badChunkSize", "a malformed chunk-size line");
            const veto = onChunkSize(size);
            if (veto !== undefined) {
              this.state = "failed";
              this.failure = veto;
              return at - start;
            }
            if (size === 0) {
              this.state = "trailers";
              this.trailerReader = new HeadReader({ maxFirstLineBytes: 0, maxFieldBytes: this.limits.maxTrailerBytes, maxFieldCount: this.limits.maxTrailerCount }, false);
            } else {
              this.remaining = size;
              this.state = "data";
            }
          } else if (octet === CR) {
            this.sizeLineCr = true;
          } else if (octet === LF) {
            return this.fail(at - start, "badChunkSize", "a chunk-size line ends with LF alone");
          } else {
            if (this.lineLength >= this.limits.maxChunkLineBytes) return this.fail(at - start, "badChunkSize", `a chunk-size line is longer than ${this.limits.maxChunkLineBytes} bytes`);
            this.appendToLine(octet);
          }
          break;
        }
        case "data": {
          const take = Math.min(this.remaining, chunk.length - at);
          onData(chunk.subarray(at, at + take));
          at += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = "dataCr";
          break;
        }
        case "dataCr":
          if (chunk[at++] !== CR) return this.fail(at - start, "badChunkTerminator", "chunk data is not followed by CRLF");
          this.state = "dataLf";
          break;
        case "dataLf":
          if (chunk[at++] !== LF) return this.fail(at - start, "badChunkTerminator", "chunk data is not followed by CRLF");
          this.state = "size";
          break;
        case "trailers": {
          const reader = this.trailerReader;
          if (reader === undefined) return this.fail(at - start, "badTrailer", "no trailer reader");
          at += reader.feed(chunk, at);
          if (reader.error !== undefined) {
            this.state = "failed";
            this.failure = reader.error.kind === "trailersTooLarge" ? reader.error : new ProtocolError("badTrailer", reader.error.message);
            return at - start;
          }
          if (reader.complete) {
            const fields = parseFieldLines(reader.bytes());
            if (fields instanceof ProtocolError) return this.fail(at - start, "badTrailer", `a malformed trailer field: ${fields.message}`);
            this.trailerFields = fields;
            this.trailerReader = undefined;
            this.state = "done";
            return at - start;
          }
          break;
        }
        case "done":
        case "failed":
          return at - start;
      }
    }
    return at - start;
  }

  private appendToLine(octet: number): void {
    if (this.lineLength === this.line.length) {
      const grown = new Uint8Array(Math.min(this.line.length * 2, this.limits.maxChunkLineBytes));
      grown.set(this.line);
      this.line = grown;
    }
    this.line[this.lineLength++] = octet;
  }

  private fail(consumed: number, kind: "badChunkSize" | "badChunkTerminator" | "badTrailer", message: string): number {
    this.state = "failed";
    this.failure = new ProtocolError(kind, message);
    return consumed;
  }
}

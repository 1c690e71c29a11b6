/**
 * Message heads: finding where one ends in a byte stream (HeadReader, incremental, bounded), and
 * parsing a complete one into a request line and field lines (parseRequestHead, pure).
 *
 * Strictness is deliberate. RFC 9112 lets a recipient tolerate a bare LF as a line terminator
 * (§2.2), loose whitespace in the request line (§3) and folded lines (§5.2); every one of those
 * tolerances is a place where two parsers on a request's path can disagree on where a message
 * ends, which is what request smuggling exploits. So this parser takes only CRLF, single SPs and
 * unfolded lines, and answers anything else with 400.
 */
import { ProtocolError } from "./errors.ts";
import { COLON, CR, LF, SP, isFieldValueOctet, isTokenOctet, isWhitespaceOctet, latin1Decode } from "./syntax.ts";

export type FieldLine = readonly [name: string, value: string];

export interface RequestHead {
  readonly method: string;
  /** The request-target exactly as received (RFC 9112 §3.2). */
  readonly target: string;
  /** The minor version of HTTP/1.x; 2..9 are read as 1 (RFC 9110 §2.5: the highest minor we implement). */
  readonly versionMinor: 0 | 1;
  /** Field lines in order, names as sent, values without surrounding whitespace. */
  readonly fields: readonly FieldLine[];
}

export interface HeadLimits {
  /** Longest request line, CRLF excluded (0 for a trailer section, which has none). */
  readonly maxFirstLineBytes: number;
  /** Largest field section, CRLFs included. */
  readonly maxFieldBytes: number;
  readonly maxFieldCount: number;
}

/** Leading empty lines a server ignores before a request line (RFC 9112 §2.2 says "at least one"). */
const MAX_LEADING_EMPTY_LINES = 8;

/**
 * Accumulates one head from a byte stream and says when it is complete. It enforces the size
 * limits and the line-ending rules as the bytes arrive, so that an attacker cannot make it buffer
 * more than the limits, nor wait for a terminator that a bare LF would never produce.
 */
export class HeadReader {
  private buffer: Uint8Array;
  private length = 0;
  private lineLength = 0;
  private lines = 0;
  private fieldBytes = 0;
  private skippedLines = 0;
  private pendingCarriageReturn = false;
  private state: "reading" | "complete" | "failed" = "reading";
  private failure: ProtocolError | undefined;

  constructor(
    private readonly limits: HeadLimits,
    /** Whether the head starts with a request line (false for a chunked body's trailer section). */
    private readonly hasFirstLine: boolean,
  ) {
    this.buffer = new Uint8Array(256);
  }

  get complete(): boolean {
    return this.state === "complete";
  }
  get error(): ProtocolError | undefined {
    return this.failure;
  }
  /** Whether any byte of the head itself (not of ignored empty lines) has arrived. */
  get started(): boolean {
    return this.length > 0;
  }
  /** Bytes held, for memory accounting. */
  get bufferedBytes(): number {
    return this.length;
  }
  /** The request line, once it has been read (for logging a request that then failed). */
  firstLine(): string | undefined {
    if (!this.hasFirstLine || this.lines === 0) return undefined;
    const end = this.buffer.indexOf(CR);
    return end < 0 ? undefined : latin1Decode(this.buffer, 0, end);
  }

  /**
   * Consumes bytes of `chunk` from `start` up to the end of the head. Returns how many it
   * consumed; then `complete` or `error` may be set. The bytes after the head are left alone.
   */
  feed(chunk: Uint8Array, start: number): number {
    let at = start;
    while (at < chunk.length && this.state === "reading") {
      const octet = chunk[at] ?? 0;
      at++;
      if (this.pendingCarriageReturn) {
        this.pendingCarriageReturn = false;
        if (octet !== LF) {
          this.fail(new ProtocolError("bareCarriageReturn", "a CR in the head is not followed by LF"));
          break;
        }
        this.endLine();
        continue;
      }
      if (octet === CR) {
        this.pendingCarriageReturn = true;
        continue;
      }
      if (octet === LF) {
        this.fail(new ProtocolError("bareLineFeed", "a line in the head ends with LF alone; HTTP/1.1 lines end with CRLF"));
        break;
      }
      this.append(octet);
      this.lineLength++;
      if (this.hasFirstLine && this.lines === 0) {
        if (this.lineLength > this.limits.maxFirstLineBytes) {
          this.fail(new ProtocolError("requestLineTooLong", `the request line is longer than ${this.limits.maxFirstLineBytes} bytes`));
        }
      } else if (this.fieldBytes + this.lineLength + 2 > this.limits.maxFieldBytes) {
        const what = this.hasFirstLine ? "header section" : "trailer section";
        this.fail(new ProtocolError(this.hasFirstLine ? "headersTooLarge" : "trailersTooLarge", `the ${what} is larger than ${this.limits.maxFieldBytes} bytes`));
      }
    }
    return at - start;
  }

  /** The head, lines separated by CRLF, without the empty line that ended it. */
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }

  private endLine(): void {
    if (this.lineLength === 0) {
      if (this.hasFirstLine && this.lines === 0) {
        // RFC 9112 §2.2: ignore empty lines before the request line (a client's stray CRLF after a body).
        if (++this.skippedLines > MAX_LEADING_EMPTY_LINES) this.fail(new ProtocolError("badRequestLine", "too many empty lines before the request line"));
        return;
      }
      this.state = "complete";
      return;
    }
    if (!(this.hasFirstLine && this.lines === 0)) {
      this.fieldBytes += this.lineLength + 2;
      const fieldCount = this.hasFirstLine ? this.lines : this.lines + 1;
      if (fieldCount > this.limits.maxFieldCount) {
        this.fail(new ProtocolError(this.hasFirstLine ? "tooManyHeaders" : "trailersTooLarge", `more than ${this.limits.maxFieldCount} field lines`));
        return;
      }
    }
    this.append(CR);
    this.append(LF);
    this.lines++;
    this.lineLength = 0;
  }

  private append(octet: number): void {
    if (this.length === this.buffer.length) {
      const grown = new Uint8Array(this.buffer.length * 2);
      grown.set(this.buffer);
      this.buffer = grown;
    }
    this.buffer[this.length++] = octet;
  }

  private fail(error: ProtocolError): void {
    this.state = "failed";
    this.failure = error;
  }
}

/** Splits CRLF-terminated lines; a CR or LF anywhere else is an error. */
function splitLines(bytes: Uint8Array): { start: number; end: number }[] | ProtocolError {
  const lines: { start: number; end: number }[] = [];
  let start = 0;
  for (let at = 0; at < bytes.length; at++) {
    const octet = bytes[at];
    if (octet === CR) {
      if (bytes[at + 1] !== LF) return new ProtocolError("bareCarriageReturn", "a CR in the head is not followed by LF");
      lines.push({ start, end: at });
      at++;
      start = at + 1;
    } else if (octet === LF) {
      return new ProtocolError("bareLineFeed", "a line in the head ends with LF alone");
    }
  }
  if (start !== bytes.length) return new ProtocolError("badRequestLine", "the head does not end with CRLF");
  return lines;
}

/** Parses field lines (RFC 9112 §5): `field-name ":" OWS field-value OWS`. */
function parseFieldLine(bytes: Uint8Array, start: number, end: number): FieldLine | ProtocolError {
  const first = bytes[start] ?? 0;
  if (isWhitespaceOctet(first)) {
    // RFC 9112 §5.2: a server MUST reject obs-fold with 400 (or unfold it; we reject). This also
    // covers whitespace between the start line and the first field (RFC 9112 §2.2).
    return new ProtocolError("obsFold", "a field line starts with whitespace (obs-fold)");
  }
  let colon = start;
  while (colon < end && bytes[colon] !== COLON) colon++;
  if (colon === end) return new ProtocolError("badHeaderField", "a field line has no colon");
  if (colon === start) return new ProtocolError("badHeaderField", "a field line has an empty name");
  for (let at = start; at < colon; at++) {
    const octet = bytes[at] ?? 0;
    if (!isTokenOctet(octet)) {
      // RFC 9112 §5.1: whitespace between the name and the colon MUST be rejected with 400.
      const message = isWhitespaceOctet(octet) ? "whitespace between a field name and its colon" : "a field name has a character outside token";
      return new ProtocolError("badHeaderField", message);
    }
  }
  let valueStart = colon + 1;
  let valueEnd = end;
  while (valueStart < valueEnd && isWhitespaceOctet(bytes[valueStart] ?? 0)) valueStart++;
  while (valueEnd > valueStart && isWhitespaceOctet(bytes[valueEnd - 1] ?? 0)) valueEnd--;
  for (let at = valueStart; at < valueEnd; at++) {
    if (!isFieldValueOctet(bytes[at] ?? 0)) return new ProtocolError("badHeaderValue", "a field value contains a control character");
  }
  return [latin1Decode(bytes, start, colon), latin1Decode(bytes, valueStart, valueEnd)];
}

/** Parses a field section (header or trailer fields), each line CRLF-terminated. */
export function parseFieldLines(bytes: Uint8Array): FieldLine[] | ProtocolError {
  const lines = splitLines(bytes);
  if (lines instanceof ProtocolError) return lines;
  const fields: FieldLine[] = [];
  for (const line of lines) {
    const field = parseFieldLine(bytes, line.start, line.end);
    if (field instanceof ProtocolError) return field;
    fields.push(field);
  }
  return fields;
}

/** request-target octets: visible ASCII (RFC 3986's characters; no whitespace, no controls). */
function isTargetOctet(octet: number): boolean {
  return octet > 0x20 && octet < 0x7f;
}

function isDigit(octet: number): boolean {
  return octet >= 0x30 && octet <= 0x39;
}

/**
 * Parses a complete request head (RFC 9112 §2.1): `method SP request-target SP HTTP-version
 * CRLF *( field-line CRLF )`, as HeadReader returns it. Never throws.
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead | ProtocolError {
  const lines = splitLines(bytes);
  if (lines instanceof ProtocolError) return lines;
  const requestLine = lines[0];
  if (requestLine === undefined) return new ProtocolError("badRequestLine", "the head has no request line");
  const { start, end } = requestLine;

  let methodEnd = start;
  while (methodEnd < end && isTokenOctet(bytes[methodEnd] ?? 0)) methodEnd++;
  if (methodEnd === start || bytes[methodEnd] !== SP) return new ProtocolError("badRequestLine", "the method is not a token followed by one space");
  const targetStart = methodEnd + 1;
  let targetEnd = targetStart;
  while (targetEnd < end && isTargetOctet(bytes[targetEnd] ?? 0)) targetEnd++;
  if (targetEnd === targetStart || bytes[targetEnd] !== SP) {
    return new ProtocolError("badRequestLine", "the request-target is empty, contains a character outside visible ASCII, or is not followed by one space");
  }
  // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3).
  const versionStart = targetEnd + 1;
  const version = latin1Decode(bytes, versionStart, end);
  if (version.length !== 8 || !version.startsWith("HTTP/") || version[6] !== "." || !isDigit(version.charCodeAt(5)) || !isDigit(version.charCodeAt(7))) {
    return new ProtocolError("badRequestLine", "the HTTP version is not HTTP/<digit>.<digit>");
  }
  const major = version.charCodeAt(5) - 0x30;
  const minor = version.charCodeAt(7) - 0x30;
  if (major !== 1) return new ProtocolError("unsupportedVersion", `HTTP/${major}.${minor} is not supported (this server speaks HTTP/1.1)`);

  const fields: FieldLine[] = [];
  for (const line of lines.slice(1)) {
    const field = parseFieldLine(bytes, line.start, line.end);
    if (field instanceof ProtocolError) return field;
    fields.push(field);
  }
  return {
    method: latin1Decode(bytes, start, methodEnd),
    target: latin1Decode(bytes, targetStart, targetEnd),
    versionMinor: minor === 0 ? 0 : 1,
    fields,
  };
}


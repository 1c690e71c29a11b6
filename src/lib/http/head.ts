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

/** Runs of octets up to this long are copied by a loop rather than through a subarray. */
const SHORT_RUN = 64;

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
    const end = chunk.length;
    while (at < end && this.state === "reading") {
      if (this.pendingCarriageReturn) {
        this.pendingCarriageReturn = false;
        if (chunk[at++] !== LF) {
          this.fail(new ProtocolError("bareCarriageReturn", "a CR in the head is not followed by LF"));
          break;
        }
        this.endLine();
        continue;
      }
      // The rest of a line, up to its CR or LF, is copied in one piece: the limits bound how far
      // the scan may go, so nothing beyond them is ever buffered.
      const allowed = this.lineRoom();
      const scanEnd = Math.min(end, at + allowed + 1);
      let runEnd = at;
      while (runEnd < scanEnd) {
        const octet = chunk[runEnd] ?? 0;
        if (octet === CR || octet === LF) break;
        runEnd++;
      }
      if (runEnd > at) {
        this.appendRun(chunk, at, runEnd);
        this.lineLength += runEnd - at;
        at = runEnd;
        if (this.lineLength > this.lineLimit()) {
          this.failLineTooLong();
          break;
        }
        continue;
      }
      const octet = chunk[at++] ?? 0;
      if (octet === CR) {
        this.pendingCarriageReturn = true;
        continue;
      }
      this.fail(new ProtocolError("bareLineFeed", "a line in the head ends with LF alone; HTTP/1.1 lines end with CRLF"));
      break;
    }
    return at - start;
  }

  /** Empties the reader for the next head (the connection reuses one reader, and its buffer). */
  reset(): void {
    this.length = 0;
    this.lineLength = 0;
    this.lines = 0;
    this.fieldBytes = 0;
    this.skippedLines = 0;
    this.pendingCarriageReturn = false;
    this.state = "reading";
    this.failure = undefined;
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
    if (this.length === this.buffer.length) this.grow(this.length + 1);
    this.buffer[this.length++] = octet;
  }

  private appendRun(chunk: Uint8Array, start: number, end: number): void {
    const needed = this.length + (end - start);
    if (needed > this.buffer.length) this.grow(needed);
    if (end - start > SHORT_RUN) {
      this.buffer.set(chunk.subarray(start, end), this.length);
    } else {
      // A header line is short: a loop costs less than the view that set() needs.
      const buffer = this.buffer;
      for (let from = start, to = this.length; from < end; from++, to++) buffer[to] = chunk[from] ?? 0;
    }
    this.length = needed;
  }

  private grow(needed: number): void {
    let size = this.buffer.length * 2;
    while (size < needed) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }

  /** The longest the current line may be: the request line's own limit, else what the field section has left. */
  private lineLimit(): number {
    if (this.hasFirstLine && this.lines === 0) return this.limits.maxFirstLineBytes;
    return this.limits.maxFieldBytes - this.fieldBytes - 2;
  }

  /** How many more octets the current line may take before it breaks its limit. */
  private lineRoom(): number {
    return Math.max(0, this.lineLimit() - this.lineLength);
  }

  private failLineTooLong(): void {
    if (this.hasFirstLine && this.lines === 0) {
      this.fail(new ProtocolError("requestLineTooLong", `the request line is longer than ${this.limits.maxFirstLineBytes} bytes`));
      return;
    }
    const what = this.hasFirstLine ? "header section" : "trailer section";
    this.fail(new ProtocolError(this.hasFirstLine ? "headersTooLarge" : "trailersTooLarge", `the ${what} is larger than ${this.limits.maxFieldBytes} bytes`));
  }

  private fail(error: ProtocolError): void {
    this.state = "failed";
    this.failure = error;
  }
}

/**
 * Line boundaries of the head being parsed, as start/end pairs: reused from head to head (parsing
 * is synchronous and never re-entered), so that splitting allocates nothing.
 */
const lineBounds: number[] = [];

/** Splits CRLF-terminated lines into lineBounds and returns how many; a CR or LF anywhere else is an error. */
function splitLines(bytes: Uint8Array): number | ProtocolError {
  lineBounds.length = 0;
  let start = 0;
  for (let at = 0; at < bytes.length; at++) {
    const octet = bytes[at];
    if (octet === CR) {
      if (bytes[at + 1] !== LF) return new ProtocolError("bareCarriageReturn", "a CR in the head is not followed by LF");
      lineBounds.push(start, at);
      at++;
      start = at + 1;
    } else if (octet === LF) {
      return new ProtocolError("bareLineFeed", "a line in the head ends with LF alone");
    }
  }
  if (start !== bytes.length) return new ProtocolError("badRequestLine", "the head does not end with CRLF");
  return lineBounds.length / 2;
}

/**
 * Field names clients send on nearly every request, as they send them (Title-Case from browsers
 * and most tools, lower case from HTTP/2 gateways): a name that matches one octet for octet is
 * this very string, so it is neither decoded nor allocated again.
 */
const COMMON_FIELD_NAMES: readonly string[] = [
  "Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Connection",
  "Content-Length", "Content-Type", "Cookie", "DNT", "Date", "Expect", "Forwarded", "Host", "If-Match",
  "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Keep-Alive", "Origin", "Pragma",
  "Priority", "Range", "Referer", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "TE",
  "Transfer-Encoding", "Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Forwarded-For",
  "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP", "X-Requested-With",
];

/** The common names (and their lower-case forms) by length, with their octets. */
const INTERNED_BY_LENGTH: readonly (readonly { readonly text: string; readonly octets: Uint8Array }[])[] = (() => {
  const table: { text: string; octets: Uint8Array }[][] = [];
  for (const name of COMMON_FIELD_NAMES) {
    for (const text of new Set([name, name.toLowerCase()])) {
      const octets = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) octets[i] = text.charCodeAt(i);
      (table[text.length] ??= []).push({ text, octets });
    }
  }
  return table;
})();

const METHODS: readonly string[] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"];

function sameOctets(bytes: Uint8Array, start: number, octets: Uint8Array): boolean {
  for (let i = 0; i < octets.length; i++) if (bytes[start + i] !== octets[i]) return false;
  return true;
}

function internedName(bytes: Uint8Array, start: number, end: number): string {
  const candidates = INTERNED_BY_LENGTH[end - start];
  if (candidates !== undefined) {
    for (const candidate of candidates) if (sameOctets(bytes, start, candidate.octets)) return candidate.text;
  }
  return latin1Decode(bytes, start, end);
}

function internedMethod(bytes: Uint8Array, start: number, end: number): string {
  for (const method of METHODS) {
    if (method.length !== end - start) continue;
    let same = true;
    for (let i = 0; i < method.length && same; i++) same = bytes[start + i] === method.charCodeAt(i);
    if (same) return method;
  }
  return latin1Decode(bytes, start, end);
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
  return [internedName(bytes, start, colon), latin1Decode(bytes, valueStart, valueEnd)];
}

/** Lines longer than this are not remembered by a HeadCache (a huge Cookie would cost more to keep than to parse). */
const MAX_CACHED_LINE_BYTES = 512;
/** Field lines remembered per head. */
const MAX_CACHED_LINES = 32;

/**
 * The previous head's lines on one connection, with what they parsed to. A client sends the same
 * field lines (Host, User-Agent, Accept, ...) and often the same request line on every request of
 * a keep-alive connection: a line identical octet for octet to the previous head's line at the
 * same place parses to the same result, so it is compared instead of validated and decoded again.
 */
export class HeadCache {
  private readonly lines: (Uint8Array | undefined)[] = [];
  private readonly fields: (FieldLine | undefined)[] = [];
  private requestLine: Uint8Array | undefined;
  private requestLineParts: { readonly method: string; readonly target: string; readonly versionMinor: 0 | 1 } | undefined;

  /** @internal */
  field(bytes: Uint8Array, start: number, end: number, index: number): FieldLine | ProtocolError {
    const cached = this.lines[index];
    if (cached !== undefined && cached.length === end - start && sameOctets(bytes, start, cached)) {
      const field = this.fields[index];
      if (field !== undefined) return field;
    }
    const field = parseFieldLine(bytes, start, end);
    if (field instanceof ProtocolError || index >= MAX_CACHED_LINES) return field;
    this.lines[index] = end - start <= MAX_CACHED_LINE_BYTES ? bytes.slice(start, end) : undefined;
    this.fields[index] = field;
    return field;
  }

  /** @internal */
  request(bytes: Uint8Array, start: number, end: number): RequestLineParts | ProtocolError {
    const cached = this.requestLine;
    if (cached !== undefined && this.requestLineParts !== undefined && cached.length === end - start && sameOctets(bytes, start, cached)) {
      return this.requestLineParts;
    }
    const parts = parseRequestLine(bytes, start, end);
    if (parts instanceof ProtocolError) return parts;
    this.requestLine = end - start <= MAX_CACHED_LINE_BYTES ? bytes.slice(start, end) : undefined;
    this.requestLineParts = parts;
    return parts;
  }
}

/** Parses a field section (header or trailer fields), each line CRLF-terminated. */
export function parseFieldLines(bytes: Uint8Array): FieldLine[] | ProtocolError {
  const count = splitLines(bytes);
  if (count instanceof ProtocolError) return count;
  const fields: FieldLine[] = [];
  for (let line = 0; line < count; line++) {
    const field = parseFieldLine(bytes, lineBounds[2 * line] ?? 0, lineBounds[2 * line + 1] ?? 0);
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

type RequestLineParts = Pick<RequestHead, "method" | "target" | "versionMinor">;

/** request-line = method SP request-target SP HTTP-version (RFC 9112 §3). */
function parseRequestLine(bytes: Uint8Array, start: number, end: number): RequestLineParts | ProtocolError {
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
  const version = targetEnd + 1;
  if (
    end - version !== 8 ||
    bytes[version] !== 0x48 || // H
    bytes[version + 1] !== 0x54 || // T
    bytes[version + 2] !== 0x54 || // T
    bytes[version + 3] !== 0x50 || // P
    bytes[version + 4] !== 0x2f || // /
    !isDigit(bytes[version + 5] ?? 0) ||
    bytes[version + 6] !== 0x2e || // .
    !isDigit(bytes[version + 7] ?? 0)
  ) {
    return new ProtocolError("badRequestLine", "the HTTP version is not HTTP/<digit>.<digit>");
  }
  const major = (bytes[version + 5] ?? 0) - 0x30;
  const minor = (bytes[version + 7] ?? 0) - 0x30;
  if (major !== 1) return new ProtocolError("unsupportedVersion", `HTTP/${major}.${minor} is not supported (this server speaks HTTP/1.1)`);
  return { method: internedMethod(bytes, start, methodEnd), target: latin1Decode(bytes, targetStart, targetEnd), versionMinor: minor === 0 ? 0 : 1 };
}

/**
 * Parses a complete request head (RFC 9112 §2.1): `method SP request-target SP HTTP-version
 * CRLF *( field-line CRLF )`, as HeadReader returns it. Never throws. With a cache (one per
 * connection), lines identical to the previous head's are not parsed again.
 */
export function parseRequestHead(bytes: Uint8Array, cache?: HeadCache): RequestHead | ProtocolError {
  const count = splitLines(bytes);
  if (count instanceof ProtocolError) return count;
  if (count === 0) return new ProtocolError("badRequestLine", "the head has no request line");
  const lineStart = lineBounds[0] ?? 0;
  const lineEnd = lineBounds[1] ?? 0;
  const requestLine = cache === undefined ? parseRequestLine(bytes, lineStart, lineEnd) : cache.request(bytes, lineStart, lineEnd);
  if (requestLine instanceof ProtocolError) return requestLine;
  const fields: FieldLine[] = [];
  for (let line = 1; line < count; line++) {
    const start = lineBounds[2 * line] ?? 0;
    const end = lineBounds[2 * line + 1] ?? 0;
    const field = cache === undefined ? parseFieldLine(bytes, start, end) : cache.field(bytes, start, end, line - 1);
    if (field instanceof ProtocolError) return field;
    fields.push(field);
  }
  return { method: requestLine.method, target: requestLine.target, versionMinor: requestLine.versionMinor, fields };
}

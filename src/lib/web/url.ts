/**
 * URL and URLSearchParams (WHATWG URL Standard) for the image realm.
 *
 * The parser follows the standard's algorithms for what a server meets: special schemes (http,
 * https, ws, wss, ftp, file) and others, userinfo, domains, IPv4 in all its historical forms,
 * IPv6, ports, dot segments (also percent-encoded ones), backslashes in special URLs, relative
 * references against a base, and the standard's percent-encode sets (as Node 20 applies them).
 *
 * Left out, on purpose: internationalized domain names. Mapping Unicode labels to punycode needs
 * the UTS #46 tables (the bulk of whatwg-url's ~480 KB), so a host with a non-ASCII character is
 * refused with a TypeError; ASCII hosts, including punycode "xn--" labels, are fine. Also left
 * out: Windows drive letter quirks of file URLs, and the setters' rarer state overrides (a
 * setter given something it cannot use leaves the URL unchanged, as the standard does).
 */
import { encodeUtf8 } from "../runtime/utf8.ts";
import { decodeUtf8Text } from "./encoding.ts";

const SPECIAL_PORTS: ReadonlyMap<string, number | null> = new Map([
  ["ftp", 21],
  ["file", null],
  ["http", 80],
  ["https", 443],
  ["ws", 80],
  ["wss", 443],
]);

interface UrlRecord {
  scheme: string;
  username: string;
  password: string;
  host: string | null;
  port: number | null;
  /** Segments of a hierarchical path, or the whole opaque path (e.g. "a@b" in "mailto:a@b"). */
  path: string[] | string;
  query: string | null;
  fragment: string | null;
}

class UrlParseError extends TypeError {
  constructor(input: string, why: string) {
    super(`invalid URL ${JSON.stringify(input)}: ${why}`);
  }
}

// ── Percent-encode sets (URL Standard §1.3) ───────────────────────────────────────────────────

type EncodeSet = (codePoint: number) => boolean;
const inString =
  (chars: string): EncodeSet =>
  (codePoint) =>
    codePoint < 0x80 && chars.includes(String.fromCharCode(codePoint));
const c0ControlSet: EncodeSet = (c) => c <= 0x1f || c > 0x7e;
const fragmentSet: EncodeSet = (c) => c0ControlSet(c) || inString(' "<>`')(c);
const querySet: EncodeSet = (c) => c0ControlSet(c) || inString(' "#<>')(c);
const specialQuerySet: EncodeSet = (c) => querySet(c) || c === 0x27;
const pathSet: EncodeSet = (c) => querySet(c) || inString("?`{}")(c);
const userinfoSet: EncodeSet = (c) => pathSet(c) || inString("/:;=@[\\]^|")(c);
const componentSet: EncodeSet = (c) => userinfoSet(c) || inString("$%&+,")(c);
const formSet: EncodeSet = (c) => componentSet(c) || inString("!'()~")(c);

function hexByte(byte: number): string {
  return `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
}

function percentEncode(text: string, set: EncodeSet, spaceAsPlus = false): string {
  let out = "";
  for (const char of text) {
    const codePoint = char.codePointAt(0) ?? 0;
    if (spaceAsPlus && codePoint === 0x20) out += "+";
    else if (set(codePoint)) for (const byte of encodeUtf8(char)) out += hexByte(byte);
    else out += char;
  }
  return out;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}

/** Percent-decodes into bytes (URL Standard §1.3 "percent-decode"): malformed escapes stay as they are. */
export function percentDecode(text: string): Uint8Array {
  const bytes = encodeUtf8(text);
  const out = new Uint8Array(bytes.length);
  let length = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] ?? 0;
    if (byte === 0x25 && i + 2 < bytes.length) {
      const high = hexValue(bytes[i + 1] ?? 0);
      const low = hexValue(bytes[i + 2] ?? 0);
      if (high >= 0 && low >= 0) {
        out[length++] = high * 16 + low;
        i += 2;
        continue;
      }
    }
    out[length++] = byte;
  }
  return out.subarray(0, length);
}

// ── Hosts (URL Standard §3) ────────────────────────────────────────────────────────────────────

const FORBIDDEN_HOST = "\u0000\t\n\r #/:<>?@[\\]^|";

function hasForbiddenHostCodePoint(host: string): boolean {
  for (const char of host) if (FORBIDDEN_HOST.includes(char)) return true;
  return false;
}

function hasForbiddenDomainCodePoint(domain: string): boolean {
  for (const char of domain) {
    const code = char.codePointAt(0) ?? 0;
    if (FORBIDDEN_HOST.includes(char) || code <= 0x1f || code === 0x25 || code === 0x7f) return true;
  }
  return false;
}

/** An IPv4 number part: decimal, 0x-hex or 0-octal; undefined when invalid. */
function parseIpv4Number(part: string): number | undefined {
  if (part === "") return undefined;
  let radix = 10;
  let digits = part;
  if (digits.length >= 2 && (digits.startsWith("0x") || digits.startsWith("0X"))) {
    radix = 16;
    digits = digits.slice(2);
  } else if (digits.length >= 2 && digits.startsWith("0")) {
    radix = 8;
    digits = digits.slice(1);
  }
  if (digits === "") return 0;
  const pattern = radix === 16 ? /^[0-9A-Fa-f]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!pattern.test(digits)) return undefined;
  return parseInt(digits, radix);
}

function endsInANumber(host: string): boolean {
  const parts = host.split(".");
  if (parts[parts.length - 1] === "") {
    if (parts.length === 1) return false;
    parts.pop();
  }
  const last = parts[parts.length - 1] ?? "";
  if (/^[0-9]+$/.test(last)) return true;
  return parseIpv4Number(last) !== undefined && /^0[xX]/.test(last);
}

function parseIpv4(input: string, host: string): string {
  const parts = host.split(".");
  if (parts[parts.length - 1] === "" && parts.length > 1) parts.pop();
  if (parts.length > 4) throw new UrlParseError(input, "an IPv4 address has more than four parts");
  const numbers: number[] = [];
  for (const part of parts) {
    const value = parseIpv4Number(part);
    if (value === undefined) throw new UrlParseError(input, "an IPv4 address has an invalid part");
    numbers.push(value);
  }
  const last = numbers.pop() ?? 0;
  if (numbers.some((value) => value > 255)) throw new UrlParseError(input, "an IPv4 address part is larger than 255");
  if (last >= 256 ** (4 - numbers.length)) throw new UrlParseError(input, "an IPv4 address is out of range");
  let address = last;
  numbers.forEach((value, index) => {
    address += value * 256 ** (3 - index);
  });
  return [address >>> 24, (address >>> 16) & 0xff, (address >>> 8) & 0xff, address & 0xff].join(".");
}

function parseIpv6(input: string, text: string): number[] {
  const address = [0, 0, 0, 0, 0, 0, 0, 0];
  let pieceIndex = 0;
  let compress: number | null = null;
  let pointer = 0;
  const at = (index: number): string | undefined => text[index];
  const fail = (why: string): never => {
    throw new UrlParseError(input, `invalid IPv6 address: ${why}`);
  };
  if (at(pointer) === ":") {
    if (at(pointer + 1) !== ":") fail("a lone leading colon");
    pointer += 2;
    pieceIndex++;
    compress = pieceIndex;
  }
  while (at(pointer) !== undefined) {
    if (pieceIndex === 8) fail("too many pieces");
    if (at(pointer) === ":") {
      if (compress !== null) fail("more than one '::'");
      pointer++;
      pieceIndex++;
      compress = pieceIndex;
      continue;
    }
    let value = 0;
    let length = 0;
    while (length < 4 && hexValue(text.charCodeAt(pointer)) >= 0) {
      value = value * 16 + hexValue(text.charCodeAt(pointer));
      pointer++;
      length++;
    }
    if (at(pointer) === ".") {
      if (length === 0) fail("an IPv4 part without digits");
      pointer -= length;
      if (pieceIndex > 6) fail("no room for an IPv4 part");
      let numbersSeen = 0;
      while (at(pointer) !== undefined) {
        let ipv4Piece: number | null = null;
        if (numbersSeen > 0) {
          if (at(pointer) === "." && numbersSeen < 4) pointer++;
          else fail("a malformed IPv4 part");
        }
        if (!/[0-9]/.test(at(pointer) ?? "")) fail("a malformed IPv4 part");
        while (/[0-9]/.test(at(pointer) ?? "")) {
          const digit = text.charCodeAt(pointer) - 0x30;
          if (ipv4Piece === null) ipv4Piece = digit;
          else if (ipv4Piece === 0) fail("a leading zero in an IPv4 part");
          else ipv4Piece = ipv4Piece * 10 + digit;
          if (ipv4Piece > 255) fail("an IPv4 part larger than 255");
          pointer++;
        }
        address[pieceIndex] = (address[pieceIndex] ?? 0) * 0x100 + (ipv4Piece ?? 0);
        numbersSeen++;
        if (numbersSeen === 2 || numbersSeen === 4) pieceIndex++;
      }
      if (numbersSeen !== 4) fail("an IPv4 part with fewer than four numbers");
      break;
    } else if (at(pointer) === ":") {
      pointer++;
      if (at(pointer) === undefined) fail("a trailing colon");
    } else if (at(pointer) !== undefined) {
      fail("an unexpected character");
    }
    address[pieceIndex] = value;
    pieceIndex++;
  }
  if (compress !== null) {
    let swaps = pieceIndex - compress;
    pieceIndex = 7;
    while (pieceIndex !== 0 && swaps > 0) {
      const other = compress + swaps - 1;
      const held = address[pieceIndex] ?? 0;
      address[pieceIndex] = address[other] ?? 0;
      address[other] = held;
      pieceIndex--;
      swaps--;
    }
  } else if (pieceIndex !== 8) {
    fail("too few pieces");
  }
  return address;
}

function serializeIpv6(address: readonly number[]): string {
  // Compress the first longest run of two or more zero pieces (RFC 5952 §4.2).
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; ) {
    if (address[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && address[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  let out = "";
  for (let index = 0; index < 8; index++) {
    if (index === bestStart) {
      out += index === 0 ? "::" : ":";
      index += bestLength - 1;
      continue;
    }
    out += (address[index] ?? 0).toString(16);
    if (index < 7) out += ":";
  }
  return out;
}

function parseHost(input: string, text: string, special: boolean): string {
  if (text.startsWith("[")) {
    if (!text.endsWith("]")) throw new UrlParseError(input, "an IPv6 address without its closing ']'");
    return `[${serializeIpv6(parseIpv6(input, text.slice(1, -1)))}]`;
  }
  if (!special) {
    if (hasForbiddenHostCodePoint(text.replaceAll("%", ""))) throw new UrlParseError(input, "the host contains a forbidden character");
    return percentEncode(text, c0ControlSet);
  }
  const domain = decodeUtf8Text(percentDecode(text));
  if (/[^\u0000-\u007f]/.test(domain)) {
    throw new UrlParseError(input, "internationalized domain names are not supported here (use the punycode 'xn--' form)");
  }
  const ascii = domain.toLowerCase();
  if (ascii === "") throw new UrlParseError(input, "the host is empty");
  if (hasForbiddenDomainCodePoint(ascii)) throw new UrlParseError(input, "the host contains a forbidden character");
  if (endsInANumber(ascii)) return parseIpv4(input, ascii);
  return ascii;
}

// ── The parser (URL Standard §4.4, for the states a URL string passes through) ─────────────────

function isSpecial(scheme: string): boolean {
  return SPECIAL_PORTS.has(scheme);
}

function isSeparator(char: string | undefined, special: boolean): boolean {
  return char === "/" || (special && char === "\\");
}

function isSingleDot(segment: string): boolean {
  return segment === "." || segment.toLowerCase() === "%2e";
}

function isDoubleDot(segment: string): boolean {
  const lower = segment.toLowerCase();
  return lower === ".." || lower === ".%2e" || lower === "%2e." || lower === "%2e%2e";
}

/** Appends the segments of `input` (a path without query or fragment) to `path`. */
function parsePath(path: string[], input: string, special: boolean): void {
  let rest = input;
  if (isSeparator(rest[0], special)) rest = rest.slice(1);
  else if (rest === "" && !special) return;
  const segments = special ? rest.split(/[/\\]/) : rest.split("/");
  segments.forEach((raw, index) => {
    const isLast = index === segments.length - 1;
    const segment = percentEncode(raw, pathSet);
    if (isDoubleDot(segment)) {
      path.pop();
      if (isLast) path.push("");
    } else if (isSingleDot(segment)) {
      if (isLast) path.push("");
    } else {
      path.push(segment);
    }
  });
}

/** Splits off "?query" and "#fragment". */
function splitQueryAndFragment(input: string): { path: string; query: string | null; fragment: string | null } {
  let rest = input;
  let fragment: string | null = null;
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    fragment = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
  }
  let query: string | null = null;
  const question = rest.indexOf("?");
  if (question >= 0) {
    query = rest.slice(question + 1);
    rest = rest.slice(0, question);
  }
  return { path: rest, query, fragment };
}

function encodeQuery(query: string | null, special: boolean): string | null {
  return query === null ? null : percentEncode(query, special ? specialQuerySet : querySet);
}

function encodeFragment(fragment: string | null): string | null {
  return fragment === null ? null : percentEncode(fragment, fragmentSet);
}

function parsePort(input: string, text: string, scheme: string): number | null {
  if (text === "") return null;
  if (!/^[0-9]+$/.test(text)) throw new UrlParseError(input, "the port is not a number");
  const port = Number(text);
  if (port > 65535) throw new UrlParseError(input, "the port is larger than 65535");
  return SPECIAL_PORTS.get(scheme) === port ? null : port;
}

/** Parses "userinfo@host:port" into the record. */
function parseAuthority(input: string, authority: string, record: UrlRecord): void {
  const special = isSpecial(record.scheme);
  let hostPort = authority;
  const at = authority.lastIndexOf("@");
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    hostPort = authority.slice(at + 1);
    const colon = userinfo.indexOf(":");
    record.username = percentEncode(colon >= 0 ? userinfo.slice(0, colon) : userinfo, userinfoSet);
    record.password = colon >= 0 ? percentEncode(userinfo.slice(colon + 1), userinfoSet) : "";
  }
  let hostText = hostPort;
  let portText: string | undefined;
  let insideBrackets = false;
  for (let i = 0; i < hostPort.length; i++) {
    const char = hostPort[i];
    if (char === "[") insideBrackets = true;
    else if (char === "]") insideBrackets = false;
    else if (char === ":" && !insideBrackets) {
      hostText = hostPort.slice(0, i);
      portText = hostPort.slice(i + 1);
      break;
    }
  }
  if (hostText === "") {
    if (special && record.scheme !== "file") throw new UrlParseError(input, "the host is empty");
    if (at >= 0 || portText !== undefined) throw new UrlParseError(input, "credentials or a port without a host");
    record.host = "";
    return;
  }
  record.host = record.scheme === "file" && hostText.toLowerCase() === "localhost" ? "" : parseHost(input, hostText, special);
  record.port = portText === undefined ? null : parsePort(input, portText, record.scheme);
}

/** Parses what follows "//": authority, then path, query and fragment. */
function parseAfterAuthority(input: string, rest: string, record: UrlRecord): UrlRecord {
  const special = isSpecial(record.scheme);
  let end = 0;
  while (end < rest.length && !isSeparator(rest[end], special) && rest[end] !== "?" && rest[end] !== "#") end++;
  parseAuthority(input, rest.slice(0, end), record);
  const parts = splitQueryAndFragment(rest.slice(end));
  record.path = [];
  parsePath(record.path, parts.path, special);
  if (special && record.path.length === 0) record.path.push("");
  record.query = encodeQuery(parts.query, special);
  record.fragment = encodeFragment(parts.fragment);
  return record;
}

function cleanInput(input: string): string {
  // Strip leading and trailing C0 controls and spaces, and remove every tab and newline.
  return input.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, "").replace(/[\t\n\r]/g, "");
}

function emptyRecord(scheme: string): UrlRecord {
  return { scheme, username: "", password: "", host: null, port: null, path: [], query: null, fragment: null };
}

function parseRelative(input: string, rest: string, base: UrlRecord): UrlRecord {
  const special = isSpecial(base.scheme);
  if (typeof base.path === "string") {
    if (!rest.startsWith("#")) throw new UrlParseError(input, "a relative reference against a base URL with an opaque path");
    return { ...base, fragment: encodeFragment(rest.slice(1)) };
  }
  const record: UrlRecord = { ...emptyRecord(base.scheme), username: base.username, password: base.password, host: base.host, port: base.port };
  if (isSeparator(rest[0], special) && isSeparator(rest[1], special)) {
    // Scheme-relative: special URLs skip any further slashes before the authority ("special authority ignore slashes").
    const authority = special ? rest.replace(/^[/\\]*/, "") : rest.slice(2);
    return parseAfterAuthority(input, authority, { ...emptyRecord(base.scheme) });
  }
  const parts = splitQueryAndFragment(rest);
  if (parts.path === "") {
    // "", "?query" or "#fragment": the base's path, and its query unless a new one is given.
    record.path = [...base.path];
    record.query = parts.query === null ? base.query : encodeQuery(parts.query, special);
    record.fragment = encodeFragment(parts.fragment);
    return record;
  }
  if (isSeparator(parts.path[0], special)) {
    record.path = [];
  } else {
    record.path = base.path.slice(0, -1);
    // The merged path is parsed as if it continued the base's directory.
    parts.path = `/${parts.path}`;
  }
  parsePath(record.path, parts.path, special);
  record.query = encodeQuery(parts.query, special);
  record.fragment = encodeFragment(parts.fragment);
  return record;
}

// ── The common case: an http(s) URL already in its serialized form ────────────────────────────

/** Octets that each part keeps as they are (URL Standard §1.3's encode sets, minus what ends the part). */
const KEPT_IN_PATH = keptOctets('"<>`{}\\?#');
const KEPT_IN_QUERY = keptOctets(`"<>'#`);
const KEPT_IN_FRAGMENT = keptOctets('"<>`');

/** A table of the printable ASCII octets (0x21..0x7E) minus `excluded`. */
function keptOctets(excluded: string): Uint8Array {
  const table = new Uint8Array(128);
  for (let code = 0x21; code <= 0x7e; code++) table[code] = excluded.includes(String.fromCharCode(code)) ? 0 : 1;
  return table;
}

function isLowerAlphanumeric(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39);
}

/** A decimal number without leading zeros, from `start` to `end` of `text`, no larger than `max`; -1 otherwise. */
function canonicalDecimal(text: string, start: number, end: number, max: number): number {
  if (end <= start || end - start > 5 || (text.charCodeAt(start) === 0x30 && end - start > 1)) return -1;
  let value = 0;
  for (let at = start; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code < 0x30 || code > 0x39) return -1;
    value = value * 10 + (code - 0x30);
  }
  return value <= max ? value : -1;
}

/**
 * The record of an http or https URL that is already what the parser would serialize it as, or
 * undefined when `input` is anything else (then the full parser runs). That is every URL a server
 * builds from an ordinary request: "http://" or "https://", a lower-case domain or a dotted-quad
 * IPv4 address in its canonical form, a port other than the scheme's default (without leading
 * zeros), then a path of printable ASCII that no encode set touches and without dot segments, and
 * a query and fragment likewise. For those the parser's steps (cleaning, host parsing, percent-
 * encoding, dot-segment removal) all leave the input as it is, so the components are its slices.
 */
function parseSerializedHttpUrl(input: string): UrlRecord | undefined {
  let scheme: string;
  let at: number;
  if (input.startsWith("http://")) {
    scheme = "http";
    at = 7;
  } else if (input.startsWith("https://")) {
    scheme = "https";
    at = 8;
  } else {
    return undefined;
  }
  // Host: labels of [a-z0-9-], none empty.
  const hostStart = at;
  let labelStart = at;
  for (; at < input.length; at++) {
    const code = input.charCodeAt(at);
    if (code === 0x2e) {
      if (at === labelStart) return undefined;
      labelStart = at + 1;
    } else if (!isLowerAlphanumeric(code) && code !== 0x2d) {
      break;
    }
  }
  const hostEnd = at;
  if (hostEnd === labelStart) return undefined;
  // A last label that starts with a digit makes the host an IPv4 address (URL Standard §3.3
  // "ends in a number"), kept as is only in its canonical dotted-quad form.
  const lastLabel = input.charCodeAt(labelStart);
  if (lastLabel >= 0x30 && lastLabel <= 0x39) {
    let parts = 0;
    let partStart = hostStart;
    for (let k = hostStart; k <= hostEnd; k++) {
      if (k < hostEnd && input.charCodeAt(k) !== 0x2e) continue;
      if (canonicalDecimal(input, partStart, k, 255) < 0) return undefined;
      parts++;
      partStart = k + 1;
    }
    if (parts !== 4) return undefined;
  }
  let port: number | null = null;
  if (input.charCodeAt(at) === 0x3a) {
    const portStart = at + 1;
    at = portStart;
    while (at < input.length && input.charCodeAt(at) >= 0x30 && input.charCodeAt(at) <= 0x39) at++;
    port = canonicalDecimal(input, portStart, at, 65535);
    if (port < 0 || port === SPECIAL_PORTS.get(scheme)) return undefined;
  }
  if (input.charCodeAt(at) !== 0x2f) return undefined;
  // Path: segments up to "?" or "#", none of them a dot segment ("." or "..", "%2e" counting as a dot).
  const path: string[] = [];
  let segmentStart = at + 1;
  let dotsOnly = true;
  for (at = segmentStart; ; at++) {
    const code = at < input.length ? input.charCodeAt(at) : -1;
    if (code === -1 || code === 0x2f || code === 0x3f || code === 0x23) {
      if (dotsOnly && at > segmentStart) return undefined;
      path.push(input.slice(segmentStart, at));
      if (code !== 0x2f) break;
      segmentStart = at + 1;
      dotsOnly = true;
      continue;
    }
    if (code >= 0x80 || KEPT_IN_PATH[code] !== 1) return undefined;
    if (code === 0x25 && input.charCodeAt(at + 1) === 0x32 && (input.charCodeAt(at + 2) | 0x20) === 0x65) return undefined;
    if (code !== 0x2e) dotsOnly = false;
  }
  let query: string | null = null;
  if (input.charCodeAt(at) === 0x3f) {
    const queryStart = at + 1;
    for (at = queryStart; at < input.length && input.charCodeAt(at) !== 0x23; at++) {
      const code = input.charCodeAt(at);
      if (code >= 0x80 || KEPT_IN_QUERY[code] !== 1) return undefined;
    }
    query = input.slice(queryStart, at);
  }
  let fragment: string | null = null;
  if (input.charCodeAt(at) === 0x23) {
    const fragmentStart = at + 1;
    for (at = fragmentStart; at < input.length; at++) {
      const code = input.charCodeAt(at);
      if (code >= 0x80 || KEPT_IN_FRAGMENT[code] !== 1) return undefined;
    }
    fragment = input.slice(fragmentStart);
  }
  return { scheme, username: "", password: "", host: input.slice(hostStart, hostEnd), port, path, query, fragment };
}

/**
 * The last already-serialized URL parsed, and its record (never handed out: callers get copies,
 * which URL setters may change). A server's handlers often parse the same request.url more than
 * once (a router, then the handler it picks).
 */
let lastSerializedInput = "";
let lastSerializedRecord: UrlRecord | undefined;

function copyRecord(record: UrlRecord): UrlRecord {
  return { ...record, path: typeof record.path === "string" ? record.path : [...record.path] };
}

function parseSerializedHttpUrlAgain(input: string): UrlRecord | undefined {
  if (lastSerializedRecord !== undefined && input === lastSerializedInput) return copyRecord(lastSerializedRecord);
  const record = parseSerializedHttpUrl(input);
  if (record !== undefined) {
    lastSerializedInput = input;
    lastSerializedRecord = copyRecord(record);
  }
  return record;
}

/**
 * The URL's serialization (what `new URL(input).href` gives), without building a URL object when
 * the input is already serialized (see parseSerializedHttpUrl). Throws TypeError when invalid.
 */
export function serializedUrl(input: string): string {
  if (lastSerializedRecord !== undefined && input === lastSerializedInput) return input;
  return parseSerializedHttpUrlAgain(input) !== undefined ? input : serializeUrl(parseUrl(input, undefined));
}

function parseUrl(rawInput: string, base: UrlRecord | undefined): UrlRecord {
  const serialized = parseSerializedHttpUrlAgain(rawInput);
  if (serialized !== undefined) return serialized;
  const input = cleanInput(rawInput);
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+\-.]*):/.exec(input);
  if (schemeMatch === null) {
    if (base === undefined) throw new UrlParseError(rawInput, "a relative reference without a base URL");
    return parseRelative(rawInput, input, base);
  }
  const scheme = (schemeMatch[1] ?? "").toLowerCase();
  const rest = input.slice(schemeMatch[0].length);
  const record = emptyRecord(scheme);
  if (isSpecial(scheme)) {
    if (scheme !== "file" && base !== undefined && base.scheme === scheme && !rest.startsWith("//")) {
      // "http:foo" or "http:/foo" against an http base is a relative reference (special relative or authority state).
      return parseRelative(rawInput, rest, base);
    }
    if (scheme === "file") {
      if (isSeparator(rest[0], true) && isSeparator(rest[1], true)) return parseAfterAuthority(rawInput, rest.slice(2), record);
      record.host = "";
      const parts = splitQueryAndFragment(rest);
      const path: string[] = [];
      parsePath(path, parts.path, true);
      if (path.length === 0) path.push("");
      record.path = path;
      record.query = encodeQuery(parts.query, true);
      record.fragment = encodeFragment(parts.fragment);
      return record;
    }
    // Special authority (ignore) slashes: any number of "/" and "\" before the authority.
    return parseAfterAuthority(rawInput, rest.replace(/^[/\\]*/, ""), record);
  }
  if (rest.startsWith("//")) return parseAfterAuthority(rawInput, rest.slice(2), record);
  const parts = splitQueryAndFragment(rest);
  if (parts.path.startsWith("/")) {
    const path: string[] = [];
    parsePath(path, parts.path, false);
    record.path = path;
  } else {
    record.path = percentEncode(parts.path, c0ControlSet);
  }
  record.query = encodeQuery(parts.query, false);
  record.fragment = encodeFragment(parts.fragment);
  return record;
}

function serializePath(record: UrlRecord): string {
  if (typeof record.path === "string") return record.path;
  // A path starting with an empty segment needs "/." when there is no host, so it is not read as an authority.
  let text = record.host === null && record.path.length > 1 && record.path[0] === "" ? "/." : "";
  for (const segment of record.path) text += `/${segment}`;
  return text;
}

function serializeUrl(record: UrlRecord, excludeFragment = false): string {
  let out = `${record.scheme}:`;
  if (record.host !== null) {
    out += "//";
    if (record.username !== "" || record.password !== "") {
      out += record.username;
      if (record.password !== "") out += `:${record.password}`;
      out += "@";
    }
    out += record.host;
    if (record.port !== null) out += `:${record.port}`;
  }
  out += serializePath(record);
  if (record.query !== null) out += `?${record.query}`;
  if (!excludeFragment && record.fragment !== null) out += `#${record.fragment}`;
  return out;
}

// ── URLSearchParams (URL Standard §6.2) ─────────────────────────────────────────────────────────

/** application/x-www-form-urlencoded parsing (URL Standard §5.1). */
export function parseFormUrlencoded(input: string): [string, string][] {
  const list: [string, string][] = [];
  for (const sequence of input.split("&")) {
    if (sequence === "") continue;
    const equals = sequence.indexOf("=");
    const name = equals >= 0 ? sequence.slice(0, equals) : sequence;
    const value = equals >= 0 ? sequence.slice(equals + 1) : "";
    list.push([decodeUtf8Text(percentDecode(name.replaceAll("+", " "))), decodeUtf8Text(percentDecode(value.replaceAll("+", " ")))]);
  }
  return list;
}

export function serializeFormUrlencoded(list: readonly (readonly [string, string])[]): string {
  return list.map(([name, value]) => `${percentEncode(name, formSet, true)}=${percentEncode(value, formSet, true)}`).join("&");
}

export type URLSearchParamsInit = string | URLSearchParams | Iterable<readonly string[]> | Readonly<Record<string, string>>;

function isIterableObject(value: unknown): value is Iterable<unknown> {
  return typeof value === "object" && value !== null && typeof Reflect.get(value, Symbol.iterator) === "function";
}

let replaceParams: (params: URLSearchParams, query: string | null) => void;
let attachParams: (params: URLSearchParams, onUpdate: (query: string | null) => void) => void;

export class URLSearchParams implements Iterable<[string, string]> {
  #list: [string, string][] = [];
  #onUpdate: ((query: string | null) => void) | undefined;

  static {
    replaceParams = (params, query) => {
      params.#list = query === null ? [] : parseFormUrlencoded(query);
    };
    attachParams = (params, onUpdate) => {
      params.#onUpdate = onUpdate;
    };
  }

  constructor(init: URLSearchParamsInit = "") {
    if (typeof init === "string") {
      this.#list = parseFormUrlencoded(init.startsWith("?") ? init.slice(1) : init);
    } else if (init instanceof URLSearchParams) {
      this.#list = init.#list.map(([name, value]) => [name, value]);
    } else if (isIterableObject(init)) {
      for (const pair of init) {
        if (!isIterableObject(pair)) throw new TypeError("each search parameter must be a [name, value] pair");
        const items = [...pair];
        if (items.length !== 2) throw new TypeError("each search parameter must be a [name, value] pair");
        this.#list.push([String(items[0]), String(items[1])]);
      }
    } else if (typeof init === "object" && init !== null) {
      for (const name of Object.keys(init)) this.#list.push([name, String(Reflect.get(init, name))]);
    }
  }

  get size(): number {
    return this.#list.length;
  }

  append(name: string, value: string): void {
    this.#list.push([String(name), String(value)]);
    this.#update();
  }

  delete(name: string, value?: string): void {
    this.#list = this.#list.filter(([itemName, itemValue]) => itemName !== name || (value !== undefined && itemValue !== String(value)));
    this.#update();
  }

  get(name: string): string | null {
    return this.#list.find(([itemName]) => itemName === name)?.[1] ?? null;
  }

  getAll(name: string): string[] {
    return this.#list.filter(([itemName]) => itemName === name).map(([, value]) => value);
  }

  has(name: string, value?: string): boolean {
    return this.#list.some(([itemName, itemValue]) => itemName === name && (value === undefined || itemValue === String(value)));
  }

  set(name: string, value: string): void {
    const index = this.#list.findIndex(([itemName]) => itemName === name);
    if (index < 0) {
      this.#list.push([String(name), String(value)]);
    } else {
      this.#list[index] = [String(name), String(value)];
      this.#list = this.#list.filter(([itemName], at) => at <= index || itemName !== name);
    }
    this.#update();
  }

  /** Stable sort by name in UTF-16 code units, as the standard says. */
  sort(): void {
    this.#list = this.#list
      .map((entry, index) => ({ entry, index }))
      .sort((a, b) => (a.entry[0] < b.entry[0] ? -1 : a.entry[0] > b.entry[0] ? 1 : a.index - b.index))
      .map(({ entry }) => entry);
    this.#update();
  }

  forEach(callback: (value: string, name: string, params: URLSearchParams) => void, thisArg?: unknown): void {
    for (const [name, value] of this.#list) callback.call(thisArg, value, name, this);
  }

  *entries(): IterableIterator<[string, string]> {
    for (const [name, value] of this.#list) yield [name, value];
  }
  *keys(): IterableIterator<string> {
    for (const [name] of this.#list) yield name;
  }
  *values(): IterableIterator<string> {
    for (const [, value] of this.#list) yield value;
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  toString(): string {
    return serializeFormUrlencoded(this.#list);
  }

  get [Symbol.toStringTag](): string {
    return "URLSearchParams";
  }

  #update(): void {
    const serialized = this.toString();
    this.#onUpdate?.(serialized === "" ? null : serialized);
  }
}

// ── URL (URL Standard §6.1) ────────────────────────────────────────────────────────────────────

export class URL {
  #record: UrlRecord;
  /** Made on first use: most URLs a server parses are asked for their path, not their parameters. */
  #searchParams: URLSearchParams | undefined;

  constructor(url: string | URL, base?: string | URL) {
    const baseRecord = base === undefined ? undefined : base instanceof URL ? base.#record : parseUrl(String(base), undefined);
    this.#record = parseUrl(String(url), baseRecord);
  }

  static canParse(url: string | URL, base?: string | URL): boolean {
    return URL.parse(url, base) !== null;
  }

  static parse(url: string | URL, base?: string | URL): URL | null {
    try {
      return new URL(url, base);
    } catch {
      return null;
    }
  }

  get href(): string {
    return serializeUrl(this.#record);
  }
  set href(value: string) {
    this.#record = parseUrl(String(value), undefined);
    if (this.#searchParams !== undefined) replaceParams(this.#searchParams, this.#record.query);
  }

  get origin(): string {
    const { scheme, host, port } = this.#record;
    if (!isSpecial(scheme) || scheme === "file" || host === null) return "null";
    return `${scheme}://${host}${port === null ? "" : `:${port}`}`;
  }

  get protocol(): string {
    return `${this.#record.scheme}:`;
  }
  set protocol(value: string) {
    const match = /^([A-Za-z][A-Za-z0-9+\-.]*)/.exec(String(value));
    if (match === null) return;
    const scheme = (match[1] ?? "").toLowerCase();
    // The standard refuses switches between special and non-special schemes, and to/from file with credentials or a port.
    if (isSpecial(scheme) !== isSpecial(this.#record.scheme)) return;
    if (scheme === "file" && (this.#record.username !== "" || this.#record.password !== "" || this.#record.port !== null)) return;
    if (this.#record.scheme === "file" && this.#record.host === "") return;
    this.#record.scheme = scheme;
    if (this.#record.port === SPECIAL_PORTS.get(scheme)) this.#record.port = null;
  }

  get username(): string {
    return this.#record.username;
  }
  set username(value: string) {
    if (this.#cannotHaveCredentials()) return;
    this.#record.username = percentEncode(String(value), userinfoSet);
  }

  get password(): string {
    return this.#record.password;
  }
  set password(value: string) {
    if (this.#cannotHaveCredentials()) return;
    this.#record.password = percentEncode(String(value), userinfoSet);
  }

  get host(): string {
    const { host, port } = this.#record;
    if (host === null) return "";
    return port === null ? host : `${host}:${port}`;
  }
  set host(value: string) {
    this.#setHost(String(value), true);
  }

  get hostname(): string {
    return this.#record.host ?? "";
  }
  set hostname(value: string) {
    this.#setHost(String(value), false);
  }

  get port(): string {
    return this.#record.port === null ? "" : String(this.#record.port);
  }
  set port(value: string) {
    if (this.#cannotHaveCredentials()) return;
    const text = String(value);
    if (text === "") {
      this.#record.port = null;
      return;
    }
    const digits = /^[0-9]*/.exec(text)?.[0] ?? "";
    if (digits === "") return;
    try {
      this.#record.port = parsePort(text, digits, this.#record.scheme);
    } catch {
      // The standard leaves the URL unchanged.
    }
  }

  get pathname(): string {
    return serializePath(this.#record);
  }
  set pathname(value: string) {
    if (typeof this.#record.path === "string") return;
    const special = isSpecial(this.#record.scheme);
    const path: string[] = [];
    let text = String(value).replace(/[\t\n\r]/g, "");
    if (!isSeparator(text[0], special)) text = `/${text}`;
    // "?" and "#" are path characters here: they are percent-encoded, not split off.
    parsePath(path, text.replaceAll("?", "%3F").replaceAll("#", "%23"), special);
    if (special && path.length === 0) path.push("");
    this.#record.path = path;
  }

  get search(): string {
    const query = this.#record.query;
    return query === null || query === "" ? "" : `?${query}`;
  }
  set search(value: string) {
    const text = String(value).replace(/[\t\n\r]/g, "");
    if (text === "") {
      this.#record.query = null;
      if (this.#searchParams !== undefined) replaceParams(this.#searchParams, null);
      return;
    }
    const query = text.startsWith("?") ? text.slice(1) : text;
    this.#record.query = encodeQuery(query, isSpecial(this.#record.scheme));
    if (this.#searchParams !== undefined) replaceParams(this.#searchParams, this.#record.query);
  }

  get searchParams(): URLSearchParams {
    if (this.#searchParams === undefined) {
      const params = new URLSearchParams(this.#record.query ?? "");
      attachParams(params, (query) => {
        this.#record.query = query;
      });
      this.#searchParams = params;
    }
    return this.#searchParams;
  }

  get hash(): string {
    const fragment = this.#record.fragment;
    return fragment === null || fragment === "" ? "" : `#${fragment}`;
  }
  set hash(value: string) {
    const text = String(value).replace(/[\t\n\r]/g, "");
    if (text === "") {
      this.#record.fragment = null;
      return;
    }
    this.#record.fragment = encodeFragment(text.startsWith("#") ? text.slice(1) : text);
  }

  toString(): string {
    return this.href;
  }

  toJSON(): string {
    return this.href;
  }

  get [Symbol.toStringTag](): string {
    return "URL";
  }

  #cannotHaveCredentials(): boolean {
    return this.#record.host === null || this.#record.host === "" || this.#record.scheme === "file";
  }

  #setHost(value: string, withPort: boolean): void {
    if (typeof this.#record.path === "string") return;
    const special = isSpecial(this.#record.scheme);
    let end = 0;
    while (end < value.length && !isSeparator(value[end], special) && value[end] !== "?" && value[end] !== "#") end++;
    const text = value.slice(0, end);
    if ((text === "" && special) || text.includes("@")) return;
    const probe: UrlRecord = { ...this.#record };
    try {
      if (withPort) {
        parseAuthority(value, text, probe);
        if (probe.port === null && !/:[0-9]/.test(text)) probe.port = this.#record.port;
      } else {
        let bracketDepth = 0;
        for (const char of text) {
          if (char === "[") bracketDepth++;
          else if (char === "]") bracketDepth--;
          else if (char === ":" && bracketDepth === 0) return;
        }
        probe.host = parseHost(value, text, special);
      }
    } catch {
      return;
    }
    this.#record = probe;
  }
}

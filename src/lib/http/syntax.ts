/**
 * HTTP's lexical rules (RFC 9110 §5.5, §5.6) for the protocol engine, which works on bytes. The
 * token and field-value rules that the web classes (Headers, Request, Response) enforce too live
 * in the layer below, src/lib/web/field-syntax.ts, and are re-exported here so that the engine
 * has its lexical rules in one module. Header names and values are "byte strings" as in the Fetch
 * standard: each character is one octet (U+0000 to U+00FF), so obs-text octets survive a round
 * trip unchanged.
 */
import { HTAB } from "../web/field-syntax.ts";

export { HTAB, isFieldValue, isFieldValueOctet, isReasonPhrase, isToken, isTokenOctet } from "../web/field-syntax.ts";

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const COLON = 0x3a;

/** OWS is SP or HTAB (RFC 9110 §5.6.3). */
export function isWhitespaceOctet(octet: number): boolean {
  return octet === SP || octet === HTAB;
}

/** Removes leading and trailing OWS. */
export function trimWhitespace(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isWhitespaceOctet(text.charCodeAt(start))) start++;
  while (end > start && isWhitespaceOctet(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

/** Octets decoded per fromCharCode call: well under engines' argument-count limits. */
const DECODE_CHUNK = 8192;

/** Octets → byte string (each octet one character, "isomorphic decode" in Fetch's words). */
export function latin1Decode(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let text = "";
  for (let at = start; at < end; at += DECODE_CHUNK) {
    const stop = Math.min(end, at + DECODE_CHUNK);
    // Spreading a typed array into fromCharCode goes through the iterator protocol, several times
    // slower (in V8) than applying it to a plain array of the same numbers.
    const codes = new Array<number>(stop - at);
    for (let i = at; i < stop; i++) codes[i - at] = bytes[i] ?? 0;
    text += String.fromCharCode.apply(null, codes);
  }
  return text;
}

/** Byte string → octets. Characters above U+00FF are a programming error here (callers validate first). */
export function latin1Encode(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new TypeError(`character U+${code.toString(16).padStart(4, "0")} cannot be sent in an HTTP head`);
    out[i] = code;
  }
  return out;
}

/**
 * Splits a list-based field value (RFC 9110 §5.6.1) into trimmed elements, honouring commas
 * inside quoted strings; empty elements are dropped, as the RFC asks recipients to do.
 */
export function splitList(value: string): string[] {
  const elements: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const char = value[i];
    if (quoted) {
      if (char === "\\") i++;
      else if (char === '"') quoted = false;
    } else if (char === '"') {
      quoted = true;
    } else if (char === ",") {
      const element = trimWhitespace(value.slice(start, i));
      if (element !== "") elements.push(element);
      start = i + 1;
    }
  }
  const last = trimWhitespace(value.slice(start));
  if (last !== "") elements.push(last);
  return elements;
}

/**
 * A weighted list element such as `gzip;q=0.8` (RFC 9110 §12.4.2): the lower-cased name and its
 * quality, 1 when absent. Returns undefined for a malformed element or weight, which callers ignore.
 */
export function parseWeighted(element: string): { readonly name: string; readonly quality: number } | undefined {
  const parts = element.split(";");
  const name = trimWhitespace(parts[0] ?? "").toLowerCase();
  if (name === "") return undefined;
  let quality = 1;
  for (const parameter of parts.slice(1)) {
    const [key = "", rawValue = ""] = parameter.split("=", 2);
    if (trimWhitespace(key).toLowerCase() !== "q") continue;
    const value = trimWhitespace(rawValue);
    // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )  (RFC 9110 §12.4.2)
    if (!/^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(value)) return undefined;
    quality = Number(value);
  }
  return { name, quality };
}

/** IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT", from milliseconds since the epoch. */
export function httpDate(epochMs: number): string {
  // Date.prototype.toUTCString produces exactly IMF-fixdate (ECMA-262 §21.4.4.43).
  return new Date(epochMs).toUTCString();
}

/** Reason phrases of RFC 9110 §15 (and 9112's none): a response may carry an empty one, but a phrase helps humans. */
export const REASON_PHRASES: Readonly<Record<number, string>> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

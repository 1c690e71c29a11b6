/**
 * What a parsed request head means for the connection: where its body ends (RFC 9112 §6),
 * whether the connection persists (RFC 9112 §9.3), whether the client waits for 100 Continue
 * (RFC 9110 §10.1.1), and which authority it addressed (RFC 9112 §3.2). Pure functions.
 */
import { ProtocolError } from "./errors.ts";
import type { FieldLine, RequestHead } from "./head.ts";
import { isToken, splitList } from "./syntax.ts";

export type BodyFraming = { readonly kind: "none" } | { readonly kind: "length"; readonly length: number } | { readonly kind: "chunked" };

/** The four request-target forms of RFC 9112 §3.2. */
export type TargetForm = "origin" | "absolute" | "authority" | "asterisk";

export interface RequestInfo extends RequestHead {
  readonly targetForm: TargetForm;
  /**
   * The authority the request addressed: the absolute-form target's (RFC 9112 §3.2.2 says to
   * ignore Host then), else the Host field's value; undefined when neither says (an HTTP/1.0
   * request without Host, or an empty Host).
   */
  readonly authority: string | undefined;
  /** For absolute-form targets: the scheme as sent, lower-cased ("http" or "https"). */
  readonly scheme: string | undefined;
  readonly body: BodyFraming;
  /** Whether the client allows the connection to persist after this exchange. */
  readonly keepAlive: boolean;
  readonly expectContinue: boolean;
  /** The request line, for logs. */
  readonly requestLine: string;
}

/** Field values for `name` (lower-case), in order. */
export function fieldValues(fields: readonly FieldLine[], name: string): string[] {
  const values: string[] = [];
  for (const [fieldName, value] of fields) if (fieldName.toLowerCase() === name) values.push(value);
  return values;
}

const HEX_OR_IPV6 = /^[0-9A-Fa-f:.]+$/;
/** reg-name characters of RFC 3986 §3.2.2: unreserved, pct-encoded, sub-delims. */
const REG_NAME = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/;

/**
 * The last authority found valid: a client names the same host on every request of a
 * connection (and most clients of a server name the same one), so the check is usually a
 * comparison with it.
 */
let lastValidAuthority = "";

/** Host = uri-host [ ":" port ] (RFC 9110 §7.2), with an IP-literal in brackets. */
export function isValidAuthority(value: string): boolean {
  if (value === lastValidAuthority && value !== "") return true;
  const valid = checkAuthority(value);
  if (valid) lastValidAuthority = value;
  return valid;
}

function checkAuthority(value: string): boolean {
  let host = value;
  let port: string | undefined;
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close < 0) return false;
    host = value.slice(1, close);
    const rest = value.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return false;
      port = rest.slice(1);
    }
    if (!HEX_OR_IPV6.test(host) || !host.includes(":")) return false;
  } else {
    const colon = value.lastIndexOf(":");
    if (colon >= 0) {
      host = value.slice(0, colon);
      port = value.slice(colon + 1);
    }
    if (!REG_NAME.test(host)) return false;
  }
  return port === undefined || /^\d{0,5}$/.test(port);
}

function parseTarget(head: RequestHead): { form: TargetForm; authority?: string; scheme?: string } | ProtocolError {
  const { method, target } = head;
  if (method === "CONNECT") {
    return new ProtocolError("connectNotSupported", "CONNECT is not supported: this server does not open tunnels");
  }
  if (target.startsWith("/")) return { form: "origin" };
  if (target === "*") {
    // RFC 9112 §3.2.4: asterisk-form is only for a server-wide OPTIONS.
    if (method !== "OPTIONS") return new ProtocolError("badTarget", "the asterisk-form target '*' is only valid with OPTIONS");
    return { form: "asterisk" };
  }
  const absolute = /^(https?):\/\/([^/?#]*)/i.exec(target);
  if (absolute === null) return new ProtocolError("badTarget", "the request-target is neither an absolute path nor an http(s) URI");
  const scheme = (absolute[1] ?? "").toLowerCase();
  let authority = absolute[2] ?? "";
  const at = authority.lastIndexOf("@");
  // RFC 9110 §4.2.4: userinfo in http(s) URIs is deprecated; recipients may treat it as an error.
  if (at >= 0) return new ProtocolError("badTarget", "the request-target carries userinfo");
  authority = authority.toLowerCase();
  if (authority === "" || !isValidAuthority(authority)) return new ProtocolError("badTarget", "the request-target has an invalid authority");
  return { form: "absolute", authority, scheme };
}

/** The values of the fields the engine itself interprets, gathered in one pass over the head. */
interface EngineFields {
  readonly hosts: readonly string[];
  readonly transferEncodings: readonly string[];
  readonly contentLengths: readonly string[];
  readonly connections: readonly string[];
  readonly expectations: readonly string[];
}

const NONE: readonly string[] = [];

/** Sorts the fields interpretRequest needs out of a head (names compared case-insensitively), looking at each field once. */
function engineFields(fields: readonly FieldLine[]): EngineFields {
  // Arrays are made only for the fields present: most requests have Host and nothing else here.
  let hosts = NONE;
  let transferEncodings = NONE;
  let contentLengths = NONE;
  let connections = NONE;
  let expectations = NONE;
  for (const [name, value] of fields) {
    // The length rules out most fields before any case folding.
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === "host") hosts = [...hosts, value];
        break;
      case 6:
        if (name.toLowerCase() === "expect") expectations = [...expectations, value];
        break;
      case 10:
        if (name.toLowerCase() === "connection") connections = [...connections, value];
        break;
      case 14:
        if (name.toLowerCase() === "content-length") contentLengths = [...contentLengths, value];
        break;
      case 17:
        if (name.toLowerCase() === "transfer-encoding") transferEncodings = [...transferEncodings, value];
        break;
    }
  }
  return { hosts, transferEncodings, contentLengths, connections, expectations };
}

function parseFraming(head: RequestHead, fields: EngineFields, maxBodyBytes: number): BodyFraming | ProtocolError {
  const { transferEncodings, contentLengths } = fields;
  if (transferEncodings.length > 0) {
    if (head.versionMinor === 0) {
      // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
      return new ProtocolError("badTransferEncoding", "Transfer-Encoding in an HTTP/1.0 request");
    }
    if (contentLengths.length > 0) {
      // RFC 9112 §6.3 ¶3: "ought to be handled as an error": the classic CL.TE / TE.CL smuggling pair.
      return new ProtocolError("lengthAndTransferEncoding", "a request with both Content-Length and Transfer-Encoding");
    }
    const codings = transferEncodings.flatMap((value) => splitList(value));
    if (codings.length === 0) return new ProtocolError("badTransferEncoding", "an empty Transfer-Encoding");
    let unknown: string | undefined;
    for (const [index, coding] of codings.entries()) {
      const name = coding.toLowerCase();
      const isLast = index === codings.length - 1;
      if (name === "chunked") {
        // RFC 9112 §7: chunked applies once, and last.
        if (!isLast) return new ProtocolError("badTransferEncoding", "chunked is not the final transfer coding");
        continue;
      }
      const codingName = name.split(";")[0]?.trim() ?? "";
      if (!isToken(codingName)) return new ProtocolError("badTransferEncoding", "a transfer coding is not a token");
      if (isLast) {
        // RFC 9112 §6.3 ¶4: chunked not final → the length cannot be determined → 400 and close.
        return new ProtocolError("badTransferEncoding", "the final transfer coding is not chunked");
      }
      unknown ??= codingName;
    }
    // RFC 9112 §6.1: a coding we do not understand (gzip, deflate, ... under chunked) → 501.
    if (unknown !== undefined) return new ProtocolError("unknownTransferCoding", `transfer coding '${unknown}' is not supported`);
    return { kind: "chunked" };
  }
  if (contentLengths.length > 0) {
    // RFC 9110 §8.6 allows accepting "42, 42"; we refuse any repetition, the safer reading.
    if (contentLengths.length > 1) return new ProtocolError("badContentLength", "more than one Content-Length");
    const value = contentLengths[0] ?? "";
    if (!/^\d+$/.test(value)) return new ProtocolError("badContentLength", "Content-Length is not a decimal number");
    const length = value.length > 15 ? Infinity : Number(value);
    if (length > maxBodyBytes) return new ProtocolError("bodyTooLarge", `the body (${value} bytes) is larger than ${maxBodyBytes} bytes`);
    return length === 0 ? { kind: "none" } : { kind: "length", length };
  }
  // RFC 9112 §6.3 ¶6: a request without either has no body.
  return { kind: "none" };
}

/** Interprets a parsed head. Returns a ProtocolError for every fault RFC 9112 makes fatal. */
export function interpretRequest(head: RequestHead, maxBodyBytes: number): RequestInfo | ProtocolError {
  const fields = engineFields(head.fields);
  const hosts = fields.hosts;
  // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, with several, or with an invalid one.
  if (hosts.length > 1) return new ProtocolError("badHost", "more than one Host field");
  if (head.versionMinor === 1 && hosts.length === 0) return new ProtocolError("badHost", "an HTTP/1.1 request without Host");
  const host = hosts[0]?.toLowerCase();
  if (host !== undefined && host !== "" && !isValidAuthority(host)) return new ProtocolError("badHost", "the Host field is not a valid authority");

  const target = parseTarget(head);
  if (target instanceof ProtocolError) return target;
  const body = parseFraming(head, fields, maxBodyBytes);
  if (body instanceof ProtocolError) return body;

  // RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 persists only with "keep-alive".
  let keepAlive = head.versionMinor === 1;
  if (fields.connections.length > 0) {
    const connectionOptions = fields.connections.flatMap((value) => splitList(value).map((option) => option.toLowerCase()));
    keepAlive = connectionOptions.includes("close") ? false : keepAlive || connectionOptions.includes("keep-alive");
  }

  let expectContinue = false;
  // RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in an HTTP/1.0 request.
  if (head.versionMinor === 1) {
    for (const expectation of fields.expectations.flatMap((value) => splitList(value))) {
      if (expectation.toLowerCase() !== "100-continue") return new ProtocolError("expectationFailed", `expectation '${expectation}' cannot be met`);
      expectContinue = true;
    }
  }
  return {
    method: head.method,
    target: head.target,
    versionMinor: head.versionMinor,
    fields: head.fields,
    targetForm: target.form,
    authority: target.authority ?? (host === "" ? undefined : host),
    scheme: target.scheme,
    body,
    keepAlive,
    expectContinue: expectContinue && body.kind !== "none",
    requestLine: `${head.method} ${head.target} HTTP/1.${head.versionMinor === 0 ? 0 : 1}`,
  };
}

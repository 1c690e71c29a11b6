/**
 * What can be wrong with a request, and the status each fault earns. The engine answers every
 * protocol error with its status and then closes the connection: after a framing error nothing
 * that follows on the connection can be trusted (RFC 9112 §6.3 ¶5, §9.3).
 */

export const PROTOCOL_ERRORS = {
  /** The request line is longer than maxRequestLineBytes (RFC 9112 §3: 414 for an over-long target). */
  requestLineTooLong: 414,
  /** Malformed request line: method, separators, target or version syntax (RFC 9112 §3). */
  badRequestLine: 400,
  /** A major version other than 1 (RFC 9110 §15.6.6). */
  unsupportedVersion: 505,
  /** A request-target form the method does not allow, or a scheme other than http(s) (RFC 9112 §3.2). */
  badTarget: 400,
  /** CONNECT: this server does not tunnel (RFC 9110 §9.3.6). */
  connectNotSupported: 501,
  /** The header section exceeds maxHeaderBytes (RFC 6585 §5). */
  headersTooLarge: 431,
  /** More than maxHeaderCount field lines (RFC 6585 §5). */
  tooManyHeaders: 431,
  /** A field line without a colon, with an empty or invalid name, or whitespace before the colon (RFC 9112 §5.1). */
  badHeaderField: 400,
  /** A control character (NUL, DEL, ...) in a field value (RFC 9110 §5.5). */
  badHeaderValue: 400,
  /** A line folded with obs-fold (RFC 9112 §5.2). */
  obsFold: 400,
  /** A line ended by LF alone (RFC 9112 §2.2: we do not accept the tolerance it allows). */
  bareLineFeed: 400,
  /** A CR not followed by LF (RFC 9112 §2.2). */
  bareCarriageReturn: 400,
  /** HTTP/1.1 without Host, more than one Host, or an invalid Host (RFC 9112 §3.2). */
  badHost: 400,
  /** Both Content-Length and Transfer-Encoding (RFC 9112 §6.3 ¶3: a smuggling signature). */
  lengthAndTransferEncoding: 400,
  /** Content-Length repeated, listed, or not a decimal number (RFC 9112 §6.3 ¶5, RFC 9110 §8.6). */
  badContentLength: 400,
  /** Transfer-Encoding whose final coding is not chunked, chunked twice, or in HTTP/1.0 (RFC 9112 §6.1, §6.3 ¶4). */
  badTransferEncoding: 400,
  /** A transfer coding other than chunked (RFC 9112 §6.1: 501 for codings not understood). */
  unknownTransferCoding: 501,
  /** An Expect other than 100-continue (RFC 9110 §10.1.1). */
  expectationFailed: 417,
  /** The body exceeds maxBodyBytes (RFC 9110 §15.5.14). */
  bodyTooLarge: 413,
  /** A malformed chunk-size line or chunk extension (RFC 9112 §7.1). */
  badChunkSize: 400,
  /** Chunk data not followed by CRLF (RFC 9112 §7.1). */
  badChunkTerminator: 400,
  /** A malformed trailer section (RFC 9112 §7.1.2). */
  badTrailer: 400,
  /** The trailer section exceeds the header limits. */
  trailersTooLarge: 431,
  /** No complete request head within headersTimeoutMs (slow loris). */
  headersTimeout: 408,
  /** No request on an idle connection within idleTimeoutMs (RFC 9110 §15.5.9). */
  idleTimeout: 408,
  /** No request-body bytes within bodyTimeoutMs while the application waits for them. */
  bodyTimeout: 408,
} as const;

export type ProtocolErrorKind = keyof typeof PROTOCOL_ERRORS;

/** A fault in what the peer sent. A value, not thrown by the parsers (like WireError in atoll/wire). */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  readonly status: number;
  constructor(
    readonly kind: ProtocolErrorKind,
    message: string,
  ) {
    super(message);
    this.status = PROTOCOL_ERRORS[kind];
  }
}

export function isTimeoutKind(kind: ProtocolErrorKind): boolean {
  return kind === "headersTimeout" || kind === "idleTimeout" || kind === "bodyTimeout";
}

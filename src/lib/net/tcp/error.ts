/**
 * Why a connection failed, as the application sees it: a NetError (so that code handling network
 * errors in general handles these), with the TCP reason alongside.
 */
import { NetError, type NetErrorCode } from "../ipv4.ts";

export type TcpErrorReason =
  /** RST in answer to our SYN (ECONNREFUSED). */
  | "refused"
  /** RST on an established connection (ECONNRESET). */
  | "reset"
  /** Retransmission limit, user timeout (RFC 5482), SYN retries or keep-alive probes ran out (ETIMEDOUT). */
  | "timeout"
  /** An ICMP hard error in SYN-SENT (RFC 1122 §4.2.3.9, RFC 5461): protocol or port unreachable, prohibited. */
  | "unreachable"
  /** The application aborted the connection (RST sent). */
  | "aborted"
  /** The application closed its side, or the layer was closed: no more reads or writes. */
  | "closed";

/**
 * The NetError code for each reason: ECONNREFUSED and ECONNRESET have their own codes; a timeout
 * or an ICMP hard error carries the ICMP error when one came; the application's own abort or
 * close is "closed".
 */
function codeFor(reason: TcpErrorReason, detail: NetErrorCode | undefined): NetErrorCode {
  switch (reason) {
    case "refused":
      return "connection-refused";
    case "reset":
      return "connection-reset";
    case "timeout":
    case "unreachable":
      return detail ?? "timeout";
    case "aborted":
    case "closed":
      return "closed";
  }
}

export class TcpError extends NetError {
  constructor(
    readonly reason: TcpErrorReason,
    message: string,
    /** For "timeout" and "unreachable": the soft or hard error from ICMP, when one came (RFC 1122 §4.2.3.9). */
    detail?: NetErrorCode,
  ) {
    super(codeFor(reason, detail), message);
  }
}

/**
 * The one failure type of the wire layer. Parsing bytes from the network fails routinely (noise,
 * attacks, protocols we do not speak), so a failure is a value that parsers return, not an
 * exception they throw: callers branch on `instanceof WireError` and drop the frame.
 *
 * WireError deliberately does not extend Error: capturing a stack trace for every dropped frame
 * would be wasted work on the receive path.
 */

export type WireErrorKind =
  /** The buffer ends before a field or a length the packet itself declares. */
  | "truncated"
  /** A checksum does not verify. */
  | "bad-checksum"
  /** A length field contradicts the buffer or another field (e.g. IPv4 total length below the header length). */
  | "bad-length"
  /** The version field names a version other than the one the codec speaks. */
  | "bad-version"
  /** A header length field is below the protocol's minimum. */
  | "bad-header-length"
  /** Well-formed but outside what Atoll implements (e.g. ARP for non-Ethernet hardware). */
  | "unsupported"
  /** Any other violation of the protocol's rules. */
  | "malformed";

export class WireError {
  constructor(
    readonly kind: WireErrorKind,
    /** Short, human-readable, for logs: e.g. "ipv4: total length 12 below header length 20". */
    readonly message: string,
  ) {}

  toString(): string {
    return `${this.kind}: ${this.message}`;
  }
}

export function isWireError(value: unknown): value is WireError {
  return value instanceof WireError;
}

/**
 * A received segment as the connection state machine sees it: header fields read once, options
 * parsed into a reused TcpOptions, and the data as a range of the received bytes. The layer
 * keeps one and refills it for each segment, so the receive path allocates nothing; the bytes
 * are valid only during the call.
 */
import { Ipv4Address } from "../../wire/address.ts";
import { readU16, readU32 } from "../../wire/bytes.ts";
import { TcpFlag, TcpOptions, TCP_HEADER_LENGTH } from "../../wire/tcp.ts";
import type { WireError } from "../../wire/error.ts";

export class Segment {
  bytes: Uint8Array = new Uint8Array(0);
  src: Ipv4Address = Ipv4Address.UNSPECIFIED;
  dst: Ipv4Address = Ipv4Address.UNSPECIFIED;
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  /** The window field as received (scaled by the connection). */
  window = 0;
  /** Data: bytes[dataStart, dataStart + dataLength). Trimming to the window changes these. */
  dataStart = 0;
  dataLength = 0;
  readonly options = new TcpOptions();

  /**
   * Reads a segment whose header and checksum the caller has validated (TcpPacket.check and
   * verifyTcpChecksum). Returns the options' error, if they are malformed.
   */
  load(bytes: Uint8Array, src: Ipv4Address, dst: Ipv4Address): WireError | undefined {
    this.bytes = bytes;
    this.src = src;
    this.dst = dst;
    this.srcPort = readU16(bytes, 0);
    this.dstPort = readU16(bytes, 2);
    this.seq = readU32(bytes, 4);
    this.ack = readU32(bytes, 8);
    const headerLength = (bytes[12] >>> 4) * 4;
    this.flags = bytes[13];
    this.window = readU16(bytes, 14);
    this.dataStart = headerLength;
    this.dataLength = bytes.length - headerLength;
    return this.options.parse(bytes, TCP_HEADER_LENGTH, headerLength);
  }

  has(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }

  /** SEG.LEN (RFC 9293 §3.4): data plus one for SYN and one for FIN. */
  get length(): number {
    return this.dataLength + (this.flags & TcpFlag.Syn ? 1 : 0) + (this.flags & TcpFlag.Fin ? 1 : 0);
  }

  /** "S.SA" style, for logs. */
  describeFlags(): string {
    return describeFlags(this.flags);
  }
}

const FLAG_LETTERS: readonly [number, string][] = [
  [TcpFlag.Syn, "S"],
  [TcpFlag.Fin, "F"],
  [TcpFlag.Rst, "R"],
  [TcpFlag.Psh, "P"],
  [TcpFlag.Ack, "."],
  [TcpFlag.Urg, "U"],
  [TcpFlag.Ece, "E"],
  [TcpFlag.Cwr, "W"],
];

/** tcpdump's notation: S, F, R, P, "." for ACK, U, E, W. */
export function describeFlags(flags: number): string {
  let text = "";
  for (const [flag, letter] of FLAG_LETTERS) if (flags & flag) text += letter;
  return text === "" ? "none" : text;
}

/**
 * TCP segments (RFC 9293 §3.1) over IPv4, with the options Atoll speaks: maximum segment size
 * (RFC 9293 §3.7.1), window scale and timestamps (RFC 7323), SACK-permitted and SACK blocks
 * (RFC 2018). The checksum is mandatory in TCP and covers the same IPv4 pseudo-header as UDP
 * (RFC 9293 §3.1, "Checksum"), so parse and emit take the two addresses.
 *
 * Three levels, as for the other codecs:
 * - `TcpPacket`, a zero-copy view over a segment's bytes;
 * - `TcpOptions`, a mutable, reusable option set that parses from and emits into a buffer without
 *   allocating (the per-segment path of the TCP stack holds one per direction);
 * - `TcpRepr`, a plain value for tests, tools and crafted segments.
 *
 * Option parsing follows RFC 9293 §3.1 (MUST-4 to MUST-7): End of Option List stops it, No-Op is
 * skipped, unknown kinds are skipped by their length. An option whose length byte is missing,
 * below 2 or runs past the header, and a known option with the wrong length, make the whole list
 * `malformed`: RFC 9293 MUST-7 asks that an illegal length be handled, and a segment whose options
 * cannot be trusted is best dropped (as a blind attacker's would be) rather than half-understood.
 */
import type { Ipv4Address } from "./address.ts";
import { readU16, readU32, requireRoom, writeU16, writeU32 } from "./bytes.ts";
import { checksumVerifies, finishChecksum, foldCarries, ipv4PseudoHeaderSum, sumBytes } from "./checksum.ts";
import { WireError } from "./error.ts";
import { IpProtocol } from "./ipv4.ts";

export const TCP_HEADER_LENGTH = 20;
/** The data offset field counts 32-bit words in 4 bits: at most 15 words. */
export const TCP_MAX_HEADER_LENGTH = 60;
export const TCP_MAX_OPTIONS_LENGTH = TCP_MAX_HEADER_LENGTH - TCP_HEADER_LENGTH;
/** RFC 2018 §3: at most 4 blocks fit in 40 bytes of options (3 alongside timestamps). */
export const TCP_MAX_SACK_BLOCKS = 4;
/** RFC 7323 §2.3: a shift count above 14 is taken as 14. */
export const TCP_MAX_WINDOW_SCALE = 14;

/** Control bits (RFC 9293 §3.1; ECE and CWR from RFC 3168 §23.2). */
export const TcpFlag = {
  Fin: 0x01,
  Syn: 0x02,
  Rst: 0x04,
  Psh: 0x08,
  Ack: 0x10,
  Urg: 0x20,
  Ece: 0x40,
  Cwr: 0x80,
} as const;

/** Option kinds (IANA "TCP Option Kind Numbers"). */
export const TcpOptionKind = {
  End: 0,
  Nop: 1,
  Mss: 2,
  WindowScale: 3,
  SackPermitted: 4,
  Sack: 5,
  Timestamps: 8,
} as const;

const SRC_PORT = 0;
const DST_PORT = 2;
const SEQ = 4;
const ACK = 8;
const DATA_OFFSET = 12;
const FLAGS = 13;
const WINDOW = 14;
const CHECKSUM = 16;
const URGENT = 18;

/** Fixed lengths of the options that have one. */
const MSS_LENGTH = 4;
const WINDOW_SCALE_LENGTH = 3;
const SACK_PERMITTED_LENGTH = 2;
const TIMESTAMPS_LENGTH = 10;

/** A view over a TCP segment. Call `check` before the accessors on bytes from the network. */
export class TcpPacket {
  constructor(readonly bytes: Uint8Array) {}

  /** Validates the data offset against the minimum header and the bytes at hand. */
  static check(bytes: Uint8Array): TcpPacket | WireError {
    if (bytes.length < TCP_HEADER_LENGTH) return new WireError("truncated", `tcp: ${bytes.length} bytes, header needs 20`);
    const headerLength = (bytes[DATA_OFFSET] >>> 4) * 4;
    if (headerLength < TCP_HEADER_LENGTH) return new WireError("bad-header-length", `tcp: data offset ${headerLength / 4} below 5`);
    if (headerLength > bytes.length) return new WireError("truncated", `tcp: header length ${headerLength}, only ${bytes.length} bytes`);
    return new TcpPacket(bytes);
  }

  get srcPort(): number {
    return readU16(this.bytes, SRC_PORT);
  }
  set srcPort(value: number) {
    writeU16(this.bytes, SRC_PORT, value);
  }

  get dstPort(): number {
    return readU16(this.bytes, DST_PORT);
  }
  set dstPort(value: number) {
    writeU16(this.bytes, DST_PORT, value);
  }

  get seq(): number {
    return readU32(this.bytes, SEQ);
  }
  set seq(value: number) {
    writeU32(this.bytes, SEQ, value);
  }

  get ack(): number {
    return readU32(this.bytes, ACK);
  }
  set ack(value: number) {
    writeU32(this.bytes, ACK, value);
  }

  /** Header length in bytes, options included (the data offset field times 4). */
  get headerLength(): number {
    return (this.bytes[DATA_OFFSET] >>> 4) * 4;
  }
  set headerLength(value: number) {
    // The low four bits are reserved (RFC 9293 §3.1) and sent as zero.
    this.bytes[DATA_OFFSET] = ((value >>> 2) & 0xf) << 4;
  }

  /** The eight control bits (TcpFlag). */
  get flags(): number {
    return this.bytes[FLAGS];
  }
  set flags(value: number) {
    this.bytes[FLAGS] = value;
  }

  get window(): number {
    return readU16(this.bytes, WINDOW);
  }
  set window(value: number) {
    writeU16(this.bytes, WINDOW, value);
  }

  get checksum(): number {
    return readU16(this.bytes, CHECKSUM);
  }
  set checksum(value: number) {
    writeU16(this.bytes, CHECKSUM, value);
  }

  get urgentPointer(): number {
    return readU16(this.bytes, URGENT);
  }
  set urgentPointer(value: number) {
    writeU16(this.bytes, URGENT, value);
  }

  get options(): Uint8Array {
    return this.bytes.subarray(TCP_HEADER_LENGTH, this.headerLength);
  }

  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLength);
  }

  /** True when the checksum over pseudo-header, header and data verifies (zero is not special in TCP). */
  verifyChecksum(src: Ipv4Address, dst: Ipv4Address): boolean {
    return verifyTcpChecksum(this.bytes, src, dst);
  }

  fillChecksum(src: Ipv4Address, dst: Ipv4Address): void {
    fillTcpChecksum(this.bytes, src, dst);
  }
}

/** Verifies the checksum of the segment in segment[0, length) (header and data). */
export function verifyTcpChecksum(segment: Uint8Array, src: Ipv4Address, dst: Ipv4Address, length = segment.length): boolean {
  return checksumVerifies(sumBytes(segment, 0, length, ipv4PseudoHeaderSum(src, dst, IpProtocol.Tcp, length)));
}

/**
 * Writes into the checksum field what a device finishing the checksum expects there (virtio-net's
 * NEEDS_CSUM, Linux's CHECKSUM_PARTIAL): the folded pseudo-header sum, not complemented. The
 * device then sums from the TCP header to the end and stores the complement.
 */
export function fillTcpPseudoHeaderSum(segment: Uint8Array, src: Ipv4Address, dst: Ipv4Address, length = segment.length): void {
  writeU16(segment, CHECKSUM, foldCarries(ipv4PseudoHeaderSum(src, dst, IpProtocol.Tcp, length)));
}

/** Computes and writes the checksum of the segment in segment[0, length). */
export function fillTcpChecksum(segment: Uint8Array, src: Ipv4Address, dst: Ipv4Address, length = segment.length): void {
  segment[CHECKSUM] = 0;
  segment[CHECKSUM + 1] = 0;
  writeU16(segment, CHECKSUM, finishChecksum(sumBytes(segment, 0, length, ipv4PseudoHeaderSum(src, dst, IpProtocol.Tcp, length))));
}

/**
 * The options of one segment, mutable and reusable: absent numeric options are -1. `parse`
 * and `emit` allocate nothing, so a TCP stack can keep one of these per direction.
 */
export class TcpOptions {
  /** Maximum segment size (RFC 9293 §3.7.1), or -1. */
  mss = -1;
  /** Window scale shift count as received (RFC 7323 §2.2; the receiver clamps it to 14), or -1. */
  windowScale = -1;
  sackPermitted = false;
  /** RFC 7323 §3: TSval and TSecr, when `timestamps` is set. */
  timestamps = false;
  tsValue = 0;
  tsEcho = 0;
  /** SACK blocks (RFC 2018 §3): `sackEdges[2i]` and `sackEdges[2i + 1]` are block i's left and right edges. */
  sackCount = 0;
  readonly sackEdges = new Uint32Array(2 * TCP_MAX_SACK_BLOCKS);

  clear(): void {
    this.mss = -1;
    this.windowScale = -1;
    this.sackPermitted = false;
    this.timestamps = false;
    this.tsValue = 0;
    this.tsEcho = 0;
    this.sackCount = 0;
  }

  setTimestamps(value: number, echo: number): void {
    this.timestamps = true;
    this.tsValue = value >>> 0;
    this.tsEcho = echo >>> 0;
  }

  /** Appends a SACK block; returns false when `TCP_MAX_SACK_BLOCKS` are there already. */
  addSackBlock(left: number, right: number): boolean {
    if (this.sackCount >= TCP_MAX_SACK_BLOCKS) return false;
    this.sackEdges[2 * this.sackCount] = left;
    this.sackEdges[2 * this.sackCount + 1] = right;
    this.sackCount++;
    return true;
  }

  /**
   * Replaces the set with the options in bytes[start, end) (a segment's option area). On a
   * malformed list, returns the error and leaves the set in an unspecified state.
   */
  parse(bytes: Uint8Array, start: number, end: number): WireError | undefined {
    this.clear();
    let at = start;
    while (at < end) {
      const kind = bytes[at];
      if (kind === TcpOptionKind.End) break;
      if (kind === TcpOptionKind.Nop) {
        at++;
        continue;
      }
      if (at + 1 >= end) return new WireError("malformed", `tcp: option ${kind} has no length byte`);
      const length = bytes[at + 1];
      if (length < 2 || at + length > end) return new WireError("malformed", `tcp: option ${kind} has length ${length}`);
      switch (kind) {
        case TcpOptionKind.Mss:
          if (length !== MSS_LENGTH) return badLength(kind, length);
          this.mss = readU16(bytes, at + 2);
          break;
        case TcpOptionKind.WindowScale:
          if (length !== WINDOW_SCALE_LENGTH) return badLength(kind, length);
          this.windowScale = bytes[at + 2];
          break;
        case TcpOptionKind.SackPermitted:
          if (length !== SACK_PERMITTED_LENGTH) return badLength(kind, length);
          this.sackPermitted = true;
          break;
        case TcpOptionKind.Timestamps:
          if (length !== TIMESTAMPS_LENGTH) return badLength(kind, length);
          this.setTimestamps(readU32(bytes, at + 2), readU32(bytes, at + 6));
          break;
        case TcpOptionKind.Sack: {
          const blocks = (length - 2) / 8;
          if (!Number.isInteger(blocks) || blocks < 1 || blocks > TCP_MAX_SACK_BLOCKS) return badLength(kind, length);
          this.sackCount = 0;
          for (let block = 0; block < blocks; block++) this.addSackBlock(readU32(bytes, at + 2 + 8 * block), readU32(bytes, at + 6 + 8 * block));
          break;
        }
        default:
          // RFC 9293 MUST-6: options we do not implement are ignored.
          break;
      }
      at += length;
    }
    return undefined;
  }

  /** Bytes `emit` writes: the options laid out as Linux does, padded with No-Ops to whole words. */
  get length(): number {
    let length = 0;
    if (this.mss >= 0) length += 4;
    if (this.timestamps) length += 12;
    else if (this.sackPermitted) length += 4;
    if (this.windowScale >= 0) length += 4;
    if (this.sackCount > 0) length += 4 + 8 * this.sackCount;
    return length;
  }

  /**
   * Writes the options at `into[offset]` and returns their length (a multiple of 4). Layout:
   * MSS; SACK-permitted and timestamps together (or each behind two No-Ops); No-Op and window
   * scale; two No-Ops and the SACK blocks. The caller keeps the total within 40 bytes.
   */
  emit(into: Uint8Array, offset: number): number {
    let at = offset;
    if (this.mss >= 0) {
      into[at] = TcpOptionKind.Mss;
      into[at + 1] = MSS_LENGTH;
      writeU16(into, at + 2, this.mss);
      at += 4;
    }
    if (this.timestamps) {
      if (this.sackPermitted) {
        into[at] = TcpOptionKind.SackPermitted;
        into[at + 1] = SACK_PERMITTED_LENGTH;
      } else {
        into[at] = TcpOptionKind.Nop;
        into[at + 1] = TcpOptionKind.Nop;
      }
      into[at + 2] = TcpOptionKind.Timestamps;
      into[at + 3] = TIMESTAMPS_LENGTH;
      writeU32(into, at + 4, this.tsValue);
      writeU32(into, at + 8, this.tsEcho);
      at += 12;
    } else if (this.sackPermitted) {
      into[at] = TcpOptionKind.Nop;
      into[at + 1] = TcpOptionKind.Nop;
      into[at + 2] = TcpOptionKind.SackPermitted;
      into[at + 3] = SACK_PERMITTED_LENGTH;
      at += 4;
    }
    if (this.windowScale >= 0) {
      into[at] = TcpOptionKind.Nop;
      into[at + 1] = TcpOptionKind.WindowScale;
      into[at + 2] = WINDOW_SCALE_LENGTH;
      into[at + 3] = this.windowScale;
      at += 4;
    }
    if (this.sackCount > 0) {
      into[at] = TcpOptionKind.Nop;
      into[at + 1] = TcpOptionKind.Nop;
      into[at + 2] = TcpOptionKind.Sack;
      into[at + 3] = 2 + 8 * this.sackCount;
      at += 4;
      for (let block = 0; block < this.sackCount; block++) {
        writeU32(into, at, this.sackEdges[2 * block]);
        writeU32(into, at + 4, this.sackEdges[2 * block + 1]);
        at += 8;
      }
    }
    return at - offset;
  }

  /** A plain copy, for reprs and tests. */
  toRepr(): TcpOptionsRepr {
    const repr: TcpOptionsRepr = {};
    if (this.mss >= 0) repr.mss = this.mss;
    if (this.windowScale >= 0) repr.windowScale = this.windowScale;
    if (this.sackPermitted) repr.sackPermitted = true;
    if (this.timestamps) repr.timestamps = { value: this.tsValue, echo: this.tsEcho };
    if (this.sackCount > 0) {
      const sack: SackBlock[] = [];
      for (let block = 0; block < this.sackCount; block++) sack.push({ left: this.sackEdges[2 * block], right: this.sackEdges[2 * block + 1] });
      repr.sack = sack;
    }
    return repr;
  }

  /** Replaces the set with a plain one; throws RangeError on values out of range or more than 4 SACK blocks. */
  assign(repr: TcpOptionsRepr): void {
    this.clear();
    if (repr.mss !== undefined) this.mss = checkField("mss", repr.mss, 0xffff);
    if (repr.windowScale !== undefined) this.windowScale = checkField("window scale", repr.windowScale, 0xff);
    this.sackPermitted = repr.sackPermitted ?? false;
    if (repr.timestamps !== undefined) this.setTimestamps(repr.timestamps.value, repr.timestamps.echo);
    for (const block of repr.sack ?? []) {
      if (!this.addSackBlock(block.left >>> 0, block.right >>> 0)) throw new RangeError(`tcp: more than ${TCP_MAX_SACK_BLOCKS} SACK blocks`);
    }
  }
}

function badLength(kind: number, length: number): WireError {
  return new WireError("malformed", `tcp: option ${kind} with length ${length}`);
}

function checkField(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`tcp: ${name} ${value} is not 0-${max}`);
  return value;
}

export interface SackBlock {
  /** First sequence number of the block. */
  left: number;
  /** Sequence number just past the block. */
  right: number;
}

export interface TcpOptionsRepr {
  mss?: number;
  windowScale?: number;
  sackPermitted?: boolean;
  timestamps?: { value: number; echo: number };
  sack?: SackBlock[];
}

export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** TcpFlag bits. */
  flags: number;
  window: number;
  urgentPointer: number;
  options: TcpOptionsRepr;
  payload: Uint8Array;
}

/** The fields of a header to emit in place, for a stack that reuses one object per segment. */
export interface TcpHeaderFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgentPointer: number;
}

/**
 * Writes a header with `options` at the start of `into`, for data of `payloadLength` bytes that
 * the caller has already placed right after it (at `20 + options.length`), and fills the
 * checksum over both. Returns the header length. Throws RangeError when the options exceed 40
 * bytes or `into` is too short.
 */
export function emitTcpHeader(
  fields: TcpHeaderFields,
  options: TcpOptions,
  into: Uint8Array,
  payloadLength: number,
  src: Ipv4Address,
  dst: Ipv4Address,
  /** Leave the checksum for the link to finish (offloads): the field gets the pseudo-header sum only. */
  partialChecksum = false,
): number {
  const optionsLength = options.length;
  if (optionsLength > TCP_MAX_OPTIONS_LENGTH) throw new RangeError(`tcp: ${optionsLength} bytes of options above 40`);
  const headerLength = TCP_HEADER_LENGTH + optionsLength;
  requireRoom("tcp", into, headerLength + payloadLength);
  writeU16(into, SRC_PORT, fields.srcPort);
  writeU16(into, DST_PORT, fields.dstPort);
  writeU32(into, SEQ, fields.seq);
  writeU32(into, ACK, fields.ack);
  into[DATA_OFFSET] = (headerLength >>> 2) << 4;
  into[FLAGS] = fields.flags;
  writeU16(into, WINDOW, fields.window);
  writeU16(into, URGENT, fields.urgentPointer);
  options.emit(into, TCP_HEADER_LENGTH);
  if (partialChecksum) fillTcpPseudoHeaderSum(into, src, dst, headerLength + payloadLength);
  else fillTcpChecksum(into, src, dst, headerLength + payloadLength);
  return headerLength;
}

export const TcpRepr = {
  /** Validates the header, the checksum over the pseudo-header of `src` and `dst`, and the options. */
  parse(bytes: Uint8Array, src: Ipv4Address, dst: Ipv4Address): TcpRepr | WireError {
    const packet = TcpPacket.check(bytes);
    if (packet instanceof WireError) return packet;
    if (!packet.verifyChecksum(src, dst)) return new WireError("bad-checksum", "tcp: checksum");
    const options = new TcpOptions();
    const failure = options.parse(bytes, TCP_HEADER_LENGTH, packet.headerLength);
    if (failure !== undefined) return failure;
    return {
      srcPort: packet.srcPort,
      dstPort: packet.dstPort,
      seq: packet.seq,
      ack: packet.ack,
      flags: packet.flags,
      window: packet.window,
      urgentPointer: packet.urgentPointer,
      options: options.toRepr(),
      payload: packet.payload,
    };
  },

  /** Size of the whole segment, which `emit` writes entirely. */
  bufferLength(repr: TcpRepr): number {
    const options = new TcpOptions();
    options.assign(repr.options);
    return TCP_HEADER_LENGTH + options.length + repr.payload.length;
  },

  /** Writes the segment with its checksum into the start of `into`; throws RangeError if it does not fit. */
  emit(repr: TcpRepr, into: Uint8Array, src: Ipv4Address, dst: Ipv4Address): void {
    const options = new TcpOptions();
    options.assign(repr.options);
    const headerLength = TCP_HEADER_LENGTH + options.length;
    requireRoom("tcp", into, headerLength + repr.payload.length);
    into.set(repr.payload, headerLength);
    emitTcpHeader(repr, options, into, repr.payload.length, src, dst);
  },
};

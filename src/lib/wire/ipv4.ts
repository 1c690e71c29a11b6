/**
 * IPv4 headers (RFC 791 §3.1). Options are neither interpreted nor generated: the view exposes
 * them raw and the repr skips them (hosts may ignore the options they do not implement,
 * RFC 1122 §3.2.1.8, and Atoll implements none). Reassembly is left to the stack: the repr
 * reports the fragment fields as they are.
 */
import { Ipv4Address } from "./address.ts";
import { readU16, requireRoom, writeU16 } from "./bytes.ts";
import { checksumVerifies, finishChecksum, sumBytes } from "./checksum.ts";
import { WireError } from "./error.ts";

/** Assigned Internet protocol numbers (IANA registry, formerly RFC 790). */
export const IpProtocol = { Icmp: 1, Tcp: 6, Udp: 17 } as const;

export const IPV4_MIN_HEADER_LENGTH = 20;
export const IPV4_MAX_TOTAL_LENGTH = 0xffff;

const VERSION_IHL = 0;
/** Formerly type of service: DSCP (RFC 2474 §3) in the high six bits, ECN (RFC 3168 §5) in the low two. */
const DSCP_ECN = 1;
const TOTAL_LENGTH = 2;
const IDENTIFICATION = 4;
const FLAGS_FRAGMENT = 6;
const TTL = 8;
const PROTOCOL = 9;
const CHECKSUM = 10;
const SRC = 12;
const DST = 16;

/** Flags share a 16-bit word with the fragment offset: reserved, DF, MF, then 13 bits (RFC 791 §3.1). */
const FLAG_DONT_FRAGMENT = 0x4000;
const FLAG_MORE_FRAGMENTS = 0x2000;
const FRAGMENT_OFFSET_MASK = 0x1fff;

/** A view over an IPv4 packet. Call `check` (or `checkHeader`) before the accessors on bytes from the network. */
export class Ipv4Packet {
  constructor(readonly bytes: Uint8Array) {}

  /**
   * Validates version, header length and total length. The view it returns covers exactly
   * `totalLength` bytes, so the padding a short frame gets on Ethernet is not taken as payload.
   */
  static check(bytes: Uint8Array): Ipv4Packet | WireError {
    const header = Ipv4Packet.checkHeader(bytes);
    if (header instanceof WireError) return header;
    const totalLength = header.totalLength;
    if (totalLength < header.headerLength) {
      return new WireError("bad-length", `ipv4: total length ${totalLength} below header length ${header.headerLength}`);
    }
    if (totalLength > bytes.length) {
      return new WireError("truncated", `ipv4: total length ${totalLength}, only ${bytes.length} bytes`);
    }
    return new Ipv4Packet(bytes.subarray(0, totalLength));
  }

  /**
   * Validates only the header itself, not the total length: for the leading part of a datagram
   * quoted in an ICMP error (RFC 792), whose total length still counts the bytes left out.
   */
  static checkHeader(bytes: Uint8Array): Ipv4Packet | WireError {
    if (bytes.length < IPV4_MIN_HEADER_LENGTH) {
      return new WireError("truncated", `ipv4: ${bytes.length} bytes, header needs 20`);
    }
    const packet = new Ipv4Packet(bytes);
    if (packet.version !== 4) return new WireError("bad-version", `ipv4: version ${packet.version}`);
    const headerLength = packet.headerLength;
    if (headerLength < IPV4_MIN_HEADER_LENGTH) {
      return new WireError("bad-header-length", `ipv4: header length ${headerLength} below 20`);
    }
    if (headerLength > bytes.length) {
      return new WireError("truncated", `ipv4: header length ${headerLength}, only ${bytes.length} bytes`);
    }
    return packet;
  }

  get version(): number {
    return this.bytes[VERSION_IHL] >>> 4;
  }
  set version(value: number) {
    this.bytes[VERSION_IHL] = ((value & 0xf) << 4) | (this.bytes[VERSION_IHL] & 0x0f);
  }

  /** In bytes: the IHL field counts 32-bit words. */
  get headerLength(): number {
    return (this.bytes[VERSION_IHL] & 0x0f) * 4;
  }
  /** In bytes; must be a multiple of 4 up to 60. */
  set headerLength(length: number) {
    this.bytes[VERSION_IHL] = (this.bytes[VERSION_IHL] & 0xf0) | ((length >>> 2) & 0x0f);
  }

  get dscp(): number {
    return this.bytes[DSCP_ECN] >>> 2;
  }
  set dscp(value: number) {
    this.bytes[DSCP_ECN] = ((value & 0x3f) << 2) | (this.bytes[DSCP_ECN] & 0x03);
  }

  get ecn(): number {
    return this.bytes[DSCP_ECN] & 0x03;
  }
  set ecn(value: number) {
    this.bytes[DSCP_ECN] = (this.bytes[DSCP_ECN] & 0xfc) | (value & 0x03);
  }

  get totalLength(): number {
    return readU16(this.bytes, TOTAL_LENGTH);
  }
  set totalLength(value: number) {
    writeU16(this.bytes, TOTAL_LENGTH, value);
  }

  get identification(): number {
    return readU16(this.bytes, IDENTIFICATION);
  }
  set identification(value: number) {
    writeU16(this.bytes, IDENTIFICATION, value);
  }

  get dontFragment(): boolean {
    return (readU16(this.bytes, FLAGS_FRAGMENT) & FLAG_DONT_FRAGMENT) !== 0;
  }
  set dontFragment(value: boolean) {
    const word = readU16(this.bytes, FLAGS_FRAGMENT);
    writeU16(this.bytes, FLAGS_FRAGMENT, value ? word | FLAG_DONT_FRAGMENT : word & ~FLAG_DONT_FRAGMENT);
  }

  get moreFragments(): boolean {
    return (readU16(this.bytes, FLAGS_FRAGMENT) & FLAG_MORE_FRAGMENTS) !== 0;
  }
  set moreFragments(value: boolean) {
    const word = readU16(this.bytes, FLAGS_FRAGMENT);
    writeU16(this.bytes, FLAGS_FRAGMENT, value ? word | FLAG_MORE_FRAGMENTS : word & ~FLAG_MORE_FRAGMENTS);
  }

  /** In bytes: the field counts 8-byte units. */
  get fragmentOffset(): number {
    return (readU16(this.bytes, FLAGS_FRAGMENT) & FRAGMENT_OFFSET_MASK) * 8;
  }
  /** In bytes; must be a multiple of 8 below 65536. */
  set fragmentOffset(offset: number) {
    const word = readU16(this.bytes, FLAGS_FRAGMENT);
    writeU16(this.bytes, FLAGS_FRAGMENT, (word & ~FRAGMENT_OFFSET_MASK) | ((offset >>> 3) & FRAGMENT_OFFSET_MASK));
  }

  get ttl(): number {
    return this.bytes[TTL];
  }
  set ttl(value: number) {
    this.bytes[TTL] = value;
  }

  get protocol(): number {
    return this.bytes[PROTOCOL];
  }
  set protocol(value: number) {
    this.bytes[PROTOCOL] = value;
  }

  get checksum(): number {
    return readU16(this.bytes, CHECKSUM);
  }
  set checksum(value: number) {
    writeU16(this.bytes, CHECKSUM, value);
  }

  get src(): Ipv4Address {
    return Ipv4Address.read(this.bytes, SRC);
  }
  set src(address: Ipv4Address) {
    Ipv4Address.write(address, this.bytes, SRC);
  }

  get dst(): Ipv4Address {
    return Ipv4Address.read(this.bytes, DST);
  }
  set dst(address: Ipv4Address) {
    Ipv4Address.write(address, this.bytes, DST);
  }

  /** The raw options between the fixed header and the payload (empty when IHL is 5). */
  get options(): Uint8Array {
    return this.bytes.subarray(IPV4_MIN_HEADER_LENGTH, this.headerLength);
  }

  /** The bytes after the header up to `totalLength` (clamped to the buffer for a quoted header). */
  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLength, this.totalLength);
  }

  /** The header checksum covers the header only, options included (RFC 791 §3.1, "Header Checksum"). */
  verifyChecksum(): boolean {
    return checksumVerifies(sumBytes(this.bytes, 0, this.headerLength));
  }

  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = finishChecksum(sumBytes(this.bytes, 0, this.headerLength));
  }
}

export interface Ipv4Repr {
  src: Ipv4Address;
  dst: Ipv4Address;
  /** See IpProtocol. */
  protocol: number;
  ttl: number;
  /** Differentiated services code point, 0..63 (RFC 2474). */
  dscp: number;
  /** Explicit congestion notification, 0..3 (RFC 3168). */
  ecn: number;
  identification: number;
  dontFragment: boolean;
  moreFragments: boolean;
  /** In bytes, a multiple of 8 (the wire counts 8-byte units). */
  fragmentOffset: number;
  /** Bytes after the header: total length minus header length. */
  payloadLength: number;
}

export const Ipv4Repr = {
  /** Validates lengths (see Ipv4Packet.check) and the header checksum; options are skipped. */
  parse(input: Uint8Array | Ipv4Packet): Ipv4Repr | WireError {
    const packet = Ipv4Packet.check(input instanceof Ipv4Packet ? input.bytes : input);
    if (packet instanceof WireError) return packet;
    if (!packet.verifyChecksum()) return new WireError("bad-checksum", "ipv4: header checksum");
    // The reserved flag bit must be zero (RFC 791 §3.1) but is ignored, as the robustness
    // principle (RFC 1122 §1.2.2) suggests and as Linux does.
    return {
      src: packet.src,
      dst: packet.dst,
      protocol: packet.protocol,
      ttl: packet.ttl,
      dscp: packet.dscp,
      ecn: packet.ecn,
      identification: packet.identification,
      dontFragment: packet.dontFragment,
      moreFragments: packet.moreFragments,
      fragmentOffset: packet.fragmentOffset,
      payloadLength: packet.totalLength - packet.headerLength,
    };
  },

  /** Bytes `emit` writes: always 20, as no options are generated. The payload starts there. */
  headerLength(_repr: Ipv4Repr): number {
    return IPV4_MIN_HEADER_LENGTH;
  },

  /** Size of the whole packet: header plus payload. */
  bufferLength(repr: Ipv4Repr): number {
    return IPV4_MIN_HEADER_LENGTH + repr.payloadLength;
  },

  /**
   * Writes the header, checksum included, at the start of `into`; the payload is the caller's,
   * at offset 20. Throws RangeError if `into` is shorter than the header or the total length
   * would exceed 65535.
   */
  emit(repr: Ipv4Repr, into: Uint8Array): void {
    requireRoom("ipv4", into, IPV4_MIN_HEADER_LENGTH);
    const totalLength = IPV4_MIN_HEADER_LENGTH + repr.payloadLength;
    if (totalLength > IPV4_MAX_TOTAL_LENGTH) throw new RangeError(`ipv4: total length ${totalLength} above 65535`);
    const packet = new Ipv4Packet(into);
    into[VERSION_IHL] = 0x45; // version 4, IHL 5
    into[DSCP_ECN] = ((repr.dscp & 0x3f) << 2) | (repr.ecn & 0x03);
    packet.totalLength = totalLength;
    packet.identification = repr.identification;
    writeU16(
      into,
      FLAGS_FRAGMENT,
      (repr.dontFragment ? FLAG_DONT_FRAGMENT : 0) |
        (repr.moreFragments ? FLAG_MORE_FRAGMENTS : 0) |
        ((repr.fragmentOffset >>> 3) & FRAGMENT_OFFSET_MASK),
    );
    packet.ttl = repr.ttl;
    packet.protocol = repr.protocol;
    packet.src = repr.src;
    packet.dst = repr.dst;
    packet.fillChecksum();
  },
};

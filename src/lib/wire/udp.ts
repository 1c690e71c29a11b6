/**
 * UDP (RFC 768) over IPv4. The checksum covers a pseudo-header taken from the IPv4 header
 * (source, destination, protocol, UDP length), so parse and emit take the two addresses.
 */
import type { Ipv4Address } from "./address.ts";
import { placeBytes, readU16, requireRoom, writeU16 } from "./bytes.ts";
import { checksumVerifies, finishChecksum, ipv4PseudoHeaderSum, sumBytes } from "./checksum.ts";
import { WireError } from "./error.ts";
import { IpProtocol } from "./ipv4.ts";

export const UDP_HEADER_LENGTH = 8;
export const UDP_MAX_LENGTH = 0xffff;

const SRC_PORT = 0;
const DST_PORT = 2;
const LENGTH = 4;
const CHECKSUM = 6;

/** A view over a UDP datagram. Call `check` before the accessors on bytes from the network. */
export class UdpPacket {
  constructor(readonly bytes: Uint8Array) {}

  /** Validates the length field; the view it returns covers exactly `length` bytes. */
  static check(bytes: Uint8Array): UdpPacket | WireError {
    if (bytes.length < UDP_HEADER_LENGTH) return new WireError("truncated", `udp: ${bytes.length} bytes, header needs 8`);
    const length = readU16(bytes, LENGTH);
    if (length < UDP_HEADER_LENGTH) return new WireError("bad-length", `udp: length ${length} below 8`);
    if (length > bytes.length) return new WireError("truncated", `udp: length ${length}, only ${bytes.length} bytes`);
    return new UdpPacket(bytes.subarray(0, length));
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

  /** Header plus data, in bytes. */
  get length(): number {
    return readU16(this.bytes, LENGTH);
  }
  set length(value: number) {
    writeU16(this.bytes, LENGTH, value);
  }

  /** Zero means the sender computed none (RFC 768). */
  get checksum(): number {
    return readU16(this.bytes, CHECKSUM);
  }
  set checksum(value: number) {
    writeU16(this.bytes, CHECKSUM, value);
  }

  get payload(): Uint8Array {
    return this.bytes.subarray(UDP_HEADER_LENGTH, this.length);
  }

  /** True when the checksum verifies or is absent (zero), as RFC 768 and RFC 1122 §4.1.3.4 allow. */
  verifyChecksum(src: Ipv4Address, dst: Ipv4Address): boolean {
    if (this.checksum === 0) return true;
    const length = this.length;
    return checksumVerifies(sumBytes(this.bytes, 0, length, ipv4PseudoHeaderSum(src, dst, IpProtocol.Udp, length)));
  }

  /** Computes the checksum over pseudo-header, header and payload; a result of 0 is sent as 0xffff (RFC 768). */
  fillChecksum(src: Ipv4Address, dst: Ipv4Address): void {
    const length = this.length;
    this.checksum = 0;
    const checksum = finishChecksum(sumBytes(this.bytes, 0, length, ipv4PseudoHeaderSum(src, dst, IpProtocol.Udp, length)));
    this.checksum = checksum === 0 ? 0xffff : checksum;
  }
}

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

export const UdpRepr = {
  /**
   * Validates the length and, unless it is zero, the checksum against the pseudo-header built
   * from `src` and `dst` (the enclosing IPv4 header's addresses).
   */
  parse(input: Uint8Array | UdpPacket, src: Ipv4Address, dst: Ipv4Address): UdpRepr | WireError {
    const packet = UdpPacket.check(input instanceof UdpPacket ? input.bytes : input);
    if (packet instanceof WireError) return packet;
    if (!packet.verifyChecksum(src, dst)) return new WireError("bad-checksum", "udp: checksum");
    return { srcPort: packet.srcPort, dstPort: packet.dstPort, payload: packet.payload };
  },

  /** Size of the whole datagram, which `emit` writes entirely. */
  bufferLength(repr: UdpRepr): number {
    return UDP_HEADER_LENGTH + repr.payload.length;
  },

  /**
   * Writes the datagram with its checksum (always computed) into the start of `into`. The
   * payload is copied unless the repr's subarray already sits at offset 8 of `into`, the
   * zero-copy path. Throws RangeError if `into` is too short or the datagram exceeds 65535 bytes.
   */
  emit(repr: UdpRepr, into: Uint8Array, src: Ipv4Address, dst: Ipv4Address): void {
    const length = UdpRepr.bufferLength(repr);
    if (length > UDP_MAX_LENGTH) throw new RangeError(`udp: length ${length} above 65535`);
    requireRoom("udp", into, length);
    const packet = new UdpPacket(into);
    packet.srcPort = repr.srcPort;
    packet.dstPort = repr.dstPort;
    packet.length = length;
    placeBytes(repr.payload, into, UDP_HEADER_LENGTH);
    packet.fillChecksum(src, dst);
  },
};

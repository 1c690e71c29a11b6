/**
 * ICMP for IPv4 (RFC 792): echo request and reply, destination unreachable and time exceeded
 * with the quoted original datagram; every other type is kept raw. The checksum covers the
 * whole message (RFC 792, "Checksum"), so the input must be exactly the IPv4 payload.
 */
import { placeBytes, readU16, readU32, requireRoom, writeU16, writeU32 } from "./bytes.ts";
import { checksumVerifies, finishChecksum, sumBytes } from "./checksum.ts";
import { WireError } from "./error.ts";
import { Ipv4Packet } from "./ipv4.ts";

export const Icmpv4Type = {
  EchoReply: 0,
  DestinationUnreachable: 3,
  Redirect: 5,
  EchoRequest: 8,
  TimeExceeded: 11,
  ParameterProblem: 12,
} as const;

/** RFC 792, plus 6..12 from RFC 1122 §3.2.2.1 and 13..15 from RFC 1812 §5.2.7.1. */
export const Icmpv4UnreachableCode = {
  NetUnreachable: 0,
  HostUnreachable: 1,
  ProtocolUnreachable: 2,
  PortUnreachable: 3,
  /** "Fragmentation needed and DF set": carries the next-hop MTU (RFC 1191 §4). */
  FragmentationNeeded: 4,
  SourceRouteFailed: 5,
  NetworkUnknown: 6,
  HostUnknown: 7,
  CommunicationProhibited: 13,
} as const;

export const Icmpv4TimeExceededCode = { TtlExceeded: 0, ReassemblyTimeExceeded: 1 } as const;

/** Type, code, checksum and the 4-byte "rest of header" every ICMP message has. */
export const ICMPV4_HEADER_LENGTH = 8;

const TYPE = 0;
const CODE = 1;
const CHECKSUM = 2;
const REST_OF_HEADER = 4;
const IDENTIFIER = 4;
const SEQUENCE = 6;
const NEXT_HOP_MTU = 6;

/** A view over an ICMP message. Call `check` before the accessors on bytes from the network. */
export class Icmpv4Packet {
  constructor(readonly bytes: Uint8Array) {}

  static check(bytes: Uint8Array): Icmpv4Packet | WireError {
    if (bytes.length < ICMPV4_HEADER_LENGTH) return new WireError("truncated", `icmpv4: ${bytes.length} bytes, header needs 8`);
    return new Icmpv4Packet(bytes);
  }

  get type(): number {
    return this.bytes[TYPE];
  }
  set type(value: number) {
    this.bytes[TYPE] = value;
  }

  get code(): number {
    return this.bytes[CODE];
  }
  set code(value: number) {
    this.bytes[CODE] = value;
  }

  get checksum(): number {
    return readU16(this.bytes, CHECKSUM);
  }
  set checksum(value: number) {
    writeU16(this.bytes, CHECKSUM, value);
  }

  /** The four bytes after the checksum, whose meaning depends on the type. */
  get restOfHeader(): number {
    return readU32(this.bytes, REST_OF_HEADER);
  }
  set restOfHeader(value: number) {
    writeU32(this.bytes, REST_OF_HEADER, value);
  }

  /** Echo request/reply only. */
  get identifier(): number {
    return readU16(this.bytes, IDENTIFIER);
  }
  set identifier(value: number) {
    writeU16(this.bytes, IDENTIFIER, value);
  }

  /** Echo request/reply only. */
  get sequence(): number {
    return readU16(this.bytes, SEQUENCE);
  }
  set sequence(value: number) {
    writeU16(this.bytes, SEQUENCE, value);
  }

  /** Destination unreachable, code 4 only (RFC 1191 §4); zero from routers predating it. */
  get nextHopMtu(): number {
    return readU16(this.bytes, NEXT_HOP_MTU);
  }
  set nextHopMtu(value: number) {
    writeU16(this.bytes, NEXT_HOP_MTU, value);
  }

  /** Everything after the 8-byte header: echo data, or the quoted datagram of an error. */
  get data(): Uint8Array {
    return this.bytes.subarray(ICMPV4_HEADER_LENGTH);
  }

  verifyChecksum(): boolean {
    return checksumVerifies(sumBytes(this.bytes));
  }

  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = finishChecksum(sumBytes(this.bytes));
  }
}

/** Echo request or reply (RFC 792, "Echo or Echo Reply Message"). */
export interface Icmpv4Echo {
  kind: "echo-request" | "echo-reply";
  identifier: number;
  sequence: number;
  /** A reply must return the request's data unchanged. */
  data: Uint8Array;
}

/** RFC 792, "Destination Unreachable Message". */
export interface Icmpv4DestinationUnreachable {
  kind: "destination-unreachable";
  /** See Icmpv4UnreachableCode. */
  code: number;
  /** Meaningful for code 4 (RFC 1191 §4), zero otherwise. */
  nextHopMtu: number;
  /** The offending datagram's IPv4 header and at least its first 8 payload bytes, as quoted. */
  original: Uint8Array;
}

/** RFC 792, "Time Exceeded Message". */
export interface Icmpv4TimeExceeded {
  kind: "time-exceeded";
  /** See Icmpv4TimeExceededCode. */
  code: number;
  original: Uint8Array;
}

/** Any type not above, kept as it came. */
export interface Icmpv4Other {
  kind: "other";
  type: number;
  code: number;
  /** The 32-bit word after the checksum. */
  restOfHeader: number;
  data: Uint8Array;
}

export type Icmpv4Repr = Icmpv4Echo | Icmpv4DestinationUnreachable | Icmpv4TimeExceeded | Icmpv4Other;

/**
 * The quoted datagram of an error must at least hold a plausible IPv4 header, as the stack reads
 * its addresses, protocol and first payload bytes to find the socket the error is for.
 */
function checkQuotedDatagram(original: Uint8Array): WireError | undefined {
  const header = Ipv4Packet.checkHeader(original);
  return header instanceof WireError ? new WireError("malformed", `icmpv4: quoted datagram: ${header.message}`) : undefined;
}

export const Icmpv4Repr = {
  /** Verifies the checksum, then decodes by type; a bad quoted datagram in an error is "malformed". */
  parse(input: Uint8Array | Icmpv4Packet): Icmpv4Repr | WireError {
    const packet = Icmpv4Packet.check(input instanceof Icmpv4Packet ? input.bytes : input);
    if (packet instanceof WireError) return packet;
    if (!packet.verifyChecksum()) return new WireError("bad-checksum", "icmpv4: checksum");
    const type = packet.type;
    switch (type) {
      case Icmpv4Type.EchoRequest:
      case Icmpv4Type.EchoReply:
        // The code is 0 for echo (RFC 792); other values are not rejected, as Linux does not either.
        return {
          kind: type === Icmpv4Type.EchoRequest ? "echo-request" : "echo-reply",
          identifier: packet.identifier,
          sequence: packet.sequence,
          data: packet.data,
        };
      case Icmpv4Type.DestinationUnreachable: {
        const original = packet.data;
        const error = checkQuotedDatagram(original);
        if (error !== undefined) return error;
        return { kind: "destination-unreachable", code: packet.code, nextHopMtu: packet.nextHopMtu, original };
      }
      case Icmpv4Type.TimeExceeded: {
        const original = packet.data;
        const error = checkQuotedDatagram(original);
        if (error !== undefined) return error;
        return { kind: "time-exceeded", code: packet.code, original };
      }
      default:
        return { kind: "other", type, code: packet.code, restOfHeader: packet.restOfHeader, data: packet.data };
    }
  },

  /** Size of the whole message, which `emit` writes entirely. */
  bufferLength(repr: Icmpv4Repr): number {
    return ICMPV4_HEADER_LENGTH + (repr.kind === "destination-unreachable" || repr.kind === "time-exceeded" ? repr.original : repr.data).length;
  },

  /**
   * Writes the whole message and its checksum into the start of `into`. The data (or quoted
   * datagram) is copied unless the repr's subarray already sits at offset 8 of `into`.
   * Throws RangeError if `into` is too short.
   */
  emit(repr: Icmpv4Repr, into: Uint8Array): void {
    const length = Icmpv4Repr.bufferLength(repr);
    requireRoom("icmpv4", into, length);
    const packet = new Icmpv4Packet(into.subarray(0, length));
    switch (repr.kind) {
      case "echo-request":
      case "echo-reply":
        packet.type = repr.kind === "echo-request" ? Icmpv4Type.EchoRequest : Icmpv4Type.EchoReply;
        packet.code = 0;
        packet.identifier = repr.identifier;
        packet.sequence = repr.sequence;
        placeBytes(repr.data, into, ICMPV4_HEADER_LENGTH);
        break;
      case "destination-unreachable":
        packet.type = Icmpv4Type.DestinationUnreachable;
        packet.code = repr.code;
        // RFC 1191 §4: the high 16 bits stay unused (zero); the low 16 carry the MTU.
        packet.restOfHeader = repr.nextHopMtu & 0xffff;
        placeBytes(repr.original, into, ICMPV4_HEADER_LENGTH);
        break;
      case "time-exceeded":
        packet.type = Icmpv4Type.TimeExceeded;
        packet.code = repr.code;
        packet.restOfHeader = 0;
        placeBytes(repr.original, into, ICMPV4_HEADER_LENGTH);
        break;
      case "other":
        packet.type = repr.type;
        packet.code = repr.code;
        packet.restOfHeader = repr.restOfHeader;
        placeBytes(repr.data, into, ICMPV4_HEADER_LENGTH);
        break;
    }
    packet.fillChecksum();
  },
};

/**
 * ARP (RFC 826) for IPv4 over Ethernet, the only combination Atoll resolves: hardware type 1,
 * protocol type 0x0800, 6-byte hardware and 4-byte protocol addresses. Anything else is
 * "unsupported". Operations are request and reply; RARP and InARP are "unsupported" too.
 */
import { Ipv4Address, MacAddress } from "./address.ts";
import { readU16, requireRoom, writeU16 } from "./bytes.ts";
import { EtherType } from "./ethernet.ts";
import { WireError } from "./error.ts";

/** RFC 826 "Packet format"; the values come from the IANA ARP parameters registry. */
export const ArpHardwareType = { Ethernet: 1 } as const;
export const ArpOperation = { Request: 1, Reply: 2 } as const;

/** Fixed part (8 bytes) plus two (MAC, IPv4) address pairs. */
export const ARP_PACKET_LENGTH = 28;
const FIXED_LENGTH = 8;

const HARDWARE_TYPE = 0;
const PROTOCOL_TYPE = 2;
const HARDWARE_LENGTH = 4;
const PROTOCOL_LENGTH = 5;
const OPERATION = 6;
const SENDER_HARDWARE_ADDRESS = 8;
const SENDER_PROTOCOL_ADDRESS = 14;
const TARGET_HARDWARE_ADDRESS = 18;
const TARGET_PROTOCOL_ADDRESS = 24;

/** A view over an Ethernet/IPv4 ARP packet: the address accessors assume that layout. */
export class ArpPacket {
  constructor(readonly bytes: Uint8Array) {}

  /**
   * Validates the Ethernet/IPv4 shape and the length; the view it returns covers exactly the
   * 28 ARP bytes, without the padding that brings an Ethernet frame to its minimum size.
   */
  static check(bytes: Uint8Array): ArpPacket | WireError {
    if (bytes.length < FIXED_LENGTH) return new WireError("truncated", `arp: ${bytes.length} bytes, fixed part needs 8`);
    const packet = new ArpPacket(bytes);
    if (packet.hardwareType !== ArpHardwareType.Ethernet || packet.hardwareLength !== 6) {
      return new WireError("unsupported", `arp: hardware type ${packet.hardwareType} length ${packet.hardwareLength}`);
    }
    if (packet.protocolType !== EtherType.Ipv4 || packet.protocolLength !== 4) {
      return new WireError("unsupported", `arp: protocol type 0x${packet.protocolType.toString(16)} length ${packet.protocolLength}`);
    }
    if (bytes.length < ARP_PACKET_LENGTH) return new WireError("truncated", `arp: ${bytes.length} bytes, packet needs 28`);
    return new ArpPacket(bytes.subarray(0, ARP_PACKET_LENGTH));
  }

  get hardwareType(): number {
    return readU16(this.bytes, HARDWARE_TYPE);
  }
  set hardwareType(value: number) {
    writeU16(this.bytes, HARDWARE_TYPE, value);
  }

  get protocolType(): number {
    return readU16(this.bytes, PROTOCOL_TYPE);
  }
  set protocolType(value: number) {
    writeU16(this.bytes, PROTOCOL_TYPE, value);
  }

  get hardwareLength(): number {
    return this.bytes[HARDWARE_LENGTH];
  }
  set hardwareLength(value: number) {
    this.bytes[HARDWARE_LENGTH] = value;
  }

  get protocolLength(): number {
    return this.bytes[PROTOCOL_LENGTH];
  }
  set protocolLength(value: number) {
    this.bytes[PROTOCOL_LENGTH] = value;
  }

  get operation(): number {
    return readU16(this.bytes, OPERATION);
  }
  set operation(value: number) {
    writeU16(this.bytes, OPERATION, value);
  }

  get senderHardwareAddress(): MacAddress {
    return MacAddress.read(this.bytes, SENDER_HARDWARE_ADDRESS);
  }
  set senderHardwareAddress(address: MacAddress) {
    MacAddress.write(address, this.bytes, SENDER_HARDWARE_ADDRESS);
  }

  get senderProtocolAddress(): Ipv4Address {
    return Ipv4Address.read(this.bytes, SENDER_PROTOCOL_ADDRESS);
  }
  set senderProtocolAddress(address: Ipv4Address) {
    Ipv4Address.write(address, this.bytes, SENDER_PROTOCOL_ADDRESS);
  }

  get targetHardwareAddress(): MacAddress {
    return MacAddress.read(this.bytes, TARGET_HARDWARE_ADDRESS);
  }
  set targetHardwareAddress(address: MacAddress) {
    MacAddress.write(address, this.bytes, TARGET_HARDWARE_ADDRESS);
  }

  get targetProtocolAddress(): Ipv4Address {
    return Ipv4Address.read(this.bytes, TARGET_PROTOCOL_ADDRESS);
  }
  set targetProtocolAddress(address: Ipv4Address) {
    Ipv4Address.write(address, this.bytes, TARGET_PROTOCOL_ADDRESS);
  }
}

export interface ArpRepr {
  operation: "request" | "reply";
  senderHardwareAddress: MacAddress;
  senderProtocolAddress: Ipv4Address;
  /** Ignored in a request (RFC 826 sends whatever; Linux sends zeros). */
  targetHardwareAddress: MacAddress;
  targetProtocolAddress: Ipv4Address;
}

export const ArpRepr = {
  parse(input: Uint8Array | ArpPacket): ArpRepr | WireError {
    const packet = ArpPacket.check(input instanceof ArpPacket ? input.bytes : input);
    if (packet instanceof WireError) return packet;
    const code = packet.operation;
    if (code !== ArpOperation.Request && code !== ArpOperation.Reply) {
      return new WireError("unsupported", `arp: operation ${code}`);
    }
    return {
      operation: code === ArpOperation.Request ? "request" : "reply",
      senderHardwareAddress: packet.senderHardwareAddress,
      senderProtocolAddress: packet.senderProtocolAddress,
      targetHardwareAddress: packet.targetHardwareAddress,
      targetProtocolAddress: packet.targetProtocolAddress,
    };
  },

  /** Always 28: ARP for Ethernet/IPv4 has no variable part. */
  bufferLength(_repr: ArpRepr): number {
    return ARP_PACKET_LENGTH;
  },

  emit(repr: ArpRepr, into: Uint8Array): void {
    requireRoom("arp", into, ARP_PACKET_LENGTH);
    const packet = new ArpPacket(into);
    packet.hardwareType = ArpHardwareType.Ethernet;
    packet.protocolType = EtherType.Ipv4;
    packet.hardwareLength = 6;
    packet.protocolLength = 4;
    packet.operation = repr.operation === "request" ? ArpOperation.Request : ArpOperation.Reply;
    packet.senderHardwareAddress = repr.senderHardwareAddress;
    packet.senderProtocolAddress = repr.senderProtocolAddress;
    packet.targetHardwareAddress = repr.targetHardwareAddress;
    packet.targetProtocolAddress = repr.targetProtocolAddress;
  },
};

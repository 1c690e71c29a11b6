/**
 * Ethernet II frames (the DIX framing of RFC 894), with at most one IEEE 802.1Q VLAN tag.
 * The frame check sequence is not part of the frame here: devices strip it on receive and add it
 * on send. Short frames are not padded to the 60-byte minimum here either: the device does that.
 */
import { MacAddress } from "./address.ts";
import { readU16, requireRoom, writeU16 } from "./bytes.ts";
import { WireError } from "./error.ts";

export const EtherType = {
  Ipv4: 0x0800,
  Arp: 0x0806,
  /** An IEEE 802.1Q tag follows (the tag protocol identifier, TPID). */
  Vlan: 0x8100,
  /** IEEE 802.1ad service tag (QinQ): not parsed as a tag, so reported as a plain EtherType. */
  ServiceVlan: 0x88a8,
  Ipv6: 0x86dd,
} as const;

/** Values below this in the type field are IEEE 802.3 lengths, not EtherTypes (IEEE 802.3 §3.2.6). */
const MIN_ETHER_TYPE = 0x0600;

export const ETHERNET_HEADER_LENGTH = 14;
export const VLAN_TAG_LENGTH = 4;

const DST = 0;
const SRC = 6;
const TYPE = 12;
/** Tag control information: priority (3 bits), drop eligible (1), VLAN id (12); IEEE 802.1Q §9.6. */
const TCI = 14;
const INNER_TYPE = 16;

/** A view over an Ethernet frame. Call `check` before the accessors on bytes from the network. */
export class EthernetFrame {
  constructor(readonly bytes: Uint8Array) {}

  /** Validates that the header, including a VLAN tag when the type field announces one, fits. */
  static check(bytes: Uint8Array): EthernetFrame | WireError {
    if (bytes.length < ETHERNET_HEADER_LENGTH) {
      return new WireError("truncated", `ethernet: ${bytes.length} bytes, header needs ${ETHERNET_HEADER_LENGTH}`);
    }
    const frame = new EthernetFrame(bytes);
    if (frame.hasVlanTag && bytes.length < ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH) {
      return new WireError("truncated", `ethernet: ${bytes.length} bytes, tagged header needs 18`);
    }
    return frame;
  }

  get dst(): MacAddress {
    return MacAddress.read(this.bytes, DST);
  }
  set dst(address: MacAddress) {
    MacAddress.write(address, this.bytes, DST);
  }

  get src(): MacAddress {
    return MacAddress.read(this.bytes, SRC);
  }
  set src(address: MacAddress) {
    MacAddress.write(address, this.bytes, SRC);
  }

  /** The type field right after the addresses: EtherType.Vlan for a tagged frame. */
  get etherType(): number {
    return readU16(this.bytes, TYPE);
  }
  set etherType(value: number) {
    writeU16(this.bytes, TYPE, value);
  }

  get hasVlanTag(): boolean {
    return this.etherType === EtherType.Vlan;
  }

  /** The raw tag control information; meaningful only when `hasVlanTag`. */
  get vlanTci(): number {
    return readU16(this.bytes, TCI);
  }
  set vlanTci(value: number) {
    writeU16(this.bytes, TCI, value);
  }

  get vlanId(): number {
    return this.vlanTci & 0x0fff;
  }

  /** The priority code point (IEEE 802.1Q §6.9.3). */
  get vlanPriority(): number {
    return this.vlanTci >>> 13;
  }

  get vlanDropEligible(): boolean {
    return (this.vlanTci & 0x1000) !== 0;
  }

  /** The EtherType of the payload: after the tag when there is one. */
  get payloadEtherType(): number {
    return this.hasVlanTag ? readU16(this.bytes, INNER_TYPE) : this.etherType;
  }
  set payloadEtherType(value: number) {
    writeU16(this.bytes, this.hasVlanTag ? INNER_TYPE : TYPE, value);
  }

  get headerLength(): number {
    return this.hasVlanTag ? ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH : ETHERNET_HEADER_LENGTH;
  }

  /** Everything after the header, device padding included (the next layer's length field trims it). */
  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLength);
  }
}

export interface VlanTag {
  /** 0..4095; 0 means priority-tagged only (IEEE 802.1Q §9.6). */
  id: number;
  /** Priority code point, 0..7. */
  priority: number;
  dropEligible: boolean;
}

export interface EthernetRepr {
  dst: MacAddress;
  src: MacAddress;
  /** The payload's EtherType (after the VLAN tag when there is one), >= 0x0600. */
  etherType: number;
  /** Present when the frame carries an 802.1Q tag. */
  vlan?: VlanTag;
}

export const EthernetRepr = {
  /**
   * Rejects IEEE 802.3 length-field frames and stacked tags as "unsupported": the stack only
   * dispatches on Ethernet II EtherTypes behind at most one tag.
   */
  parse(input: Uint8Array | EthernetFrame): EthernetRepr | WireError {
    const frame = EthernetFrame.check(input instanceof EthernetFrame ? input.bytes : input);
    if (frame instanceof WireError) return frame;
    const etherType = frame.payloadEtherType;
    if (etherType < MIN_ETHER_TYPE) {
      return new WireError("unsupported", `ethernet: 802.3 length field 0x${etherType.toString(16)}, not an EtherType`);
    }
    if (frame.hasVlanTag && (etherType === EtherType.Vlan || etherType === EtherType.ServiceVlan)) {
      return new WireError("unsupported", "ethernet: stacked VLAN tags");
    }
    const repr: EthernetRepr = { dst: frame.dst, src: frame.src, etherType };
    if (frame.hasVlanTag) {
      repr.vlan = { id: frame.vlanId, priority: frame.vlanPriority, dropEligible: frame.vlanDropEligible };
    }
    return repr;
  },

  /** Bytes `emit` writes: 14, or 18 with a VLAN tag. The payload starts there. */
  headerLength(repr: EthernetRepr): number {
    return repr.vlan === undefined ? ETHERNET_HEADER_LENGTH : ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH;
  },

  /** Size of a whole frame carrying `payloadLength` bytes (before any device padding). */
  bufferLength(repr: EthernetRepr, payloadLength: number): number {
    return EthernetRepr.headerLength(repr) + payloadLength;
  },

  /** Writes the header at the start of `into`; the payload goes at `headerLength(repr)`. */
  emit(repr: EthernetRepr, into: Uint8Array): void {
    requireRoom("ethernet", into, EthernetRepr.headerLength(repr));
    const frame = new EthernetFrame(into);
    frame.dst = repr.dst;
    frame.src = repr.src;
    if (repr.vlan === undefined) {
      frame.etherType = repr.etherType;
    } else {
      frame.etherType = EtherType.Vlan;
      const { priority, dropEligible, id } = repr.vlan;
      frame.vlanTci = ((priority & 0x7) << 13) | (dropEligible ? 0x1000 : 0) | (id & 0x0fff);
      frame.payloadEtherType = repr.etherType;
    }
  },
};

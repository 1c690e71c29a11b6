/**
 * Link and network addresses as branded numbers: an IPv4 address is its 32-bit value, a MAC
 * address its 48-bit value (exact in a float64). Reading one from a packet allocates nothing,
 * and two addresses compare with `===`, so they work as Map keys (ARP cache, sockets).
 *
 * Each type has a companion object of the same name holding its functions:
 * `Ipv4Address.parse("198.18.0.1")`, `MacAddress.format(mac)`.
 */
import { WireError } from "./error.ts";

declare const ipv4AddressBrand: unique symbol;
declare const macAddressBrand: unique symbol;

export type Ipv4Address = number & { readonly [ipv4AddressBrand]: true };
export type MacAddress = number & { readonly [macAddressBrand]: true };

/** The only place a number becomes an Ipv4Address; `>>> 0` keeps it an unsigned 32-bit value. */
function toIpv4(value: number): Ipv4Address {
  return (value >>> 0) as Ipv4Address;
}

/** The only place a number becomes a MacAddress; callers guarantee an integer below 2^48. */
function toMac(value: number): MacAddress {
  return value as MacAddress;
}

const TWO_TO_32 = 0x1_0000_0000;
const TWO_TO_48 = 0x1_0000_0000_0000;

function parseDecimalOctet(text: string): number | undefined {
  // The dec-octet of RFC 3986 §3.2.2: no leading zeros, which inet_aton reads as octal (and
  // "0x" as hex; RFC 3986 §7.4), so "010.0.0.1" is an error rather than 8.0.0.1 or 10.0.0.1.
  if (text.length === 0 || text.length > 3 || (text.length > 1 && text.charCodeAt(0) === 0x30)) return undefined;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    value = value * 10 + digit;
  }
  return value <= 255 ? value : undefined;
}

function parseHexOctet(text: string): number | undefined {
  if (text.length === 0 || text.length > 2) return undefined;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i) | 0x20; // ASCII lower case; digits are unaffected
    let digit: number;
    if (code >= 0x30 && code <= 0x39) digit = code - 0x30;
    else if (code >= 0x61 && code <= 0x66) digit = code - 0x61 + 10;
    else return undefined;
    value = value * 16 + digit;
  }
  return value;
}

export const Ipv4Address = {
  /** 0.0.0.0: "this host on this network" (RFC 1122 §3.2.1.3 (a)), the DHCP client's source. */
  UNSPECIFIED: toIpv4(0),
  /** 255.255.255.255: the limited broadcast address (RFC 1122 §3.2.1.3 (c)). */
  BROADCAST: toIpv4(0xffff_ffff),

  fromOctets(a: number, b: number, c: number, d: number): Ipv4Address {
    return toIpv4(((a & 0xff) << 24) | ((b & 0xff) << 16) | ((c & 0xff) << 8) | (d & 0xff));
  },

  /** The address whose 32-bit value is `value` modulo 2^32, so that `network + 1` style arithmetic wraps. */
  fromNumber(value: number): Ipv4Address {
    return toIpv4(value);
  },

  read(bytes: Uint8Array, offset: number): Ipv4Address {
    return toIpv4((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3]);
  },

  write(address: Ipv4Address, bytes: Uint8Array, offset: number): void {
    bytes[offset] = address >>> 24;
    bytes[offset + 1] = address >>> 16;
    bytes[offset + 2] = address >>> 8;
    bytes[offset + 3] = address;
  },

  /** Parses a dotted quad of four decimal octets ("198.18.0.1"). */
  parse(text: string): Ipv4Address | WireError {
    const parts = text.length <= 15 ? text.split(".") : [];
    if (parts.length !== 4) return new WireError("malformed", `not a dotted-quad IPv4 address: ${JSON.stringify(text.slice(0, 40))}`);
    let value = 0;
    for (const part of parts) {
      const octet = parseDecimalOctet(part);
      if (octet === undefined) return new WireError("malformed", `bad IPv4 octet ${JSON.stringify(part)} in ${JSON.stringify(text)}`);
      value = value * 256 + octet;
    }
    return toIpv4(value);
  },

  format(address: Ipv4Address): string {
    return `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;
  },

  isUnspecified(address: Ipv4Address): boolean {
    return address === 0;
  },

  /** The limited broadcast address only; a subnet's directed broadcast needs its prefix (see Ipv4Cidr). */
  isBroadcast(address: Ipv4Address): boolean {
    return address === 0xffff_ffff;
  },

  /** 224.0.0.0/4 (RFC 1112 §4, RFC 5771). */
  isMulticast(address: Ipv4Address): boolean {
    return address >>> 28 === 0xe;
  },

  /** 127.0.0.0/8 (RFC 1122 §3.2.1.3 (g)). */
  isLoopback(address: Ipv4Address): boolean {
    return address >>> 24 === 127;
  },

  /** 169.254.0.0/16 (RFC 3927). */
  isLinkLocal(address: Ipv4Address): boolean {
    return address >>> 16 === 0xa9fe;
  },

  /**
   * Usable as the address of one host: not unspecified, not multicast, and not in the reserved
   * 240.0.0.0/4 (which holds the limited broadcast address; RFC 1112 §4, RFC 1122 §3.2.1.3).
   */
  isUnicast(address: Ipv4Address): boolean {
    return address !== 0 && address >>> 28 < 0xe;
  },
};

export const MacAddress = {
  /** ff:ff:ff:ff:ff:ff. */
  BROADCAST: toMac(TWO_TO_48 - 1),
  /** 00:00:00:00:00:00, e.g. the unknown target of an ARP request (RFC 826). */
  UNSPECIFIED: toMac(0),

  fromOctets(a: number, b: number, c: number, d: number, e: number, f: number): MacAddress {
    const high = ((a & 0xff) << 8) | (b & 0xff);
    const low = (((c & 0xff) << 24) | ((d & 0xff) << 16) | ((e & 0xff) << 8) | (f & 0xff)) >>> 0;
    return toMac(high * TWO_TO_32 + low);
  },

  /** Throws RangeError unless `value` is an integer in [0, 2^48): a caller bug, not bad input. */
  fromNumber(value: number): MacAddress {
    if (!Number.isInteger(value) || value < 0 || value >= TWO_TO_48) throw new RangeError(`not a 48-bit MAC address value: ${value}`);
    return toMac(value);
  },

  read(bytes: Uint8Array, offset: number): MacAddress {
    const high = (bytes[offset] << 8) | bytes[offset + 1];
    const low = ((bytes[offset + 2] << 24) | (bytes[offset + 3] << 16) | (bytes[offset + 4] << 8) | bytes[offset + 5]) >>> 0;
    return toMac(high * TWO_TO_32 + low);
  },

  write(address: MacAddress, bytes: Uint8Array, offset: number): void {
    const high = Math.floor(address / TWO_TO_32);
    const low = address >>> 0; // ToUint32 is the value modulo 2^32, exact for integers
    bytes[offset] = high >>> 8;
    bytes[offset + 1] = high;
    bytes[offset + 2] = low >>> 24;
    bytes[offset + 3] = low >>> 16;
    bytes[offset + 4] = low >>> 8;
    bytes[offset + 5] = low;
  },

  /** Parses six hex octets separated by ":" or "-" ("02:00:00:00:00:01"); one-digit octets are allowed. */
  parse(text: string): MacAddress | WireError {
    const parts = text.length <= 17 ? text.split(text.includes("-") ? "-" : ":") : [];
    if (parts.length !== 6) return new WireError("malformed", `not a MAC address: ${JSON.stringify(text.slice(0, 40))}`);
    let value = 0;
    for (const part of parts) {
      const octet = parseHexOctet(part);
      if (octet === undefined) return new WireError("malformed", `bad MAC octet ${JSON.stringify(part)} in ${JSON.stringify(text)}`);
      value = value * 256 + octet;
    }
    return toMac(value);
  },

  /** Lower-case hex, colon-separated. */
  format(address: MacAddress): string {
    let text = "";
    for (let shift = 40; shift >= 0; shift -= 8) {
      const octet = Math.floor(address / 2 ** shift) % 256;
      text += (octet < 16 ? "0" : "") + octet.toString(16) + (shift > 0 ? ":" : "");
    }
    return text;
  },

  isBroadcast(address: MacAddress): boolean {
    return address === TWO_TO_48 - 1;
  },

  /** The I/G bit, the least significant bit of the first octet (IEEE Std 802); broadcast is multicast too. */
  isMulticast(address: MacAddress): boolean {
    return (Math.floor(address / 2 ** 40) & 1) === 1;
  },

  isUnicast(address: MacAddress): boolean {
    return (Math.floor(address / 2 ** 40) & 1) === 0;
  },

  /** The U/L bit, the second least significant bit of the first octet (IEEE Std 802). */
  isLocallyAdministered(address: MacAddress): boolean {
    return (Math.floor(address / 2 ** 40) & 2) === 2;
  },

  /** The Ethernet group address for an IPv4 multicast group: 01:00:5e plus its low 23 bits (RFC 1112 §6.4). */
  forIpv4Multicast(group: Ipv4Address): MacAddress {
    return toMac(0x01_00_5e * 2 ** 24 + (group & 0x7f_ffff));
  },
};

/**
 * An IPv4 address with a prefix length, as configured on an interface ("198.18.0.2/24"): the
 * address keeps its host part, and `network`/`broadcast` derive the subnet's bounds.
 */
export class Ipv4Cidr {
  /** Throws RangeError unless 0 <= prefixLength <= 32: a caller bug; text goes through `parse`. */
  constructor(
    readonly address: Ipv4Address,
    readonly prefixLength: number,
  ) {
    if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32) {
      throw new RangeError(`IPv4 prefix length out of range: ${prefixLength}`);
    }
  }

  /** Parses "address/prefix-length", e.g. "198.18.0.2/24". */
  static parse(text: string): Ipv4Cidr | WireError {
    const slash = text.indexOf("/");
    if (slash < 0) return new WireError("malformed", `no "/prefix" in ${JSON.stringify(text.slice(0, 40))}`);
    const address = Ipv4Address.parse(text.slice(0, slash));
    if (address instanceof WireError) return address;
    const prefixText = text.slice(slash + 1);
    const prefixLength = /^(?:0|[1-9][0-9]?)$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefixLength <= 32)) return new WireError("malformed", `bad IPv4 prefix length ${JSON.stringify(prefixText.slice(0, 40))}`);
    return new Ipv4Cidr(address, prefixLength);
  }

  /**
   * From an address and a netmask, as DHCP delivers them (RFC 2132 §3.3); the mask must be
   * contiguous ones then zeros: RFC 950 only recommended that, CIDR (RFC 4632) requires it.
   */
  static fromNetmask(address: Ipv4Address, netmask: Ipv4Address): Ipv4Cidr | WireError {
    const inverted = ~netmask >>> 0;
    // A contiguous mask inverted is 2^k - 1, so adding one leaves no bit in common with it.
    if ((inverted & (inverted + 1)) !== 0) {
      return new WireError("malformed", `non-contiguous netmask ${Ipv4Address.format(netmask)}`);
    }
    let prefixLength = 32;
    for (let hostBits = inverted; hostBits !== 0; hostBits >>>= 1) prefixLength--;
    return new Ipv4Cidr(address, prefixLength);
  }

  get netmask(): Ipv4Address {
    // A shift count of 32 is taken modulo 32 in JavaScript, so /0 needs its own case.
    return toIpv4(this.prefixLength === 0 ? 0 : 0xffff_ffff << (32 - this.prefixLength));
  }

  get network(): Ipv4Address {
    return toIpv4(this.address & this.netmask);
  }

  /**
   * The directed broadcast address, all host bits set (RFC 1122 §3.2.1.3 (d), (e)). A /31 (RFC 3021)
   * or /32 has no broadcast address: `isBroadcast` is false for every address there.
   */
  get broadcast(): Ipv4Address {
    return toIpv4(this.address | ~this.netmask);
  }

  contains(address: Ipv4Address): boolean {
    return ((address ^ this.address) & this.netmask) === 0;
  }

  /** True for this subnet's directed broadcast address (prefixes shorter than /31 only). */
  isBroadcast(address: Ipv4Address): boolean {
    return this.prefixLength < 31 && address === this.broadcast;
  }

  toString(): string {
    return `${Ipv4Address.format(this.address)}/${this.prefixLength}`;
  }
}

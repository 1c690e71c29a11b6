/**
 * The PROXY protocol, version 2 (HAProxy's "The PROXY protocol", §2.2): a binary header that a
 * proxy sends at the start of a connection it relays, naming the connection's original source
 * and destination, so that the server sees the real client. Atoll's user-mode gateway sends one
 * on each connection it carries from a published port (`atoll run -p`), and the TCP layer
 * consumes it on connections from the gateway's address (see net/tcp/proxy-header.ts).
 *
 * Layout (network byte order):
 *
 *   0..11   signature  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
 *   12      version (high nibble, 2) and command (low nibble: 0 LOCAL, 1 PROXY)
 *   13      address family (high nibble: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) and transport
 *           protocol (low nibble: 0 UNSPEC, 1 STREAM, 2 DGRAM)
 *   14..15  length of what follows: the addresses, then TLVs
 *   16..    INET: source address (4), destination address (4), source port (2), destination port (2)
 *           INET6: 16 + 16 + 2 + 2; UNIX: 108 + 108
 *
 * `ProxyHeaderRepr.parse` works on a prefix of a stream: it says how many bytes it needs while
 * the header is incomplete, and never throws on any input.
 */
import { Ipv4Address } from "./address.ts";
import { readU16, requireRoom, writeU16 } from "./bytes.ts";
import { WireError } from "./error.ts";

export const PROXY_V2_SIGNATURE: Readonly<Uint8Array> = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
/** Signature, version and command, family and transport, length. */
export const PROXY_V2_FIXED_LENGTH = 16;
/** The address block's size for each family (§2.2). */
const ADDRESS_LENGTH = { unspec: 0, inet: 12, inet6: 36, unix: 216 } as const;

export type ProxyCommand = "local" | "proxy";
export type ProxyFamily = keyof typeof ADDRESS_LENGTH;
export type ProxyTransport = "unspec" | "stream" | "dgram";

const FAMILIES: readonly ProxyFamily[] = ["unspec", "inet", "inet6", "unix"];
const TRANSPORTS: readonly ProxyTransport[] = ["unspec", "stream", "dgram"];

export interface ProxyEndpoint {
  readonly address: Ipv4Address;
  readonly port: number;
}

export interface ProxyHeaderRepr {
  /** LOCAL: the proxy's own connection (a health check): use the connection's real endpoints. */
  readonly command: ProxyCommand;
  readonly family: ProxyFamily;
  readonly transport: ProxyTransport;
  /** The original client and server, for an INET header (undefined for the other families, which Atoll does not speak). */
  readonly source: ProxyEndpoint | undefined;
  readonly destination: ProxyEndpoint | undefined;
  /** The TLV bytes after the addresses, unparsed (§2.2.7); empty when none. */
  readonly tlvs: Uint8Array;
}

/** A header not yet complete: at least `needed` bytes in all are required to tell more. */
export interface ProxyHeaderIncomplete {
  readonly incomplete: true;
  readonly needed: number;
}

export interface ProxyHeaderParsed {
  readonly incomplete: false;
  readonly header: ProxyHeaderRepr;
  /** The header's whole length: the stream's own data starts there. */
  readonly length: number;
}

/**
 * A view over the fixed part of a header and what follows. Call `ProxyHeaderRepr.parse` (which
 * checks signature, fields and lengths) before trusting the accessors on bytes from a peer.
 */
export class ProxyHeaderPacket {
  constructor(readonly bytes: Uint8Array) {}

  get version(): number {
    return (this.bytes[12] ?? 0) >> 4;
  }
  get commandCode(): number {
    return (this.bytes[12] ?? 0) & 0x0f;
  }
  get familyCode(): number {
    return (this.bytes[13] ?? 0) >> 4;
  }
  get transportCode(): number {
    return (this.bytes[13] ?? 0) & 0x0f;
  }
  /** Bytes after the fixed part: addresses and TLVs. */
  get restLength(): number {
    return readU16(this.bytes, 14);
  }
  /** The whole header's length. */
  get length(): number {
    return PROXY_V2_FIXED_LENGTH + this.restLength;
  }
  /** INET only. */
  get sourceAddress(): Ipv4Address {
    return Ipv4Address.read(this.bytes, PROXY_V2_FIXED_LENGTH);
  }
  get destinationAddress(): Ipv4Address {
    return Ipv4Address.read(this.bytes, PROXY_V2_FIXED_LENGTH + 4);
  }
  get sourcePort(): number {
    return readU16(this.bytes, PROXY_V2_FIXED_LENGTH + 8);
  }
  get destinationPort(): number {
    return readU16(this.bytes, PROXY_V2_FIXED_LENGTH + 10);
  }
}

export const ProxyHeaderRepr = {
  /**
   * Parses a header at the start of `bytes` (a stream's first bytes, possibly not all of them
   * yet). A prefix that cannot start a valid header fails at once (a wrong signature byte, an
   * unknown version, command, family or transport, a length too short for its addresses), so a
   * receiver never waits on garbage. Never throws.
   */
  parse(bytes: Uint8Array, maxLength = PROXY_V2_FIXED_LENGTH + 0xffff): ProxyHeaderParsed | ProxyHeaderIncomplete | WireError {
    const signatureBytes = Math.min(bytes.length, PROXY_V2_SIGNATURE.length);
    for (let i = 0; i < signatureBytes; i++) {
      if (bytes[i] !== PROXY_V2_SIGNATURE[i]) return new WireError("malformed", "proxy: no PROXY protocol v2 signature");
    }
    if (bytes.length < PROXY_V2_FIXED_LENGTH) return { incomplete: true, needed: PROXY_V2_FIXED_LENGTH };
    const packet = new ProxyHeaderPacket(bytes);
    if (packet.version !== 2) return new WireError("bad-version", `proxy: version ${packet.version}, expected 2`);
    if (packet.commandCode > 1) return new WireError("malformed", `proxy: unknown command ${packet.commandCode}`);
    const family = FAMILIES[packet.familyCode];
    const transport = TRANSPORTS[packet.transportCode];
    if (family === undefined || transport === undefined) return new WireError("malformed", `proxy: unknown family ${packet.familyCode} or transport ${packet.transportCode}`);
    const restLength = packet.restLength;
    const length = packet.length;
    if (length > maxLength) return new WireError("bad-length", `proxy: header of ${length} bytes above the limit of ${maxLength}`);
    const command: ProxyCommand = packet.commandCode === 0 ? "local" : "proxy";
    // LOCAL may carry any family's block, or none; PROXY must carry its family's addresses.
    const addressLength = ADDRESS_LENGTH[family];
    if (command === "proxy" && restLength < addressLength) return new WireError("bad-length", `proxy: length ${restLength} below the ${addressLength} bytes of ${family} addresses`);
    if (bytes.length < length) return { incomplete: true, needed: length };
    const inet = family === "inet" && restLength >= addressLength;
    const header: ProxyHeaderRepr = {
      command,
      family,
      transport,
      source: inet ? { address: packet.sourceAddress, port: packet.sourcePort } : undefined,
      destination: inet ? { address: packet.destinationAddress, port: packet.destinationPort } : undefined,
      tlvs: bytes.slice(PROXY_V2_FIXED_LENGTH + Math.min(addressLength, restLength), length),
    };
    return { incomplete: false, header, length };
  },

  /** Size of the header `emit` writes: the fixed part, the INET addresses if any, the TLVs. */
  bufferLength(repr: ProxyHeaderRepr): number {
    return PROXY_V2_FIXED_LENGTH + (repr.source !== undefined ? ADDRESS_LENGTH.inet : 0) + repr.tlvs.length;
  },

  /**
   * Writes the header into the start of `into`. Atoll emits INET addresses only: a repr with
   * endpoints must have family "inet"; one without must be LOCAL or of family "unspec". Throws
   * RangeError on a repr that breaks these rules or does not fit.
   */
  emit(repr: ProxyHeaderRepr, into: Uint8Array): void {
    const withAddresses = repr.source !== undefined && repr.destination !== undefined;
    if ((repr.source === undefined) !== (repr.destination === undefined)) throw new RangeError("proxy: source and destination go together");
    if (withAddresses !== (repr.family === "inet")) throw new RangeError(`proxy: family ${repr.family} ${withAddresses ? "with" : "without"} INET addresses`);
    if (!withAddresses && repr.command === "proxy" && repr.family !== "unspec") throw new RangeError(`proxy: a PROXY header of family ${repr.family} needs its addresses`);
    const length = ProxyHeaderRepr.bufferLength(repr);
    if (length - PROXY_V2_FIXED_LENGTH > 0xffff) throw new RangeError(`proxy: ${length - PROXY_V2_FIXED_LENGTH} bytes after the fixed part, above 65535`);
    requireRoom("proxy", into, length);
    into.set(PROXY_V2_SIGNATURE, 0);
    into[12] = 0x20 | (repr.command === "local" ? 0 : 1);
    into[13] = (FAMILIES.indexOf(repr.family) << 4) | TRANSPORTS.indexOf(repr.transport);
    writeU16(into, 14, length - PROXY_V2_FIXED_LENGTH);
    let at = PROXY_V2_FIXED_LENGTH;
    if (repr.source !== undefined && repr.destination !== undefined) {
      for (const port of [repr.source.port, repr.destination.port]) {
        if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`proxy: port ${port} is not 0-65535`);
      }
      Ipv4Address.write(repr.source.address, into, at);
      Ipv4Address.write(repr.destination.address, into, at + 4);
      writeU16(into, at + 8, repr.source.port);
      writeU16(into, at + 10, repr.destination.port);
      at += ADDRESS_LENGTH.inet;
    }
    into.set(repr.tlvs, at);
  },
};

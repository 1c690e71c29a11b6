/**
 * DHCP messages (RFC 2131) with the options of RFC 2132 that a client needs, for Ethernet
 * clients only (htype 1, hlen 6). Options the repr does not name are kept raw, in order.
 *
 * An option may be split into several instances, which are concatenated (RFC 3396 §7); emit
 * does the split for data longer than 255 bytes. The overload option (52), which moves options
 * into the sname and file fields, is "unsupported"; sname and file are read as strings.
 */
import { Ipv4Address, MacAddress } from "./address.ts";
import { readU16, readU32, requireRoom, writeU16, writeU32 } from "./bytes.ts";
import { WireError } from "./error.ts";

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
/** 99.130.83.99, the first four bytes of the options field (RFC 2131 §3, RFC 1497). */
export const DHCP_MAGIC_COOKIE = 0x63825363;
/** Fixed BOOTP fields plus the magic cookie; options follow (RFC 2131 §2, Figure 1). */
export const DHCP_OPTIONS_OFFSET = 240;
/** BOOTP relay agents may drop messages shorter than the 300 bytes of RFC 951 (RFC 1542 §2.1). */
export const DHCP_MIN_MESSAGE_LENGTH = 300;

/** Option codes (RFC 2132; section numbers on each). */
export const DhcpOptionCode = {
  /** §3.1 */ Pad: 0,
  /** §3.3 */ SubnetMask: 1,
  /** §3.5 */ Router: 3,
  /** §3.8 */ DomainNameServer: 6,
  /** §3.14 */ HostName: 12,
  /** §9.1 */ RequestedAddress: 50,
  /** §9.2 */ LeaseTime: 51,
  /** §9.3 */ Overload: 52,
  /** §9.6 */ MessageType: 53,
  /** §9.7 */ ServerIdentifier: 54,
  /** §9.8 */ ParameterRequestList: 55,
  /** §9.10 */ MaxMessageSize: 57,
  /** §9.11 */ RenewalTime: 58,
  /** §9.12 */ RebindingTime: 59,
  /** §9.14 */ ClientIdentifier: 61,
  /** §3.2 */ End: 255,
} as const;

/** Message type option values 1..8, in order (RFC 2132 §9.6). */
const MESSAGE_TYPES = ["discover", "offer", "request", "decline", "ack", "nak", "release", "inform"] as const;
export type DhcpMessageType = (typeof MESSAGE_TYPES)[number];

const BOOT_REQUEST = 1;
const BOOT_REPLY = 2;
const HARDWARE_TYPE_ETHERNET = 1;
/** RFC 2131 §2: the leftmost bit of flags; the others must be zero. */
const FLAG_BROADCAST = 0x8000;
/** RFC 2132 §9.10: a client must accept at least 576-byte datagrams. */
const MIN_MAX_MESSAGE_SIZE = 576;

const OP = 0;
const HTYPE = 1;
const HLEN = 2;
const HOPS = 3;
const XID = 4;
const SECS = 8;
const FLAGS = 10;
const CIADDR = 12;
const YIADDR = 16;
const SIADDR = 20;
const GIADDR = 24;
const CHADDR = 28;
const CHADDR_LENGTH = 16;
const SNAME = 44;
const SNAME_LENGTH = 64;
const FILE = 108;
const FILE_LENGTH = 128;
const MAGIC_COOKIE = 236;

/** A view over a DHCP message. Call `check` before the accessors on bytes from the network. */
export class DhcpPacket {
  constructor(readonly bytes: Uint8Array) {}

  /** Validates only that the fixed fields and the magic cookie fit. */
  static check(bytes: Uint8Array): DhcpPacket | WireError {
    if (bytes.length < DHCP_OPTIONS_OFFSET) {
      return new WireError("truncated", `dhcp: ${bytes.length} bytes, fixed fields need ${DHCP_OPTIONS_OFFSET}`);
    }
    return new DhcpPacket(bytes);
  }

  /** 1 BOOTREQUEST (client to server), 2 BOOTREPLY. */
  get op(): number {
    return this.bytes[OP];
  }
  set op(value: number) {
    this.bytes[OP] = value;
  }

  get hardwareType(): number {
    return this.bytes[HTYPE];
  }
  set hardwareType(value: number) {
    this.bytes[HTYPE] = value;
  }

  get hardwareLength(): number {
    return this.bytes[HLEN];
  }
  set hardwareLength(value: number) {
    this.bytes[HLEN] = value;
  }

  get hops(): number {
    return this.bytes[HOPS];
  }
  set hops(value: number) {
    this.bytes[HOPS] = value;
  }

  /** xid */
  get transactionId(): number {
    return readU32(this.bytes, XID);
  }
  set transactionId(value: number) {
    writeU32(this.bytes, XID, value);
  }

  get secs(): number {
    return readU16(this.bytes, SECS);
  }
  set secs(value: number) {
    writeU16(this.bytes, SECS, value);
  }

  get flags(): number {
    return readU16(this.bytes, FLAGS);
  }
  set flags(value: number) {
    writeU16(this.bytes, FLAGS, value);
  }

  /** ciaddr */
  get clientAddress(): Ipv4Address {
    return Ipv4Address.read(this.bytes, CIADDR);
  }
  set clientAddress(address: Ipv4Address) {
    Ipv4Address.write(address, this.bytes, CIADDR);
  }

  /** yiaddr */
  get yourAddress(): Ipv4Address {
    return Ipv4Address.read(this.bytes, YIADDR);
  }
  set yourAddress(address: Ipv4Address) {
    Ipv4Address.write(address, this.bytes, YIADDR);
  }

  /** siaddr: the next server in bootstrap, not necessarily the DHCP server (see option 54). */
  get serverAddress(): Ipv4Address {
    return Ipv4Address.read(this.bytes, SIADDR);
  }
  set serverAddress(address: Ipv4Address) {
    Ipv4Address.write(address, this.bytes, SIADDR);
  }

  /** giaddr */
  get relayAgentAddress(): Ipv4Address {
    return Ipv4Address.read(this.bytes, GIADDR);
  }
  set relayAgentAddress(address: Ipv4Address) {
    Ipv4Address.write(address, this.bytes, GIADDR);
  }

  /** The first 6 bytes of chaddr: meaningful when hardwareLength is 6. */
  get clientHardwareAddress(): MacAddress {
    return MacAddress.read(this.bytes, CHADDR);
  }
  set clientHardwareAddress(address: MacAddress) {
    MacAddress.write(address, this.bytes, CHADDR);
  }

  /** The raw 16-byte chaddr field: an Ethernet client fills the first 6 and zeroes the rest. */
  get clientHardwareField(): Uint8Array {
    return this.bytes.subarray(CHADDR, CHADDR + CHADDR_LENGTH);
  }

  /** The raw 64-byte sname field. */
  get serverNameField(): Uint8Array {
    return this.bytes.subarray(SNAME, SNAME + SNAME_LENGTH);
  }

  /** The raw 128-byte file field. */
  get bootFileField(): Uint8Array {
    return this.bytes.subarray(FILE, FILE + FILE_LENGTH);
  }

  get magicCookie(): number {
    return readU32(this.bytes, MAGIC_COOKIE);
  }
  set magicCookie(value: number) {
    writeU32(this.bytes, MAGIC_COOKIE, value);
  }

  /** The options after the magic cookie, up to the end of the buffer (End and padding included). */
  get options(): Uint8Array {
    return this.bytes.subarray(DHCP_OPTIONS_OFFSET);
  }
}

/** An option as code and data, without its length byte. */
export interface DhcpOption {
  code: number;
  data: Uint8Array;
}

export interface DhcpRepr {
  /** op: "boot-request" from client to server, "boot-reply" back (RFC 2131 §2). */
  operation: "boot-request" | "boot-reply";
  /** Option 53, required in every DHCP message (RFC 2131 §3). */
  messageType: DhcpMessageType;
  /** xid, chosen by the client. */
  transactionId: number;
  /** Seconds since the client began acquiring or renewing. */
  secs: number;
  /** Ask the server to broadcast its reply (RFC 2131 §4.1). */
  broadcast: boolean;
  /** Relay hops; clients send 0. */
  hops: number;
  /** ciaddr: the client's address when it already has one (BOUND, RENEWING, REBINDING). */
  clientAddress: Ipv4Address;
  /** yiaddr: the address offered or assigned. */
  yourAddress: Ipv4Address;
  /** siaddr: the next bootstrap server. */
  serverAddress: Ipv4Address;
  /** giaddr: the relay agent's address. */
  relayAgentAddress: Ipv4Address;
  /** chaddr */
  clientHardwareAddress: MacAddress;
  /** sname up to its first NUL, absent when empty; bytes as code points 0..255, at most 64. */
  serverName?: string;
  /** file up to its first NUL, absent when empty; bytes as code points 0..255, at most 128. */
  bootFileName?: string;

  /** Option 1. */
  subnetMask?: Ipv4Address;
  /** Option 3, in order of preference; at least one. */
  routers?: Ipv4Address[];
  /** Option 6, in order of preference; at least one. */
  dnsServers?: Ipv4Address[];
  /**
   * Option 12, at least one character. Bytes map to code points 0..255 (Latin-1) so that every
   * byte string round-trips; hostnames are ASCII in practice (RFC 2132 §3.14 refers to RFC 1035).
   */
  hostname?: string;
  /** Option 50. */
  requestedAddress?: Ipv4Address;
  /** Option 51, seconds; 0xffffffff means infinite. */
  leaseTime?: number;
  /** Option 54. */
  serverIdentifier?: Ipv4Address;
  /** Option 55: option codes, at least one. */
  parameterRequestList?: number[];
  /** Option 57, at least 576. */
  maxMessageSize?: number;
  /** Option 58, T1 in seconds. */
  renewalTime?: number;
  /** Option 59, T2 in seconds. */
  rebindingTime?: number;
  /** Option 61: a type byte then the identifier, at least 2 bytes. */
  clientIdentifier?: Uint8Array;
  /** Every other option, in order of first appearance, with split instances joined. */
  otherOptions?: DhcpOption[];
}

/** Codes with a field of their own in DhcpRepr (or a meaning to the parser): never in otherOptions. */
const DEDICATED_CODES: ReadonlySet<number> = new Set(Object.values(DhcpOptionCode));

function decodeLatin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
  return text;
}

/** The field's text up to its first NUL (RFC 2131 §2: sname and file are "null terminated"). */
function decodeNulTerminated(field: Uint8Array): string {
  const nul = field.indexOf(0);
  return decodeLatin1(nul < 0 ? field : field.subarray(0, nul));
}

function encodeLatin1(what: string, text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new RangeError(`dhcp: ${what} has a character above U+00FF`);
    bytes[i] = code;
  }
  return bytes;
}

function concatenate(first: Uint8Array, second: Uint8Array): Uint8Array {
  const joined = new Uint8Array(first.length + second.length);
  joined.set(first, 0);
  joined.set(second, first.length);
  return joined;
}

/**
 * Walks the options field into code -> data, joining split instances (RFC 3396 §7). Stops at
 * End; a field that runs out without one is accepted, padding included (RFC 2132 §3.2 asks
 * for End, but the information before it is complete).
 */
function collectOptions(options: Uint8Array): Map<number, Uint8Array> | WireError {
  const collected = new Map<number, Uint8Array>();
  let at = 0;
  while (at < options.length) {
    const code = options[at];
    if (code === DhcpOptionCode.Pad) {
      at += 1;
      continue;
    }
    if (code === DhcpOptionCode.End) break;
    if (at + 2 > options.length) return new WireError("truncated", `dhcp: option ${code} has no length byte`);
    const length = options[at + 1];
    const end = at + 2 + length;
    if (end > options.length) return new WireError("truncated", `dhcp: option ${code} of length ${length} runs past the message`);
    const data = options.subarray(at + 2, end);
    const earlier = collected.get(code);
    collected.set(code, earlier === undefined ? data : concatenate(earlier, data));
    at = end;
  }
  return collected;
}

function badLength(what: string, length: number): WireError {
  return new WireError("bad-length", `dhcp: ${what} option of length ${length}`);
}

function decodeAddress(what: string, data: Uint8Array): Ipv4Address | WireError {
  return data.length === 4 ? Ipv4Address.read(data, 0) : badLength(what, data.length);
}

function decodeAddressList(what: string, data: Uint8Array): Ipv4Address[] | WireError {
  if (data.length === 0 || data.length % 4 !== 0) return badLength(what, data.length);
  const addresses: Ipv4Address[] = [];
  for (let at = 0; at < data.length; at += 4) addresses.push(Ipv4Address.read(data, at));
  return addresses;
}

function decodeSeconds(what: string, data: Uint8Array): number | WireError {
  return data.length === 4 ? readU32(data, 0) : badLength(what, data.length);
}

/** Bytes taken by an option of `dataLength` bytes, split in instances of at most 255 (RFC 3396 §5). */
function encodedOptionLength(dataLength: number): number {
  const instances = dataLength === 0 ? 1 : Math.ceil(dataLength / 255);
  return 2 * instances + dataLength;
}

/** Writes an option at `at`, split as needed; returns the offset after it. */
function writeOption(into: Uint8Array, at: number, code: number, data: Uint8Array): number {
  let written = 0;
  do {
    const length = Math.min(255, data.length - written);
    into[at] = code;
    into[at + 1] = length;
    into.set(data.subarray(written, written + length), at + 2);
    at += 2 + length;
    written += length;
  } while (written < data.length);
  return at;
}

function addressBytes(addresses: readonly Ipv4Address[]): Uint8Array {
  const bytes = new Uint8Array(addresses.length * 4);
  addresses.forEach((address, index) => Ipv4Address.write(address, bytes, index * 4));
  return bytes;
}

function u32Bytes(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  writeU32(bytes, 0, value);
  return bytes;
}

function requireRange(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`dhcp: ${what} ${value} outside ${min}..${max}`);
}

function requireNonEmpty(what: string, length: number, min: number): void {
  if (length < min) throw new RangeError(`dhcp: ${what} needs at least ${min} entries or bytes, has ${length}`);
}

/**
 * The repr's options as (code, data) in emit order: message type first, as many servers
 * expect, then the rest; built once so bufferLength and emit agree. Throws RangeError for values
 * that would parse back differently (empty lists, codes with a field of their own in otherOptions).
 */
function encodeOptions(repr: DhcpRepr): DhcpOption[] {
  const options: DhcpOption[] = [
    { code: DhcpOptionCode.MessageType, data: Uint8Array.of(MESSAGE_TYPES.indexOf(repr.messageType) + 1) },
  ];
  const add = (code: number, data: Uint8Array): void => {
    options.push({ code, data });
  };
  if (repr.clientIdentifier !== undefined) {
    requireNonEmpty("client identifier", repr.clientIdentifier.length, 2);
    add(DhcpOptionCode.ClientIdentifier, repr.clientIdentifier);
  }
  if (repr.requestedAddress !== undefined) add(DhcpOptionCode.RequestedAddress, addressBytes([repr.requestedAddress]));
  if (repr.serverIdentifier !== undefined) add(DhcpOptionCode.ServerIdentifier, addressBytes([repr.serverIdentifier]));
  if (repr.leaseTime !== undefined) add(DhcpOptionCode.LeaseTime, u32Bytes(repr.leaseTime));
  if (repr.renewalTime !== undefined) add(DhcpOptionCode.RenewalTime, u32Bytes(repr.renewalTime));
  if (repr.rebindingTime !== undefined) add(DhcpOptionCode.RebindingTime, u32Bytes(repr.rebindingTime));
  if (repr.subnetMask !== undefined) add(DhcpOptionCode.SubnetMask, addressBytes([repr.subnetMask]));
  if (repr.routers !== undefined) {
    requireNonEmpty("routers", repr.routers.length, 1);
    add(DhcpOptionCode.Router, addressBytes(repr.routers));
  }
  if (repr.dnsServers !== undefined) {
    requireNonEmpty("DNS servers", repr.dnsServers.length, 1);
    add(DhcpOptionCode.DomainNameServer, addressBytes(repr.dnsServers));
  }
  if (repr.hostname !== undefined) {
    requireNonEmpty("hostname", repr.hostname.length, 1);
    add(DhcpOptionCode.HostName, encodeLatin1("hostname", repr.hostname));
  }
  if (repr.maxMessageSize !== undefined) {
    requireRange("max message size", repr.maxMessageSize, MIN_MAX_MESSAGE_SIZE, 0xffff);
    const data = new Uint8Array(2);
    writeU16(data, 0, repr.maxMessageSize);
    add(DhcpOptionCode.MaxMessageSize, data);
  }
  if (repr.parameterRequestList !== undefined) {
    requireNonEmpty("parameter request list", repr.parameterRequestList.length, 1);
    add(DhcpOptionCode.ParameterRequestList, Uint8Array.from(repr.parameterRequestList));
  }
  for (const option of repr.otherOptions ?? []) {
    requireRange("option code", option.code, 1, 254);
    if (DEDICATED_CODES.has(option.code)) throw new RangeError(`dhcp: option ${option.code} has a field of its own`);
    add(option.code, option.data);
  }
  return options;
}

function encodedLength(options: readonly DhcpOption[]): number {
  let length = DHCP_OPTIONS_OFFSET + 1; // + End
  for (const option of options) length += encodedOptionLength(option.data.length);
  return Math.max(length, DHCP_MIN_MESSAGE_LENGTH);
}

export const DhcpRepr = {
  /**
   * Validates the fixed fields, the magic cookie and every option length; a message without a
   * message type option is "malformed" (it would be plain BOOTP).
   */
  parse(input: Uint8Array | DhcpPacket): DhcpRepr | WireError {
    const packet = DhcpPacket.check(input instanceof DhcpPacket ? input.bytes : input);
    if (packet instanceof WireError) return packet;
    const op = packet.op;
    if (op !== BOOT_REQUEST && op !== BOOT_REPLY) return new WireError("malformed", `dhcp: op ${op}`);
    if (packet.hardwareType !== HARDWARE_TYPE_ETHERNET || packet.hardwareLength !== 6) {
      return new WireError("unsupported", `dhcp: hardware type ${packet.hardwareType} length ${packet.hardwareLength}`);
    }
    if (packet.magicCookie !== DHCP_MAGIC_COOKIE) {
      return new WireError("unsupported", `dhcp: magic cookie 0x${packet.magicCookie.toString(16)} (BOOTP vendor area?)`);
    }
    const options = collectOptions(packet.options);
    if (options instanceof WireError) return options;
    if (options.has(DhcpOptionCode.Overload)) return new WireError("unsupported", "dhcp: option overload (52)");

    const messageTypeData = options.get(DhcpOptionCode.MessageType);
    if (messageTypeData === undefined) return new WireError("malformed", "dhcp: no message type option");
    if (messageTypeData.length !== 1) return badLength("message type", messageTypeData.length);
    const messageType = MESSAGE_TYPES[messageTypeData[0] - 1];
    if (messageType === undefined) return new WireError("unsupported", `dhcp: message type ${messageTypeData[0]}`);

    const repr: DhcpRepr = {
      operation: op === BOOT_REQUEST ? "boot-request" : "boot-reply",
      messageType,
      transactionId: packet.transactionId,
      secs: packet.secs,
      broadcast: (packet.flags & FLAG_BROADCAST) !== 0,
      hops: packet.hops,
      clientAddress: packet.clientAddress,
      yourAddress: packet.yourAddress,
      serverAddress: packet.serverAddress,
      relayAgentAddress: packet.relayAgentAddress,
      clientHardwareAddress: packet.clientHardwareAddress,
    };
    const serverName = decodeNulTerminated(packet.serverNameField);
    if (serverName !== "") repr.serverName = serverName;
    const bootFileName = decodeNulTerminated(packet.bootFileField);
    if (bootFileName !== "") repr.bootFileName = bootFileName;

    for (const [code, data] of options) {
      switch (code) {
        case DhcpOptionCode.MessageType:
          break;
        case DhcpOptionCode.SubnetMask: {
          const value = decodeAddress("subnet mask", data);
          if (value instanceof WireError) return value;
          repr.subnetMask = value;
          break;
        }
        case DhcpOptionCode.Router: {
          const value = decodeAddressList("router", data);
          if (value instanceof WireError) return value;
          repr.routers = value;
          break;
        }
        case DhcpOptionCode.DomainNameServer: {
          const value = decodeAddressList("DNS server", data);
          if (value instanceof WireError) return value;
          repr.dnsServers = value;
          break;
        }
        case DhcpOptionCode.HostName:
          if (data.length === 0) return badLength("hostname", 0);
          repr.hostname = decodeLatin1(data);
          break;
        case DhcpOptionCode.RequestedAddress: {
          const value = decodeAddress("requested address", data);
          if (value instanceof WireError) return value;
          repr.requestedAddress = value;
          break;
        }
        case DhcpOptionCode.LeaseTime: {
          const value = decodeSeconds("lease time", data);
          if (value instanceof WireError) return value;
          repr.leaseTime = value;
          break;
        }
        case DhcpOptionCode.ServerIdentifier: {
          const value = decodeAddress("server identifier", data);
          if (value instanceof WireError) return value;
          repr.serverIdentifier = value;
          break;
        }
        case DhcpOptionCode.ParameterRequestList:
          if (data.length === 0) return badLength("parameter request list", 0);
          repr.parameterRequestList = Array.from(data);
          break;
        case DhcpOptionCode.MaxMessageSize: {
          if (data.length !== 2) return badLength("max message size", data.length);
          const size = readU16(data, 0);
          if (size < MIN_MAX_MESSAGE_SIZE) return new WireError("malformed", `dhcp: max message size ${size} below 576`);
          repr.maxMessageSize = size;
          break;
        }
        case DhcpOptionCode.RenewalTime: {
          const value = decodeSeconds("renewal time", data);
          if (value instanceof WireError) return value;
          repr.renewalTime = value;
          break;
        }
        case DhcpOptionCode.RebindingTime: {
          const value = decodeSeconds("rebinding time", data);
          if (value instanceof WireError) return value;
          repr.rebindingTime = value;
          break;
        }
        case DhcpOptionCode.ClientIdentifier:
          if (data.length < 2) return badLength("client identifier", data.length);
          repr.clientIdentifier = data;
          break;
        default:
          (repr.otherOptions ??= []).push({ code, data });
      }
    }
    return repr;
  },

  /** Size of the whole message, which `emit` writes entirely: at least 300 bytes (RFC 1542 §2.1). */
  bufferLength(repr: DhcpRepr): number {
    return encodedLength(encodeOptions(repr));
  },

  /**
   * Writes the whole message into the start of `into`: fixed fields, cookie, options, End, and
   * zero padding up to 300 bytes. Throws RangeError if `into` is too short or a field is out
   * of range (see DhcpRepr's field comments).
   */
  emit(repr: DhcpRepr, into: Uint8Array): void {
    const options = encodeOptions(repr);
    const length = encodedLength(options);
    requireRoom("dhcp", into, length);
    const serverName = encodeLatin1("server name", repr.serverName ?? "");
    const bootFileName = encodeLatin1("boot file name", repr.bootFileName ?? "");
    if (serverName.length > SNAME_LENGTH) throw new RangeError(`dhcp: server name longer than ${SNAME_LENGTH}`);
    if (bootFileName.length > FILE_LENGTH) throw new RangeError(`dhcp: boot file name longer than ${FILE_LENGTH}`);

    const message = into.subarray(0, length);
    message.fill(0); // chaddr padding, sname, file, and the padding after End
    const packet = new DhcpPacket(message);
    packet.op = repr.operation === "boot-request" ? BOOT_REQUEST : BOOT_REPLY;
    packet.hardwareType = HARDWARE_TYPE_ETHERNET;
    packet.hardwareLength = 6;
    packet.hops = repr.hops;
    packet.transactionId = repr.transactionId;
    packet.secs = repr.secs;
    packet.flags = repr.broadcast ? FLAG_BROADCAST : 0;
    packet.clientAddress = repr.clientAddress;
    packet.yourAddress = repr.yourAddress;
    packet.serverAddress = repr.serverAddress;
    packet.relayAgentAddress = repr.relayAgentAddress;
    packet.clientHardwareAddress = repr.clientHardwareAddress;
    message.set(serverName, SNAME);
    message.set(bootFileName, FILE);
    packet.magicCookie = DHCP_MAGIC_COOKIE;
    let at = DHCP_OPTIONS_OFFSET;
    for (const option of options) at = writeOption(message, at, option.code, option.data);
    message[at] = DhcpOptionCode.End;
  },
};

/**
 * The host the frame fuzzer drives and the link around it: its address, MAC and MTU, its peers,
 * and the ports its UDP sockets listen on. Addresses from 198.18.0.0/15 (RFC 2544), as everywhere
 * in Atoll's tests. Shared by the generator, the mutator, the oracle and the fuzzer.
 */
import { parseIpv4Config, type Ipv4Config } from "atoll/net";
import { Ipv4Address, MacAddress } from "atoll/wire/address";

export function ip(a: number, b: number, c: number, d: number): Ipv4Address {
  return Ipv4Address.fromOctets(a, b, c, d);
}

function configFor(text: string): Ipv4Config {
  const parsed = parseIpv4Config(text);
  if (typeof parsed === "string") throw new Error(`fuzz host: ${parsed}`);
  return parsed;
}

export const OUR_MAC = MacAddress.fromOctets(2, 0, 0, 0, 0, 2);
export const CONFIG = configFor("198.18.0.2/24@198.18.0.1");
export const OURS = CONFIG.cidr.address;
export const GATEWAY = ip(198, 18, 0, 1);
export const SUBNET_BROADCAST = ip(198, 18, 0, 255);
export const NETWORK = ip(198, 18, 0, 0);
export const OFF_LINK = ip(198, 19, 7, 7);
export const PEERS = 24;
export const MTU = 1500;
/** The largest frame a TAP hands the tender (it truncates longer ones): MTU + header + one VLAN tag. */
export const MAX_FRAME = MTU + 18;
/** A UDP echo. */
export const ECHO_PORT = 7;
/** A socket whose queue nobody reads (queueFull). */
export const QUEUE_PORT = 8;
/** A socket read through async iteration, as an application would. */
export const READ_PORT = 10;
/** A port whose socket the fuzzer opens and closes. */
export const CLOSED_PORT = 9;

/** Peer n (0 is the gateway): an address on our subnet and a MAC. */
export function peerAddress(n: number): Ipv4Address {
  return n === 0 ? GATEWAY : ip(198, 18, 0, 10 + n);
}
export function peerMac(n: number): MacAddress {
  return MacAddress.fromOctets(2, 0, 0, 0, 0xee, n);
}

/** The frames the stack sent lately, which the generator answers and quotes. */
export interface SentFrames {
  /** Recent frames the stack sent (copies). */
  readonly sent: readonly Uint8Array[];
  /** Recent ARP and echo requests among them: what a peer would answer. */
  readonly solicitations: readonly Uint8Array[];
}

/**
 * The set-up every in-process frame test shares: a Stack on a virtual link and a virtual clock,
 * with a seeded random source and (unless given) a log that drops every line. Used by the fuzzer
 * (test/fuzz/fuzzer.ts), the receive-path tests (test/net/unit/fuzz.test.ts, test/net/fuzz-frames.test.ts)
 * and the model of the bad-input battery (test/net/linux/fixtures/battery.ts).
 */
import { createStack, parseIpv4Config, type Ipv4Config, type NetLogFactory, type Stack } from "atoll/net";
import { VirtualClock, VirtualLink, seededRandomSource, type VirtualPort } from "../../src/lib/net/testing/virtual-link.ts";
import type { MacAddress } from "atoll/wire/address";

export interface VirtualStackOptions {
  /** The stack's address ("198.18.0.2/24@198.18.0.1" or parsed); undefined: none (as before DHCP). */
  readonly ipv4: Ipv4Config | string | undefined;
  /** Seed of the stack's random source (ephemeral ports, IP identifications, ...). */
  readonly seed: number;
  readonly log?: NetLogFactory | undefined;
  /** Seed of the link itself (its loss and reordering choices), when it matters. */
  readonly linkSeed?: number | undefined;
  readonly mac?: MacAddress | undefined;
  readonly mtu?: number | undefined;
  /** Sees every frame the stack sends, from the first (set before the stack exists). */
  readonly tap?: ((frame: Uint8Array) => void) | undefined;
}

export interface VirtualStack {
  readonly clock: VirtualClock;
  readonly link: VirtualLink;
  /** The stack's end of the link: deliver() or inject() a frame to it. */
  readonly port: VirtualPort;
  readonly stack: Stack;
}

const SILENT = { error() {}, warn() {}, info() {}, debug() {} };

/** A log factory whose loggers drop every message. */
export const silentLog: NetLogFactory = () => SILENT;

export function virtualStack(options: VirtualStackOptions): VirtualStack {
  const clock = new VirtualClock();
  const link = new VirtualLink({ clock, seed: options.linkSeed });
  const port = link.attach({ mac: options.mac, mtu: options.mtu });
  if (options.tap !== undefined) link.tap(options.tap);
  const ipv4 = typeof options.ipv4 === "string" ? parseIpv4Config(options.ipv4) : options.ipv4;
  if (typeof ipv4 === "string") throw new Error(`virtualStack: bad ipv4 ${JSON.stringify(options.ipv4)}: ${ipv4}`);
  const stack = createStack({ link: port, timers: clock, random: seededRandomSource(options.seed), ipv4, log: options.log ?? silentLog });
  return { clock, link, port, stack };
}

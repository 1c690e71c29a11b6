/**
 * The network stack's public API: `import { openStack } from "atoll/net"`.
 *
 *   const stack = await openStack(app, "service");
 *   const socket = stack.udp.bind(7);
 *   socket.onDatagram((payload, from) => socket.send(payload, from));
 *
 * `createStack` builds one over any Link and Timers (tests use testing/virtual-link.ts);
 * `openStack` builds one over an appliance's net device, configured statically from the boot
 * parameter `net.<device>.ipv4` (`atoll run --ipv4`) or else by DHCP.
 *
 * TCP is attached to a stack from "atoll/net/tcp" (kept apart, so that an appliance without TCP
 * does not bundle it); it runs on the stack's clock, entropy and logs (see examples/echo):
 *
 *   import { attachTcp } from "atoll/net/tcp";
 *   const tcp = attachTcp(stack, { countersName: "net.service.tcp" });
 *   tcp.listen(7, (flow) => ...);                        // or: await tcp.connect(address, port)
 */
import * as logs from "../logs/index.ts";
import { Ipv4Address } from "../wire/address.ts";
import { WireError } from "../wire/error.ts";
import { registerCounters } from "../runtime/counters.ts";
import type { Appliance } from "../boot/index.ts";
import { baseRandom, linkFromDevice, timersFromScheduler } from "./adapters.ts";
import { DhcpClient, type DhcpLease } from "./dhcp-client.ts";
import { ipv4ParamName, parseIpv4Config, type Ipv4Config } from "./ipv4-config.ts";
import { STACK_LAYERS, Stack, type StackLimits } from "./stack.ts";
import type { TimerHandle, Timers } from "./types.ts";

export {
  Stack,
  createStack,
  STACK_LAYERS,
  RECEIVE_DROP_COUNTERS,
  layerReceiveDrops,
  totalReceiveDrops,
  unbalancedCounters,
  type StackOptions,
  type StackLimits,
  type StackCounters,
  type StackLayer,
  type DhcpPort,
} from "./stack.ts";
export {
  UdpLayer,
  UdpSocket,
  UdpSocketError,
  UDP_MAX_PAYLOAD,
  EPHEMERAL_PORT_FIRST,
  EPHEMERAL_PORT_LAST,
  type UdpEndpoint,
  type UdpDatagram,
  type UdpBindOptions,
  type UdpSendOptions,
  type UdpCounters,
  type DatagramListener,
  type SocketErrorListener,
} from "./udp.ts";
export {
  Ipv4Layer,
  NetError,
  QueuedDatagram,
  DEFAULT_IPV4_LIMITS,
  type NetErrorCode,
  type Ipv4Datagram,
  type Ipv4Destination,
  type Ipv4ErrorReport,
  type Ipv4ErrorSender,
  type Ipv4ProtocolHandler,
  type Ipv4SendOptions,
  type Ipv4Route,
  type Ipv4Limits,
  type Ipv4Counters,
  type Ipv4ArpLayer,
} from "./ipv4.ts";
export {
  IcmpLayer,
  TokenBucket,
  DEFAULT_ICMP_LIMITS,
  type PingOptions,
  type PingReply,
  type IcmpLimits,
  type IcmpCounters,
} from "./icmp.ts";
export { ArpLayer, DEFAULT_ARP_LIMITS, type ArpLimits, type ArpCounters } from "./arp.ts";
export {
  EthernetInterface,
  type EthernetCounters,
  type LinkDestination,
  type NetLogger,
  type NetLogFactory,
} from "./ethernet.ts";
export { parseIpv4Config, ipv4ParamName, type Ipv4Config } from "./ipv4-config.ts";
export type { Clock, Counters, Link, RandomSource, TimerHandle, Timers } from "./types.ts";
export { baseRandom, linkFromDevice, timersFromScheduler } from "./adapters.ts";

/**
 * While a device waits for its first DHCP lease (or a new one after losing it), openStack warns
 * after 5 s and then at doubling gaps of at most 5 min (5, 15, 35, 75 s ...), naming the static
 * way out: a link without a DHCP server would otherwise leave the appliance silent forever. The
 * client keeps retransmitting meanwhile, as RFC 2131 §4.1 has it.
 */
export const DHCP_WAIT_FIRST_WARNING_MS = 5_000;
export const DHCP_WAIT_MAX_WARNING_GAP_MS = 300_000;

export interface OpenStackOptions {
  /** Sent to the DHCP server (option 12) when the address comes from DHCP. */
  hostname?: string;
  limits?: StackLimits;
}

/**
 * Builds the stack over the appliance's net device `device`, registers its counters (as
 * `net.<device>.<layer>`) and resolves once it has an address: at once with the boot parameter
 * `net.<device>.ipv4`, else when a DHCP server grants a lease (which may take a while; it keeps
 * trying). Throws on a malformed boot parameter.
 */
export async function openStack(app: Appliance, device: string, options: OpenStackOptions = {}): Promise<Stack> {
  const log = logs.source("net");
  const parameter = ipv4ParamName(device);
  const setting = app.params[parameter];
  let config: Ipv4Config | undefined;
  if (setting !== undefined) {
    const parsed = parseIpv4Config(setting);
    if (typeof parsed === "string") throw new Error(`bad boot parameter ${parameter}: ${parsed}`);
    config = parsed;
  }
  // The stack handles coalesced frames and trusted checksums, so it asks for the offloads.
  // On the user-mode link, the tender names the gateway, which relays published TCP ports with a
  // PROXY protocol v2 header carrying each client's address (see tcp/proxy-header.ts).
  const proxyParameter = proxyProtocolParamName(device);
  const proxySetting = app.params[proxyParameter];
  let proxyProtocolFrom: Ipv4Address | undefined;
  if (proxySetting !== undefined) {
    const parsed = Ipv4Address.parse(proxySetting);
    if (parsed instanceof WireError) throw new Error(`bad boot parameter ${proxyParameter}: ${parsed.message}`);
    proxyProtocolFrom = parsed;
  }
  const netDevice = app.net(device, { offloads: true });
  const timers = timersFromScheduler(app.scheduler);
  const random = baseRandom();
  const stack = new Stack({ link: linkFromDevice(netDevice), timers, random, ipv4: config, log: logs.source, limits: options.limits, proxyProtocolFrom });
  for (const layer of STACK_LAYERS) registerCounters(`net.${device}.${layer}`, () => ({ ...stack.counters()[layer] }));
  if (config !== undefined) {
    log.info(`${device}: ${describeConfig(config)} (static)`);
    return stack;
  }
  return new Promise<Stack>((resolve) => {
    const port = stack.openDhcpPort((message) => client.receive(message));
    const waiting = waitWarnings(timers, (waitedMs) =>
      log.warn(
        `${device}: no DHCP lease after ${Math.round(waitedMs / 1000)} s (${client.counters.discovers} DISCOVERs sent; still trying): ` +
          `on a link without a DHCP server, give the address statically with --ipv4 ${device}=<addr>/<len>[@<gateway>] (boot parameter ${parameter})`,
      ),
    );
    const client = new DhcpClient({
      mac: stack.mac,
      timers,
      random,
      transport: port,
      hostname: options.hostname,
      onBound(lease: DhcpLease) {
        const leased: Ipv4Config = { cidr: lease.cidr, gateway: lease.gateway };
        const changed = stack.ipv4Config === undefined || describeConfig(stack.ipv4Config) !== describeConfig(leased);
        stack.setIpv4(leased);
        waiting.stop();
        if (changed) log.info(`${device}: ${describeConfig(leased)} (DHCP from ${Ipv4Address.format(lease.server)}, ${lease.leaseSeconds} s)`);
        resolve(stack);
      },
      onLost() {
        log.warn(`${device}: DHCP lease lost; no address until a new one`);
        stack.setIpv4(undefined);
        waiting.start();
      },
    });
    registerCounters(`net.${device}.dhcp`, () => ({ ...client.counters }));
    client.start();
    waiting.start();
  });
}

/** The boot parameter naming the relay whose TCP connections carry a PROXY protocol v2 header: `net.<device>.proxy-protocol`. */
export function proxyProtocolParamName(device: string): string {
  return `net.${device}.proxy-protocol`;
}

/** Calls `warn` with the time waited at DHCP_WAIT_FIRST_WARNING_MS, then at doubling gaps, between start and stop. */
function waitWarnings(timers: Timers, warn: (waitedMs: number) => void): { start(): void; stop(): void } {
  let timer: TimerHandle | undefined;
  const stop = (): void => {
    timer?.cancel();
    timer = undefined;
  };
  return {
    start() {
      stop();
      const startedMs = timers.now();
      let gapMs = DHCP_WAIT_FIRST_WARNING_MS;
      const arm = (deadlineMs: number): void => {
        timer = timers.at(deadlineMs, () => {
          warn(timers.now() - startedMs);
          gapMs = Math.min(gapMs * 2, DHCP_WAIT_MAX_WARNING_GAP_MS);
          arm(deadlineMs + gapMs);
        });
      };
      arm(startedMs + gapMs);
    },
    stop,
  };
}

function describeConfig(config: Ipv4Config): string {
  const gateway = config.gateway === undefined ? "no gateway" : `gateway ${Ipv4Address.format(config.gateway)}`;
  return `${config.cidr.toString()}, ${gateway}`;
}

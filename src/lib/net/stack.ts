/**
 * The IPv4 stack below TCP, composed: Ethernet interface, ARP, IPv4, ICMP and UDP over one link,
 * driven only by received frames and timers. `createStack` is a pure constructor (tests give it a
 * virtual link and clock); `openStack` in index.ts builds one over an appliance's device.
 *
 *   link ─▶ EthernetInterface ─┬─▶ ArpLayer ──(resolved / unreachable)──▶ Ipv4Layer
 *                              └─▶ Ipv4Layer ─┬─▶ IcmpLayer (also the IP layer's error sender)
 *                                             ├─▶ UdpLayer ─▶ UdpSocket
 *                                             └─▶ registered handlers (TCP)
 */
import { source } from "../logs/index.ts";
import { Ipv4Address, type MacAddress } from "../wire/address.ts";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT } from "../wire/dhcp.ts";
import { IpProtocol } from "../wire/ipv4.ts";
import { ArpLayer, type ArpCounters, type ArpLimits } from "./arp.ts";
import type { DhcpTransport } from "./dhcp-client.ts";
import { EthernetInterface, type EthernetCounters, type NetLogFactory } from "./ethernet.ts";
import { IcmpLayer, type IcmpCounters, type IcmpLimits, type PingOptions, type PingReply } from "./icmp.ts";
import type { Ipv4Config } from "./ipv4-config.ts";
import { Ipv4Layer, NetError, type Ipv4ArpLayer, type Ipv4Counters, type Ipv4Limits } from "./ipv4.ts";
import type { Link, RandomSource, Timers } from "./types.ts";
import { UdpLayer, type UdpCounters } from "./udp.ts";

export interface StackLimits {
  arp?: Partial<ArpLimits>;
  ipv4?: Partial<Ipv4Limits>;
  icmp?: Partial<IcmpLimits>;
}

export interface StackOptions {
  link: Link;
  timers: Timers;
  random: RandomSource;
  /** The static configuration; undefined until `setIpv4` (a DHCP client) gives one. */
  ipv4?: Ipv4Config | undefined;
  /** Loggers by source ("arp", "ipv4", ...); default the logs library's, which needs an image's base. */
  log?: NetLogFactory | undefined;
  limits?: StackLimits | undefined;
  /**
   * A trusted relay (the user-mode gateway) whose TCP connections start with a PROXY protocol v2
   * header naming the real client: TCP attached to this stack consumes it (TcpLayerOptions).
   */
  proxyProtocolFrom?: Ipv4Address | undefined;
  /** Refuse datagrams routed through this stack with ICMP (Ipv4LayerOptions.refuseRouting): for a gateway that forwards nothing. */
  refuseRouting?: boolean | undefined;
}

/** Every layer's counters, by layer. */
export type StackCounters = {
  ethernet: EthernetCounters;
  arp: ArpCounters;
  ipv4: Ipv4Counters;
  icmp: IcmpCounters;
  udp: UdpCounters;
};

export type StackLayer = keyof StackCounters;
export const STACK_LAYERS: readonly StackLayer[] = ["ethernet", "arp", "ipv4", "icmp", "udp"];

/**
 * The counters, by layer, that count received input dropped, each under its reason. Every
 * received frame that is dropped is counted in exactly one of them (fragments included: each
 * fragment of a datagram discarded as a whole is counted under the reason it was discarded for).
 */
export const RECEIVE_DROP_COUNTERS: { readonly [Layer in StackLayer]: readonly (keyof StackCounters[Layer])[] } = {
  ethernet: ["malformed", "notForUs", "unsupported", "unknownEtherType"],
  arp: ["malformed", "unsupported", "badSender", "notForUs"],
  ipv4: [
    "malformed",
    "badChecksum",
    "badSource",
    "notForUs",
    "unknownProtocol",
    "fragmentMalformed",
    "fragmentDuplicate",
    "fragmentOverlap",
    "fragmentTooLong",
    "reassemblyLimit",
    "reassemblyTimeout",
  ],
  icmp: ["malformed", "badChecksum", "broadcastEcho", "unmatchedReplies", "errorsUnmatched", "unhandledType"],
  udp: ["malformed", "badChecksum", "noListener", "queueFull"],
};

/** The sum of one layer's receive drop counters. */
export function layerReceiveDrops(counters: StackCounters, layer: StackLayer): number {
  const values: Readonly<Record<string, number>> = counters[layer];
  let total = 0;
  for (const name of RECEIVE_DROP_COUNTERS[layer]) total += values[name] ?? 0;
  return total;
}

/** The sum of every receive drop counter. */
export function totalReceiveDrops(counters: StackCounters): number {
  let total = 0;
  for (const layer of STACK_LAYERS) total += layerReceiveDrops(counters, layer);
  return total;
}

/**
 * Checks that the receive counters account for every frame: each layer's input is the sum of its
 * drops and of what it passed on or consumed. Returns the equations that do not hold (none when
 * the books balance). Protocols registered from outside (TCP) are not known here, so this holds
 * only for a stack without them.
 */
export function unbalancedCounters(counters: StackCounters): string[] {
  const { ethernet, arp, ipv4, icmp, udp } = counters;
  const sum = (layer: StackLayer): number => layerReceiveDrops(counters, layer);
  const equations: [string, number, number][] = [
    ["ethernet.rxFrames = drops + arp.rxPackets + ipv4.rxPackets", ethernet.rxFrames, sum("ethernet") + arp.rxPackets + ipv4.rxPackets],
    [
      "arp.rxPackets = drops + requestsAnswered + repliesReceived + updates + conflicts",
      arp.rxPackets,
      sum("arp") + arp.requestsAnswered + arp.repliesReceived + arp.updates + arp.conflicts,
    ],
    [
      "ipv4.rxPackets = drops + delivered + fragmentsReassembled + fragmentsPending",
      ipv4.rxPackets,
      sum("ipv4") + ipv4.delivered + ipv4.fragmentsReassembled + ipv4.fragmentsPending,
    ],
    [
      "ipv4.delivered + reassembled + localDelivered = icmp.rxMessages + udp.rxDatagrams",
      ipv4.delivered + ipv4.reassembled + ipv4.localDelivered,
      icmp.rxMessages + udp.rxDatagrams,
    ],
    [
      "icmp.rxMessages = drops + echoRequests + echoReplies + errorsDelivered",
      icmp.rxMessages,
      sum("icmp") + icmp.echoRequests + icmp.echoReplies + icmp.errorsDelivered,
    ],
    ["udp.rxDatagrams = drops + delivered", udp.rxDatagrams, sum("udp") + udp.delivered],
  ];
  return equations.filter(([, left, right]) => left !== right).map(([equation, left, right]) => `${equation}: ${left} != ${right}`);
}

/** The UDP port a DHCP client speaks through (RFC 2131 §4.1). */
export interface DhcpPort extends DhcpTransport {
  close(): void;
}

/** The stack over one link. */
export class Stack {
  readonly ethernet: EthernetInterface;
  readonly arp: Ipv4ArpLayer;
  /** The IP layer, for other transports (TCP): registerProtocol, send, route. */
  readonly ipv4: Ipv4Layer;
  readonly icmp: IcmpLayer;
  readonly udp: UdpLayer;
  /**
   * The stack's clock, entropy and logger factory, for protocols attached from outside (TCP's
   * `attachTcp` takes them from here), so that they run on the same clock as the layers below.
   */
  readonly timers: Timers;
  readonly random: RandomSource;
  readonly log: NetLogFactory;
  /** See StackOptions.proxyProtocolFrom. */
  readonly proxyProtocolFrom: Ipv4Address | undefined;
  private closed = false;

  constructor(options: StackOptions) {
    const log = options.log ?? source;
    this.log = log;
    this.timers = options.timers;
    this.random = options.random;
    this.proxyProtocolFrom = options.proxyProtocolFrom;
    const limits = options.limits ?? {};
    // The layers call one another through closures, so construction order does not matter to
    // them; frames only start flowing once `link.onFrame` is set, at the end.
    this.ethernet = new EthernetInterface(options.link, {
      arp: (payload, destination) => this.arp.receive(payload, destination),
      ipv4: (payload, destination, checksumTrusted) => this.ipv4.receive(payload, destination, checksumTrusted),
    });
    this.arp = new ArpLayer({
      ethernet: this.ethernet,
      timers: options.timers,
      log: log("arp"),
      limits: limits.arp,
      transmit: (datagram, mac) => this.ipv4.transmitQueued(datagram, mac),
      unreachable: (datagram) => this.ipv4.reportUnresolved(datagram),
    });
    this.ipv4 = new Ipv4Layer({
      ethernet: this.ethernet,
      arp: this.arp,
      timers: options.timers,
      random: options.random,
      log: log("ipv4"),
      limits: limits.ipv4,
      refuseRouting: options.refuseRouting,
    });
    this.icmp = new IcmpLayer({ ipv4: this.ipv4, timers: options.timers, random: options.random, log: log("icmp"), limits: limits.icmp });
    this.udp = new UdpLayer({ ipv4: this.ipv4, errors: this.icmp, random: options.random });
    this.ipv4.setErrorSender(this.icmp);
    this.ipv4.registerProtocol(IpProtocol.Icmp, this.icmp);
    this.ipv4.registerProtocol(IpProtocol.Udp, this.udp);
    // RFC 1112 §7.2: a multicast-capable host is a member of the all-hosts group.
    this.ipv4.joinGroup(ALL_HOSTS_GROUP);
    this.setIpv4(options.ipv4);
    options.link.onFrame((frame, checksumTrusted) => {
      if (!this.closed) this.ethernet.receive(frame, checksumTrusted === true);
    });
  }

  get mac(): MacAddress {
    return this.ethernet.mac;
  }

  /** Largest IP datagram sent in one frame. */
  get mtu(): number {
    return this.ethernet.mtu;
  }

  get ipv4Config(): Ipv4Config | undefined {
    return this.ipv4.config;
  }

  /** Sets or clears the interface's address and routes; a new address is announced by gratuitous ARP. */
  setIpv4(config: Ipv4Config | undefined): void {
    const previous = this.ipv4.config;
    if (sameConfig(previous, config)) return;
    this.ipv4.configure(config);
    this.arp.setAddress(config?.cidr.address);
    this.log("ipv4").debug(() =>
      config === undefined
        ? "no address"
        : `address ${config.cidr.toString()}${config.gateway === undefined ? "" : `, gateway ${Ipv4Address.format(config.gateway)}`}`,
    );
  }

  /** Sends an echo request; see IcmpLayer.ping. */
  ping(dst: Ipv4Address, options?: PingOptions): Promise<PingReply> {
    return this.icmp.ping(dst, options);
  }

  /** Accepts datagrams to a multicast group (RFC 1112 level 1: no IGMP reports are sent). */
  joinMulticast(group: Ipv4Address): void {
    this.ipv4.joinGroup(group);
  }

  leaveMulticast(group: Ipv4Address): void {
    this.ipv4.leaveGroup(group);
  }

  /**
   * Opens UDP port 68 for a DHCP client: datagrams from port 67 reach `onMessage` whatever their
   * destination address, and `send` broadcasts from 0.0.0.0 or unicasts to a server (RFC 2131 §4.1).
   * Sends that cannot go out now (no route yet) are dropped: the client retransmits.
   */
  openDhcpPort(onMessage: (message: Uint8Array) => void): DhcpPort {
    const socket = this.udp.bind({ port: DHCP_CLIENT_PORT, acceptAnyDestination: true });
    socket.onDatagram((payload, from) => {
      if (from.port === DHCP_SERVER_PORT) onMessage(payload);
    });
    const log = this.log("dhcp");
    return {
      send(message, server) {
        try {
          if (server === undefined) {
            socket.send(message, { address: Ipv4Address.BROADCAST, port: DHCP_SERVER_PORT }, { src: Ipv4Address.UNSPECIFIED });
          } else {
            socket.send(message, { address: server, port: DHCP_SERVER_PORT });
          }
        } catch (error) {
          if (!(error instanceof NetError)) throw error;
          log.debug(() => `not sent: ${error.message}`);
        }
      },
      close() {
        socket.close();
      },
    };
  }

  /** A snapshot of every layer's counters. */
  counters(): StackCounters {
    return {
      ethernet: { ...this.ethernet.counters },
      arp: { ...this.arp.counters },
      ipv4: { ...this.ipv4.counters },
      icmp: { ...this.icmp.counters },
      udp: { ...this.udp.counters },
    };
  }

  /** Stops taking frames, cancels every timer, closes every socket and rejects pending pings. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.udp.close();
    this.icmp.close();
    this.ipv4.close();
    this.arp.close();
  }
}

/** 224.0.0.1 (RFC 1112 §4). */
const ALL_HOSTS_GROUP = Ipv4Address.fromOctets(224, 0, 0, 1);

function sameConfig(a: Ipv4Config | undefined, b: Ipv4Config | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.cidr.address === b.cidr.address && a.cidr.prefixLength === b.cidr.prefixLength && a.gateway === b.gateway;
}

/** Builds a stack over a link; pure (no base ABI needed when `log` is given). */
export function createStack(options: StackOptions): Stack {
  return new Stack(options);
}

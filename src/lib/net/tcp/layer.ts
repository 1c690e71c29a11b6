/**
 * The TCP layer: the IPv4 protocol handler for protocol 6. It validates each segment (length,
 * data offset, checksum, options), finds its connection by 4-tuple or its listener by port, and
 * answers segments for closed ports with a RST (RFC 9293 §3.10.7.1). It sends what connections
 * build, hands ICMP errors to the connection they quote, and chooses ephemeral ports (RFC 6056
 * §3.3.3).
 *
 * The receive path allocates nothing per segment: one Segment and one option set are reused,
 * connections are found through two Map lookups keyed by numbers, and outgoing segments are
 * built in one transmit buffer.
 */
import { Ipv4Address } from "../../wire/address.ts";
import { readU16, readU32 } from "../../wire/bytes.ts";
import { IpProtocol } from "../../wire/ipv4.ts";
import {
  TCP_HEADER_LENGTH,
  TcpFlag,
  TcpOptions,
  emitTcpHeader,
  verifyTcpChecksum,
  type TcpHeaderFields,
} from "../../wire/tcp.ts";
import type { NetLogger } from "../ethernet.ts";
import { NetError, type Ipv4Datagram, type Ipv4ErrorReport, type Ipv4Layer, type Ipv4ProtocolHandler, type Ipv4SendOptions } from "../ipv4.ts";
import type { RandomSource, Timers } from "../types.ts";
import { TcpBudget } from "./budget.ts";
import { TcpConnection, type ConnectionHost, type CookieOptions } from "./connection.ts";
import { cookieMssIndex, encodeCookieTimestamp, makeCookie, COOKIE_MSS_TABLE } from "./cookies.ts";
import { newTcpCounters, type TcpCounters } from "./counters.ts";
import { TcpFlow } from "./flow.ts";
import { TcpSecrets } from "./isn.ts";
import { TcpListener, type FlowHandler, type ListenerHost } from "./listener.ts";
import { Segment } from "./segment.ts";
import { seqAdd } from "./seq.ts";
import { resolveFlowSettings, resolveLayerSettings, type FlowOptions, type LayerSettings, type TcpLayerOptions } from "./settings.ts";

/** RFC 6335 §6: the dynamic port range. */
export const TCP_EPHEMERAL_FIRST = 49152;
export const TCP_EPHEMERAL_LAST = 65535;

export interface ConnectOptions extends FlowOptions {
  /** The local port; default an ephemeral one (RFC 6056 §3.3.3). */
  localPort?: number;
  /**
   * Fail with a "timeout" TcpError (`connect to <address>:<port> timed out after <n> s`) when not
   * established after this long. Default: the layer's `connectTimeoutMs`, whose default 0 leaves
   * the bound to the SYN retransmissions (`maxSynRetransmits` 6 with the RTO doubling from 1 s:
   * about two minutes, as Linux's tcp_syn_retries = 6). Either way, a next hop that never answers
   * ARP fails the connect after ARP's 3 requests (about 3 s) with an "unreachable" TcpError.
   */
  connectTimeoutMs?: number;
}

export interface ListenOptions extends FlowOptions {
  port: number;
  /** Take connections to this address only; default 0.0.0.0, any of ours. */
  address?: Ipv4Address;
  /** Half-open connections before SYN cookies, and accepted flows waiting for `accept()` (default: the layer's, 128). */
  backlog?: number;
  /** Connections this listener's application may hold at once (default: the layer's maxListenerConnections, 1024). */
  maxConnections?: number;
}

export interface TcpLayerDependencies {
  ipv4: Ipv4Layer;
  timers: Timers;
  random: RandomSource;
  log: NetLogger;
}

function connectTimeout(given: number | undefined, layerDefault: number): number {
  if (given === undefined) return layerDefault;
  if (!Number.isFinite(given) || given < 0) throw new RangeError(`tcp: connectTimeoutMs ${given} is not a number ≥ 0 (0: only the SYN retransmissions bound a connect)`);
  return given;
}

/** Key of the first-level table: the remote endpoint, exact in a float64 (48 bits). */
function remoteKey(address: Ipv4Address, port: number): number {
  return address * 0x10000 + port;
}

export class TcpLayer implements Ipv4ProtocolHandler, ConnectionHost, ListenerHost {
  readonly counters: TcpCounters = newTcpCounters();
  /** Connection caps, memory accounting and orphans (budget.ts). */
  readonly budget: TcpBudget;
  readonly settings: LayerSettings;
  readonly timers: Timers;
  readonly secrets: TcpSecrets;
  readonly log: NetLogger;
  readonly mtu: number;
  readonly transmitBuffer: Uint8Array;
  readonly checksumOffload: boolean;
  readonly maxOffloadSegment: number;
  readonly proxyProtocolFrom: Ipv4Address | undefined;
  private readonly ipv4: Ipv4Layer;
  /** The IP layer's offload request, reused: the checksum at TCP's offset 16, and the segment size. */
  private readonly offload: { checksumOffset: number; segmentSize: number } = { checksumOffset: 16, segmentSize: 0 };
  /** remote endpoint → connections from it (usually one). */
  private readonly connections = new Map<number, TcpConnection[]>();
  private readonly listeners = new Map<number, TcpListener>();
  private readonly segment = new Segment();
  private readonly sendOptions: Ipv4SendOptions = { dst: Ipv4Address.UNSPECIFIED, src: undefined, protocol: IpProtocol.Tcp, dontFragment: true };
  private readonly header: TcpHeaderFields = { srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0, urgentPointer: 0 };
  private readonly options = new TcpOptions();
  private nextEphemeral = 0;
  private isClosed = false;

  constructor(dependencies: TcpLayerDependencies, options: TcpLayerOptions = {}) {
    this.ipv4 = dependencies.ipv4;
    this.timers = dependencies.timers;
    this.log = dependencies.log;
    this.settings = resolveLayerSettings(options);
    this.proxyProtocolFrom = options.proxyProtocolFrom;
    this.budget = new TcpBudget(this.settings, this.counters, this.log, this.proxyProtocolFrom, () => this.timers.now());
    this.secrets = new TcpSecrets(dependencies.random);
    this.mtu = dependencies.ipv4.mtu;
    const offloads = dependencies.ipv4.offloads;
    this.checksumOffload = offloads !== undefined;
    // IPv4 headers are 20 bytes here (no options are sent): the rest of the datagram is TCP's.
    this.maxOffloadSegment = offloads !== undefined && offloads.maxTcpDatagram > this.mtu ? offloads.maxTcpDatagram - 20 : 0;
    this.transmitBuffer = new Uint8Array(Math.max(this.mtu, 1500, this.maxOffloadSegment));
    this.ipv4.registerProtocol(IpProtocol.Tcp, this);
  }

  // ——— Public API ———

  /**
   * Listens on a port: `onFlow` gets each connection once established; without it, take them
   * with `listener.accept()` or `for await (const flow of listener)`. Throws NetError
   * "address-in-use" when the port has a listener, RangeError for a port outside 1-65535.
   */
  listen(portOrOptions: number | ListenOptions, onFlow?: FlowHandler, options: Omit<ListenOptions, "port"> = {}): TcpListener {
    this.checkOpen();
    const merged: ListenOptions = typeof portOrOptions === "number" ? { ...options, port: portOrOptions } : { ...options, ...portOrOptions };
    const port = merged.port;
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new RangeError(`tcp: port ${port} is not 1-65535`);
    if (this.listeners.has(port)) throw new NetError("address-in-use", `tcp: port ${port} already has a listener`);
    const backlog = merged.backlog ?? this.settings.backlog;
    if (!Number.isInteger(backlog) || backlog < 1) throw new RangeError(`tcp: backlog ${backlog} is not a positive integer`);
    const maxConnections = merged.maxConnections ?? this.settings.maxListenerConnections;
    if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new RangeError(`tcp: maxConnections ${maxConnections} is not a positive integer`);
    const listener = new TcpListener(this, port, merged.address ?? Ipv4Address.UNSPECIFIED, resolveFlowSettings(this.settings, merged), backlog, maxConnections, onFlow);
    this.listeners.set(port, listener);
    return listener;
  }

  /**
   * Opens a connection (RFC 9293 active OPEN) and resolves with the flow once established.
   * Rejects with NetError "no-route", "address-in-use", or a TcpError: "refused" (a RST; its
   * code is "connection-refused"), "timeout" (no answer to the SYNs, or `connectTimeoutMs`
   * passed; with an ICMP soft error as its code if one came) or "unreachable" (ICMP hard error, or
   * no ARP reply from the next hop: code "host-unreachable"). Timeouts and ARP failures are also
   * logged (source tcp, info), since an application may wait on a connect without a word.
   */
  async connect(address: Ipv4Address, port: number, options: ConnectOptions = {}): Promise<TcpFlow> {
    const flow = this.open(address, port, options);
    await flow.waitEstablished();
    return flow;
  }

  /** As `connect`, returning the flow at once, in SYN-SENT (for tests and simultaneous open). */
  open(address: Ipv4Address, port: number, options: ConnectOptions = {}): TcpFlow {
    this.checkOpen();
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new RangeError(`tcp: port ${port} is not 1-65535`);
    const route = this.ipv4.route(address);
    if (route === "no-route" || route.kind === "broadcast" || route.kind === "multicast") {
      throw new NetError("no-route", `tcp: no route to ${Ipv4Address.format(address)}`);
    }
    const local = route.src;
    let localPort = options.localPort ?? 0;
    if (!Number.isInteger(localPort) || localPort < 0 || localPort > 0xffff) throw new RangeError(`tcp: local port ${localPort} is not 0-65535`);
    if (localPort === 0) localPort = this.ephemeralPort(local, address, port);
    else if (this.find(address, port, local, localPort) !== undefined) {
      throw new NetError("address-in-use", `tcp: ${Ipv4Address.format(local)}:${localPort} → ${Ipv4Address.format(address)}:${port} is in use`);
    }
    const connection = new TcpConnection(
      this,
      { localAddress: local, localPort, remoteAddress: address, remotePort: port },
      { ...resolveFlowSettings(this.settings, options), connectTimeoutMs: connectTimeout(options.connectTimeoutMs, this.settings.connectTimeoutMs) },
    );
    this.insert(connection);
    // Our own connections are not refused (the application chose to open them), but they count.
    this.budget.opened(connection, undefined);
    const flow = new TcpFlow(connection);
    connection.openActive();
    return flow;
  }

  /** Connections in the table now (every state but CLOSED). */
  connectionList(): TcpConnection[] {
    const list: TcpConnection[] = [];
    for (const group of this.connections.values()) list.push(...group);
    return list;
  }

  /** A snapshot of the counters. */
  snapshotCounters(): TcpCounters {
    return { ...this.counters };
  }

  /** Drops every connection (without RST) and listener, and leaves the IP layer. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const listener of [...this.listeners.values()]) listener.close();
    for (const connection of this.connectionList()) connection.destroy();
    this.ipv4.unregisterProtocol(IpProtocol.Tcp, this);
  }

  // ——— Ipv4ProtocolHandler ———

  receive(datagram: Ipv4Datagram): void {
    const counters = this.counters;
    counters.segmentsIn++;
    const bytes = datagram.payload;
    const header = datagram.header;
    if (bytes.length < TCP_HEADER_LENGTH) {
      counters.malformed++;
      return;
    }
    const headerLength = (bytes[12] >>> 4) * 4;
    if (headerLength < TCP_HEADER_LENGTH || headerLength > bytes.length) {
      counters.malformed++;
      return;
    }
    if (!datagram.checksumTrusted && !verifyTcpChecksum(bytes, header.src, header.dst)) {
      counters.badChecksum++;
      return;
    }
    // RFC 9293 MUST-57 and RFC 1122 §4.2.3.10: TCP is unicast only; port 0 is no endpoint.
    if (datagram.destination !== "unicast" || readU16(bytes, 0) === 0 || readU16(bytes, 2) === 0) {
      counters.notUnicast++;
      return;
    }
    const segment = this.segment;
    if (segment.load(bytes, header.src, header.dst) !== undefined) {
      counters.badOptions++;
      return;
    }
    const connection = this.find(segment.src, segment.srcPort, segment.dst, segment.dstPort);
    if (connection !== undefined) {
      if (
        connection.state === "TIME-WAIT" &&
        segment.has(TcpFlag.Syn) &&
        !segment.has(TcpFlag.Ack) &&
        !segment.has(TcpFlag.Rst) &&
        connection.acceptsNewIncarnation(segment)
      ) {
        // RFC 6191 / RFC 9293 §3.10.7.4: a new SYN that is clearly newer ends TIME-WAIT early.
        connection.endTimeWait();
      } else {
        counters.delivered++;
        connection.receive(segment);
        return;
      }
    }
    const listener = this.listeners.get(segment.dstPort);
    if (listener !== undefined && listener.accepts(segment.dst)) {
      counters.delivered++;
      listener.receive(segment);
      return;
    }
    counters.noConnection++;
    this.sendResetFor(segment);
  }

  receiveError(report: Ipv4ErrorReport): boolean {
    const quoted = report.payload;
    if (quoted.length < 8) return false;
    const connection = this.find(report.dst, readU16(quoted, 2), report.src, readU16(quoted, 0));
    if (connection === undefined) return false;
    const taken = connection.receiveError(report.code, readU32(quoted, 4), report.nextHopMtu, report.icmp !== undefined);
    if (taken) this.counters.icmpErrors++;
    return taken;
  }

  // ——— ConnectionHost ———

  transmit(connection: TcpConnection, length: number, segmentSize: number): void {
    this.send(connection.localAddress, connection.remoteAddress, length, connection.dontFragment, this.checksumOffload, segmentSize);
  }

  adviseUnreachable(connection: TcpConnection): void {
    this.ipv4.adviseUnreachable(connection.remoteAddress);
  }

  release(connection: TcpConnection): void {
    this.budget.ended(connection);
    const key = remoteKey(connection.remoteAddress, connection.remotePort);
    const group = this.connections.get(key);
    if (group === undefined) return;
    const index = group.indexOf(connection);
    if (index >= 0) group.splice(index, 1);
    if (group.length === 0) this.connections.delete(key);
  }

  // ——— ListenerHost ———

  admit(listener: TcpListener, source: Ipv4Address): boolean {
    return this.budget.admit(source, listener, this.timers.now());
  }

  openPassive(listener: TcpListener, syn: Segment): TcpConnection {
    const connection = new TcpConnection(
      this,
      { localAddress: syn.dst, localPort: syn.dstPort, remoteAddress: syn.src, remotePort: syn.srcPort },
      listener.settings,
    );
    this.insert(connection);
    this.budget.opened(connection, listener);
    connection.openPassive(syn, listener);
    return connection;
  }

  openFromCookie(listener: TcpListener, ack: Segment, iss: number, options: CookieOptions): TcpConnection {
    const connection = new TcpConnection(
      this,
      { localAddress: ack.dst, localPort: ack.dstPort, remoteAddress: ack.src, remotePort: ack.srcPort },
      listener.settings,
    );
    connection.owner = listener;
    this.insert(connection);
    this.budget.opened(connection, listener);
    connection.openFromCookie(ack, iss, options);
    return connection;
  }

  sendCookieSynAck(listener: TcpListener, syn: Segment): void {
    const now = this.timers.now();
    const tuple = { local: syn.dst, localPort: syn.dstPort, remote: syn.src, remotePort: syn.srcPort };
    const synOptions = syn.options;
    const peerMss = synOptions.mss >= 0 ? synOptions.mss : COOKIE_MSS_TABLE[0] ?? 536;
    const iss = makeCookie(this.secrets, tuple, syn.seq, cookieMssIndex(peerMss), now);
    const options = this.options;
    options.clear();
    options.mss = Math.min(0xffff, this.mtu - 40);
    const settings = listener.settings;
    if (synOptions.timestamps && settings.timestamps) {
      // Window scale and SACK survive only inside the timestamp (see cookies.ts).
      const windowScale = settings.windowScaling ? synOptions.windowScale : -1;
      const sack = settings.sack && synOptions.sackPermitted;
      const tsNow = (Math.floor(now) + this.secrets.timestampOffset(tuple.local, tuple.localPort, tuple.remote, tuple.remotePort)) >>> 0;
      options.setTimestamps(encodeCookieTimestamp(tsNow, windowScale, sack), synOptions.tsValue);
      if (windowScale >= 0) options.windowScale = cookieWindowScale(settings.receiveBufferMax);
      options.sackPermitted = sack;
    }
    this.counters.synCookiesSent++;
    this.sendStateless(syn, iss, seqAdd(syn.seq, 1), TcpFlag.Syn | TcpFlag.Ack, Math.min(settings.receiveBufferSize, 0xffff), options);
  }

  /** RFC 9293 §3.10.7.1: <SEQ=SEG.ACK><CTL=RST>, or <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; nothing for a RST. */
  sendResetFor(segment: Segment): void {
    if (segment.has(TcpFlag.Rst)) return;
    const options = this.options;
    options.clear();
    if (segment.has(TcpFlag.Ack)) this.sendStateless(segment, segment.ack, 0, TcpFlag.Rst, 0, options);
    else this.sendStateless(segment, 0, seqAdd(segment.seq, segment.length), TcpFlag.Rst | TcpFlag.Ack, 0, options);
    this.counters.resetsSent++;
  }

  releaseListener(listener: TcpListener): void {
    if (this.listeners.get(listener.port) === listener) this.listeners.delete(listener.port);
  }

  // ——— Internals ———

  private checkOpen(): void {
    if (this.isClosed) throw new NetError("closed", "tcp: the TCP layer is closed");
  }

  private find(remote: Ipv4Address, remotePort: number, local: Ipv4Address, localPort: number): TcpConnection | undefined {
    const group = this.connections.get(remoteKey(remote, remotePort));
    if (group === undefined) return undefined;
    for (let i = 0; i < group.length; i++) {
      const connection = group[i];
      if (connection !== undefined && connection.localPort === localPort && connection.localAddress === local) return connection;
    }
    return undefined;
  }

  private insert(connection: TcpConnection): void {
    const key = remoteKey(connection.remoteAddress, connection.remotePort);
    const group = this.connections.get(key);
    if (group === undefined) this.connections.set(key, [connection]);
    else group.push(connection);
  }

  /** A reply built from a received segment's endpoints, with no connection behind it. */
  private sendStateless(to: Segment, seq: number, ack: number, flags: number, window: number, options: TcpOptions): void {
    const header = this.header;
    header.srcPort = to.dstPort;
    header.dstPort = to.srcPort;
    header.seq = seq;
    header.ack = ack;
    header.flags = flags;
    header.window = window;
    header.urgentPointer = 0;
    const length = emitTcpHeader(header, options, this.transmitBuffer, 0, to.dst, to.src);
    this.send(to.dst, to.src, length);
  }

  /** Sends transmitBuffer[0, length); `offloaded`: its checksum is partial, for the link to finish. */
  private send(src: Ipv4Address, dst: Ipv4Address, length: number, dontFragment = this.settings.pathMtuDiscovery, offloaded = false, segmentSize = 0): void {
    const options = this.sendOptions;
    options.src = src;
    options.dst = dst;
    options.dontFragment = dontFragment;
    if (offloaded) {
      this.offload.segmentSize = segmentSize;
      options.offload = this.offload;
    } else {
      options.offload = undefined;
    }
    const failure = this.ipv4.send(options, this.transmitBuffer.subarray(0, length));
    if (failure !== undefined) this.counters.sendFailures++;
    else this.counters.segmentsOut++;
  }

  /** RFC 6056 §3.3.3 (algorithm 3): a port from a keyed hash of the destination, then the next free one. */
  private ephemeralPort(local: Ipv4Address, remote: Ipv4Address, remotePort: number): number {
    const count = TCP_EPHEMERAL_LAST - TCP_EPHEMERAL_FIRST + 1;
    const offset = this.secrets.portOffset(local, remote, remotePort);
    for (let tried = 0; tried < count; tried++) {
      const port = TCP_EPHEMERAL_FIRST + ((offset + this.nextEphemeral + tried) % count);
      if (this.listeners.has(port) || this.find(remote, remotePort, local, port) !== undefined) continue;
      this.nextEphemeral += tried + 1;
      return port;
    }
    throw new NetError("address-in-use", `tcp: no ephemeral port free towards ${Ipv4Address.format(remote)}:${remotePort}`);
  }
}

/** The window scale a cookie connection offers: as TcpConnection would for the buffer. */
function cookieWindowScale(receiveBufferMax: number): number {
  let scale = 0;
  while (scale < 14 && 0xffff * 2 ** scale < receiveBufferMax) scale++;
  return scale;
}

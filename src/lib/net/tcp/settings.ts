/**
 * What can be tuned, per layer and per connection, with defaults and the RFC behind each. The
 * layer's options set defaults for every connection; `connect` and `listen` override the
 * per-connection ones.
 */
import type { Ipv4Address } from "../../wire/address.ts";
import type { BudgetLimits } from "./budget.ts";
import type { CongestionAlgorithm } from "./congestion.ts";

/** Options of one connection (`connect`, `listen`, or the layer's defaults). */
export interface FlowOptions {
  /** Disable Nagle's algorithm (RFC 896; RFC 9293 §3.7.4): send small segments at once. Default false. */
  noDelay?: boolean;
  /**
   * Keep-alive probes (RFC 1122 §4.2.3.6; off by default, as that section asks): `true` for the
   * defaults below, or the timings.
   */
  keepAlive?: boolean | KeepAliveOptions;
  /**
   * RFC 5482 user timeout: give up, with a "timeout" error, after this long without the peer
   * acknowledging anything while data is outstanding. 0 (default): only the retransmission limit.
   */
  userTimeoutMs?: number;
  /** Default "cubic" (RFC 9438); "newreno" (RFC 5681, RFC 6582). */
  congestion?: CongestionAlgorithm;
  /** Bytes the application may have written and the peer not yet acknowledged (default 256 KiB). */
  sendBufferSize?: number;
  /**
   * The send buffer grows from sendBufferSize up to this, to twice the congestion window, so that
   * it never limits a window the path has shown it carries (as Linux's tcp_sndbuf_expand).
   * Default 4 MiB; giving sendBufferSize alone fixes the size (as SO_SNDBUF does on Linux).
   */
  sendBufferMax?: number;
  /** Bytes received and not yet read; the most the advertised window offers (default 256 KiB). */
  receiveBufferSize?: number;
  /**
   * The receive buffer grows from receiveBufferSize up to this while the application reads as
   * fast as data arrives (dynamic right-sizing, as Linux's tcp_rcv_space_adjust), so that a fast
   * path is not held back by the window. Default 4 MiB; but giving receiveBufferSize alone fixes
   * the size (as setting SO_RCVBUF turns Linux's autotuning off).
   */
  receiveBufferMax?: number;
}

export interface KeepAliveOptions {
  /** Idle time before the first probe; RFC 1122 §4.2.3.6: no less than two hours by default. */
  idleMs?: number;
  /** Time between unanswered probes (Linux: 75 s). */
  intervalMs?: number;
  /** Unanswered probes before the connection is dropped (Linux: 9). */
  probes?: number;
}

/** Layer-wide options: defaults for every connection, and what only the layer decides. */
export interface TcpLayerOptions extends FlowOptions {
  /** RFC 9293 §3.4.2: TIME-WAIT lasts 2·MSL; MSL 30 s gives Linux's 60 s. */
  timeWaitMs?: number;
  /** How long an application-closed connection may sit in FIN-WAIT-2 waiting for the peer's FIN (Linux: 60 s). */
  finWait2TimeoutMs?: number;
  /** RFC 6298 §2.1: 1 s. */
  initialRtoMs?: number;
  /** RFC 6298 §2.4 asks for 1 s; 200 ms is Linux's, which the brief allows. */
  minRtoMs?: number;
  /** RFC 6298 §2.5: a maximum of at least 60 s. */
  maxRtoMs?: number;
  /** Retransmissions of one segment before the connection is dropped (RFC 1122 §4.2.3.5 R2; Linux tcp_retries2 = 15). */
  maxRetransmits?: number;
  /** SYN retransmissions before connect fails (Linux tcp_syn_retries = 6: about 2 minutes, RFC 1122's R2 for SYNs is 3). */
  maxSynRetransmits?: number;
  /**
   * Default for every connect (see ConnectOptions.connectTimeoutMs): fail a connect that is not
   * established after this long. 0 (default): only the SYN retransmissions bound it.
   */
  connectTimeoutMs?: number;
  /** RFC 1122 §4.2.3.2: at most 500 ms; 40 ms like Linux. */
  delayedAckMs?: number;
  /** RFC 6928: ten segments. */
  initialWindowSegments?: number;
  /** Offer and accept SACK (RFC 2018). Default true. */
  sack?: boolean;
  /** Offer and accept timestamps (RFC 7323). Default true. */
  timestamps?: boolean;
  /** Offer and accept window scaling (RFC 7323). Default true. */
  windowScaling?: boolean;
  /** RFC 5961 §7: challenge ACKs a connection sends a second at most. */
  challengeAckLimit?: number;
  /** Half-open connections per listener before SYN cookies (or drops); also the default backlog. */
  backlog?: number;
  /** When the half-open queue is full: "auto" (default) answers with SYN cookies, "never" drops. */
  synCookies?: "auto" | "never";
  /** Send segments with "don't fragment" and follow ICMP "fragmentation needed" (RFC 1191). Default true. */
  pathMtuDiscovery?: boolean;
  /**
   * Connections accepted from this address (a trusted relay: the user-mode gateway of
   * `atoll run -p`) start with a PROXY protocol v2 header naming the real client, which the
   * layer consumes: the application gets the flow with that client as `remoteAddress` and
   * `remotePort`, and the bytes after the header (see proxy-header.ts). Default: the stack's
   * (`Stack.proxyProtocolFrom`, which openStack sets from the boot parameter
   * `net.<dev>.proxy-protocol`), else none.
   */
  proxyProtocolFrom?: Ipv4Address | undefined;
  // The budget (budget.ts; issue #12 finding 1). The defaults keep examples/website alive under
  // `--tender spt --memory 64` while a host on the link floods it with forgotten handshakes from
  // spoofed sources (test/tenders/spt/handshake-flood.test.ts): each such connection costs the
  // HTTP server's state on top of TCP's, a few tens of KiB of V8 heap in all, so that 1024 of them
  // fit well inside a 64 MiB heap next to the appliance's own.
  /** Connections in all states, at most (Linux has none; nginx's worker_connections). Default 1024. */
  maxConnections?: number;
  /**
   * Connections one listener's application holds at most (from the handshake until it closes
   * them); the accept queue is bounded by `backlog` apart. Default 1024 (as maxConnections: lower it
   * to keep room for other listeners). `ListenOptions.maxConnections` sets it per listener.
   */
  maxListenerConnections?: number;
  /**
   * Connections from one remote address at most, TIME-WAIT excepted (as iptables' connlimit or
   * nginx's limit_conn): one host cannot take them all. The PROXY protocol relay is exempt.
   * Default 256.
   */
  maxConnectionsPerSource?: number;
  /**
   * Memory marks in bytes, as Linux's tcp_mem: over `memoryPressure` (default 12 MiB) buffers stop
   * growing, windows offer only what is allocated, and a new connection must displace a spareable
   * one, until back under `memoryLow` (default 8 MiB); over `memoryHigh` (default 16 MiB) spareable
   * connections are reset, least recently active first. Accounted: each connection's allocated
   * buffer bytes plus `connectionOverhead`. 1024 idle connections (4 KiB of receive ring each)
   * account for 8 MiB; buffers of bulk transfers (up to sendBufferMax/receiveBufferMax) make the rest.
   */
  memoryLow?: number;
  memoryPressure?: number;
  memoryHigh?: number;
  /** Bytes accounted per connection for its objects beyond the buffers (an estimate: the connection, its flow and timers). Default 4 KiB. */
  connectionOverhead?: number;
  /** Orphans (connections closed by the application that still hold state) at most; one more is reset at close (Linux tcp_max_orphans). Default 256. */
  maxOrphans?: number;
  /** Retransmissions of one segment before an orphan is dropped (Linux tcp_orphan_retries; its 0 means 8). Default 5. */
  orphanRetransmits?: number;
  /** An orphan whose peer acknowledges nothing for this long while data or a FIN is outstanding is reset (a user timeout, RFC 5482, for orphans). Default 20 s. */
  orphanTimeoutMs?: number;
  /** An established connection that has received nothing for this long may be reset to make room for a new one. Default 1 s. */
  evictIdleMs?: number;
  /** Each limit that bites is logged at most once per this interval, with the count since the last line. Default 5 s. */
  limitLogIntervalMs?: number;
}

/** Every setting of one connection, resolved. */
export interface ConnectionSettings {
  readonly noDelay: boolean;
  readonly keepAlive: boolean;
  readonly keepAliveIdleMs: number;
  readonly keepAliveIntervalMs: number;
  readonly keepAliveProbes: number;
  readonly userTimeoutMs: number;
  readonly congestion: CongestionAlgorithm;
  readonly sendBufferSize: number;
  /** At least sendBufferSize; equal to it: no growth. */
  readonly sendBufferMax: number;
  readonly receiveBufferSize: number;
  /** At least receiveBufferSize; equal to it: no growth. */
  readonly receiveBufferMax: number;
  readonly timeWaitMs: number;
  readonly finWait2TimeoutMs: number;
  readonly initialRtoMs: number;
  readonly minRtoMs: number;
  readonly maxRtoMs: number;
  readonly maxRetransmits: number;
  readonly maxSynRetransmits: number;
  /** Active opens only: fail when not established after this long; 0: only the SYN retransmissions. */
  readonly connectTimeoutMs: number;
  readonly delayedAckMs: number;
  readonly initialWindowSegments: number;
  readonly sack: boolean;
  readonly timestamps: boolean;
  readonly windowScaling: boolean;
  readonly challengeAckLimit: number;
  readonly pathMtuDiscovery: boolean;
}

export interface LayerSettings extends ConnectionSettings, BudgetLimits {
  readonly backlog: number;
  readonly synCookies: "auto" | "never";
}

export const DEFAULT_TCP_SETTINGS: LayerSettings = {
  noDelay: false,
  keepAlive: false,
  keepAliveIdleMs: 2 * 60 * 60 * 1000,
  keepAliveIntervalMs: 75_000,
  keepAliveProbes: 9,
  userTimeoutMs: 0,
  congestion: "cubic",
  sendBufferSize: 256 * 1024,
  sendBufferMax: 4 * 1024 * 1024,
  receiveBufferSize: 256 * 1024,
  receiveBufferMax: 4 * 1024 * 1024,
  timeWaitMs: 60_000,
  finWait2TimeoutMs: 60_000,
  initialRtoMs: 1000,
  minRtoMs: 200,
  maxRtoMs: 60_000,
  maxRetransmits: 15,
  maxSynRetransmits: 6,
  connectTimeoutMs: 0,
  delayedAckMs: 40,
  initialWindowSegments: 10,
  sack: true,
  timestamps: true,
  windowScaling: true,
  challengeAckLimit: 10,
  pathMtuDiscovery: true,
  backlog: 128,
  synCookies: "auto",
  maxConnections: 1024,
  maxListenerConnections: 1024,
  maxConnectionsPerSource: 256,
  memoryLow: 8 * 1024 * 1024,
  memoryPressure: 12 * 1024 * 1024,
  memoryHigh: 16 * 1024 * 1024,
  connectionOverhead: 4 * 1024,
  maxOrphans: 256,
  orphanRetransmits: 5,
  orphanTimeoutMs: 20_000,
  evictIdleMs: 1000,
  limitLogIntervalMs: 5000,
};

function positive(name: string, value: number | undefined, fallback: number, minimum = 0): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < minimum) throw new RangeError(`tcp: ${name} ${value} is not a number ≥ ${minimum}`);
  return value;
}

/** The layer's settings from its options; throws RangeError on a value out of range. */
export function resolveLayerSettings(options: TcpLayerOptions = {}): LayerSettings {
  const base = resolveFlowSettings(DEFAULT_TCP_SETTINGS, options);
  const defaults = DEFAULT_TCP_SETTINGS;
  return {
    ...base,
    timeWaitMs: positive("timeWaitMs", options.timeWaitMs, defaults.timeWaitMs),
    finWait2TimeoutMs: positive("finWait2TimeoutMs", options.finWait2TimeoutMs, defaults.finWait2TimeoutMs),
    initialRtoMs: positive("initialRtoMs", options.initialRtoMs, defaults.initialRtoMs, 1),
    minRtoMs: positive("minRtoMs", options.minRtoMs, defaults.minRtoMs, 1),
    maxRtoMs: positive("maxRtoMs", options.maxRtoMs, defaults.maxRtoMs, 1),
    maxRetransmits: positive("maxRetransmits", options.maxRetransmits, defaults.maxRetransmits, 1),
    maxSynRetransmits: positive("maxSynRetransmits", options.maxSynRetransmits, defaults.maxSynRetransmits, 0),
    connectTimeoutMs: positive("connectTimeoutMs", options.connectTimeoutMs, defaults.connectTimeoutMs),
    delayedAckMs: positive("delayedAckMs", options.delayedAckMs, defaults.delayedAckMs),
    initialWindowSegments: positive("initialWindowSegments", options.initialWindowSegments, defaults.initialWindowSegments, 1),
    sack: options.sack ?? defaults.sack,
    timestamps: options.timestamps ?? defaults.timestamps,
    windowScaling: options.windowScaling ?? defaults.windowScaling,
    challengeAckLimit: positive("challengeAckLimit", options.challengeAckLimit, defaults.challengeAckLimit),
    pathMtuDiscovery: options.pathMtuDiscovery ?? defaults.pathMtuDiscovery,
    backlog: positive("backlog", options.backlog, defaults.backlog, 1),
    synCookies: options.synCookies ?? defaults.synCookies,
    ...resolveLimits(options),
  };
}

function resolveLimits(options: TcpLayerOptions): BudgetLimits {
  const defaults = DEFAULT_TCP_SETTINGS;
  const memoryHigh = positive("memoryHigh", options.memoryHigh, defaults.memoryHigh, 1);
  const memoryPressure = positive("memoryPressure", options.memoryPressure, Math.min(defaults.memoryPressure, memoryHigh), 1);
  const memoryLow = positive("memoryLow", options.memoryLow, Math.min(defaults.memoryLow, memoryPressure), 0);
  if (memoryLow > memoryPressure || memoryPressure > memoryHigh) {
    throw new RangeError(`tcp: memory marks must be ordered memoryLow ≤ memoryPressure ≤ memoryHigh (got ${memoryLow}, ${memoryPressure}, ${memoryHigh})`);
  }
  return {
    maxConnections: positive("maxConnections", options.maxConnections, defaults.maxConnections, 1),
    maxListenerConnections: positive("maxListenerConnections", options.maxListenerConnections, defaults.maxListenerConnections, 1),
    maxConnectionsPerSource: positive("maxConnectionsPerSource", options.maxConnectionsPerSource, defaults.maxConnectionsPerSource, 1),
    memoryLow,
    memoryPressure,
    memoryHigh,
    connectionOverhead: positive("connectionOverhead", options.connectionOverhead, defaults.connectionOverhead),
    maxOrphans: positive("maxOrphans", options.maxOrphans, defaults.maxOrphans),
    orphanRetransmits: positive("orphanRetransmits", options.orphanRetransmits, defaults.orphanRetransmits, 1),
    orphanTimeoutMs: positive("orphanTimeoutMs", options.orphanTimeoutMs, defaults.orphanTimeoutMs, 1),
    evictIdleMs: positive("evictIdleMs", options.evictIdleMs, defaults.evictIdleMs),
    limitLogIntervalMs: positive("limitLogIntervalMs", options.limitLogIntervalMs, defaults.limitLogIntervalMs),
  };
}

/** A connection's settings: the layer's, with the per-connection options applied. */
export function resolveFlowSettings<Settings extends ConnectionSettings>(layer: Settings, options: FlowOptions = {}): Settings {
  const keepAlive = options.keepAlive;
  const keepAliveTimes: KeepAliveOptions = typeof keepAlive === "object" ? keepAlive : {};
  // An explicit size without an explicit maximum is a fixed size (for both buffers).
  const sendBufferSize = positive("sendBufferSize", options.sendBufferSize, layer.sendBufferSize, 1);
  const fixedSend = options.sendBufferSize !== undefined && options.sendBufferMax === undefined;
  const sendBufferMax = fixedSend ? sendBufferSize : positive("sendBufferMax", options.sendBufferMax, layer.sendBufferMax, 1);
  const receiveBufferSize = positive("receiveBufferSize", options.receiveBufferSize, layer.receiveBufferSize, 1);
  const fixedSize = options.receiveBufferSize !== undefined && options.receiveBufferMax === undefined;
  const receiveBufferMax = fixedSize ? receiveBufferSize : positive("receiveBufferMax", options.receiveBufferMax, layer.receiveBufferMax, 1);
  return {
    ...layer,
    noDelay: options.noDelay ?? layer.noDelay,
    keepAlive: keepAlive === undefined ? layer.keepAlive : keepAlive !== false,
    keepAliveIdleMs: positive("keepAlive.idleMs", keepAliveTimes.idleMs, layer.keepAliveIdleMs, 1),
    keepAliveIntervalMs: positive("keepAlive.intervalMs", keepAliveTimes.intervalMs, layer.keepAliveIntervalMs, 1),
    keepAliveProbes: positive("keepAlive.probes", keepAliveTimes.probes, layer.keepAliveProbes, 1),
    userTimeoutMs: positive("userTimeoutMs", options.userTimeoutMs, layer.userTimeoutMs),
    congestion: options.congestion ?? layer.congestion,
    sendBufferSize,
    sendBufferMax: Math.max(sendBufferSize, sendBufferMax),
    receiveBufferSize,
    receiveBufferMax: Math.max(receiveBufferSize, receiveBufferMax),
  };
}

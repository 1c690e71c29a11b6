/**
 * One TCP connection: the RFC 9293 state machine with the extensions a modern TCP needs, as a
 * plain object driven by three kinds of input and producing one kind of output:
 *
 *   received segments (`receive`), user calls (`write`, `read`, `shutdown`, `close`, `abort`),
 *   timer expirations  ──▶  TcpConnection  ──▶  segments (ConnectionHost.transmit) and events
 *                                               (ConnectionObserver)
 *
 * It does no I/O itself and reads time only from the host's Timers, so tests drive it with a
 * virtual clock. What it implements, by RFC:
 *
 * - RFC 9293: the state machine (§3.3.2, §3.10), active, passive and simultaneous open and
 *   close, half-close, RST processing, TIME-WAIT (§3.4.2), segment acceptability and trimming
 *   (§3.10.7.4), sender and receiver silly window syndrome avoidance (§3.8.6.2), Nagle (§3.7.4),
 *   zero-window probing (§3.8.6.1), the MSS option and effective MSS (§3.7.1).
 * - RFC 5961: challenge ACKs for in-window RSTs and SYNs, the ACK acceptability range, with a
 *   per-connection rate limit (§7) rather than a global one (a global limit is a side channel,
 *   CVE-2016-5696).
 * - RFC 7323: window scaling, timestamps for RTT measurement (Appendix G's per-ACK weighting)
 *   and PAWS; RFC 2018 SACK blocks as receiver, RFC 6675 SACK-based loss recovery as sender.
 * - RFC 6298 retransmission timer with Karn's rule and exponential backoff; RFC 5681 fast
 *   retransmit and fast recovery with limited transmit (RFC 3042) and NewReno partial
 *   acknowledgments (RFC 6582) when SACK is not in use; RFC 5681 §4.1 restart after idle.
 * - RFC 1122: delayed ACKs (§4.2.3.2), keep-alives (§4.2.3.6), ICMP soft and hard errors
 *   (§4.2.3.9, with RFC 5461's restriction of hard errors to SYN-SENT), RST when data arrives
 *   after close (§4.2.2.13); RFC 5482 user timeout; RFC 1191 path MTU discovery.
 *
 * Deliberate deviations, each conservative: data carried by a SYN is not kept (the peer sends it
 * again; only TCP Fast Open would need it); the urgent pointer is ignored and urgent data is
 * delivered inline (RFC 6093 §5); after a retransmission timeout the SACK scoreboard is cleared
 * (RFC 2018 §8's "MUST ignore prior SACK information"), and SACKed data is skipped again as new
 * SACKs arrive; an ACK that SACKs new data counts as a duplicate ACK even when it carries data or
 * a new window (RFC 5681 §2 excludes those; Linux counts SACKed segments alike), so that a peer
 * sending too does not leave every loss to the timer; ECN is not negotiated.
 */
import type { Ipv4Address } from "../../wire/address.ts";
import { TcpFlag, TcpOptions, TCP_HEADER_LENGTH, TCP_MAX_SACK_BLOCKS, TCP_MAX_WINDOW_SCALE, emitTcpHeader, type TcpHeaderFields } from "../../wire/tcp.ts";
import type { NetErrorCode } from "../ipv4.ts";
import type { Timers } from "../types.ts";
import type { NetLogger } from "../ethernet.ts";
import { BudgetEntry, type BudgetedConnection, type TcpBudget } from "./budget.ts";
import { ReceiveBuffer, SendBuffer } from "./buffers.ts";
import { createCongestionController, type CongestionController } from "./congestion.ts";
import type { FlowCounters, TcpCounters } from "./counters.ts";
import { TcpError, type TcpErrorReason } from "./error.ts";
import type { Segment } from "./segment.ts";
import { SeqRangeSet, seqAdd, seqDiff, seqGe, seqGt, seqInRange, seqLe, seqLt, seqMax } from "./seq.ts";
import type { ConnectionSettings } from "./settings.ts";
import { DeadlineTimer } from "./timer.ts";
import type { TcpSecrets } from "./isn.ts";

export type TcpState =
  | "CLOSED"
  | "LISTEN"
  | "SYN-SENT"
  | "SYN-RECEIVED"
  | "ESTABLISHED"
  | "FIN-WAIT-1"
  | "FIN-WAIT-2"
  | "CLOSE-WAIT"
  | "CLOSING"
  | "LAST-ACK"
  | "TIME-WAIT";

/** What a connection needs from the layer that owns it. */
export interface ConnectionHost {
  readonly timers: Timers;
  readonly counters: TcpCounters;
  readonly secrets: TcpSecrets;
  readonly log: NetLogger;
  /** The interface MTU: the largest IP datagram (RFC 9293 §3.7.1: MSS = MTU − 40 on IPv4). */
  readonly mtu: number;
  /** Where outgoing segments are built; at least `mtu` bytes, and `maxOffloadSegment` with TSO. */
  readonly transmitBuffer: Uint8Array;
  /**
   * The link finishes checksums (the base ABI's offloads): segments carry only the pseudo-header
   * sum in their checksum field, and `transmit` says so to the IP layer.
   */
  readonly checksumOffload: boolean;
  /**
   * TCP segmentation offload: the largest segment (header and data) the link cuts into MSS-sized
   * ones, in the manner of Linux's TSO/GSO; 0 without it.
   */
  readonly maxOffloadSegment: number;
  /**
   * Sends transmitBuffer[0, length), a whole TCP segment with its checksum (or, with
   * checksumOffload, the pseudo-header sum), to the connection's peer; with `segmentSize` > 0 the
   * link cuts it into segments of that many data bytes.
   */
  transmit(connection: TcpConnection, length: number, segmentSize: number): void;
  /** The connection reached CLOSED: remove it from the demultiplexing table. */
  release(connection: TcpConnection): void;
  /** RFC 1122 §4.2.3.5: R1 retransmissions of one segment; ask the IP layer to re-validate the path. */
  adviseUnreachable(connection: TcpConnection): void;
  /** The layer's connection and memory budget (budget.ts): this connection's activity, buffer memory and orphaning go there. */
  readonly budget: TcpBudget;
}

/** The listener a passively opened connection belongs to until its handshake ends. */
export interface PassiveOpenOwner {
  /** The handshake completed (ESTABLISHED) or failed; called once. */
  handshakeEnded(connection: TcpConnection, established: boolean): void;
}

/** Events for the application's side (the flow). Called from `flush`, never in the middle of processing. */
export interface ConnectionObserver {
  /** The handshake completed. */
  established(): void;
  /** Data, or the end of the peer's stream, can be read. */
  readable(): void;
  /** Send buffer space was freed. */
  writable(): void;
  /** Our FIN, and all data before it, has been acknowledged. */
  finAcknowledged(): void;
  /** The connection is over for the application: closed normally (error undefined) or failed. Last event. */
  closed(error: TcpError | undefined): void;
}

/** RFC 9293 §3.7.1: the MSS assumed when a SYN carries none (IPv4). */
const DEFAULT_MSS = 536;
/** The smallest MSS we accept from a peer (Linux's tcp_min_snd_mss): tiny segments are an attack (CVE-2019-11479). */
const MIN_PEER_MSS = 48;
/** The smallest path MTU an ICMP message may set (Linux's min_pmtu): forged ICMP cannot push us lower. */
const MIN_PATH_MTU = 552;
/** RFC 1191 §7 plateaus, for "fragmentation needed" without a next-hop MTU. */
const MTU_PLATEAUS = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 576, 296, 68];
/**
 * RFC 1122 §4.2.3.5: R1, the retransmissions of one segment after which each further timeout
 * gives the IP layer negative advice (RFC 1122 §3.3.1.4); "at least 3", as Linux's tcp_retries1.
 */
const NEGATIVE_ADVICE_RETRANSMITS = 3;
/** RFC 5681 §3.2: DupThresh. */
const DUP_THRESH = 3;
/** Bounds on out-of-order ranges we keep and SACKed ranges we track: beyond them new islands are dropped. */
const MAX_OUT_OF_ORDER_RANGES = 64;
const MAX_SACKED_RANGES = 256;
/** RFC 7323 §5.5: TS.Recent is invalid after 24 days idle. */
const TS_RECENT_MAX_AGE_MS = 24 * 24 * 60 * 60 * 1000;
/** Out-of-window duplicate ACKs are limited to one per this long (as Linux's tcp_invalid_ratelimit). */
const OUT_OF_WINDOW_ACK_INTERVAL_MS = 500;
/** RFC 6298 §5.7: the RTO once data flows after a SYN that had to be retransmitted, with no RTT measured. */
const RTO_AFTER_SYN_TIMEOUT_MS = 3000;
/** Largest chunk one `read` returns. */
const MAX_READ_CHUNK = 64 * 1024;
/** The shortest round over which receive-buffer growth is judged, for paths whose RTT is tiny or not yet known. */
const MIN_RECEIVE_ROUND_MS = 1;
/**
 * Under memory pressure the window offers no more than the receive ring already allocated, but
 * at least this many segments, so that a connection still makes progress (as Linux's
 * tcp_clamp_window keeps a few segments' worth).
 */
const PRESSURE_WINDOW_SEGMENTS = 4;
/** Under memory pressure a send buffer takes no more than its allocated ring, or this much when it has none. */
const PRESSURE_SEND_MINIMUM = 4 * 1024;

const EVENT_ESTABLISHED = 1;
const EVENT_READABLE = 2;
const EVENT_WRITABLE = 4;
const EVENT_FIN_ACKED = 8;
const EVENT_CLOSED = 16;

type RetransmitMode = "rto" | "persist";
/** What the life timer is for: the connect deadline (SYN-SENT), keep-alive, TIME-WAIT or FIN-WAIT-2. */
type LifeMode = "connect" | "keepalive" | "time-wait" | "fin-wait-2";
type Recovery = "none" | "sack" | "newreno";

export interface ConnectionEndpoints {
  localAddress: Ipv4Address;
  localPort: number;
  remoteAddress: Ipv4Address;
  remotePort: number;
}

/** Options recovered from a SYN cookie (RFC 4987 §3.6): what the SYN had offered. */
export interface CookieOptions {
  mss: number;
  /** -1 when none (or timestamps, which carry it, were not in use). */
  windowScale: number;
  sackPermitted: boolean;
  /** The peer's TSval in the completing ACK, when timestamps are in use, else undefined. */
  tsValue: number | undefined;
}

export class TcpConnection implements BudgetedConnection {
  state: TcpState = "CLOSED";
  /** The budget's record of this connection (its source, memory charged, orphan state). */
  readonly entry: BudgetEntry;
  readonly localAddress: Ipv4Address;
  readonly localPort: number;
  readonly remoteAddress: Ipv4Address;
  readonly remotePort: number;
  readonly settings: ConnectionSettings;
  observer: ConnectionObserver | undefined;
  /** The listener of a passive open, until the handshake ends. */
  owner: PassiveOpenOwner | undefined;
  /** Why the connection failed, once it has. */
  error: TcpError | undefined;
  readonly flowCounters: FlowCounters;

  // Send sequence space (RFC 9293 §3.3.1), with SND.MAX: the highest sequence sent (a timeout
  // sends again from SND.UNA, so SND.NXT can be below it).
  private iss = 0;
  private sndUna = 0;
  private sndNxt = 0;
  private sndMax = 0;
  /**
   * The end of the last segment sent that was smaller than the MSS: Nagle in Minshall's form
   * (as Linux) holds a small segment back only while an earlier small one is unacknowledged, so
   * a response of a full segment plus a short tail does not wait for the peer's delayed ACK.
   */
  private sndSml = 0;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private maxSndWnd = 0;
  /** The peer's window shift (applies to windows it sends), and ours. */
  private sndScale = 0;
  private rcvScale = 0;
  /** The shift we offer in our SYN: enough for the receive buffer, at most 14. */
  private readonly offeredScale: number;
  private windowScaling = false;

  // Receive sequence space.
  private irs = 0;
  private rcvNxt = 0;
  /** The right edge the receiver's SWS rule has committed to (unrounded). */
  private rcvAdvertised = 0;
  /** The furthest right edge any segment has offered (rounded up by the scale): data below it is taken. */
  private rcvAcceptEdge = 0;
  /** The window our SYN offered (unscaled, RFC 7323 §2.2). */
  private synOfferedWindow = 0;
  /** Largest data segment seen: what "full-sized" means to the delayed ACK rule. */
  private rcvMss = DEFAULT_MSS;
  /** Receive-buffer autotuning: bytes the application read since the round began (adjustReceiveSpace). */
  private readThisRound = 0;
  private roundStartedAt = 0;

  // Options in effect.
  private peerMss = DEFAULT_MSS;
  private pathMtu: number;
  /** Set when the path's MTU is below MIN_PATH_MTU: segments go without "don't fragment". */
  private fragmentable = false;
  /** Bytes of data in a full segment, with the timestamps option accounted for. */
  private smss = DEFAULT_MSS;
  private timestampsOn = false;
  private sackOn = false;
  private tsOffset = 0;
  private tsRecent = 0;
  private tsRecentAt = 0;
  private lastAckSent = 0;

  // Buffers and the stream ends.
  private readonly sendBuffer: SendBuffer;
  private readonly receiveBuffer: ReceiveBuffer;
  /** Sequence number of sendBuffer's first byte. */
  private bufferSeq = 0;
  private finQueued = false;
  private finSeq = 0;
  private finAckReported = false;
  /** The peer's FIN has been received in order. */
  private finReceived = false;
  /** A FIN that arrived beyond a gap: its sequence number, or -1. */
  private pendingPeerFin = -1;
  /** The application will read no more: data that arrives is answered with RST (RFC 1122 §4.2.2.13). */
  private userClosed = false;
  private passive = false;

  // Out-of-order data (receiver) and SACK (both sides).
  private readonly outOfOrder = new SeqRangeSet();
  /** Sequence numbers inside recently updated out-of-order ranges, most recent first (RFC 2018 §4). */
  private readonly sackRecent: number[] = [];
  /** The sender's scoreboard: ranges above SND.UNA the peer has SACKed. */
  private readonly sacked = new SeqRangeSet();
  /** Unsacked data below this is lost by RFC 6675's IsLost. */
  private lostBoundary = 0;

  // Loss recovery.
  private recovery: Recovery = "none";
  private recoveryPoint = 0;
  /** RFC 6582 "recover": no new fast retransmit until an ACK reaches it (also set on timeouts). */
  private recoverGuard = 0;
  private recoverGuardSet = false;
  private highRxt = 0;
  private rescueRxt = 0;
  private dupAcks = 0;
  private partialAckSeen = false;
  private readonly cc: CongestionController;

  // Round-trip time (RFC 6298) and timers.
  private srtt = 0;
  private rttVar = 0;
  private rto: number;
  private hasRttSample = false;
  private rttTiming = false;
  private rttSeq = 0;
  private rttStart = 0;
  private backoff = 0;
  private synRetransmitted = false;
  private retransmitsInRow = 0;
  private synRetries = 0;
  private persistBackoff = 0;
  private probesUnanswered = 0;
  private keepAlivesSent = 0;
  private lastProgressAt = 0;
  private lastReceiveAt = 0;
  private lastSendAt = 0;
  private lastOutOfWindowAckAt = -Infinity;
  private challengeWindowStart = -Infinity;
  private challengesInWindow = 0;
  private retransmitMode: RetransmitMode = "rto";
  private lifeMode: LifeMode = "keepalive";
  /** When the active open began: connect failures say how long they took. */
  private connectStartedAt = 0;
  private readonly retransmitTimer: DeadlineTimer;
  private readonly delayedAckTimer: DeadlineTimer;
  private readonly lifeTimer: DeadlineTimer;

  // Output state.
  private ackNow = false;
  private segmentsUnacked = 0;
  private softError: NetErrorCode | undefined;
  private events = 0;
  private depth = 0;
  /** The clock at the start of the current operation (see now()). */
  private operationTime = 0;
  private closedReported = false;
  private readonly host: ConnectionHost;
  private readonly header: TcpHeaderFields = { srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0, urgentPointer: 0 };
  private readonly options = new TcpOptions();

  constructor(host: ConnectionHost, endpoints: ConnectionEndpoints, settings: ConnectionSettings) {
    this.host = host;
    this.localAddress = endpoints.localAddress;
    this.localPort = endpoints.localPort;
    this.remoteAddress = endpoints.remoteAddress;
    this.remotePort = endpoints.remotePort;
    this.settings = settings;
    this.entry = new BudgetEntry(endpoints.remoteAddress, host.timers.now());
    this.pathMtu = host.mtu;
    let scale = 0;
    // Scaled for the largest the buffer may grow to: the scale cannot change after the SYN.
    while (scale < TCP_MAX_WINDOW_SCALE && 0xffff * 2 ** scale < settings.receiveBufferMax) scale++;
    this.offeredScale = settings.windowScaling ? scale : 0;
    this.sendBuffer = new SendBuffer(settings.sendBufferSize);
    this.receiveBuffer = new ReceiveBuffer(settings.receiveBufferSize, 2 ** this.offeredScale);
    this.rto = settings.initialRtoMs;
    this.smss = this.effectiveMss(0);
    this.cc = createCongestionController(settings.congestion, this.smss, settings.initialWindowSegments);
    const timers = host.timers;
    this.retransmitTimer = new DeadlineTimer(timers, () => this.onRetransmitTimer());
    this.delayedAckTimer = new DeadlineTimer(timers, () => this.onDelayedAckTimer());
    this.lifeTimer = new DeadlineTimer(timers, () => this.onLifeTimer());
    this.flowCounters = {
      segmentsIn: 0,
      segmentsOut: 0,
      bytesSent: 0,
      bytesReceived: 0,
      retransmits: 0,
      timeouts: 0,
      fastRecoveries: 0,
      duplicateAcks: 0,
      outOfOrder: 0,
      duplicateData: 0,
      windowProbes: 0,
      keepAliveProbes: 0,
      windowUpdates: 0,
      receiveBufferGrowths: 0,
      sendBufferGrowths: 0,
      delayedAcks: 0,
      challengeAcks: 0,
      srttMs: 0,
      rttVarMs: 0,
      rtoMs: 0,
      cwnd: 0,
      ssthresh: 0,
      sendMss: 0,
      sendWindow: 0,
      receiveWindow: 0,
      bytesInFlight: 0,
    };
    host.counters.connections++;
  }

  // ——— Opening ———

  /** Active open (RFC 9293 §3.10.1 OPEN in CLOSED): sends the SYN. */
  openActive(): void {
    this.enter();
    this.iss = this.host.secrets.initialSequence(this.localAddress, this.localPort, this.remoteAddress, this.remotePort, this.now());
    this.initSendSequence(this.iss);
    this.tsOffset = this.host.secrets.timestampOffset(this.localAddress, this.localPort, this.remoteAddress, this.remotePort);
    this.state = "SYN-SENT";
    this.host.counters.activeOpens++;
    this.connectStartedAt = this.now();
    if (this.settings.connectTimeoutMs > 0) this.startLifeTimer("connect", this.settings.connectTimeoutMs);
    this.sendSyn();
    this.leave();
  }

  /** Passive open from a listener's SYN (RFC 9293 §3.10.7.2, third check): sends the SYN-ACK. */
  openPassive(syn: Segment, owner: PassiveOpenOwner): void {
    this.enter();
    this.passive = true;
    this.owner = owner;
    this.iss = this.host.secrets.initialSequence(this.localAddress, this.localPort, this.remoteAddress, this.remotePort, this.now());
    this.initSendSequence(this.iss);
    this.tsOffset = this.host.secrets.timestampOffset(this.localAddress, this.localPort, this.remoteAddress, this.remotePort);
    this.irs = syn.seq;
    this.rcvNxt = seqAdd(syn.seq, 1);
    this.negotiate(syn.options);
    // RFC 7323 §2.2: the window of a SYN is never scaled.
    this.sndWnd = syn.window;
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = syn.seq;
    this.sndWl2 = syn.ack;
    this.state = "SYN-RECEIVED";
    this.host.counters.passiveOpens++;
    this.sendSyn();
    this.leave();
  }

  /**
   * Opens straight into ESTABLISHED from the ACK that returned a valid SYN cookie (RFC 4987
   * §3.6): `iss` is the cookie, the options those the cookie encoded. The ACK itself is then
   * processed as any other (it may carry data).
   */
  openFromCookie(ack: Segment, iss: number, cookie: CookieOptions): void {
    this.enter();
    this.passive = true;
    this.iss = iss;
    this.initSendSequence(iss);
    this.sndUna = seqAdd(iss, 1);
    this.sndNxt = this.sndUna;
    this.sndMax = this.sndUna;
    this.bufferSeq = this.sndUna;
    this.tsOffset = this.host.secrets.timestampOffset(this.localAddress, this.localPort, this.remoteAddress, this.remotePort);
    this.irs = seqAdd(ack.seq, -1);
    this.rcvNxt = ack.seq;
    this.peerMss = Math.max(MIN_PEER_MSS, cookie.mss);
    if (this.settings.windowScaling && cookie.windowScale >= 0) {
      this.windowScaling = true;
      this.sndScale = Math.min(cookie.windowScale, TCP_MAX_WINDOW_SCALE);
      this.rcvScale = this.offeredScale;
    }
    this.sackOn = this.settings.sack && cookie.sackPermitted;
    if (this.settings.timestamps && cookie.tsValue !== undefined) {
      this.timestampsOn = true;
      this.tsRecent = cookie.tsValue;
      this.tsRecentAt = this.now();
    }
    this.updateMss();
    // What our cookie SYN-ACK offered: an unscaled window of at most 65535.
    this.rcvAdvertised = seqAdd(this.rcvNxt, Math.min(this.receiveBuffer.free, 0xffff));
    this.rcvAcceptEdge = this.rcvAdvertised;
    this.sndWnd = ack.window * 2 ** this.sndScale;
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = ack.seq;
    this.sndWl2 = ack.ack;
    this.lastAckSent = this.rcvNxt;
    this.host.counters.passiveOpens++;
    this.becomeEstablished();
    this.processEstablishedSegment(ack);
    this.leave();
  }

  private initSendSequence(iss: number): void {
    this.sndUna = iss;
    this.sndNxt = iss;
    this.sndMax = iss;
    this.sndSml = iss;
    this.bufferSeq = seqAdd(iss, 1);
    this.recoverGuard = iss;
    this.highRxt = iss;
    this.rescueRxt = iss;
    this.lostBoundary = iss;
    const now = this.now();
    this.lastProgressAt = now;
    this.lastReceiveAt = now;
    this.lastSendAt = now;
  }

  /** Applies the options of the peer's SYN (RFC 9293 §3.7.1, RFC 7323 §2.2 and §3.2, RFC 2018 §2). */
  private negotiate(options: TcpOptions): void {
    this.peerMss = options.mss >= 0 ? Math.max(MIN_PEER_MSS, options.mss) : DEFAULT_MSS;
    if (this.settings.windowScaling && options.windowScale >= 0) {
      this.windowScaling = true;
      // RFC 7323 §2.3: a shift above 14 is used as 14.
      this.sndScale = Math.min(options.windowScale, TCP_MAX_WINDOW_SCALE);
      this.rcvScale = this.offeredScale;
    } else {
      this.windowScaling = false;
      this.sndScale = 0;
      this.rcvScale = 0;
    }
    this.sackOn = this.settings.sack && options.sackPermitted;
    if (this.settings.timestamps && options.timestamps) {
      this.timestampsOn = true;
      this.tsRecent = options.tsValue;
      this.tsRecentAt = this.now();
    } else {
      this.timestampsOn = false;
    }
    this.updateMss();
  }

  // ——— Application calls ———

  /** Copies as much of source[start, end) as the send buffer takes; returns the count (0 when full or not writable). */
  write(source: Uint8Array, start = 0, end = source.length): number {
    if (!this.canWrite) return 0;
    this.enter();
    const taken = this.sendBuffer.append(source, start, Math.min(end, start + this.sendRoom()));
    this.leave();
    return taken;
  }

  /** Whether `write` can take data now or later: the connection is up and the sending side not shut down. */
  get canWrite(): boolean {
    return !this.finQueued && (this.state === "ESTABLISHED" || this.state === "CLOSE-WAIT");
  }

  /** Free space in the send buffer. */
  get writableBytes(): number {
    return this.canWrite ? this.sendRoom() : 0;
  }

  /**
   * What the send buffer takes now: its free space, but under memory pressure (tcp_mem) only
   * what fits in the ring already allocated (PRESSURE_SEND_MINIMUM at least, so that a
   * connection still moves): writers wait, as Linux's sk_stream_memory_free makes them, and
   * acknowledgments free room within the ring.
   */
  private sendRoom(): number {
    const buffer = this.sendBuffer;
    if (!this.host.budget.underPressure) return buffer.free;
    return Math.max(0, Math.min(buffer.free, Math.max(buffer.allocated, PRESSURE_SEND_MINIMUM) - buffer.length));
  }

  /** Bytes ready to read. */
  get readableBytes(): number {
    return this.receiveBuffer.readable;
  }

  /** The peer closed its side and every byte before its FIN has been read. */
  get atEndOfStream(): boolean {
    return this.finReceived && this.receiveBuffer.readable === 0;
  }

  /** Takes up to `max` readable bytes; may send a window update (RFC 9293 §3.8.6.2.2). */
  read(max = MAX_READ_CHUNK): Uint8Array | undefined {
    this.enter();
    const chunk = this.receiveBuffer.read(max);
    if (chunk !== undefined && this.isSynchronized() && !this.finReceived) {
      this.adjustReceiveSpace(chunk.length);
      this.considerWindowUpdate();
    }
    this.releaseDrainedReceiveBuffer();
    this.leave();
    return chunk;
  }

  /** As `read`, into the caller's buffer: returns the bytes copied (0 when none are readable). */
  readInto(into: Uint8Array): number {
    this.enter();
    const count = this.receiveBuffer.readInto(into);
    if (count > 0 && this.isSynchronized() && !this.finReceived) {
      this.adjustReceiveSpace(count);
      this.considerWindowUpdate();
    }
    this.releaseDrainedReceiveBuffer();
    this.leave();
    return count;
  }

  /** Half-close (RFC 9293 §3.10.4 CLOSE): send a FIN after the buffered data; reads go on. */
  shutdown(): void {
    this.enter();
    this.queueFin();
    this.leave();
  }

  /**
   * Full close: shutdown, and the application reads no more. Unread data, or data arriving
   * later, makes it a reset (RFC 1122 §4.2.2.13), as it would lose data silently otherwise.
   */
  close(): void {
    this.enter();
    this.userClosed = true;
    if (this.state === "SYN-SENT" || this.state === "LISTEN") {
      this.terminate(undefined);
    } else if (this.receiveBuffer.readable > 0 && this.state !== "CLOSED") {
      this.fail("aborted", "closed with unread data", true);
    } else {
      this.queueFin();
      if (this.state === "FIN-WAIT-2") this.startLifeTimer("fin-wait-2", this.settings.finWait2TimeoutMs);
      if (this.state !== "CLOSED" && this.state !== "TIME-WAIT" && !this.host.budget.orphaned(this)) {
        // Linux's tcp_close with too many orphans: reset rather than hold one more.
        this.fail("aborted", "reset at close: too many orphaned connections (maxOrphans)", true);
      }
    }
    this.host.budget.releasedByApplication(this);
    this.leave();
  }

  /** ABORT (RFC 9293 §3.10.5): RST to the peer, everything dropped. */
  abort(): void {
    if (this.state === "CLOSED") return;
    this.enter();
    this.fail("aborted", "aborted", this.state !== "SYN-SENT" && this.state !== "TIME-WAIT");
    this.leave();
  }

  private queueFin(): void {
    if (this.finQueued) return;
    switch (this.state) {
      case "SYN-RECEIVED":
      case "ESTABLISHED":
        this.finQueued = true;
        this.finSeq = this.dataEnd;
        this.state = "FIN-WAIT-1";
        break;
      case "CLOSE-WAIT":
        this.finQueued = true;
        this.finSeq = this.dataEnd;
        this.state = "LAST-ACK";
        break;
      default:
        break;
    }
  }

  // ——— Segment arrival (RFC 9293 §3.10.7) ———

  /** Processes one segment addressed to this connection; never throws on any input. */
  receive(segment: Segment): void {
    this.enter();
    this.flowCounters.segmentsIn++;
    this.lastReceiveAt = this.now();
    this.keepAlivesSent = 0;
    switch (this.state) {
      case "CLOSED":
      case "LISTEN":
        break;
      case "SYN-SENT":
        this.receiveInSynSent(segment);
        break;
      default:
        this.receiveSynchronized(segment);
        break;
    }
    this.leave();
  }

  /** RFC 9293 §3.10.7.3. */
  private receiveInSynSent(segment: Segment): void {
    const hasAck = segment.has(TcpFlag.Ack);
    const hasRst = segment.has(TcpFlag.Rst);
    if (hasAck && (seqLe(segment.ack, this.iss) || seqGt(segment.ack, this.sndMax))) {
      // An ACK for something we did not send: a stale or bogus segment.
      if (!hasRst) this.sendReset(segment.ack, 0, false);
      return;
    }
    if (hasRst) {
      // Only with an acceptable ACK (RFC 9293; RFC 5961 §3 keeps SYN-SENT as it was).
      if (hasAck) {
        this.host.counters.resetsReceived++;
        this.fail("refused", "connection refused", false);
      }
      return;
    }
    if (!segment.has(TcpFlag.Syn)) return;
    this.irs = segment.seq;
    this.rcvNxt = seqAdd(segment.seq, 1);
    // Our SYN offered a window before we knew where the peer's sequence space starts.
    this.rcvAdvertised = seqAdd(this.rcvNxt, this.synOfferedWindow);
    this.rcvAcceptEdge = this.rcvAdvertised;
    this.negotiate(segment.options);
    this.lastAckSent = this.rcvNxt;
    if (hasAck) {
      this.sndUna = segment.ack;
      this.takeRttSample(segment);
    }
    if (seqGt(this.sndUna, this.iss)) {
      // RFC 7323 §2.2: the window of a SYN segment is not scaled.
      this.sndWnd = segment.window;
      this.maxSndWnd = this.sndWnd;
      this.sndWl1 = segment.seq;
      this.sndWl2 = segment.ack;
      this.retransmitTimer.stop();
      this.becomeEstablished();
      this.ackNow = true;
      // Data or FIN in a SYN-ACK: trim the SYN and take the rest as in ESTABLISHED.
      if (segment.dataLength > 0 || segment.has(TcpFlag.Fin)) {
        segment.seq = seqAdd(segment.seq, 1);
        segment.flags &= ~TcpFlag.Syn;
        this.processText(segment);
      }
      return;
    }
    // Simultaneous open (RFC 9293 §3.5, figure 7): answer the SYN with a SYN-ACK of our ISS.
    this.sndWnd = segment.window;
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = segment.seq;
    this.sndWl2 = segment.ack;
    this.state = "SYN-RECEIVED";
    this.sendSyn();
  }

  /** RFC 9293 §3.10.7.4: SYN-RECEIVED and every later state. */
  private receiveSynchronized(segment: Segment): void {
    const counters = this.host.counters;
    const hasRst = segment.has(TcpFlag.Rst);
    const options = segment.options;
    // RFC 7323 §3.2: once negotiated, a non-RST segment without timestamps is dropped.
    if (this.timestampsOn && !options.timestamps && !hasRst) {
      counters.missingTimestamp++;
      return;
    }
    // RFC 7323 §5.3 R1 (PAWS): an older timestamp than TS.Recent marks an old duplicate.
    if (this.timestampsOn && options.timestamps && !hasRst && this.pawsRejects(options.tsValue)) {
      counters.pawsRejected++;
      this.sendOutOfWindowAck(segment.length === 0);
      return;
    }
    // First check: sequence number acceptability.
    if (!this.acceptable(segment)) {
      if (hasRst) return; // RFC 5961 §3.2: an out-of-window RST is dropped silently
      if (this.state === "SYN-RECEIVED" && segment.has(TcpFlag.Syn) && !segment.has(TcpFlag.Ack) && segment.seq === this.irs) {
        // The peer's SYN again: our SYN-ACK was lost. Answer it now rather than at our timeout.
        this.sendSyn();
        return;
      }
      counters.outOfWindow++;
      if (segment.dataLength > 0 && seqLe(seqAdd(segment.seq, segment.length), this.rcvNxt)) this.flowCounters.duplicateData++;
      if (this.state === "TIME-WAIT" && segment.has(TcpFlag.Fin)) this.startLifeTimer("time-wait", this.settings.timeWaitMs);
      this.sendOutOfWindowAck(segment.length === 0);
      return;
    }
    // RFC 7323 §4.3 / §5.3 R3: record the timestamp to echo.
    if (this.timestampsOn && options.timestamps && seqGe(options.tsValue, this.tsRecent) && seqLe(segment.seq, this.lastAckSent)) {
      this.tsRecent = options.tsValue;
      this.tsRecentAt = this.now();
    }
    // Second check: RST (RFC 5961 §3.2: only an exact match resets; in-window gets a challenge ACK).
    if (hasRst) {
      if (segment.seq === this.rcvNxt) this.resetReceived();
      else this.sendChallengeAck();
      return;
    }
    // Fourth check: SYN (RFC 5961 §4, RFC 9293 §3.10.7.4).
    if (segment.has(TcpFlag.Syn)) {
      if (this.state === "SYN-RECEIVED" && this.passive) {
        // RFC 9293: "return this connection to the LISTEN state".
        this.terminate(undefined);
        return;
      }
      this.sendChallengeAck();
      return;
    }
    // Fifth check: ACK.
    if (!segment.has(TcpFlag.Ack)) return;
    if (this.state === "SYN-RECEIVED") {
      if (!(seqLt(this.sndUna, segment.ack) && seqLe(segment.ack, this.sndMax))) {
        this.sendReset(segment.ack, 0, false);
        return;
      }
      this.sndWnd = segment.window * 2 ** this.sndScale;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = segment.seq;
      this.sndWl2 = segment.ack;
      this.becomeEstablished();
    }
    this.processEstablishedSegment(segment);
  }

  /** The ACK, text and FIN processing shared by every synchronized state (and a cookie's ACK). */
  private processEstablishedSegment(segment: Segment): void {
    if (!this.processAck(segment)) return;
    switch (this.state) {
      case "FIN-WAIT-1":
        if (this.finAcked) {
          this.state = "FIN-WAIT-2";
          if (this.userClosed) this.startLifeTimer("fin-wait-2", this.settings.finWait2TimeoutMs);
        }
        break;
      case "CLOSING":
        if (this.finAcked) this.enterTimeWait();
        return;
      case "LAST-ACK":
        if (this.finAcked) this.terminate(undefined);
        return;
      case "TIME-WAIT":
        // Only a retransmitted FIN can come; the acceptability check answered it.
        return;
      default:
        break;
    }
    this.processText(segment);
  }

  /** Sixth to eighth checks: URG is ignored (RFC 6093 §5: urgent data is delivered inline), then text, then FIN. */
  private processText(segment: Segment): void {
    let start = segment.seq;
    let dataStart = segment.dataStart;
    let length = segment.dataLength;
    let fin = segment.has(TcpFlag.Fin);
    const originalLength = length;
    // Trim what we have already (RFC 9293 §3.10.7.4, "trimmed to only those octets within the window").
    if (seqLt(start, this.rcvNxt)) {
      const old = Math.min(seqDiff(this.rcvNxt, start), length);
      dataStart += old;
      length -= old;
      start = seqAdd(start, old);
      if (fin && seqLt(start, this.rcvNxt)) {
        fin = false; // a FIN we have processed already
        this.ackNow = true;
      }
      if (old > 0) this.flowCounters.duplicateData++;
    }
    const rightEdge = seqAdd(this.rcvNxt, this.receiveWindow());
    if (length > 0 && seqGt(seqAdd(start, length), rightEdge)) {
      length = Math.max(0, seqDiff(rightEdge, start));
      fin = false;
    }
    if (fin && !(length === 0 && start === this.rcvNxt) && seqGe(seqAdd(start, length), rightEdge)) fin = false;
    if (length < originalLength) this.ackNow = true; // we could not take it all: say what we took
    if (length > 0) {
      if (this.state === "ESTABLISHED" || this.state === "FIN-WAIT-1" || this.state === "FIN-WAIT-2") {
        if (this.userClosed) {
          // RFC 1122 §4.2.2.13: data for an application that closed is lost; say so with a RST.
          this.fail("aborted", "data arrived after close", true);
          return;
        }
        this.acceptData(start, segment.bytes, dataStart, length);
      }
      // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer's FIN came already; ignore the text.
    }
    if (fin) this.acceptFin(seqAdd(start, length));
  }

  private acceptData(start: number, bytes: Uint8Array, dataStart: number, length: number): void {
    const buffer = this.receiveBuffer;
    const offset = seqDiff(start, this.rcvNxt);
    let room = buffer.roomAt(offset);
    // Over the memory high mark, only what the ring already allocated can hold (budget.overHigh).
    if (this.host.budget.overHigh) {
      const held = Math.max(0, buffer.allocated - buffer.readable - offset);
      if (length > held) {
        room = Math.min(room, held);
        this.host.budget.bite("pruned", `dropped received data over the memory high mark (${kibText(this.host.budget.limits.memoryHigh)}, memoryHigh): the peer retransmits it`);
      }
    }
    if (length > room) length = room;
    if (length <= 0) {
      this.ackNow = true;
      return;
    }
    if (length > this.rcvMss) this.rcvMss = Math.min(length, this.host.mtu - 40);
    if (offset > 0) {
      // Out of order: keep it at its place, answer at once with a duplicate ACK and SACK (RFC 5681 §4.2).
      const outOfOrder = this.outOfOrder;
      const end = seqAdd(start, length);
      if (outOfOrder.size >= MAX_OUT_OF_ORDER_RANGES && outOfOrder.coveredBetween(seqAdd(start, -1), seqAdd(end, 1)) === 0) {
        this.ackNow = true;
        return;
      }
      buffer.place(offset, bytes, dataStart, dataStart + length);
      outOfOrder.add(start, end);
      this.noteSackRecent(start);
      this.flowCounters.outOfOrder++;
      this.ackNow = true;
      return;
    }
    buffer.place(0, bytes, dataStart, dataStart + length);
    let next = seqAdd(this.rcvNxt, length);
    const outOfOrder = this.outOfOrder;
    if (outOfOrder.size > 0) {
      // RFC 5681 §4.2: a segment that fills (part of) a gap is acknowledged at once.
      this.ackNow = true;
      if (seqLe(outOfOrder.lowest, next)) next = seqMax(next, outOfOrder.end(0));
      outOfOrder.removeBelow(next);
    }
    const advance = seqDiff(next, this.rcvNxt);
    buffer.commit(advance);
    this.rcvNxt = next;
    this.noteProgress();
    this.flowCounters.bytesReceived += advance;
    this.events |= EVENT_READABLE;
    // RFC 1122 §4.2.3.2 and RFC 5681 §4.2: ACK at least every second full-sized segment, and
    // within the delayed ACK time otherwise.
    // A segment coalesced by the link (offloads) counts as the full-sized segments it stands for.
    this.segmentsUnacked += advance >= 2 * (this.host.mtu - 40) ? 2 : 1;
    if (this.segmentsUnacked >= 2) this.ackNow = true;
    else this.delayedAckTimer.setIfStopped(this.now() + this.settings.delayedAckMs);
    if (this.pendingPeerFin >= 0 && seqGe(this.rcvNxt, this.pendingPeerFin)) {
      const finAt = this.pendingPeerFin;
      this.pendingPeerFin = -1;
      if (finAt === this.rcvNxt) this.acceptFin(finAt);
    }
  }

  /**
   * After the peer's FIN no data can come: once the application has read the last byte, the
   * receive buffer's memory goes (a TIME-WAIT connection lasts a minute, and CLOSE-WAIT as long
   * as the application likes).
   */
  private releaseDrainedReceiveBuffer(): void {
    if (this.finReceived && this.receiveBuffer.readable === 0) this.receiveBuffer.dispose();
  }

  private acceptFin(at: number): void {
    if (seqGt(at, this.rcvNxt)) {
      // Beyond a gap: it takes effect when the gap fills.
      this.pendingPeerFin = at;
      this.ackNow = true;
      return;
    }
    if (at !== this.rcvNxt || this.finReceived) return;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.noteProgress();
    this.finReceived = true;
    this.outOfOrder.clear();
    this.sackRecent.length = 0;
    this.releaseDrainedReceiveBuffer();
    this.ackNow = true;
    this.events |= EVENT_READABLE;
    switch (this.state) {
      case "SYN-RECEIVED":
      case "ESTABLISHED":
        this.state = "CLOSE-WAIT";
        break;
      case "FIN-WAIT-1":
        if (this.finAcked) this.enterTimeWait();
        else this.state = "CLOSING";
        break;
      case "FIN-WAIT-2":
        this.enterTimeWait();
        break;
      case "TIME-WAIT":
        this.startLifeTimer("time-wait", this.settings.timeWaitMs);
        break;
      default:
        break;
    }
  }

  /**
   * The fifth check for an established connection. Returns false when the segment must be
   * dropped (an ACK of something not sent, or too old: RFC 5961 §5.2).
   */
  private processAck(segment: Segment): boolean {
    const ack = segment.ack;
    if (seqGt(ack, this.sndMax) || seqLt(ack, seqAdd(this.sndUna, -Math.max(this.maxSndWnd, 1)))) {
      this.host.counters.badAcks++;
      this.sendChallengeAck();
      return false;
    }
    const window = segment.window * 2 ** this.sndScale;
    const newlySacked = this.sackOn && segment.options.sackCount > 0 ? this.updateScoreboard(segment.options) : 0;
    // RFC 6675 §4: IsLost follows the scoreboard, whatever else the ACK does (during recovery
    // too, where NextSeg's rule (1) relies on it: a stale boundary sends new data past a hole
    // that three SACKed segments already mark as lost, and the hole waits for the RTO).
    if (newlySacked > 0) this.computeLostBoundary();
    if (seqGt(ack, this.sndUna)) {
      this.onNewAck(segment, ack);
    } else if (
      ack === this.sndUna &&
      seqLt(this.sndUna, this.sndMax) &&
      // RFC 5681's duplicate ACK carries no data and the same window. An ACK that SACKs new data
      // is evidence of a hole whatever it carries (as for Linux, which counts SACKed segments):
      // when the peer sends too (an echo, a pipelined protocol), nearly every ACK carries data,
      // and without this its losses would wait for the retransmission timer.
      (newlySacked > 0 || (segment.dataLength === 0 && !segment.has(TcpFlag.Fin) && this.sndWnd > 0 && window === this.sndWnd))
    ) {
      this.onDuplicateAck();
    }
    // RFC 9293 §3.10.7.4: update the send window from the most recent segment.
    if (seqLt(this.sndWl1, segment.seq) || (this.sndWl1 === segment.seq && seqLe(this.sndWl2, ack))) {
      const opened = this.sndWnd === 0 && window > 0;
      this.sndWnd = window;
      this.sndWl1 = segment.seq;
      this.sndWl2 = ack;
      if (window > this.maxSndWnd) this.maxSndWnd = window;
      if (opened) this.persistBackoff = 0;
    }
    this.probesUnanswered = 0;
    return true;
  }

  private onNewAck(segment: Segment, ack: number): void {
    const acked = seqDiff(ack, this.sndUna);
    const flightBefore = seqDiff(this.sndMax, this.sndUna);
    // Release acknowledged bytes: everything below the ACK (SYN and FIN occupy no buffer).
    const dataEnd = this.dataEnd;
    const released = seqDiff(seqLt(ack, dataEnd) ? ack : dataEnd, this.bufferSeq);
    if (released > 0) {
      this.sendBuffer.release(released);
      this.bufferSeq = seqAdd(this.bufferSeq, released);
      this.events |= EVENT_WRITABLE;
    }
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    if (seqLt(this.highRxt, ack)) this.highRxt = ack;
    this.sacked.removeBelow(ack);
    this.takeRttSample(segment);
    this.backoff = 0;
    this.retransmitsInRow = 0;
    this.lastProgressAt = this.now();
    this.noteProgress();
    if (this.finQueued && this.finAcked && !this.finAckReported) {
      this.finAckReported = true;
      this.events |= EVENT_FIN_ACKED;
      this.sendBuffer.dispose();
    }
    const now = this.now();
    switch (this.recovery) {
      case "none":
        this.dupAcks = 0;
        // RFC 7661 §4.3: grow only when the window was in use (here: at least all but a segment of it).
        this.cc.onAck(acked, now, this.srtt, flightBefore + this.smss >= this.cc.cwnd);
        this.expandSendBuffer();
        break;
      case "sack":
        if (seqGe(ack, this.recoveryPoint)) this.endRecovery();
        break;
      case "newreno":
        if (seqGe(ack, this.recoveryPoint)) {
          // RFC 6582 §3.2 step 6 (full acknowledgment), option 1: cwnd = min(ssthresh, FlightSize + SMSS).
          this.cc.setCwnd(Math.min(this.cc.ssthresh, Math.max(seqDiff(this.sndMax, ack), this.smss) + this.smss));
          this.endRecovery();
        } else {
          // Step 5 (partial acknowledgment): retransmit the next hole, deflate the window by what
          // was acknowledged, add back one SMSS when that was at least one, and restart the timer
          // for the first partial ACK only ("impatient" variant).
          this.retransmitAt(this.sndUna, this.segmentLengthAt(this.sndUna));
          const deflated = this.cc.cwnd - acked + (acked >= this.smss ? this.smss : 0);
          this.cc.setCwnd(deflated);
          if (!this.partialAckSeen) {
            this.partialAckSeen = true;
            this.retransmitTimer.set(this.rtoDeadline(now));
          }
        }
        break;
    }
    this.computeLostBoundary();
    // RFC 6298 (5.2)/(5.3): stop the timer when all is acknowledged, else restart it.
    if (this.sndUna === this.sndMax) this.retransmitTimer.stop();
    else if (this.recovery !== "newreno" || !this.partialAckSeen) this.retransmitTimer.set(this.rtoDeadline(now));
    this.retransmitMode = "rto";
  }

  private onDuplicateAck(): void {
    this.flowCounters.duplicateAcks++;
    if (this.recovery === "newreno") {
      // RFC 6582 §3.2 step 4: each further duplicate ACK inflates the window by one SMSS.
      this.cc.setCwnd(this.cc.cwnd + this.smss);
      return;
    }
    if (this.recovery === "sack") return;
    this.dupAcks++;
    this.computeLostBoundary();
    const lost = this.sackOn && seqGt(this.lostBoundary, this.sndUna);
    // RFC 6582 §3.2 step 2: not again until the ACK passes "recover" (set by the last recovery or timeout).
    const fresh = !this.recoverGuardSet || seqGe(this.sndUna, this.recoverGuard);
    if ((this.dupAcks >= DUP_THRESH || lost) && fresh) this.enterRecovery();
  }

  /** RFC 6675 §5 step 4 / RFC 6582 §3.2 step 2: fast retransmit and entry into recovery. */
  private enterRecovery(): void {
    const flight = seqDiff(this.sndMax, this.sndUna);
    this.recoveryPoint = this.sndMax;
    this.recoverGuard = this.sndMax;
    this.recoverGuardSet = true;
    this.flowCounters.fastRecoveries++;
    this.cc.onLoss(this.now(), flight);
    const length = this.segmentLengthAt(this.sndUna);
    if (this.sackOn) {
      this.recovery = "sack";
      // HighRxt ends where the retransmission did: SACK blocks in it (when we also receive out
      // of order) leave room for less than a segment, and the rest is still to be sent.
      this.highRxt = seqAdd(this.sndUna, this.retransmitAt(this.sndUna, length));
      this.rescueRxt = this.highRxt;
    } else {
      this.recovery = "newreno";
      this.partialAckSeen = false;
      this.retransmitAt(this.sndUna, length);
      // RFC 5681 §3.2 step 3: inflate by the three segments that left the network.
      this.cc.setCwnd(this.cc.ssthresh + DUP_THRESH * this.smss);
    }
  }

  private endRecovery(): void {
    if (this.recovery === "sack") this.cc.onRecoveryEnd(this.now());
    this.recovery = "none";
    this.dupAcks = 0;
  }

  /** Records the SACK blocks of an ACK (RFC 2018 §3); returns the bytes newly SACKed. */
  private updateScoreboard(options: TcpOptions): number {
    let newly = 0;
    const sacked = this.sacked;
    for (let block = 0; block < options.sackCount; block++) {
      let left = options.sackEdges[2 * block];
      const right = options.sackEdges[2 * block + 1];
      // Only blocks about data we sent and the peer has not cumulatively acknowledged
      // (a D-SACK below SND.UNA, RFC 2883, is information we do not use).
      if (!seqLt(left, right) || seqGt(right, this.sndMax) || seqLe(right, this.sndUna)) continue;
      if (seqLt(left, this.sndUna)) left = this.sndUna;
      if (sacked.size >= MAX_SACKED_RANGES && sacked.coveredBetween(seqAdd(left, -1), seqAdd(right, 1)) === 0) continue;
      newly += sacked.add(left, right);
    }
    return newly;
  }

  /**
   * RFC 6675 §4 IsLost, as one boundary: an unSACKed byte is lost when DupThresh SACKed segments
   * (or more than (DupThresh − 1)·SMSS SACKed bytes) lie above it. Since that only gets truer
   * further down, the lost bytes are exactly the unSACKed ones below the boundary.
   */
  private computeLostBoundary(): void {
    const sacked = this.sacked;
    this.lostBoundary = this.sndUna;
    let bytes = 0;
    let segments = 0;
    for (let index = sacked.size - 1; index >= 0; index--) {
      const length = seqDiff(sacked.end(index), sacked.start(index));
      bytes += length;
      segments += Math.ceil(length / this.smss);
      if (segments >= DUP_THRESH || bytes > (DUP_THRESH - 1) * this.smss) {
        this.lostBoundary = sacked.start(index);
        return;
      }
    }
  }

  /** RFC 6675 §4 SetPipe: bytes believed in the network. */
  private pipe(): number {
    const una = this.sndUna;
    const sacked = this.sacked;
    const outstanding = seqDiff(this.sndMax, una) - sacked.coveredBetween(una, this.sndMax);
    const lostBoundary = seqMax(this.lostBoundary, una);
    const lost = seqDiff(lostBoundary, una) - sacked.coveredBetween(una, lostBoundary);
    const highRxt = seqMax(this.highRxt, una);
    const retransmitted = seqDiff(highRxt, una) - sacked.coveredBetween(una, highRxt);
    return outstanding - lost + retransmitted;
  }

  // ——— Transmission ———

  /** Sequence number just past the last byte the application wrote. */
  private get dataEnd(): number {
    return seqAdd(this.bufferSeq, this.sendBuffer.length);
  }

  private get finSent(): boolean {
    return this.finQueued && seqGt(this.sndMax, this.finSeq);
  }

  private get finAcked(): boolean {
    return this.finQueued && seqGt(this.sndUna, this.finSeq);
  }

  /**
   * RFC 9293 §3.7.1: Eff.snd.MSS = min(SendMSS + 20, MMS_S) − TCPhdrsize − IPoptionsize, with
   * MMS_S the path MTU less the IP header, and the TCP header counting its options.
   */
  private effectiveMss(optionsLength: number): number {
    return Math.max(1, Math.min(this.peerMss + TCP_HEADER_LENGTH, this.pathMtu - 20) - TCP_HEADER_LENGTH - optionsLength);
  }

  /**
   * The most data one call to sendSegment may carry: one SMSS, or with segmentation offload as
   * many whole SMSS as fit the link's largest segment (with room for options of any length).
   */
  private sendBurst(): number {
    const max = this.host.maxOffloadSegment;
    if (max === 0) return this.smss;
    return Math.max(1, Math.floor((max - TCP_HEADER_LENGTH - 40) / this.smss)) * this.smss;
  }

  private updateMss(): void {
    const smss = this.effectiveMss(this.timestampsOn ? 12 : 0);
    if (smss !== this.smss) {
      this.smss = smss;
      this.cc.setMss(smss);
    }
  }

  /** Sends whatever the windows, Nagle and SWS avoidance allow, then any ACK still owed. */
  private transmitPending(): void {
    switch (this.state) {
      case "ESTABLISHED":
      case "CLOSE-WAIT":
      case "FIN-WAIT-1":
      case "CLOSING":
      case "LAST-ACK":
        if (this.recovery === "sack") this.sendInSackRecovery();
        else this.sendData();
        break;
      default:
        break;
    }
    if (this.ackNow && this.state !== "CLOSED" && this.state !== "SYN-SENT" && this.state !== "LISTEN") this.sendAck();
  }

  /** Data (and the FIN) from SND.NXT, outside SACK recovery. */
  private sendData(): void {
    const smss = this.smss;
    for (;;) {
      if (seqLt(this.sndNxt, this.sndMax) && this.sacked.size > 0) {
        // Going back after a timeout: skip what the peer has SACKed since.
        const index = this.sacked.indexOf(this.sndNxt);
        if (index >= 0) {
          this.sndNxt = this.sacked.end(index);
          continue;
        }
      }
      const available = Math.max(0, seqDiff(this.dataEnd, this.sndNxt));
      const finDue = this.finQueued && seqLe(this.sndNxt, this.finSeq);
      if (available === 0 && !finDue) return;
      const flight = seqDiff(this.sndNxt, this.sndUna) - this.sacked.coveredBetween(this.sndUna, this.sndNxt);
      // RFC 3042 limited transmit: one new segment for each of the first two duplicate ACKs.
      const limited = this.recovery === "none" && this.dupAcks > 0 && this.dupAcks < DUP_THRESH ? this.dupAcks * smss : 0;
      const cwndRoom = this.cc.cwnd + limited - flight;
      const windowRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
      let length = Math.min(available, this.sendBurst(), windowRoom, cwndRoom);
      if (length < 0) length = 0;
      // With segmentation offload, a burst of several segments holds whole ones only; the rest
      // waits as a lone partial segment would.
      if (length > smss && length < available) length -= length % smss;
      if (available > 0) {
        if (length === 0) return;
        if (length < available && length < smss) {
          // Less than a full segment fits. A congestion window that small waits for ACKs; a
          // small receive window is used only for at least half the largest it ever offered
          // (RFC 9293 §3.8.6.2.1; the persist timer overrides when nothing is in flight).
          if (cwndRoom < smss && cwndRoom < available) return;
          if (length < this.maxSndWnd / 2) return;
        }
        const isLastData = seqAdd(this.sndNxt, length) === this.dataEnd;
        if (isLastData && length < smss && !this.settings.noDelay && seqLt(this.sndUna, this.sndSml) && seqGe(this.sndNxt, this.sndMax)) {
          // Nagle (RFC 896, RFC 9293 §3.7.4) with Minshall's refinement: a small final segment
          // waits while an earlier small segment is unacknowledged.
          if (!(this.finQueued && seqAdd(this.sndNxt, length) === this.finSeq)) return;
        }
      }
      const withFin = this.finQueued && seqAdd(this.sndNxt, length) === this.finSeq;
      if (length === 0 && !withFin) return;
      const consumed = this.sendSegment(this.sndNxt, length, withFin);
      if (length > 0 && length < smss && seqGe(this.sndNxt, this.sndMax)) this.sndSml = seqAdd(this.sndNxt, consumed);
      this.sndNxt = seqAdd(this.sndNxt, consumed);
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      if (consumed === 0 || (withFin && consumed === length + 1)) return;
    }
  }

  /** RFC 6675 §5 step (C): while cwnd − pipe ≥ 1 SMSS, send what NextSeg() picks. */
  private sendInSackRecovery(): void {
    let pipe = this.pipe();
    const smss = this.smss;
    for (let rounds = 0; rounds < 1000 && this.cc.cwnd - pipe >= smss; rounds++) {
      const sent = this.sendNextSegment();
      if (sent === 0) break;
      pipe += sent;
    }
    // A FIN that has not gone out yet is sent when all data has.
    if (this.finQueued && !this.finSent && this.sndNxt === this.finSeq) {
      this.sndNxt = seqAdd(this.sndNxt, this.sendSegment(this.sndNxt, 0, true));
      this.sndMax = this.sndNxt;
    }
  }

  /** RFC 6675 §4 NextSeg() and the transmission of its choice; returns the bytes sent (0: nothing). */
  private sendNextSegment(): number {
    const sacked = this.sacked;
    // (1) The first unSACKed byte above HighRxt that IsLost.
    let candidate = this.skipSacked(seqMax(this.highRxt, this.sndUna));
    if (seqLt(candidate, this.lostBoundary) && seqLt(candidate, this.sndMax)) {
      const sent = this.retransmitAt(candidate, this.segmentLengthAt(candidate));
      this.highRxt = seqAdd(candidate, sent);
      return sent;
    }
    // (2) New data, if the receiver's window allows.
    const available = seqDiff(this.dataEnd, this.sndNxt);
    const windowRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
    if (available > 0 && windowRoom > 0) {
      const length = Math.min(available, this.smss, windowRoom);
      const withFin = this.finQueued && seqAdd(this.sndNxt, length) === this.finSeq;
      const consumed = this.sendSegment(this.sndNxt, length, withFin);
      this.sndNxt = seqAdd(this.sndNxt, consumed);
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      return consumed;
    }
    // (3) An unSACKed byte above HighRxt with SACKed data above it, lost or not.
    candidate = this.skipSacked(seqMax(this.highRxt, this.sndUna));
    if (sacked.size > 0 && seqLt(candidate, sacked.highest) && seqLt(candidate, this.sndMax)) {
      const sent = this.retransmitAt(candidate, this.segmentLengthAt(candidate));
      this.highRxt = seqAdd(candidate, sent);
      return sent;
    }
    // (4) Rescue retransmission: once per recovery, the segment ending at the highest unSACKed byte.
    if (seqGt(this.sndUna, this.rescueRxt)) {
      if (seqLt(this.rescueRxt, this.recoveryPoint)) {
        let high = this.sndMax;
        if (sacked.size > 0 && sacked.highest === high) high = sacked.start(sacked.size - 1);
        const dataHigh = seqLt(high, this.dataEnd) ? high : this.dataEnd;
        if (seqGt(dataHigh, this.sndUna)) {
          const start = seqMax(this.sndUna, seqAdd(dataHigh, -this.smss));
          const sent = this.retransmitAt(start, seqDiff(dataHigh, start));
          this.rescueRxt = this.recoveryPoint;
          return Math.max(sent, 1);
        }
      }
    }
    return 0;
  }

  /** The first sequence number at or after `seq` that SACK does not cover. */
  private skipSacked(seq: number): number {
    const index = this.sacked.indexOf(seq);
    return index >= 0 ? this.sacked.end(index) : seq;
  }

  /** A full segment's worth from `seq`, stopping at SACKed data and at the end of the data. */
  private segmentLengthAt(seq: number): number {
    let end = seqAdd(seq, this.smss);
    const dataEnd = this.dataEnd;
    if (seqGt(end, dataEnd)) end = dataEnd;
    const sacked = this.sacked;
    for (let index = 0; index < sacked.size; index++) {
      const start = sacked.start(index);
      if (seqGt(start, seq) && seqLt(start, end)) {
        end = start;
        break;
      }
    }
    return Math.max(0, seqDiff(end, seq));
  }

  /**
   * Sends [seq, seq + length) again (with the FIN if it ends there and the FIN was sent).
   * Returns the sequence space it covered (options may shorten a segment).
   */
  private retransmitAt(seq: number, length: number): number {
    length = Math.min(length, Math.max(0, seqDiff(this.dataEnd, seq)));
    const withFin = this.finQueued && seqAdd(seq, length) === this.finSeq && this.finSent;
    if (length <= 0 && !withFin) return 0;
    return this.sendSegment(seq, length, withFin);
  }

  /**
   * Emits one data (or bare FIN) segment from the send buffer. Returns the sequence space it
   * covered: the data sent (options may leave room for less than asked), plus one for a FIN
   * (dropped when the data was cut short).
   */
  private sendSegment(seq: number, length: number, withFin: boolean): number {
    const now = this.now();
    const retransmission = seqLt(seq, this.sndMax);
    if (retransmission) {
      this.flowCounters.retransmits++;
      this.host.counters.retransmits++;
      // Karn's rule (RFC 6298 §3): no RTT sample from a segment that was sent twice.
      this.rttTiming = false;
    } else {
      if (this.sndUna === this.sndMax) {
        // RFC 5681 §4.1: after an idle period longer than the RTO, restart from the initial window.
        if (now - this.lastSendAt > this.currentRto() && this.hasRttSample) this.cc.onIdleRestart(now);
        this.lastProgressAt = now; // RFC 5482: the user timeout runs from here
      }
      if (!this.rttTiming && !this.timestampsOn && length > 0) {
        this.rttTiming = true;
        this.rttSeq = seqAdd(seq, length);
        this.rttStart = now;
      }
      this.flowCounters.bytesSent += length;
    }
    let flags = TcpFlag.Ack;
    if (withFin) flags |= TcpFlag.Fin;
    if (length > 0 && seqAdd(seq, length) === this.dataEnd) flags |= TcpFlag.Psh;
    const sent = this.emit(seq, flags, length);
    this.lastSendAt = now;
    return sent + (withFin && sent === length ? 1 : 0);
  }

  /**
   * A bare ACK with the current window (and SACK blocks). Its sequence number is the highest
   * sent (RFC 9293's SND.NXT, which never goes back): after a timeout our SND.NXT restarts from
   * SND.UNA, and an ACK numbered from there would be below the peer's RCV.NXT, unacceptable, and
   * its acknowledgment lost. A zero-window probe's octet is not counted.
   */
  private sendAck(): void {
    const seq = this.retransmitMode === "persist" && seqGt(this.sndMax, this.sndNxt) ? this.sndNxt : this.sndMax;
    this.emit(seq, TcpFlag.Ack, 0);
  }

  /** RFC 5961 §3.2, §4.2, §5.2: an ACK telling a possibly blind sender where we are, rate limited (§7). */
  private sendChallengeAck(): void {
    const now = this.now();
    const counters = this.host.counters;
    if (now - this.challengeWindowStart >= 1000) {
      this.challengeWindowStart = now;
      this.challengesInWindow = 0;
    }
    if (this.challengesInWindow >= this.settings.challengeAckLimit) {
      counters.challengeAcksLimited++;
      return;
    }
    this.challengesInWindow++;
    counters.challengeAcks++;
    this.flowCounters.challengeAcks++;
    this.sendAck();
  }

  /** RFC 9293: an unacceptable segment gets an ACK; bare ones at most every 500 ms, against ACK loops. */
  private sendOutOfWindowAck(bare: boolean): void {
    const now = this.now();
    if (bare) {
      if (now - this.lastOutOfWindowAckAt < OUT_OF_WINDOW_ACK_INTERVAL_MS) return;
      this.lastOutOfWindowAckAt = now;
    }
    this.ackNow = true;
  }

  /** SYN (active open) or SYN-ACK (passive or simultaneous open), from ISS. */
  private sendSyn(): void {
    const withAck = this.state === "SYN-RECEIVED";
    const now = this.now();
    if (this.sndMax === this.iss) {
      this.sndMax = seqAdd(this.iss, 1);
      this.sndNxt = this.sndMax;
      if (!this.timestampsOn) {
        this.rttTiming = true;
        this.rttSeq = this.sndMax;
        this.rttStart = now;
      }
    } else {
      this.rttTiming = false;
    }
    this.emit(this.iss, TcpFlag.Syn | (withAck ? TcpFlag.Ack : 0), 0);
    this.lastSendAt = now;
    this.retransmitMode = "rto";
    this.retransmitTimer.set(now + this.currentRto());
  }

  /** Builds a segment in the host's buffer and sends it; returns the data length it carried. */
  private emit(seq: number, flags: number, length: number): number {
    const host = this.host;
    const options = this.options;
    options.clear();
    const header = this.header;
    const isSyn = (flags & TcpFlag.Syn) !== 0;
    if (isSyn) {
      // RFC 9293 §3.7.1 (SHOULD-5): the MSS option in every SYN; the rest as negotiated (a
      // SYN-ACK only echoes what the SYN offered, RFC 7323 §2.2 and §3.2, RFC 2018 §2).
      options.mss = Math.max(0, Math.min(0xffff, this.host.mtu - 40));
      const active = this.state === "SYN-SENT";
      if (active ? this.settings.windowScaling : this.windowScaling) options.windowScale = this.offeredScale;
      if (active ? this.settings.sack : this.sackOn) options.sackPermitted = true;
      if (active ? this.settings.timestamps : this.timestampsOn) options.setTimestamps(this.tsNow(), active ? 0 : this.tsRecent);
    } else {
      if (this.timestampsOn) options.setTimestamps(this.tsNow(), this.tsRecent);
      if (this.sackOn && (flags & TcpFlag.Ack) !== 0 && this.outOfOrder.size > 0) this.addSackBlocks(options);
    }
    const optionsLength = options.length;
    // A data segment must fit the path with these options (SACK blocks can take a few bytes),
    // and carries only bytes the application wrote (never past the end of the buffer). With
    // segmentation offload, it may carry whole segments' worth for the link to cut.
    const segmentMss = this.effectiveMss(optionsLength);
    const maxOffload = host.maxOffloadSegment;
    const maxData = maxOffload > 0 ? Math.max(1, Math.floor((maxOffload - TCP_HEADER_LENGTH - optionsLength) / segmentMss)) * segmentMss : segmentMss;
    const room = isSyn ? 0 : Math.min(maxData, Math.max(0, seqDiff(this.dataEnd, seq)));
    if (length > room) {
      length = Math.max(0, room);
      flags &= ~TcpFlag.Fin;
    }
    const headerLength = TCP_HEADER_LENGTH + optionsLength;
    const buffer = host.transmitBuffer;
    if (length > 0) this.sendBuffer.copyOut(seqDiff(seq, this.bufferSeq), length, buffer, headerLength);
    header.srcPort = this.localPort;
    header.dstPort = this.remotePort;
    header.seq = seq;
    header.ack = (flags & TcpFlag.Ack) !== 0 ? this.rcvNxt : 0;
    header.flags = flags;
    header.window = isSyn ? this.synWindow() : this.windowField();
    header.urgentPointer = 0;
    emitTcpHeader(header, options, buffer, length, this.localAddress, this.remoteAddress, host.checksumOffload);
    this.flowCounters.segmentsOut++;
    host.transmit(this, headerLength + length, length > segmentMss ? segmentMss : 0);
    if ((flags & TcpFlag.Ack) !== 0) {
      this.lastAckSent = this.rcvNxt;
      this.ackNow = false;
      this.segmentsUnacked = 0;
      this.delayedAckTimer.stop();
    }
    return length;
  }

  /** RFC 2018 §4: the block with the latest segment first, then the most recently reported ones. */
  private addSackBlocks(options: TcpOptions): void {
    const outOfOrder = this.outOfOrder;
    const max = this.timestampsOn ? 3 : TCP_MAX_SACK_BLOCKS;
    let used = 0;
    let usedMask = 0;
    const recent = this.sackRecent;
    for (let i = 0; i < recent.length && used < max; i++) {
      const index = outOfOrder.indexOf(recent[i] ?? 0);
      if (index < 0 || index >= 31 || (usedMask & (1 << index)) !== 0) continue;
      usedMask |= 1 << index;
      options.addSackBlock(outOfOrder.start(index), outOfOrder.end(index));
      used++;
    }
    for (let index = outOfOrder.size - 1; index >= 0 && used < max; index--) {
      if (index < 31 && (usedMask & (1 << index)) !== 0) continue;
      options.addSackBlock(outOfOrder.start(index), outOfOrder.end(index));
      used++;
    }
  }

  private noteSackRecent(seq: number): void {
    const recent = this.sackRecent;
    const index = this.outOfOrder.indexOf(seq);
    // Drop entries now inside the same range, then put this one first.
    for (let i = recent.length - 1; i >= 0; i--) {
      const other = this.outOfOrder.indexOf(recent[i] ?? 0);
      if (other < 0 || other === index) recent.splice(i, 1);
    }
    recent.unshift(seq);
    if (recent.length > TCP_MAX_SACK_BLOCKS) recent.length = TCP_MAX_SACK_BLOCKS;
  }

  /** The (unscaled) window of a SYN: the free space up to 65535 (RFC 7323 §2.2). */
  private synWindow(): number {
    const window = Math.min(this.windowSpace(), 0xffff);
    this.synOfferedWindow = window;
    const edge = seqAdd(this.rcvNxt, window);
    this.rcvAdvertised = edge;
    this.rcvAcceptEdge = edge;
    return window;
  }

  /**
   * The window field of a non-SYN segment. The right edge moves only by at least
   * min(RCV.BUFF / 2, MSS) (receiver SWS avoidance, RFC 9293 §3.8.6.2.2) and never back; the
   * scaled value is rounded up so that the offered edge does not recede (RFC 7323 §2.4).
   */
  private windowField(): number {
    const buffer = this.receiveBuffer;
    const candidate = seqAdd(this.rcvNxt, this.windowSpace());
    if (seqGt(candidate, this.rcvAdvertised) && seqDiff(candidate, this.rcvAdvertised) >= Math.min(buffer.size / 2, this.rcvMss)) {
      this.rcvAdvertised = candidate;
    }
    if (seqLt(this.rcvAdvertised, this.rcvNxt)) this.rcvAdvertised = this.rcvNxt;
    const window = seqDiff(this.rcvAdvertised, this.rcvNxt);
    const unit = 2 ** this.rcvScale;
    const field = Math.min(0xffff, Math.ceil(window / unit));
    const edge = seqAdd(this.rcvNxt, field * unit);
    if (seqGt(edge, this.rcvAcceptEdge)) this.rcvAcceptEdge = edge;
    return field;
  }

  /**
   * Free receive space the window may offer: the buffer's, but under memory pressure (tcp_mem)
   * only what the ring already holds allocated, and PRESSURE_WINDOW_SEGMENTS at least, so that
   * new data does not make it allocate more (the edge already offered is never taken back).
   */
  private windowSpace(): number {
    const buffer = this.receiveBuffer;
    if (!this.host.budget.underPressure) return buffer.free;
    const allowed = Math.max(buffer.allocated, PRESSURE_WINDOW_SEGMENTS * this.rcvMss);
    return Math.max(0, Math.min(buffer.free, allowed - buffer.readable));
  }

  /** RCV.WND for acceptability: up to the furthest edge we offered. */
  private receiveWindow(): number {
    return Math.max(0, seqDiff(this.rcvAcceptEdge, this.rcvNxt));
  }

  /**
   * Send-buffer autotuning (as Linux's tcp_sndbuf_expand): room for twice the congestion window,
   * up to sendBufferMax, so that the buffer does not cap a window the path has shown it carries
   * (the window grows only while in use, RFC 7661). Never shrinks.
   */
  private expandSendBuffer(): void {
    const buffer = this.sendBuffer;
    // Under memory pressure (tcp_mem) buffers do not grow, as Linux's tcp_should_expand_sndbuf.
    if (this.host.budget.underPressure) return;
    const wanted = Math.min(this.settings.sendBufferMax, 2 * this.cc.cwnd);
    if (wanted <= buffer.capacity) return;
    buffer.grow(wanted);
    this.flowCounters.sendBufferGrowths++;
    this.events |= EVENT_WRITABLE;
  }

  /**
   * Dynamic right-sizing of the receive buffer (Fisk and Feng's DRS, as Linux's
   * tcp_rcv_space_adjust does it): the application read `count` bytes. Once per round trip (the
   * smoothed RTT, at least MIN_RECEIVE_ROUND_MS), if what it read in that round trip, doubled,
   * plus room for 16 segments, exceeds the buffer, the sender was held back by our window: the
   * buffer grows to that, up to receiveBufferMax and what the window scale can express. A slow
   * reader never makes it grow, and it never shrinks.
   */
  private adjustReceiveSpace(count: number): void {
    const buffer = this.receiveBuffer;
    const limit = Math.min(this.settings.receiveBufferMax, 0xffff * 2 ** this.rcvScale);
    // Under memory pressure (tcp_mem) no growth, as Linux's tcp_rcv_space_adjust under tcp_under_memory_pressure.
    if (buffer.size >= limit || this.host.budget.underPressure) return;
    this.readThisRound += count;
    const now = this.now();
    if (now - this.roundStartedAt < Math.max(this.hasRttSample ? this.srtt : 0, MIN_RECEIVE_ROUND_MS)) return;
    const wanted = 2 * this.readThisRound + 16 * this.rcvMss;
    this.readThisRound = 0;
    this.roundStartedAt = now;
    if (wanted > buffer.size) {
      buffer.grow(Math.min(limit, wanted));
      this.flowCounters.receiveBufferGrowths++;
    }
  }

  /**
   * After a read: a window update goes out when the edge can move by at least two segments or half
   * the buffer (RFC 1122 §4.2.3.3), or by one segment when the offered window has fallen below one;
   * and, as Linux does (tcp_cleanup_rbuf), only once the window would at least double: while
   * plenty is still offered, the next ACK carries the new edge anyway, and a bare update per read
   * would double the frames a bulk receiver sends.
   */
  private considerWindowUpdate(): void {
    const buffer = this.receiveBuffer;
    const candidate = seqAdd(this.rcvNxt, this.windowSpace());
    const growth = seqDiff(candidate, this.rcvAdvertised);
    const offered = seqDiff(this.rcvAdvertised, this.rcvNxt);
    const threshold = offered < this.rcvMss ? Math.min(this.rcvMss, buffer.size / 2) : Math.max(offered, Math.min(2 * this.rcvMss, buffer.size / 2));
    if (growth >= threshold && growth > 0) {
      this.rcvAdvertised = candidate;
      if (!this.ackNow) this.flowCounters.windowUpdates++;
      this.ackNow = true;
    }
  }

  /** RFC 9293 §3.10.7.4 first check: the four cases of segment acceptability. */
  private acceptable(segment: Segment): boolean {
    const window = this.receiveWindow();
    const length = segment.length;
    const seq = segment.seq;
    const rcvNxt = this.rcvNxt;
    if (length === 0) return window === 0 ? seq === rcvNxt : seqInRange(seq, rcvNxt, seqAdd(rcvNxt, window));
    // With a zero window, RFC 9293 asks for "special allowance" for ACKs (and a FIN needs no
    // room): a segment at exactly RCV.NXT is taken, its data trimmed away.
    if (window === 0) return seq === rcvNxt;
    const end = seqAdd(rcvNxt, window);
    return seqInRange(seq, rcvNxt, end) || seqInRange(seqAdd(seq, length - 1), rcvNxt, end);
  }

  private pawsRejects(tsValue: number): boolean {
    if (this.now() - this.tsRecentAt > TS_RECENT_MAX_AGE_MS) return false;
    return seqLt(tsValue, this.tsRecent);
  }

  private tsNow(): number {
    return (Math.floor(this.now()) + this.tsOffset) >>> 0;
  }

  // ——— Round-trip time (RFC 6298, RFC 7323 Appendix G) ———

  private takeRttSample(segment: Segment): void {
    const options = segment.options;
    if (this.timestampsOn && options.timestamps && options.tsEcho !== 0) {
      const sample = (this.tsNow() - options.tsEcho) | 0;
      if (sample >= 0 && sample < 600_000) this.updateRtt(sample, true);
      return;
    }
    if (this.rttTiming && seqGe(segment.ack, this.rttSeq)) {
      this.rttTiming = false;
      this.updateRtt(this.now() - this.rttStart, false);
    }
  }

  private updateRtt(sample: number, perAck: boolean): void {
    if (!this.hasRttSample) {
      // RFC 6298 (2.2).
      this.srtt = sample;
      this.rttVar = sample / 2;
      this.hasRttSample = true;
    } else {
      // RFC 6298 (2.3), α = 1/8, β = 1/4; with a sample on every ACK, RFC 7323 Appendix G
      // divides both by the samples expected per RTT so that history weighs the same.
      const expected = perAck ? Math.max(1, Math.ceil(seqDiff(this.sndMax, this.sndUna) / (2 * this.smss))) : 1;
      const alpha = 1 / 8 / expected;
      const beta = 1 / 4 / expected;
      this.rttVar = (1 - beta) * this.rttVar + beta * Math.abs(this.srtt - sample);
      this.srtt = (1 - alpha) * this.srtt + alpha * sample;
    }
    this.rto = this.computeRto();
  }

  /** RFC 6298 (2.3): SRTT + max(G, 4·RTTVAR), clamped to [min, max]. G is 1 ms, the timestamp clock. */
  private computeRto(): number {
    const rto = this.srtt + Math.max(1, 4 * this.rttVar);
    return Math.min(this.settings.maxRtoMs, Math.max(this.settings.minRtoMs, rto));
  }

  /** The RTO with backoff applied (RFC 6298 (5.5)). */
  private currentRto(): number {
    return Math.min(this.settings.maxRtoMs, this.rto * 2 ** this.backoff);
  }

  // ——— Timers ———

  private armTimers(): void {
    switch (this.state) {
      case "SYN-SENT":
      case "SYN-RECEIVED":
      case "CLOSED":
      case "LISTEN":
        return;
      case "TIME-WAIT":
        this.retransmitTimer.stop();
        return;
      default:
        break;
    }
    const now = this.now();
    const unsent = seqLt(this.sndNxt, this.dataEnd) || (this.finQueued && !this.finSent);
    if (unsent && this.sndNxt === this.sndUna && this.recovery === "none") {
      // Nothing in flight and something to send that the window does not take: persist.
      if (this.retransmitMode !== "persist" || !this.retransmitTimer.running) {
        this.retransmitMode = "persist";
        this.retransmitTimer.set(now + this.persistInterval());
      }
    } else if (seqLt(this.sndUna, this.sndMax)) {
      if (this.retransmitMode !== "rto") {
        this.retransmitMode = "rto";
        this.retransmitTimer.stop();
      }
      // RFC 6298 (5.1): start the timer if it is not running.
      this.retransmitTimer.setIfStopped(this.rtoDeadline(now));
    } else {
      this.retransmitTimer.stop();
    }
    if (this.settings.keepAlive && (this.state === "ESTABLISHED" || this.state === "CLOSE-WAIT") && this.lifeMode === "keepalive") {
      this.lifeTimer.setIfStopped(this.lastReceiveAt + this.settings.keepAliveIdleMs);
    }
  }

  /** The RTO deadline, brought forward to the user timeout when that comes first (RFC 5482). */
  private rtoDeadline(now: number): number {
    const deadline = now + this.currentRto();
    const userTimeout = this.userTimeoutMs;
    return userTimeout > 0 ? Math.min(deadline, Math.max(now, this.lastProgressAt + userTimeout)) : deadline;
  }

  private persistInterval(): number {
    return Math.min(this.settings.maxRtoMs, this.currentRto() * 2 ** this.persistBackoff);
  }

  private onRetransmitTimer(): void {
    if (this.state === "CLOSED") return;
    this.enter();
    switch (this.state) {
      case "SYN-SENT":
      case "SYN-RECEIVED":
        this.synTimeout();
        break;
      default:
        if (this.retransmitMode === "persist") this.persistTimeout();
        else this.retransmissionTimeout();
        break;
    }
    this.leave();
  }

  private synTimeout(): void {
    if (this.synRetries >= this.settings.maxSynRetransmits) {
      if (this.passive) this.terminate(undefined);
      else this.failConnect("timeout", `timed out after ${formatSeconds(this.now() - this.connectStartedAt)} (${this.synRetries + 1} SYNs unanswered)`);
      return;
    }
    if (this.synRetries >= NEGATIVE_ADVICE_RETRANSMITS) this.giveNegativeAdvice();
    this.synRetries++;
    this.synRetransmitted = true;
    this.backoff++;
    this.flowCounters.timeouts++;
    this.flowCounters.retransmits++;
    this.host.counters.timeouts++;
    this.host.counters.retransmits++;
    this.sendSyn();
  }

  /** RFC 6298 §5 (5.4)-(5.7), RFC 5681 §3.1, RFC 6675 §5.1. */
  private retransmissionTimeout(): void {
    const now = this.now();
    if (this.sndUna === this.sndMax) return;
    const userTimeout = this.userTimeoutMs;
    if (userTimeout > 0 && now - this.lastProgressAt >= userTimeout) {
      this.giveUp(`no acknowledgment for ${userTimeout} ms (${this.windingDown ? "orphanTimeoutMs" : "user timeout"})`);
      return;
    }
    if (this.retransmitsInRow >= this.retransmitLimit) {
      this.giveUp(`no acknowledgment after ${this.retransmitsInRow} retransmissions${this.windingDown ? " (orphanRetransmits)" : ""}`);
      return;
    }
    // A timeout after R1 retransmissions of this segment: re-validate the path (RFC 1122 §4.2.3.5).
    if (this.retransmitsInRow >= NEGATIVE_ADVICE_RETRANSMITS) this.giveNegativeAdvice();
    this.retransmitsInRow++;
    this.flowCounters.timeouts++;
    this.host.counters.timeouts++;
    const flight = seqDiff(this.sndMax, this.sndUna);
    // RFC 5681 §3.1: ssthresh halves on the first timeout of a segment, not on its backoffs.
    if (this.backoff === 0) this.cc.onRetransmitTimeout(now, flight);
    else this.cc.setCwnd(this.smss);
    this.recovery = "none";
    this.dupAcks = 0;
    this.recoverGuard = this.sndMax;
    this.recoverGuardSet = true;
    this.sacked.clear();
    this.lostBoundary = this.sndUna;
    this.highRxt = this.sndUna;
    this.sndNxt = this.sndUna;
    this.rttTiming = false;
    this.backoff++;
    this.retransmitMode = "rto";
    this.retransmitTimer.set(this.rtoDeadline(now));
    if (this.sndUna === this.finSeq && this.finQueued) {
      // Only the FIN is outstanding.
      this.sndNxt = seqAdd(this.sndUna, this.sendSegment(this.sndUna, 0, true));
    }
  }

  /**
   * Retransmissions of one segment (or unanswered zero-window probes) before giving up: fewer for
   * an orphan, whose application is gone (Linux's tcp_orphan_retries).
   */
  private get retransmitLimit(): number {
    const limit = this.settings.maxRetransmits;
    return this.windingDown ? Math.min(limit, this.host.budget.limits.orphanRetransmits) : limit;
  }

  /**
   * Orphaned, or the application has sent its last byte (our FIN is queued): what is left is
   * delivering the tail, which a vanished peer must not stretch to the ~15 minutes of
   * maxRetransmits. Linux applies tcp_orphan_retries to orphans only; a server that shuts down
   * and waits for the FIN's acknowledgment before closing (as Atoll's HTTP server does, so that
   * it can linger) would otherwise hold every connection of a vanished peer for that long.
   */
  private get windingDown(): boolean {
    return this.entry.orphan || this.finQueued;
  }

  /** The RFC 5482 user timeout in effect: once winding down, at most orphanTimeoutMs, so that a connection whose peer vanished does not linger. */
  private get userTimeoutMs(): number {
    const userTimeout = this.settings.userTimeoutMs;
    if (!this.windingDown) return userTimeout;
    const orphanTimeout = this.host.budget.limits.orphanTimeoutMs;
    return userTimeout > 0 ? Math.min(userTimeout, orphanTimeout) : orphanTimeout;
  }

  /** The peer acknowledges nothing: reset and fail with "timeout"; an orphan's end is counted and logged by the budget. */
  private giveUp(message: string): void {
    if (this.windingDown) this.host.budget.bite("orphan-timeout", `gave up a closing connection to ${formatAddress(this.remoteAddress)}:${this.remotePort}: ${message}`);
    this.fail("timeout", message, true);
  }

  private giveNegativeAdvice(): void {
    this.host.counters.negativeAdvice++;
    this.host.adviseUnreachable(this);
  }

  /** RFC 9293 §3.8.6.1: probe a zero window, backing off; also the SWS override timeout. */
  private persistTimeout(): void {
    const unsent = seqDiff(this.dataEnd, this.sndNxt);
    if (unsent <= 0 || this.sndNxt !== this.sndUna) return;
    if (this.probesUnanswered >= this.retransmitLimit) {
      this.giveUp("zero-window probes unanswered");
      return;
    }
    const userTimeout = this.userTimeoutMs;
    if (userTimeout > 0 && this.now() - this.lastProgressAt >= userTimeout) {
      this.giveUp(`no window for ${userTimeout} ms (${this.windingDown ? "orphanTimeoutMs" : "user timeout"})`);
      return;
    }
    const windowRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
    if (windowRoom > 0) {
      // The window is open but small (sender SWS held back): send what it takes.
      const length = Math.min(windowRoom, unsent, this.smss);
      this.sndNxt = seqAdd(this.sndNxt, this.sendSegment(this.sndNxt, length, false));
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
    } else {
      // One octet of new data beyond the window (RFC 9293 §3.8.6.1): SND.NXT does not move, so
      // the octet is sent again in order if the peer does not take it.
      this.probesUnanswered++;
      this.flowCounters.windowProbes++;
      this.emit(this.sndNxt, TcpFlag.Ack, 1);
      const probeEnd = seqAdd(this.sndNxt, 1);
      if (seqGt(probeEnd, this.sndMax)) this.sndMax = probeEnd;
      this.persistBackoff++;
    }
    this.retransmitMode = "persist";
    this.retransmitTimer.set(this.now() + this.persistInterval());
  }

  private onDelayedAckTimer(): void {
    if (this.state === "CLOSED") return;
    this.enter();
    if (this.segmentsUnacked > 0) {
      this.flowCounters.delayedAcks++;
      this.ackNow = true;
    }
    this.leave();
  }

  private onLifeTimer(): void {
    if (this.state === "CLOSED") return;
    this.enter();
    switch (this.lifeMode) {
      case "connect":
        if (!this.passive && (this.state === "SYN-SENT" || this.state === "SYN-RECEIVED")) this.failConnect("timeout", `timed out after ${formatSeconds(this.settings.connectTimeoutMs)} (connectTimeoutMs)`);
        break;
      case "time-wait":
      case "fin-wait-2":
        this.terminate(undefined);
        break;
      case "keepalive":
        this.keepAliveTimeout();
        break;
    }
    this.leave();
  }

  /** RFC 1122 §4.2.3.6: after the idle time, probes with SEG.SEQ = SND.NXT − 1 and no data. */
  private keepAliveTimeout(): void {
    if (!this.settings.keepAlive || (this.state !== "ESTABLISHED" && this.state !== "CLOSE-WAIT")) return;
    const now = this.now();
    const idleUntil = this.lastReceiveAt + this.settings.keepAliveIdleMs;
    if (now < idleUntil) {
      this.lifeTimer.set(idleUntil);
      return;
    }
    if (this.keepAlivesSent >= this.settings.keepAliveProbes) {
      this.fail("timeout", `no answer to ${this.keepAlivesSent} keep-alive probes`, true);
      return;
    }
    this.keepAlivesSent++;
    this.flowCounters.keepAliveProbes++;
    this.emit(seqAdd(this.sndMax, -1), TcpFlag.Ack, 0);
    this.lifeTimer.set(now + this.settings.keepAliveIntervalMs);
  }

  private startLifeTimer(mode: LifeMode, durationMs: number): void {
    this.lifeMode = mode;
    this.lifeTimer.stop();
    this.lifeTimer.set(this.now() + durationMs);
  }

  // ——— ICMP (RFC 1122 §4.2.3.9, RFC 5461, RFC 5927, RFC 1191) ———

  /**
   * An ICMP error quoting one of our segments, whose sequence number is `seq`. Returns whether
   * it was taken (RFC 5927 §4.1: it must quote a sequence number we have in flight).
   */
  receiveError(code: NetErrorCode, seq: number, nextHopMtu: number, fromIcmp: boolean): boolean {
    const inFlight = this.state === "SYN-SENT" || this.state === "SYN-RECEIVED" ? seq === this.iss : seqInRange(seq, this.sndUna, this.sndMax);
    if (!inFlight) return false;
    this.enter();
    if (code === "message-too-long" && fromIcmp) {
      this.pathMtuChanged(nextHopMtu);
    } else if (fromIcmp && this.state === "SYN-SENT" && (code === "protocol-unreachable" || code === "port-unreachable" || code === "prohibited")) {
      // Hard errors abort only an opening connection (RFC 1122 §4.2.3.9, RFC 5461 §4).
      this.fail("unreachable", `connection failed: ${code.replace(/-/g, " ")}`, false, code);
    } else if (!fromIcmp && code === "host-unreachable" && this.state === "SYN-SENT" && !this.passive) {
      // Our own ARP gave up on the next hop (3 requests, ~3 s): nothing answers there, and the
      // SYN retries would only wait two minutes to say so. Linux fails such a connect at once
      // too (EHOSTUNREACH: the neighbour's failure reaches the socket as a host unreachable).
      this.failConnect("unreachable", "host unreachable (no ARP reply)", code);
    } else {
      // Soft errors are kept and reported if the connection times out.
      this.softError = code;
    }
    this.leave();
    return true;
  }

  private pathMtuChanged(nextHopMtu: number): void {
    if (!this.settings.pathMtuDiscovery) return;
    let mtu = nextHopMtu;
    if (mtu <= 0 || mtu >= this.pathMtu) {
      // RFC 1191 §5: an old router sends no MTU; take the next plateau below the current one.
      mtu = MTU_PLATEAUS.find((plateau) => plateau < this.pathMtu) ?? MIN_PATH_MTU;
    }
    if (mtu < MIN_PATH_MTU) {
      // Below the floor we do not follow (forged ICMP could push us there), so let routers
      // fragment instead (as Linux does): without "don't fragment", 552 bytes still get through.
      this.fragmentable = true;
      mtu = MIN_PATH_MTU;
    }
    if (mtu >= this.pathMtu) return;
    this.pathMtu = mtu;
    this.updateMss();
    this.host.counters.pathMtuUpdates++;
    // RFC 1191 §6.5: retransmit at once in smaller segments, without a congestion response.
    if (this.isSynchronized() && seqLt(this.sndUna, this.sndMax)) {
      this.sndNxt = this.sndUna;
      this.rttTiming = false;
    }
  }

  // ——— State changes and endings ———

  private becomeEstablished(): void {
    this.state = "ESTABLISHED";
    this.noteProgress();
    if (this.lifeMode === "connect") {
      this.lifeTimer.stop();
      this.lifeMode = "keepalive";
    }
    this.host.counters.established++;
    if (this.synRetransmitted && !this.hasRttSample) this.rto = Math.max(this.rto, RTO_AFTER_SYN_TIMEOUT_MS);
    this.backoff = 0;
    this.lastProgressAt = this.now();
    this.events |= EVENT_ESTABLISHED;
    this.owner?.handshakeEnded(this, true);
    this.owner = undefined;
  }

  private enterTimeWait(): void {
    this.state = "TIME-WAIT";
    this.host.budget.quiesced(this);
    this.retransmitTimer.stop();
    this.delayedAckTimer.stop();
    this.startLifeTimer("time-wait", this.settings.timeWaitMs);
    this.sendBuffer.dispose();
    this.events |= EVENT_CLOSED;
  }

  /** RST received, in window and exact (RFC 9293 §3.10.7.4 second check). */
  private resetReceived(): void {
    this.host.counters.resetsReceived++;
    switch (this.state) {
      case "SYN-RECEIVED":
        if (this.passive) this.terminate(undefined);
        else this.fail("refused", "connection refused", false);
        return;
      case "TIME-WAIT":
        this.terminate(undefined);
        return;
      default:
        this.fail("reset", "connection reset by peer", false);
    }
  }

  /** An active open that failed: `connect to <address>:<port> <what>`, also logged (the application may wait on it in silence otherwise). */
  private failConnect(reason: "timeout" | "unreachable", what: string, detail?: NetErrorCode): void {
    const message = `connect to ${formatAddress(this.remoteAddress)}:${this.remotePort} ${what}`;
    this.host.log.info(message);
    this.fail(reason, message, false, detail, true);
  }

  /** Ends the connection with an error; `sendReset` sends <SEQ=SND.NXT><CTL=RST> first (ABORT). */
  private fail(reason: TcpErrorReason, message: string, sendReset: boolean, detail?: NetErrorCode, messageNamesPeer = false): void {
    if (this.state === "CLOSED") return;
    if (sendReset) this.sendReset(this.sndNxt, 0, false);
    const peer = `${formatAddress(this.remoteAddress)}:${this.remotePort}`;
    const softDetail = reason === "timeout" ? (detail ?? this.softError) : detail;
    this.error = new TcpError(reason, messageNamesPeer ? `tcp: ${message}` : `tcp ${peer}: ${message}`, softDetail);
    if (reason !== "aborted" && reason !== "closed") this.host.counters.failed++;
    this.receiveBuffer.dispose();
    this.finReceived = true;
    this.terminate(this.error);
  }

  /** Enters CLOSED: timers off, the layer forgets the connection, the application is told. */
  private terminate(error: TcpError | undefined): void {
    if (this.state === "CLOSED") return;
    const wasEstablished = this.state !== "SYN-SENT" && this.state !== "SYN-RECEIVED";
    this.state = "CLOSED";
    this.retransmitTimer.dispose();
    this.delayedAckTimer.dispose();
    this.lifeTimer.dispose();
    this.sendBuffer.dispose();
    this.outOfOrder.clear();
    this.sacked.clear();
    this.ackNow = false;
    if (this.owner !== undefined) {
      this.owner.handshakeEnded(this, false);
      this.owner = undefined;
    }
    if (wasEstablished || error !== undefined || !this.passive) this.events |= EVENT_CLOSED;
    this.host.counters.connections--;
    this.host.release(this);
    if (error === undefined && !this.finReceived) this.finReceived = true;
  }

  /** Sends a RST (and ACK) from this connection's endpoints. */
  private sendReset(seq: number, ack: number, withAck: boolean): void {
    const host = this.host;
    const options = this.options;
    options.clear();
    const header = this.header;
    header.srcPort = this.localPort;
    header.dstPort = this.remotePort;
    header.seq = seq;
    header.ack = ack;
    header.flags = TcpFlag.Rst | (withAck ? TcpFlag.Ack : 0);
    header.window = 0;
    header.urgentPointer = 0;
    const length = emitTcpHeader(header, options, host.transmitBuffer, 0, this.localAddress, this.remoteAddress, host.checksumOffload);
    host.counters.resetsSent++;
    this.flowCounters.segmentsOut++;
    host.transmit(this, length, 0);
  }

  // ——— Plumbing ———

  private isSynchronized(): boolean {
    const state = this.state;
    return state !== "CLOSED" && state !== "LISTEN" && state !== "SYN-SENT";
  }

  /**
   * The stack's clock, read once per operation: inside an entry point (a segment, a read, a
   * write, a timer) every use sees the time the operation began, as Linux's TCP reads its clock
   * once per packet (tcp_mstamp). A handful of microseconds apart at most, and each read is a
   * call into the base: an HTTP exchange took fourteen of them.
   */
  private now(): number {
    return this.depth > 0 ? this.operationTime : this.host.timers.now();
  }

  private enter(): void {
    if (this.depth === 0) this.operationTime = this.host.timers.now();
    this.depth++;
  }

  /** Leaving the outermost call: tell the application what happened, then send what is due. */
  private leave(): void {
    if (this.depth > 1) {
      this.depth--;
      return;
    }
    // Still inside (depth 1) while observers run, so that their calls do not flush re-entrantly.
    for (let rounds = 0; rounds < 8; rounds++) {
      if (this.events !== 0) this.dispatch();
      if (this.state !== "CLOSED") {
        this.transmitPending();
        this.armTimers();
        // After the observers ran (they read and write): the budget sees what the buffers hold,
        // and over its high mark may reset connections, this one included (whose closing event
        // the next round then dispatches).
        this.host.budget.setBufferMemory(this, this.sendBuffer.allocated + this.receiveBuffer.allocated);
      }
      if (this.events === 0) break;
    }
    this.depth--;
  }

  private dispatch(): void {
    const events = this.events;
    this.events = 0;
    const observer = this.observer;
    if (observer === undefined) return;
    if (events & EVENT_ESTABLISHED) observer.established();
    if (events & EVENT_WRITABLE) observer.writable();
    if (events & EVENT_READABLE) observer.readable();
    if (events & EVENT_FIN_ACKED) observer.finAcknowledged();
    if (events & EVENT_CLOSED && !this.closedReported) {
      this.closedReported = true;
      observer.closed(this.error);
    }
  }

  // ——— The budget (budget.ts) ———

  /**
   * Data arrived in order, new data was acknowledged, or the handshake completed: the connection
   * is active for the budget. Segments that move nothing (zero-window probes' answers, duplicate
   * or out-of-window segments) do not count, so they cannot keep a stalled connection from being
   * spared.
   */
  private noteProgress(): void {
    this.host.budget.touch(this, this.now());
  }

  /** Embryonic, in TIME-WAIT, or silent for `idleMs` (orphaned or not): may be reset to make room. */
  spareable(now: number, idleMs: number): boolean {
    switch (this.state) {
      case "SYN-RECEIVED":
      case "TIME-WAIT":
        return true;
      case "SYN-SENT":
      case "CLOSED":
      case "LISTEN":
        return false;
      default:
        // Orphans too: one whose peer still acknowledges (a download after the server closed) is kept.
        return now - this.entry.lastActivityAt >= idleMs;
    }
  }

  /** Resets the connection to make room (RST to the peer, unless in TIME-WAIT); the application sees an "aborted" error. */
  evict(why: string): void {
    if (this.state === "CLOSED") return;
    this.enter();
    if (this.state === "TIME-WAIT") this.terminate(undefined);
    else this.fail("aborted", why, true);
    this.leave();
  }

  /** Whether segments go with "don't fragment" (RFC 1191 path MTU discovery). */
  get dontFragment(): boolean {
    return this.settings.pathMtuDiscovery && !this.fragmentable;
  }

  /** Whether a SYN for this connection's 4-tuple, arriving in TIME-WAIT, may start a new incarnation (RFC 6191). */
  acceptsNewIncarnation(syn: Segment): boolean {
    if (this.state !== "TIME-WAIT") return false;
    if (this.timestampsOn && syn.options.timestamps) return seqGt(syn.options.tsValue, this.tsRecent);
    return seqGt(syn.seq, this.rcvNxt);
  }

  /** Leaves TIME-WAIT at once, for a new incarnation of the 4-tuple. */
  endTimeWait(): void {
    if (this.state !== "TIME-WAIT") return;
    this.enter();
    this.terminate(undefined);
    this.leave();
  }

  /** Called by the layer when it closes: drop without a word (the stack is going away). */
  destroy(): void {
    if (this.state === "CLOSED") return;
    this.enter();
    this.error ??= new TcpError("closed", "tcp: the TCP layer was closed");
    this.receiveBuffer.dispose();
    this.terminate(this.error);
    this.leave();
  }

  /** A snapshot of this connection's counters with the gauges filled in. */
  snapshotCounters(): FlowCounters {
    const counters = this.flowCounters;
    counters.srttMs = this.srtt;
    counters.rttVarMs = this.rttVar;
    counters.rtoMs = this.currentRto();
    counters.cwnd = this.cc.cwnd;
    counters.ssthresh = Number.isFinite(this.cc.ssthresh) ? this.cc.ssthresh : -1;
    counters.sendMss = this.smss;
    counters.sendWindow = this.sndWnd;
    counters.receiveWindow = this.receiveWindow();
    counters.bytesInFlight = seqDiff(this.sndMax, this.sndUna);
    return { ...counters };
  }

  /** The sequence variables, for invariant checks in tests and for debugging. */
  inspect(): ConnectionSnapshot {
    return {
      state: this.state,
      iss: this.iss,
      sndUna: this.sndUna,
      sndNxt: this.sndNxt,
      sndMax: this.sndMax,
      sndWnd: this.sndWnd,
      irs: this.irs,
      rcvNxt: this.rcvNxt,
      rcvWnd: this.receiveWindow(),
      sendBuffered: this.sendBuffer.length,
      sendCapacity: this.sendBuffer.capacity,
      bufferMemory: this.sendBuffer.allocated + this.receiveBuffer.allocated,
      bufferSeq: this.bufferSeq,
      receiveReadable: this.receiveBuffer.readable,
      receiveCapacity: this.receiveBuffer.capacity,
      outOfOrderRanges: this.outOfOrder.size,
      sackedRanges: this.sacked.size,
      cwnd: this.cc.cwnd,
      smss: this.smss,
      recovery: this.recovery,
      timestamps: this.timestampsOn,
      sack: this.sackOn,
      sndScale: this.sndScale,
      rcvScale: this.rcvScale,
      peerMss: this.peerMss,
      finQueued: this.finQueued,
      finReceived: this.finReceived,
    };
  }
}

export interface ConnectionSnapshot {
  state: TcpState;
  iss: number;
  sndUna: number;
  sndNxt: number;
  sndMax: number;
  sndWnd: number;
  irs: number;
  rcvNxt: number;
  rcvWnd: number;
  sendBuffered: number;
  sendCapacity: number;
  /** Bytes of memory both buffers hold now (they grow as needed and go once done with). */
  bufferMemory: number;
  bufferSeq: number;
  receiveReadable: number;
  receiveCapacity: number;
  outOfOrderRanges: number;
  sackedRanges: number;
  cwnd: number;
  smss: number;
  recovery: Recovery;
  timestamps: boolean;
  sack: boolean;
  sndScale: number;
  rcvScale: number;
  peerMss: number;
  finQueued: boolean;
  finReceived: boolean;
}

/** "127 s", "1.5 s": a duration for messages. */
function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

function formatAddress(address: Ipv4Address): string {
  return `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;
}

function kibText(bytes: number): string {
  return `${Math.round(bytes / 1024)} KiB`;
}

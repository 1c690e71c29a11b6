/** The counters of the TCP layer and of each connection: plain numbers, readable at any time. */

/**
 * Layer counters. Each received segment lands in `segmentsIn` and then in exactly one of: a drop
 * (`malformed`, `badChecksum`, `badOptions`, `notUnicast`, `noConnection`, `listenDrops`), or a
 * connection or listener that took it (`delivered`).
 */
export type TcpCounters = {
  segmentsIn: number;
  segmentsOut: number;
  /** Segments handed to a connection or a listener. */
  delivered: number;
  /** Drop: shorter than a header, or a data offset below 5 or beyond the segment. */
  malformed: number;
  /** Drop: the checksum does not verify. */
  badChecksum: number;
  /** Drop: an option with a bad length (RFC 9293 MUST-7). */
  badOptions: number;
  /** Drop: to a broadcast or multicast address, or with a port 0 (RFC 9293 MUST-57, RFC 1122 §4.2.3.10). */
  notUnicast: number;
  /** Drop: no connection and no listener (a RST went back unless it was a RST). */
  noConnection: number;
  /** Drop by a listener: RST, no SYN, SYN+FIN, accept queue full, half-open queue full without cookies. */
  listenDrops: number;
  /** Resets we sent, and those we received that closed a connection. */
  resetsSent: number;
  resetsReceived: number;
  /** RFC 5961 challenge ACKs sent, and those the rate limit held back. */
  challengeAcks: number;
  challengeAcksLimited: number;
  /** SYN cookies (RFC 4987 §3.6) sent in SYN-ACKs, and returned valid (connections made from them) or not. */
  synCookiesSent: number;
  synCookiesValidated: number;
  synCookiesFailed: number;
  /** Of those failed, segments with data or FIN dropped without a reset: perhaps a cookie connection's later segment (listener.ts). */
  synCookiesDeferred: number;
  /** RFC 7323 §5 PAWS rejections, and segments dropped for lacking a negotiated timestamp (§3.2). */
  pawsRejected: number;
  missingTimestamp: number;
  /** Segments outside the receive window (answered with an ACK unless a RST). */
  outOfWindow: number;
  /** ACKs for data never sent, or too old (RFC 5961 §5), answered with an ACK and dropped. */
  badAcks: number;
  activeOpens: number;
  passiveOpens: number;
  /** Connections that reached ESTABLISHED, that failed (reset, timeout, unreachable), and that exist now. */
  established: number;
  failed: number;
  connections: number;
  retransmits: number;
  timeouts: number;
  /** Negative advice given to the IP layer: timeouts of a segment already retransmitted R1 (3) times (RFC 1122 §4.2.3.5). */
  negativeAdvice: number;
  /** ICMP errors matched to a connection, and the path MTU reductions they caused. */
  icmpErrors: number;
  pathMtuUpdates: number;
  /** Sends the IP layer refused (no route, too big). */
  sendFailures: number;
  /**
   * The budget (budget.ts): new connections refused (their SYN or cookie ACK dropped) at the
   * global cap (maxConnections), a listener's cap (maxListenerConnections), a source's cap
   * (maxConnectionsPerSource), or under memory pressure with nothing to spare.
   */
  connectionLimitDrops: number;
  listenerLimitDrops: number;
  sourceLimitDrops: number;
  memoryLimitDrops: number;
  /** Connections reset to make room for new ones or memory (embryonic, TIME-WAIT or silent for evictIdleMs; least recently active first). */
  /** Received segments (or their tails) dropped unacknowledged over the memory high mark: their ring would have grown (TCPRcvQDrop). */
  receivePruned: number;
  evicted: number;
  /**
   * Orphans reset at close because maxOrphans were already held; and orphans or shut-down
   * connections given up for lack of progress (orphanRetransmits, orphanTimeoutMs).
   */
  orphansReset: number;
  orphansTimedOut: number;
  /** Times the accounted memory went over memoryPressure (tcp_mem's pressure mode began). */
  memoryPressureEntered: number;
  /** Gauges: bytes accounted (buffers plus per-connection overhead) and orphans held now. */
  memoryBytes: number;
  orphans: number;
};

export function newTcpCounters(): TcpCounters {
  return {
    segmentsIn: 0,
    segmentsOut: 0,
    delivered: 0,
    malformed: 0,
    badChecksum: 0,
    badOptions: 0,
    notUnicast: 0,
    noConnection: 0,
    listenDrops: 0,
    resetsSent: 0,
    resetsReceived: 0,
    challengeAcks: 0,
    challengeAcksLimited: 0,
    synCookiesSent: 0,
    synCookiesValidated: 0,
    synCookiesFailed: 0,
    synCookiesDeferred: 0,
    pawsRejected: 0,
    missingTimestamp: 0,
    outOfWindow: 0,
    badAcks: 0,
    activeOpens: 0,
    passiveOpens: 0,
    established: 0,
    failed: 0,
    connections: 0,
    retransmits: 0,
    timeouts: 0,
    negativeAdvice: 0,
    icmpErrors: 0,
    pathMtuUpdates: 0,
    sendFailures: 0,
    connectionLimitDrops: 0,
    listenerLimitDrops: 0,
    sourceLimitDrops: 0,
    memoryLimitDrops: 0,
    receivePruned: 0,
    evicted: 0,
    orphansReset: 0,
    orphansTimedOut: 0,
    memoryPressureEntered: 0,
    memoryBytes: 0,
    orphans: 0,
  };
}

/** One connection's counters, plus gauges of its state (`flow.counters` gives a snapshot). */
export type FlowCounters = {
  segmentsIn: number;
  segmentsOut: number;
  bytesSent: number;
  bytesReceived: number;
  /** Segments sent again: by the retransmission timer, fast retransmit or SACK recovery. */
  retransmits: number;
  /** Retransmission timer expirations. */
  timeouts: number;
  /** Entries into fast recovery (RFC 5681 §3.2, RFC 6675 §5). */
  fastRecoveries: number;
  duplicateAcks: number;
  /** Segments that arrived ahead of a gap, and those that carried only data we had. */
  outOfOrder: number;
  duplicateData: number;
  /** Zero-window probes (RFC 9293 §3.8.6.1) and keep-alive probes sent. */
  windowProbes: number;
  keepAliveProbes: number;
  /** Pure window updates sent as the application read. */
  windowUpdates: number;
  /** Times the receive and the send buffer grew (autotuning; see receiveBufferMax, sendBufferMax). */
  receiveBufferGrowths: number;
  sendBufferGrowths: number;
  delayedAcks: number;
  challengeAcks: number;
  /** Gauges. */
  srttMs: number;
  rttVarMs: number;
  rtoMs: number;
  cwnd: number;
  ssthresh: number;
  sendMss: number;
  sendWindow: number;
  receiveWindow: number;
  bytesInFlight: number;
};

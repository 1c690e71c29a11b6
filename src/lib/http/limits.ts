/**
 * The server's own budgets, beside the per-connection ones of the engine (HttpLimits in
 * connection.ts), and the rate-limited report of each limit that bites.
 *
 * Every budget here answers one way of holding the appliance's memory from the network (issue
 * #12, finding 1): connections that never finish a request, requests whose handlers pile up,
 * responses nobody reads. A limit that bites is counted in HttpStats and reported by
 * LimitReporter: at most one line per limit per interval, saying how often it bit since the last.
 */

export interface ServerLimits {
  /**
   * Connections served at once (as nginx's `worker_connections`, 512 by default there). At the
   * cap, a new connection first takes the place of the oldest idle keep-alive connection (closed
   * with a FIN: it owes nothing); with none idle it waits, unread, for a place.
   */
  readonly maxConnections: number;
  /** Connections waiting for a place (the HTTP side of a listen backlog); beyond it they are reset. */
  readonly maxQueuedConnections: number;
  /**
   * At the cap with no keep-alive connection idle, the connection that has waited longest for a
   * request (silent since it was accepted, or with a head arriving that has not completed, and
   * nothing else in progress on it), if for at least this long, is closed like an idle one to make
   * room (counted as stalledHeadsClosed). A flood of partial request lines (slowloris)
   * would otherwise hold every place until headersTimeoutMs while real clients wait. Default 0:
   * the oldest such head, however young: a flood of 400 connections a second turns 256 places over
   * in 0.64 s, so any fixed age above that would let it keep every place; a real client's head
   * comes in one segment or a few within a round trip, so it is the youngest, not the oldest.
   */
  readonly stalledHeadMs: number;
  /**
   * Requests whose handlers run (or whose responses are still being produced) at once, over all
   * connections; beyond it a request is answered at once with 503 and `Retry-After` (RFC 9110
   * §15.6.4, §10.2.3) rather than queued: an answer costs no memory, and the client knows.
   */
  readonly maxConcurrentRequests: number;
  /** Seconds sent in `Retry-After` with that 503. */
  readonly retryAfterSeconds: number;
}

/**
 * Sized for an appliance under `atoll run --tender spt --memory 64` (a 64 MiB V8 heap), from what
 * a connection costs the HTTP layer beyond TCP's buffers (measured in process, heap and array
 * buffers, 2000 connections over in-memory flows): ~13 KiB while it sends nothing or a partial
 * request line, ~23 KiB once it has had an answer (its 8 KiB output arena), at most ~37 KiB with
 * a whole 24 KiB head pending. So 256 connections hold 3 to 10 MiB whatever their peers do. A
 * request whose client stops reading holds ~64 to 96 KiB of HTTP buffers (2 × bodyBufferBytes +
 * 2 × outputHighWaterBytes, and chunked framing merged for writing; test/http/limits*.test.ts)
 * and ~40 KiB more in its Request, Response and streams: 128 of them ~17 MiB at worst, for at
 * most sendTimeoutMs. The rest of the heap stays for TCP's
 * buffers (their own budget, in atoll/net/tcp) and the application. nginx's defaults
 * (worker_connections 512) assume a machine, not 64 MiB.
 */
export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxConnections: 256,
  maxQueuedConnections: 64,
  stalledHeadMs: 0,
  maxConcurrentRequests: 128,
  retryAfterSeconds: 1,
};

/** How often, at most, each limit is reported in the log. */
export const LIMIT_REPORT_INTERVAL_MS = 5_000;

/** The limits that bite without being a fault in what a peer sent; each has a counter in HttpStats. */
export type LimitKind =
  /** A connection arrived at maxConnections and had to wait for a place. */
  | "connectionsQueued"
  /** An idle keep-alive connection was closed to make room for a new one. */
  | "idleConnectionsClosed"
  /** A connection whose request head stalled for stalledHeadMs was closed to make room for a new one. */
  | "stalledHeadsClosed"
  /** A connection was reset: maxConnections served and maxQueuedConnections waiting. */
  | "connectionsRefused"
  /** A request was answered 503: maxConcurrentRequests in flight. */
  | "requestsRejected"
  /** Parsing paused: maxPipelinedRequests parsed ahead on a connection. */
  | "pipelinedRequests"
  /** Parsing paused: maxPipelinedBytes of request heads parsed ahead on a connection. */
  | "pipelinedBytes"
  /** A connection was reset: nothing could be sent to it for sendTimeoutMs. */
  | "sendTimeout";

/** What LimitReporter reports: the limits above, and the engine's timeouts that defend against slow peers (counted as headersTimeouts, bodyTimeouts). */
export type ReportedLimit = LimitKind | "headersTimeout" | "bodyTimeout";

/**
 * Writes one line per limit at most every `intervalMs`: the first time it bites at once, later
 * ones with the number of times since the line before, so that a flood costs a line every few
 * seconds and still tells its size. (Bites after the last line are told with the next one.)
 */
export class LimitReporter {
  private readonly last = new Map<ReportedLimit, { at: number; unreported: number }>();

  constructor(
    private readonly now: () => number,
    private readonly write: (line: string) => void,
    private readonly intervalMs = LIMIT_REPORT_INTERVAL_MS,
  ) {}

  /** The limit bit once; `describe` builds the line's text only when a line is due. */
  bit(kind: ReportedLimit, describe: () => string): void {
    const now = this.now();
    let entry = this.last.get(kind);
    if (entry === undefined) {
      entry = { at: -Infinity, unreported: 0 };
      this.last.set(kind, entry);
    }
    entry.unreported++;
    if (now - entry.at < this.intervalMs) return;
    const times = entry.unreported;
    entry.at = now;
    entry.unreported = 0;
    const since = times > 1 ? ` (${times} times since the last report)` : "";
    this.write(`${describe()}${since}`);
  }
}

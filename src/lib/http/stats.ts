/**
 * Request counters for `registerCounters` (printed at exit with `--log atoll:debug`) and the
 * access log line in Common Log Format (as Apache's `%h %l %u %t "%r" %>s %b`).
 */
import type { CounterSnapshot } from "../runtime/counters.ts";
import type { ExchangeRecord } from "./connection.ts";
import { isTimeoutKind, type ProtocolError, type ProtocolErrorKind } from "./errors.ts";
import type { LimitKind } from "./limits.ts";

export class HttpStats {
  connections = 0;
  activeConnections = 0;
  /** Requests handed to the handler (protocol errors are counted apart). */
  requests = 0;
  responses2xx = 0;
  responses3xx = 0;
  responses4xx = 0;
  responses5xx = 0;
  /** Responses cut short (their body failed, or the connection broke under them). */
  abortedResponses = 0;
  bytesIn = 0;
  bytesOut = 0;
  handlerErrors = 0;
  /** Connections the peer reset, or whose writes failed. */
  resets = 0;
  parseErrors = 0;
  readonly parseErrorsByKind = new Map<ProtocolErrorKind, number>();
  headersTimeouts = 0;
  idleTimeouts = 0;
  bodyTimeouts = 0;
  /** How often each server or connection limit bit (see LimitKind in limits.ts). */
  readonly limitHits: Record<LimitKind, number> = {
    connectionsQueued: 0,
    idleConnectionsClosed: 0,
    stalledHeadsClosed: 0,
    connectionsRefused: 0,
    requestsRejected: 0,
    pipelinedRequests: 0,
    pipelinedBytes: 0,
    sendTimeout: 0,
  };
  /** Requests handed to the handler whose responses are not finished yet. */
  requestsInFlight = 0;
  /** Connections waiting for a place under maxConnections. */
  queuedConnections = 0;
  /** Measures of each open connection's HTTP-layer buffers (see bufferedBytes). */
  private readonly bufferProbes = new Set<() => number>();

  /**
   * Bytes the HTTP layer holds for open connections right now: raw input read ahead of the
   * parser, request heads and bodies not yet taken by handlers, response bytes queued or being
   * written to the flow. Not TCP's buffers (atoll/net/tcp counts those), not what handlers keep.
   */
  get bufferedBytes(): number {
    let bytes = 0;
    for (const probe of this.bufferProbes) bytes += probe();
    return bytes;
  }

  /** Adds a connection's buffer measure to bufferedBytes; returns its removal. */
  trackBuffers(probe: () => number): () => void {
    this.bufferProbes.add(probe);
    return () => this.bufferProbes.delete(probe);
  }

  recordResponse(record: ExchangeRecord): void {
    if (record.aborted) this.abortedResponses++;
    const statusClass = Math.floor(record.status / 100);
    if (statusClass === 2) this.responses2xx++;
    else if (statusClass === 3) this.responses3xx++;
    else if (statusClass === 4) this.responses4xx++;
    else if (statusClass === 5) this.responses5xx++;
  }

  recordProtocolError(error: ProtocolError): void {
    if (error.kind === "headersTimeout") this.headersTimeouts++;
    else if (error.kind === "idleTimeout") this.idleTimeouts++;
    else if (error.kind === "bodyTimeout") this.bodyTimeouts++;
    if (isTimeoutKind(error.kind)) return;
    this.parseErrors++;
    this.parseErrorsByKind.set(error.kind, (this.parseErrorsByKind.get(error.kind) ?? 0) + 1);
  }

  /** Plain numbers; parse errors by kind appear as `parseErrors.<kind>`. */
  snapshot(): CounterSnapshot {
    const snapshot: Record<string, number> = {
      connections: this.connections,
      activeConnections: this.activeConnections,
      requests: this.requests,
      responses2xx: this.responses2xx,
      responses3xx: this.responses3xx,
      responses4xx: this.responses4xx,
      responses5xx: this.responses5xx,
      abortedResponses: this.abortedResponses,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      handlerErrors: this.handlerErrors,
      resets: this.resets,
      parseErrors: this.parseErrors,
      headersTimeouts: this.headersTimeouts,
      idleTimeouts: this.idleTimeouts,
      bodyTimeouts: this.bodyTimeouts,
      sendTimeouts: this.limitHits.sendTimeout,
      connectionsQueued: this.limitHits.connectionsQueued,
      idleConnectionsClosed: this.limitHits.idleConnectionsClosed,
      stalledHeadsClosed: this.limitHits.stalledHeadsClosed,
      connectionsRefused: this.limitHits.connectionsRefused,
      requestsRejected: this.limitHits.requestsRejected,
      pipelinedRequestsLimited: this.limitHits.pipelinedRequests,
      pipelinedBytesLimited: this.limitHits.pipelinedBytes,
      requestsInFlight: this.requestsInFlight,
      queuedConnections: this.queuedConnections,
      bufferedBytes: this.bufferedBytes,
    };
    for (const [kind, count] of this.parseErrorsByKind) snapshot[`parseErrors.${kind}`] = count;
    return snapshot;
  }
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function two(value: number): string {
  return String(value).padStart(2, "0");
}

/** `10/Oct/2000:13:55:36 +0000`: the %t of Common Log Format, in UTC. */
export function commonLogTime(epochMs: number): string {
  const date = new Date(epochMs);
  return `${two(date.getUTCDate())}/${MONTHS[date.getUTCMonth()] ?? "???"}/${date.getUTCFullYear()}:${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000`;
}

/** Escapes what a request line may carry into a log line: quotes, backslashes, non-printables (as Apache does). */
function escapeForLog(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x22 || code === 0x5c) out += `\\${text[i] ?? ""}`;
    else if (code < 0x20 || code >= 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += text[i] ?? "";
  }
  return out;
}

/** `198.18.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 2326` */
export function commonLogLine(remoteAddress: string | undefined, epochMs: number, record: ExchangeRecord): string {
  const requestLine = record.requestLine === undefined ? "-" : escapeForLog(record.requestLine);
  const bytes = record.bodyBytes === 0 ? "-" : String(record.bodyBytes);
  return `${remoteAddress ?? "-"} - - [${commonLogTime(epochMs)}] "${requestLine}" ${record.status} ${bytes}`;
}

/**
 * One HTTP/1.1 connection as a plain state machine over bytes (RFC 9112), with no I/O of its own:
 *
 *   driver ──receive(bytes)/receiveEnd()──▶ Http1Connection ──onRequest(exchange)──▶ application
 *   driver ◀──takeOutput()/onOutput()────── Http1Connection ◀──respond/write/end──── application
 *
 * The driver (serveHttpConnection over a ByteFlow, an in-memory pipe, a test feeding bytes by
 * hand) moves bytes; the application answers each Exchange. Requests may be pipelined: they are
 * parsed and handed out as they arrive (up to maxPipelinedRequests at once), and their responses
 * are written strictly in request order (RFC 9112 §9.3.2), later ones buffered until their turn.
 *
 * Backpressure, both ways, without unbounded buffers:
 * - request bodies: parsing stops while the application has bodyBufferBytes of unread body, and
 *   `wantsInput` turns false once that much raw input waits; `onInputWanted` says when to resume;
 * - responses: an exchange is `writable` while less than outputHighWaterBytes of its output waits
 *   (in the connection's output for the exchange at the head of the line, in its own buffer for
 *   the others); `onWritable` says when to resume. The driver drains output with takeOutput().
 *
 * Every protocol error is answered with its status and `Connection: close`, after the responses
 * already owed, and then the connection closes: after a framing error nothing later on the
 * connection can be trusted. Timers (headers, idle, body, send) come from an injected clock.
 *
 * The send timeout is the driver's contract: from takeOutput() handing it bytes, it reports
 * progress (outputProgress) as parts are sent and releaseOutput() once all are; with neither for
 * sendTimeoutMs, the peer is taken to have stopped reading, `onLimit("sendTimeout")` is called and
 * the connection is destroyed. Pipelining is bounded in requests and in head bytes parsed ahead
 * (maxPipelinedRequests, maxPipelinedBytes); when a bound pauses parsing, `onLimit` says so.
 */
import { ChunkedDecoder } from "./chunked.ts";
import { ProtocolError } from "./errors.ts";
import { interpretRequest, type RequestInfo } from "./framing.ts";
import { HeadCache, HeadReader, parseRequestHead } from "./head.ts";
import { HeadWriter } from "./head-writer.ts";
import { REASON_PHRASES, isFieldValue, isReasonPhrase, isToken, latin1Encode } from "./syntax.ts";

export interface HttpLimits {
  /** Longest request line (RFC 9112 §3 suggests supporting at least 8000 octets); longer → 414. */
  readonly maxRequestLineBytes: number;
  /** Largest header section, CRLFs included; larger → 431. */
  readonly maxHeaderBytes: number;
  /** Most header field lines; more → 431. */
  readonly maxHeaderCount: number;
  /** Largest request body; larger → 413. */
  readonly maxBodyBytes: number;
  /** Longest chunk-size line, extensions included; longer → 400. */
  readonly maxChunkLineBytes: number;
  /** Requests parsed ahead of their responses; beyond this, parsing waits (backpressure, not an error). */
  readonly maxPipelinedRequests: number;
  /**
   * Head bytes of the requests parsed ahead of the one being answered; beyond this, parsing waits
   * as for maxPipelinedRequests. Without it, 16 pipelined heads of 16 KiB each would hold 256 KiB.
   */
  readonly maxPipelinedBytes: number;
  /**
   * Unread request-body bytes held for the application before parsing pauses; raw input read
   * ahead of the parser is bounded by the same figure (`wantsInput`), so the rest waits in TCP.
   */
  readonly bodyBufferBytes: number;
  /** Response bytes queued before an exchange stops being writable. */
  readonly outputHighWaterBytes: number;
}

export interface HttpTimeouts {
  /** From the first byte of a request head to its end (slow-loris defence); then 408 and close. */
  readonly headersTimeoutMs: number;
  /** With no request in progress (keep-alive), how long to wait for the next; then 408 and close. */
  readonly idleTimeoutMs: number;
  /** How long the application may wait for the next request-body byte; then 408 and close. */
  readonly bodyTimeoutMs: number;
  /**
   * How long output the driver took may go without any of it being sent (the peer does not read,
   * its window stays shut); then the connection is reset, since nothing more can reach it. As
   * nginx's `send_timeout` (60 s): between two successive writes, not for the whole response.
   */
  readonly sendTimeoutMs: number;
}

export const DEFAULT_LIMITS: HttpLimits = {
  maxRequestLineBytes: 8192,
  maxHeaderBytes: 16384,
  maxHeaderCount: 100,
  maxBodyBytes: 1 << 20,
  maxChunkLineBytes: 1024,
  maxPipelinedRequests: 16,
  maxPipelinedBytes: 32 * 1024,
  // 16 KiB each way: the TCP buffers beneath (256 KiB to send) keep the link busy; these only
  // hand bytes over, and a connection whose peer stops reading holds them for sendTimeoutMs.
  bodyBufferBytes: 16 * 1024,
  outputHighWaterBytes: 16 * 1024,
};

export const DEFAULT_TIMEOUTS: HttpTimeouts = {
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 5_000,
  bodyTimeoutMs: 10_000,
  sendTimeoutMs: 60_000,
};

/** Limits of one connection that may bite without being an error in what the peer sent. */
export type ConnectionLimitKind = "pipelinedRequests" | "pipelinedBytes" | "sendTimeout";

/** A clock and one-shot timers in milliseconds: structurally the network stack's Timers (atoll/net/types). */
export interface HttpTimers {
  now(): number;
  at(deadlineMs: number, callback: () => void): { cancel(): void };
}

export interface ResponseHead {
  /** 200..599: interim (1xx) responses are the engine's business (100 Continue). */
  readonly status: number;
  /** Defaults to the RFC 9110 phrase for the status. */
  readonly reason?: string | undefined;
  /** Field lines. Connection management and framing fields (Connection, Keep-Alive, Transfer-Encoding, Content-Length, TE, Trailer, Upgrade) are the engine's and are dropped. */
  readonly headers: Iterable<readonly [string, string]>;
  /** The body's length when known (sent as Content-Length); otherwise chunked, or close-delimited for HTTP/1.0. */
  readonly contentLength?: number | undefined;
  /**
   * An object standing for the content of `headers` (atoll/web's headersContentKey): heads with
   * the same key have the same fields, so the engine checks and serializes them once and reuses
   * the octets. Give it only when that holds.
   */
  readonly fieldsKey?: object | undefined;
}

export type BodyRead =
  | { readonly kind: "data"; readonly bytes: Uint8Array }
  | { readonly kind: "end" }
  | { readonly kind: "pending" }
  | { readonly kind: "error"; readonly error: Error };

/** What the access log needs once an exchange's response has been fully queued. */
export interface ExchangeRecord {
  /** The request line as received, when one was read. */
  readonly requestLine: string | undefined;
  readonly status: number;
  /** Response content bytes (excluding head and chunk framing). */
  readonly bodyBytes: number;
  /** Whether the response was cut short (the connection then closed). */
  readonly aborted: boolean;
}

export interface ConnectionHooks {
  /** A request head was parsed; answer through the exchange (possibly later, possibly out of order). */
  onRequest(exchange: Exchange): void;
  /** Output is waiting in takeOutput(), or the connection finished: the driver should look. */
  onOutput(): void;
  /** `wantsInput` turned true again after a pause. */
  onInputWanted?(): void;
  /** A protocol error or timeout, just before it is answered. */
  onProtocolError?(error: ProtocolError): void;
  /** An exchange's response was fully queued (or aborted). */
  onExchangeComplete?(record: ExchangeRecord): void;
  /**
   * A limit bit: parsing paused on a pipelining bound (once per pause), or the send timeout
   * expired. After "sendTimeout" the connection is destroyed: the driver should reset its flow,
   * whose write is stuck.
   */
  onLimit?(kind: ConnectionLimitKind): void;
}

export interface ConnectionOptions {
  readonly hooks: ConnectionHooks;
  readonly timers: HttpTimers;
  readonly limits?: Partial<HttpLimits> | undefined;
  readonly timeouts?: Partial<HttpTimeouts> | undefined;
  /** The Date header value for responses (RFC 9110 §6.6.1); absent → no Date header. */
  readonly date?: (() => string) | undefined;
}

/**
 * Fields the engine owns (RFC 9110 §7.6.1 hop-by-hop fields, and framing): an application's
 * values would contradict the framing the engine chose.
 */
const ENGINE_FIELDS = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "te", "trailer", "upgrade"]);
/**
 * Size of a connection's output arena, made on its first response and kept while the connection
 * lives: small, since an idle keep-alive connection holds it too.
 */
const OUTPUT_ARENA_BYTES = 8 * 1024;
/**
 * A deadline that is not running: later than any clock reading. Finite, not Infinity: the
 * tender's profile showed stores of Infinity into a deadline field costing several percent
 * (DeadlineTimer in net/tcp/timer.ts).
 */
const NO_DEADLINE = Number.MAX_VALUE;
/** Larger messages get a buffer of their own (a head with a page of a few KiB still fits). */
const MAX_ARENA_PIECE = 4 * 1024;
const EMPTY_ARENA = new Uint8Array(0);
/** Serialized application fields by ResponseHead.fieldsKey (and whether they hold Date). */
const serializedFields = new WeakMap<object, { readonly octets: Uint8Array; readonly hasDate: boolean }>();
/** A body shorter than this is copied behind its head, so that both leave in one write (and one segment when they fit). */
const BODY_WITH_HEAD_BELOW = 16 * 1024;

const CONTINUE_RESPONSE = latin1Encode("HTTP/1.1 100 Continue\r\n\r\n");
const CRLF_BYTES = latin1Encode("\r\n");
const LAST_CHUNK = latin1Encode("0\r\n\r\n");

type ResponseFraming = "none" | "length" | "chunked" | "close";

/** One request and its response. The engine's side; applications see the Exchange facade. */
class ExchangeState {
  readonly facade: Exchange | undefined;
  // Request body.
  bodyChunks: Uint8Array[] = [];
  bodyQueuedBytes = 0;
  bodyReceivedBytes = 0;
  bodyStatus: "receiving" | "complete" | "failed";
  bodyError: Error | undefined;
  bodyDiscarded = false;
  bodyWaiter: (() => void) | undefined;
  continueSent = false;
  continueWanted = false;
  // Response.
  response: "none" | "started" | "complete" = "none";
  status = 0;
  framing: ResponseFraming = "none";
  declaredLength = 0;
  bodyBytes = 0;
  closeAfter = false;
  aborted = false;
  pendingOutput: Uint8Array[] = [];
  pendingOutputBytes = 0;
  writableWaiter: (() => void) | undefined;
  /** The application's answer is no longer wanted (the engine answered, or the connection is gone). */
  cancelled = false;
  cancelWaiter: (() => void) | undefined;

  constructor(
    readonly connection: Http1Connection,
    readonly request: RequestInfo | undefined,
    readonly requestLine: string | undefined,
    /** Size of its request head, counted against maxPipelinedBytes while it waits. */
    readonly headBytes = 0,
  ) {
    this.bodyStatus = request === undefined || request.body.kind === "none" ? "complete" : "receiving";
    this.facade = request === undefined ? undefined : new Exchange(this, request);
  }

  get isHead(): boolean {
    return this.request?.method === "HEAD";
  }

  notifyBody(): void {
    const waiter = this.bodyWaiter;
    this.bodyWaiter = undefined;
    waiter?.();
  }

  notifyWritable(): void {
    const waiter = this.writableWaiter;
    this.writableWaiter = undefined;
    waiter?.();
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    const waiter = this.cancelWaiter;
    this.cancelWaiter = undefined;
    waiter?.();
    this.notifyWritable();
  }
}

/**
 * A request as the application sees it, and the way to answer it. Methods are safe to call in
 * any order the application likes: calls after the exchange was cancelled are ignored.
 */
export class Exchange {
  readonly #state: ExchangeState;
  readonly request: RequestInfo;

  constructor(state: ExchangeState, request: RequestInfo) {
    this.#state = state;
    this.request = request;
  }

  /** True once the engine answered in the application's stead or the connection went away. */
  get cancelled(): boolean {
    return this.#state.cancelled;
  }

  /** Calls `callback` once, when the exchange is cancelled. */
  onCancel(callback: () => void): void {
    if (this.#state.cancelled) callback();
    else this.#state.cancelWaiter = callback;
  }

  /**
   * The next piece of the request body: data, the end, an error (truncated, malformed, too
   * large, timed out), or "pending" (call onBodyReadable to hear when to try again). The first
   * read of a body the client holds back for `Expect: 100-continue` sends 100 Continue.
   */
  readBody(): BodyRead {
    return this.#state.connection.readBody(this.#state);
  }

  /** Calls `callback` once, when readBody has something other than "pending". */
  onBodyReadable(callback: () => void): void {
    this.#state.bodyWaiter = callback;
  }

  /** The application will not read the (rest of the) body: the engine skips it. */
  discardBody(): void {
    this.#state.connection.discardBody(this.#state);
  }

  /** Whether the response may carry content (false for HEAD, 204 and 304), once respond was called. */
  get bodyAllowed(): boolean {
    return this.#state.framing !== "none";
  }

  /** Starts the response. Throws TypeError for an invalid status, reason or field. */
  respond(head: ResponseHead): void {
    if (this.#state.cancelled) return;
    this.#state.connection.respond(this.#state, head);
  }

  /**
   * The whole response in one call: respond, write `body`, end. A small body leaves in the same
   * buffer as the head (one write to the flow). Throws as respond and write do.
   */
  send(head: ResponseHead, body: Uint8Array): void {
    if (this.#state.cancelled) return;
    this.#state.connection.send(this.#state, head, body);
  }

  /** Queues response content (ignored when the response has none, e.g. HEAD). Throws RangeError beyond the declared Content-Length. */
  write(bytes: Uint8Array): void {
    if (this.#state.cancelled) return;
    this.#state.connection.writeBody(this.#state, bytes);
  }

  /** Ends the response. */
  end(): void {
    if (this.#state.cancelled) return;
    this.#state.connection.endResponse(this.#state);
  }

  /** The response cannot be completed (its content failed): cut it short and close the connection. */
  abort(): void {
    if (this.#state.cancelled) return;
    this.#state.connection.abortResponse(this.#state);
  }

  /** Whether more output may be queued now without exceeding the high-water mark. */
  get writable(): boolean {
    return this.#state.connection.isWritable(this.#state);
  }

  /** Calls `callback` once, when the exchange becomes writable again (or is cancelled). */
  onWritable(callback: () => void): void {
    if (this.#state.cancelled || this.writable) callback();
    else this.#state.writableWaiter = callback;
  }
}

type ParseState = "head" | "body" | "stopped";

export class Http1Connection {
  readonly limits: HttpLimits;
  readonly timeouts: HttpTimeouts;
  private readonly hooks: ConnectionHooks;
  private readonly timers: HttpTimers;
  private readonly date: (() => string) | undefined;

  /** Raw input not parsed yet (parsing paused), with the offset into the first chunk. */
  private pending: Uint8Array[] = [];
  private pendingOffset = 0;
  private pendingBytes = 0;

  private parse: ParseState = "head";
  /** One reader for every head on the connection (reset after each), and the previous head's parsed lines. */
  private readonly head: HeadReader;
  private readonly headCache = new HeadCache();
  /** Serializes response heads; reused from response to response. */
  private readonly headWriter = new HeadWriter();
  /**
   * Where response heads (and the small bodies sent with them) are written: output pieces are
   * views of it, so a response costs no buffer of its own. Reused from the start once the driver
   * says it has written everything it took (releaseOutput); until then only new space is used.
   */
  private arena = EMPTY_ARENA;
  private arenaUsed = 0;
  private bodyOwner: ExchangeState | undefined;
  private bodyRemaining = 0;
  private chunked: ChunkedDecoder | undefined;

  /** Exchanges whose responses are not complete, in request order; the first one writes. */
  private queue: ExchangeState[] = [];
  private output: Uint8Array[] = [];
  private outputBytes = 0;

  /** False once no further request will be read (close requested, error, EOF, shutdown). */
  private acceptRequests = true;
  private peerEnded = false;
  private peerEndHandled = false;
  private destroyed = false;
  private processing = false;
  private processAgain = false;
  private reportedWantsInput = true;

  /**
   * The three timeouts as deadlines (ms; NO_DEADLINE when not running), watched by one timer. The
   * deadlines move on every request; the timer does not: it is set for the nearest deadline only
   * when that comes sooner than the time it is set for, and when it fires early (the deadline
   * moved on) it is set again. So a request costs no timer insertion and no cancellation (the
   * TCP layer's DeadlineTimer works the same way).
   */
  private headersDeadline = NO_DEADLINE;
  private idleDeadline = NO_DEADLINE;
  private bodyDeadline = NO_DEADLINE;
  private sendDeadline = NO_DEADLINE;
  private watchdog: { cancel(): void } | undefined;
  private watchdogAt = NO_DEADLINE;
  /** Head bytes of the queued exchanges (maxPipelinedBytes). */
  private queuedHeadBytes = 0;
  /** Parsing is paused on a pipelining bound (reported once per pause). */
  private pipelineStalled = false;

  bytesReceived = 0;
  bytesSent = 0;

  constructor(options: ConnectionOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.hooks = options.hooks;
    this.timers = options.timers;
    this.date = options.date;
    this.head = this.newHeadReader();
    this.updateTimers();
  }

  // ── Driver side ─────────────────────────────────────────────────────────────────────────────

  /** Feeds received bytes. The connection may keep views of `chunk`: do not reuse it. */
  receive(chunk: Uint8Array): void {
    if (this.destroyed || chunk.length === 0) return;
    this.bytesReceived += chunk.length;
    if (this.parse === "stopped") return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    // Activity: the idle timer measures silence, so it restarts after this.
    this.idleDeadline = NO_DEADLINE;
    this.process();
  }

  /** The peer will send nothing more (it half-closed or went away). */
  receiveEnd(): void {
    if (this.destroyed) return;
    this.peerEnded = true;
    this.process();
  }

  /** Whether the driver should read more input now. */
  get wantsInput(): boolean {
    return !this.destroyed && (this.parse === "stopped" || this.pendingBytes < this.limits.bodyBufferBytes);
  }

  /**
   * While a request body is read for the application, the most input worth reading now (raw
   * input is bounded by bodyBufferBytes): a driver that can read into its own buffer reads no
   * more, so that the rest of a large body stays in TCP. Undefined otherwise (heads, skipped bodies).
   */
  get bodyInputRoom(): number | undefined {
    const owner = this.bodyOwner;
    if (this.parse !== "body" || owner === undefined || owner.bodyDiscarded) return undefined;
    return Math.max(0, this.limits.bodyBufferBytes - this.pendingBytes);
  }

  /** Takes the bytes to send, in order (the caller owns them; they may be views of response bodies). */
  takeOutput(): Uint8Array[] {
    const taken = this.output;
    if (taken.length > 0) {
      this.output = [];
      this.bytesSent += this.outputBytes;
      this.outputBytes = 0;
      // The driver now writes: it must report progress (outputProgress) within sendTimeoutMs.
      if (this.sendDeadline === NO_DEADLINE && !this.destroyed) {
        this.sendDeadline = this.timers.now() + this.timeouts.sendTimeoutMs;
        this.armWatchdog();
      }
    }
    this.queue[0]?.notifyWritable();
    return taken;
  }

  /** Part of what takeOutput() gave was sent: the peer still reads, so the send timeout starts over. */
  outputProgress(): void {
    if (this.sendDeadline !== NO_DEADLINE) this.sendDeadline = this.timers.now() + this.timeouts.sendTimeoutMs;
  }

  /**
   * The driver has written every piece takeOutput() gave it, and will not touch them again: the
   * engine may reuse their memory. A driver that does not call this keeps its pieces for good.
   */
  releaseOutput(): void {
    if (this.sendDeadline !== NO_DEADLINE) {
      this.sendDeadline = NO_DEADLINE;
      // The last response of a finished connection was sent: no deadline is left to watch.
      if (this.finished) this.cancelTimers();
    }
    // Pieces not yet taken, or buffered by exchanges waiting their turn, still use the arena:
    // then it goes on filling forward (a new one when full), and is reused from the start at a
    // later release that finds nothing held.
    if (this.output.length > 0) return;
    for (const state of this.queue) if (state.pendingOutput.length > 0) return;
    this.arenaUsed = 0;
  }

  /** Whether output is waiting in takeOutput(). */
  get hasOutput(): boolean {
    return this.output.length > 0;
  }

  /**
   * Whether closing now would lose nothing: no request in progress or owed an answer, not a byte
   * of the next one received. A server short of connections closes such keep-alive connections
   * first (as nginx reuses its "reusable" ones), never one with a request in flight.
   */
  get idle(): boolean {
    return !this.destroyed && this.acceptRequests && this.queue.length === 0 && !this.head.started && this.pendingBytes === 0 && this.output.length === 0;
  }

  /**
   * When a request head has been arriving since (ms, the timers' clock) with nothing else in
   * progress or to write on this connection: what the server may spare at its connection cap
   * (ServerLimits.stalledHeadMs). Undefined otherwise.
   */
  get headStalledSince(): number | undefined {
    if (this.destroyed || !this.head.started || this.queue.length > 0 || this.output.length > 0 || this.headersDeadline === NO_DEADLINE) return undefined;
    return this.headersDeadline - this.timeouts.headersTimeoutMs;
  }

  /** True when no further output will be produced: flush what takeOutput() holds, then close. */
  get finished(): boolean {
    return this.destroyed || (!this.acceptRequests && this.queue.length === 0);
  }

  /**
   * Graceful close from our side (RFC 9112 §9.6): read no further requests, finish the ones in
   * progress, mark the last response `Connection: close`, then finish.
   */
  shutdown(): void {
    if (this.destroyed || !this.acceptRequests) return;
    // respond() marks the last exchange's response `Connection: close`.
    this.acceptRequests = false;
    this.process();
    this.notifyOutput();
  }

  /** Drops everything: timers stop, exchanges are cancelled and their bodies fail. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.cancelTimers();
    const error = new Error("the connection closed");
    for (const state of this.queue) this.failBody(state, error);
    if (this.bodyOwner !== undefined) this.failBody(this.bodyOwner, error);
    for (const state of this.queue) state.cancel();
    this.queue = [];
    this.queuedHeadBytes = 0;
    this.pending = [];
    this.pendingBytes = 0;
    this.parse = "stopped";
  }

  /** Bytes held by the parser and request-body queues (for memory bounds). */
  get bufferedInputBytes(): number {
    let bytes = this.pendingBytes + this.head.bufferedBytes + (this.chunked?.bufferedBytes ?? 0);
    for (const state of this.queue) bytes += state.bodyQueuedBytes;
    return bytes;
  }

  /** Response bytes queued and not yet taken by the driver: the head of line's and those waiting their turn. */
  get bufferedOutputBytes(): number {
    let bytes = this.outputBytes;
    for (const state of this.queue) bytes += state.pendingOutputBytes;
    return bytes;
  }

  // ── Exchange side: called only through Exchange (ExchangeState is private to this module) ─────

  /** @internal */
  readBody(state: ExchangeState): BodyRead {
    const chunk = state.bodyChunks.shift();
    if (chunk !== undefined) {
      state.bodyQueuedBytes -= chunk.length;
      // The application made room: parsing may resume.
      if (this.pendingBytes > 0) this.process();
      else this.updateInputWanted();
      return { kind: "data", bytes: chunk };
    }
    if (state.bodyStatus === "complete") return { kind: "end" };
    if (state.bodyStatus === "failed") return { kind: "error", error: state.bodyError ?? new Error("the request body failed") };
    if (state.request?.expectContinue === true && !state.continueSent && state.bodyReceivedBytes === 0 && state.response === "none") {
      // RFC 9110 §10.1.1: the client waits for 100 before sending the body; send it on first demand.
      if (this.queue[0] === state) this.sendContinue(state);
      else state.continueWanted = true;
    }
    this.armBodyTimer();
    return { kind: "pending" };
  }

  /** @internal */
  discardBody(state: ExchangeState): void {
    if (state.bodyDiscarded) return;
    state.bodyDiscarded = true;
    state.bodyWaiter = undefined;
    // Nobody waits for this body any more: skipping it is not a reason to time out.
    this.bodyDeadline = NO_DEADLINE;
    state.bodyChunks = [];
    state.bodyQueuedBytes = 0;
    this.process();
  }

  /** @internal */
  isWritable(state: ExchangeState): boolean {
    if (state.cancelled) return false;
    const queued = this.queue[0] === state ? this.outputBytes : state.pendingOutputBytes;
    return queued < this.limits.outputHighWaterBytes;
  }

  /**
   * @internal Starts the response: validates and serializes the head. With `body` (the whole
   * content, when it is small), the head and the body go out in one buffer if the framing allows;
   * returns whether the body went with the head.
   */
  respond(state: ExchangeState, head: ResponseHead, body?: Uint8Array): boolean {
    if (state.response !== "none") throw new Error("respond was already called for this exchange");
    const request = state.request;
    const status = head.status;
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new TypeError(`status ${String(status)} is not a final status (200..599)`);
    const reason = head.reason ?? REASON_PHRASES[status] ?? "";
    if (!isReasonPhrase(reason)) throw new TypeError("the reason phrase contains a control character");

    const writer = this.headWriter;
    writer.reset();
    writer.statusLine(status, reason);
    let hasDate: boolean;
    const key = head.fieldsKey;
    const known = key === undefined ? undefined : serializedFields.get(key);
    if (known !== undefined) {
      writer.octets(known.octets);
      hasDate = known.hasDate;
    } else {
      const start = writer.position;
      hasDate = this.writeFields(writer, head.headers);
      if (key !== undefined) serializedFields.set(key, { octets: writer.copy(start), hasDate });
    }
    if (!hasDate && this.date !== undefined) writer.field("Date", this.date());

    const contentLength = head.contentLength;
    if (contentLength !== undefined && (!Number.isSafeInteger(contentLength) || contentLength < 0)) {
      throw new RangeError(`content length ${contentLength} is not a non-negative integer`);
    }
    // RFC 9110 §6.4.1: no content in responses to HEAD, nor in 204 and 304.
    if (state.isHead || status === 204 || status === 304) {
      state.framing = "none";
      // RFC 9110 §9.3.2: HEAD answers with the fields GET would have, Content-Length included.
      if (state.isHead && contentLength !== undefined && status !== 204 && status !== 304) writer.trustedField("Content-Length", contentLength);
    } else if (contentLength !== undefined) {
      state.framing = "length";
      state.declaredLength = contentLength;
      writer.trustedField("Content-Length", contentLength);
    } else if (request === undefined || request.versionMinor === 1) {
      state.framing = "chunked";
      writer.trustedField("Transfer-Encoding", "chunked");
    } else {
      // HTTP/1.0 has no chunked coding (RFC 9112 §7): the end of the connection ends the content.
      state.framing = "close";
      state.closeAfter = true;
    }

    const isLast = this.queue[this.queue.length - 1] === state;
    if (request === undefined || !request.keepAlive || (!this.acceptRequests && isLast)) state.closeAfter = true;
    if (state.bodyStatus === "receiving" && state.request?.expectContinue === true && !state.continueSent && state.bodyReceivedBytes === 0) {
      // RFC 9110 §10.1.1: answering before the client sent the body it held back means we must
      // close, since we cannot know whether it will send the body anyway.
      state.closeAfter = true;
    }
    if (state.closeAfter) writer.trustedField("Connection", "close");
    else if (request?.versionMinor === 0) writer.trustedField("Connection", "keep-alive");

    state.response = "started";
    state.status = status;
    state.continueWanted = false;
    const withBody = body !== undefined && body.length > 0 && state.framing === "length" && body.length <= state.declaredLength;
    if (withBody) state.bodyBytes = body.length;
    this.emit(state, writer.finish(this.allocateOutput, withBody ? body : undefined));
    return withBody;
  }

  /** Writes the application's fields, leaving out the engine's; returns whether Date was among them. Throws TypeError for an invalid one. */
  private writeFields(writer: HeadWriter, fields: Iterable<readonly [string, string]>): boolean {
    let hasDate = false;
    for (const [name, value] of fields) {
      // (Names from a Headers are lower case already: then toLowerCase returns them as they are.)
      const lower = name.toLowerCase();
      if (ENGINE_FIELDS.has(lower)) {
        // Dropped, but an invalid one still refuses the head, as any invalid field does.
        if (!isToken(name)) throw new TypeError(`invalid field name ${JSON.stringify(name)}`);
        if (!isFieldValue(value)) throw new TypeError(`invalid value for field ${name}: it contains a control character`);
        continue;
      }
      if (lower === "date") hasDate = true;
      // Checks the name (a token) and the value (no CR, LF or other control: they would let the
      // application, or whoever fed it, split the response) as it copies them.
      writer.field(name, value);
    }
    return hasDate;
  }

  /** @internal The whole response at once: a small body leaves in the same buffer as the head. */
  send(state: ExchangeState, head: ResponseHead, body: Uint8Array): void {
    const sent = this.respond(state, head, body.length < BODY_WITH_HEAD_BELOW ? body : undefined);
    if (!sent) this.writeBody(state, body);
    this.endResponse(state);
  }

  /** @internal */
  writeBody(state: ExchangeState, bytes: Uint8Array): void {
    if (state.response !== "started") throw new Error(state.response === "none" ? "write before respond" : "write after end");
    if (bytes.length === 0 || state.framing === "none") return;
    if (state.framing === "length" && state.bodyBytes + bytes.length > state.declaredLength) {
      throw new RangeError(`the response body is longer than its Content-Length (${state.declaredLength})`);
    }
    state.bodyBytes += bytes.length;
    if (state.framing === "chunked") {
      this.emit(state, latin1Encode(`${bytes.length.toString(16)}\r\n`));
      this.emit(state, bytes);
      this.emit(state, CRLF_BYTES);
    } else {
      this.emit(state, bytes);
    }
  }

  /** @internal */
  endResponse(state: ExchangeState): void {
    if (state.response !== "started") throw new Error(state.response === "none" ? "end before respond" : "end called twice");
    if (state.framing === "length" && state.bodyBytes < state.declaredLength) {
      // The head promised more than the content gave: the message cannot be completed.
      this.abortResponse(state);
      return;
    }
    if (state.framing === "chunked") this.emit(state, LAST_CHUNK);
    this.complete(state);
  }

  /** @internal */
  abortResponse(state: ExchangeState): void {
    if (state.response === "complete") return;
    if (state.response === "none") {
      this.answerWithError(state, 500, "Internal Server Error", "the response failed");
      return;
    }
    // Cut short: the client sees a truncated message (short Content-Length or no last chunk) and the close.
    state.aborted = true;
    state.closeAfter = true;
    this.complete(state);
  }

  // ── Internals ───────────────────────────────────────────────────────────────────────────────

  /** Memory for `size` bytes of output: a view of the arena, or a buffer of its own when large. */
  private readonly allocateOutput = (size: number): Uint8Array => {
    if (size > MAX_ARENA_PIECE) return new Uint8Array(size);
    if (this.arenaUsed + size > this.arena.length) {
      this.arena = new Uint8Array(OUTPUT_ARENA_BYTES);
      this.arenaUsed = 0;
    }
    const start = this.arenaUsed;
    this.arenaUsed += size;
    // The constructor, not subarray(): subarray goes through the species protocol, slower in V8.
    return new Uint8Array(this.arena.buffer, start, size);
  };

  private newHeadReader(): HeadReader {
    return new HeadReader(
      { maxFirstLineBytes: this.limits.maxRequestLineBytes, maxFieldBytes: this.limits.maxHeaderBytes, maxFieldCount: this.limits.maxHeaderCount },
      true,
    );
  }

  private process(): void {
    if (this.processing) {
      this.processAgain = true;
      return;
    }
    this.processing = true;
    try {
      do {
        this.processAgain = false;
        while (!this.destroyed && this.parseStep()) {
          // Each step consumed input or changed state.
        }
        this.handlePeerEnd();
      } while (this.processAgain && !this.destroyed);
    } finally {
      this.processing = false;
    }
    this.updateTimers();
    this.updateInputWanted();
  }

  private consume(count: number): void {
    this.pendingOffset += count;
    this.pendingBytes -= count;
    const first = this.pending[0];
    if (first !== undefined && this.pendingOffset >= first.length) {
      this.pending.shift();
      this.pendingOffset = 0;
    }
  }

  private parseStep(): boolean {
    if (this.parse === "stopped") {
      this.pending = [];
      this.pendingBytes = 0;
      this.pendingOffset = 0;
      return false;
    }
    const chunk = this.pending[0];
    if (chunk === undefined) return false;
    const start = this.pendingOffset;

    if (this.parse === "head") {
      if (!this.acceptRequests) {
        this.stopInput();
        return false;
      }
      if (this.pipelineFull()) return false;
      const consumed = this.head.feed(chunk, start);
      this.consume(consumed);
      // The headers deadline (from the head's first byte) is set in updateTimers, at the end of
      // this processing, and only if the head is still incomplete then: most heads arrive whole.
      const error = this.head.error;
      if (error !== undefined) {
        this.protocolError(error, this.head.firstLine());
        return false;
      }
      if (this.head.complete) this.beginRequest();
      return consumed > 0 || this.parse !== "head";
    }

    const owner = this.bodyOwner;
    if (owner === undefined) {
      this.parse = "head";
      return true;
    }
    // Body bytes are taken only up to the room left in the application's buffer: a 64 KiB read
    // from TCP must not land whole in a 16 KiB buffer. A discarded body is skipped at any pace.
    const room = owner.bodyDiscarded ? chunk.length - start : this.limits.bodyBufferBytes - owner.bodyQueuedBytes;
    if (room <= 0) return false;
    const end = Math.min(chunk.length, start + room);
    if (this.chunked === undefined) {
      const take = Math.min(this.bodyRemaining, end - start);
      this.deliverBody(owner, chunk.subarray(start, start + take));
      this.consume(take);
      this.bodyRemaining -= take;
      if (this.bodyRemaining === 0) this.finishBody(owner);
      return take > 0;
    }
    const decoder = this.chunked;
    const consumed = decoder.decode(
      end === chunk.length ? chunk : chunk.subarray(0, end),
      start,
      (data) => this.deliverBody(owner, data),
      (size) =>
        owner.bodyReceivedBytes + size > this.limits.maxBodyBytes
          ? new ProtocolError("bodyTooLarge", `the chunked body is larger than ${this.limits.maxBodyBytes} bytes`)
          : undefined,
    );
    this.consume(consumed);
    if (decoder.error !== undefined) {
      this.protocolError(decoder.error);
      return false;
    }
    if (decoder.done) this.finishBody(owner);
    return consumed > 0;
  }

  /**
   * Whether the requests parsed ahead fill the pipelining bounds: then the next head waits (in
   * `pending`, then in TCP), and the first time per pause the limit is reported.
   */
  private pipelineFull(): boolean {
    const queued = this.queue.length;
    if (queued === 0) return false;
    let kind: ConnectionLimitKind | undefined;
    if (queued >= this.limits.maxPipelinedRequests) kind = "pipelinedRequests";
    else if (this.queuedHeadBytes >= this.limits.maxPipelinedBytes) kind = "pipelinedBytes";
    else return false;
    if (!this.pipelineStalled) {
      this.pipelineStalled = true;
      this.hooks.onLimit?.(kind);
    }
    return true;
  }

  private beginRequest(): void {
    const headBytes = this.head.bytes();
    const head = parseRequestHead(headBytes, this.headCache);
    const info = head instanceof ProtocolError ? head : interpretRequest(head, this.limits.maxBodyBytes);
    // The request line as text only for the log of a request that failed (a good one carries its own).
    const failedLine = info instanceof ProtocolError ? this.head.firstLine() : undefined;
    this.head.reset();
    this.headersDeadline = NO_DEADLINE;
    if (info instanceof ProtocolError) {
      this.protocolError(info, failedLine);
      return;
    }
    const state = new ExchangeState(this, info, info.requestLine, headBytes.length);
    this.queue.push(state);
    this.queuedHeadBytes += state.headBytes;
    if (!info.keepAlive) this.acceptRequests = false;
    if (info.body.kind === "length") {
      this.parse = "body";
      this.bodyOwner = state;
      this.bodyRemaining = info.body.length;
      this.chunked = undefined;
    } else if (info.body.kind === "chunked") {
      this.parse = "body";
      this.bodyOwner = state;
      this.chunked = new ChunkedDecoder({
        maxChunkLineBytes: this.limits.maxChunkLineBytes,
        maxTrailerBytes: this.limits.maxHeaderBytes,
        maxTrailerCount: this.limits.maxHeaderCount,
      });
    }
    if (state.facade !== undefined) this.hooks.onRequest(state.facade);
  }

  private deliverBody(state: ExchangeState, data: Uint8Array): void {
    if (data.length === 0) return;
    state.bodyReceivedBytes += data.length;
    if (state.bodyDiscarded || state.response === "complete") return;
    state.bodyChunks.push(data);
    state.bodyQueuedBytes += data.length;
    this.bodyDeadline = NO_DEADLINE;
    state.notifyBody();
  }

  private finishBody(state: ExchangeState): void {
    state.bodyStatus = "complete";
    this.bodyOwner = undefined;
    this.chunked = undefined;
    this.parse = "head";
    this.bodyDeadline = NO_DEADLINE;
    state.notifyBody();
  }

  private failBody(state: ExchangeState, error: Error): void {
    if (state.bodyStatus !== "receiving") return;
    state.bodyStatus = "failed";
    state.bodyError = error;
    state.notifyBody();
  }

  private stopInput(): void {
    this.parse = "stopped";
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingOffset = 0;
    this.headersDeadline = NO_DEADLINE;
  }

  /** Answers a protocol error (after the responses already owed) and closes. */
  private protocolError(error: ProtocolError, requestLine?: string): void {
    if (this.destroyed) return;
    this.hooks.onProtocolError?.(error);
    this.acceptRequests = false;
    const owner = this.bodyOwner;
    this.bodyOwner = undefined;
    this.chunked = undefined;
    this.stopInput();
    if (owner !== undefined) {
      // The error is in this exchange's body: the body fails, and the engine answers in the
      // application's stead if it has not started answering.
      this.failBody(owner, error);
      if (owner.response === "none") this.answerWithError(owner, error.status, REASON_PHRASES[error.status] ?? "", error.message);
      else owner.closeAfter = true;
    } else {
      // Queued after the responses already owed; respond() marks the last one `Connection: close`.
      const state = new ExchangeState(this, undefined, requestLine);
      this.queue.push(state);
      this.answerWithError(state, error.status, REASON_PHRASES[error.status] ?? "", error.message);
    }
    this.notifyOutput();
  }

  private answerWithError(state: ExchangeState, status: number, reason: string, message: string): void {
    state.cancel();
    state.closeAfter = true;
    this.acceptRequests = false;
    const body = latin1Encode(`${reason}: ${message}\n`);
    this.respond(state, {
      status,
      reason,
      headers: [["Content-Type", "text/plain; charset=utf-8"]],
      contentLength: body.length,
    });
    this.writeBody(state, body);
    this.endResponse(state);
  }

  private sendContinue(state: ExchangeState): void {
    state.continueSent = true;
    state.continueWanted = false;
    this.emit(state, CONTINUE_RESPONSE);
  }

  /** Queues bytes for an exchange: straight to output at the head of the line, else in its buffer. */
  private emit(state: ExchangeState, bytes: Uint8Array): void {
    if (this.queue[0] === state) {
      const wasEmpty = this.output.length === 0;
      this.output.push(bytes);
      this.outputBytes += bytes.length;
      if (wasEmpty) this.hooks.onOutput();
    } else {
      state.pendingOutput.push(bytes);
      state.pendingOutputBytes += bytes.length;
    }
  }

  private complete(state: ExchangeState): void {
    state.response = "complete";
    state.writableWaiter = undefined;
    if (state.bodyStatus === "receiving") {
      // The rest of the body is read and dropped (bounded by maxBodyBytes), unless we close.
      state.bodyDiscarded = true;
      state.bodyChunks = [];
      state.bodyQueuedBytes = 0;
    }
    this.hooks.onExchangeComplete?.({ requestLine: state.requestLine, status: state.status, bodyBytes: state.bodyBytes, aborted: state.aborted });
    this.advanceQueue();
    if (this.pendingBytes > 0) this.process();
    else this.updateTimers();
  }

  /** Retires completed exchanges at the head of the line and lets the next one write. */
  private advanceQueue(): void {
    for (let head = this.queue[0]; head !== undefined && head.response === "complete"; head = this.queue[0]) {
      this.queue.shift();
      this.queuedHeadBytes -= head.headBytes;
      this.pipelineStalled = false;
      if (head.closeAfter) {
        this.acceptRequests = false;
        for (const later of this.queue) later.cancel();
        this.queue = [];
        this.queuedHeadBytes = 0;
        this.stopInput();
        if (this.bodyOwner !== undefined) {
          this.failBody(this.bodyOwner, new Error("the connection is closing"));
          this.bodyOwner = undefined;
          this.chunked = undefined;
        }
        this.notifyOutput();
        return;
      }
      const next = this.queue[0];
      if (next !== undefined) this.promote(next);
    }
    if (this.finished) this.notifyOutput();
  }

  private promote(state: ExchangeState): void {
    if (state.continueWanted && state.response === "none" && state.bodyReceivedBytes === 0) this.sendContinue(state);
    const buffered = state.pendingOutput;
    state.pendingOutput = [];
    state.pendingOutputBytes = 0;
    for (const bytes of buffered) this.emit(state, bytes);
    state.notifyWritable();
  }

  private notifyOutput(): void {
    this.hooks.onOutput();
  }

  private handlePeerEnd(): void {
    if (!this.peerEnded || this.peerEndHandled || this.pendingBytes > 0) return;
    this.peerEndHandled = true;
    this.acceptRequests = false;
    const owner = this.bodyOwner;
    if (owner !== undefined) {
      this.failBody(owner, new Error("the connection ended before the request body did"));
      this.bodyOwner = undefined;
      this.chunked = undefined;
    }
    this.stopInput();
    this.notifyOutput();
  }

  private armBodyTimer(): void {
    if (this.bodyDeadline !== NO_DEADLINE || this.destroyed) return;
    this.bodyDeadline = this.timers.now() + this.timeouts.bodyTimeoutMs;
    this.armWatchdog();
  }

  private updateTimers(): void {
    if (this.destroyed) return;
    if (this.finished) {
      // No request will come, but the last response may still be on its way: its send timeout stays.
      if (this.sendDeadline === NO_DEADLINE) {
        this.cancelTimers();
      } else {
        this.headersDeadline = NO_DEADLINE;
        this.idleDeadline = NO_DEADLINE;
        this.bodyDeadline = NO_DEADLINE;
        this.armWatchdog();
      }
      return;
    }
    if (this.head.started) {
      // A head in progress: its deadline runs from the processing that saw its first byte.
      if (this.headersDeadline === NO_DEADLINE) this.headersDeadline = this.timers.now() + this.timeouts.headersTimeoutMs;
    }
    const idle = this.acceptRequests && this.queue.length === 0 && !this.head.started;
    if (!idle) this.idleDeadline = NO_DEADLINE;
    else if (this.idleDeadline === NO_DEADLINE) this.idleDeadline = this.timers.now() + this.timeouts.idleTimeoutMs;
    this.armWatchdog();
  }

  /** Sets the watchdog for the nearest deadline, unless it is already set for that time or sooner. */
  private armWatchdog(): void {
    const next = Math.min(this.headersDeadline, this.idleDeadline, this.bodyDeadline, this.sendDeadline);
    if (next === NO_DEADLINE || next >= this.watchdogAt) return;
    this.watchdog?.cancel();
    this.watchdogAt = next;
    this.watchdog = this.timers.at(next, this.onWatchdog);
  }

  /** The watchdog fired: the deadline that passed, if one did, times out; else it is set again. */
  private readonly onWatchdog = (): void => {
    this.watchdog = undefined;
    this.watchdogAt = NO_DEADLINE;
    if (this.destroyed) return;
    const now = this.timers.now();
    const next = Math.min(this.headersDeadline, this.idleDeadline, this.bodyDeadline, this.sendDeadline);
    if (next > now) {
      this.armWatchdog();
      return;
    }
    if (next === this.sendDeadline) {
      // Nothing we owe can reach the peer: no response is possible, so no 408 either.
      this.sendDeadline = NO_DEADLINE;
      this.hooks.onLimit?.("sendTimeout");
      this.destroy();
      return;
    }
    if (next === this.headersDeadline) {
      this.headersDeadline = NO_DEADLINE;
      this.protocolError(new ProtocolError("headersTimeout", `no complete request head within ${this.timeouts.headersTimeoutMs} ms`));
    } else if (next === this.idleDeadline) {
      this.idleDeadline = NO_DEADLINE;
      this.protocolError(new ProtocolError("idleTimeout", `no request within ${this.timeouts.idleTimeoutMs} ms`));
    } else {
      this.bodyDeadline = NO_DEADLINE;
      if (this.bodyOwner !== undefined) this.protocolError(new ProtocolError("bodyTimeout", `no request body bytes within ${this.timeouts.bodyTimeoutMs} ms`));
    }
    this.updateTimers();
  };

  private cancelTimers(): void {
    this.watchdog?.cancel();
    this.watchdog = undefined;
    this.watchdogAt = NO_DEADLINE;
    this.headersDeadline = NO_DEADLINE;
    this.idleDeadline = NO_DEADLINE;
    this.bodyDeadline = NO_DEADLINE;
    this.sendDeadline = NO_DEADLINE;
  }

  private updateInputWanted(): void {
    const wants = this.wantsInput;
    if (wants && !this.reportedWantsInput) {
      this.reportedWantsInput = true;
      this.hooks.onInputWanted?.();
    } else if (!wants) {
      this.reportedWantsInput = false;
    }
  }
}

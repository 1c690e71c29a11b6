/**
 * An HTTP/1.1 server with a web-standard handler, `fetch(request) → Response`, over any duplex
 * byte stream (a TCP flow, an in-memory pipe in tests):
 *
 *   serveHttp((accept) => tcp.listen(80, accept), (request) => new Response("hi"));
 *
 * Per connection, this is the I/O edge around Http1Connection: a read loop feeds it (pausing
 * when it wants no input), a write loop drains its output into the flow (one write at a time,
 * so a slow peer slows the handlers down through `writable`), and each request goes to the
 * handler as a Request whose body streams from the connection. On close it half-closes, keeps
 * reading for a moment so that the peer's last bytes do not turn our FIN into a reset (RFC 9112
 * §9.6), then closes.
 */
import * as logs from "../logs/index.ts";
import { base } from "../runtime/base.ts";
import { scheduler } from "../boot/index.ts";
import { registerCounters } from "../runtime/counters.ts";
import { isUint8Array } from "../web/body.ts";
import { Ipv4Address } from "../wire/address.ts";
import { headersContentKey, headersFromValidFields, type Headers } from "../web/headers.ts";
import { Request, serverRequest } from "../web/request.ts";
import { serializedUrl } from "../web/url.ts";
import { Response, responseBody } from "../web/response.ts";
import { ReadableStream } from "../web/streams.ts";
import { Http1Connection, type ConnectionLimitKind, type Exchange, type ExchangeRecord, type HttpLimits, type HttpTimeouts, type HttpTimers } from "./connection.ts";
import { HttpStats, commonLogLine } from "./stats.ts";
import { DEFAULT_SERVER_LIMITS, LimitReporter, type ServerLimits } from "./limits.ts";
import { httpDate, latin1Encode } from "./syntax.ts";

/** A connected duplex byte stream: what a TCP flow offers (atoll/net/tcp), and what tests fake. */
export interface ByteFlow {
  /** The next chunk (which the caller then owns), or undefined at the end of the peer's stream. */
  read(): Promise<Uint8Array | undefined>;
  /**
   * Optional: copies at most `buffer.length` bytes into `buffer`, resolving with the count (0 at
   * the end of the stream), as a TCP flow's readInto. Used for request bodies, so that no more is
   * taken from the flow than the engine has room for (a plain read returns up to 64 KiB).
   */
  readInto?(buffer: Uint8Array): Promise<number>;
  /** Resolves when the bytes are taken (the caller does not modify them meanwhile). */
  write(bytes: Uint8Array): Promise<void>;
  /** Half-close: no more writes; reading goes on. */
  shutdown(): Promise<void>;
  /** Full close: no more writes, no more reads. */
  close(): Promise<void>;
  /** Reset. */
  abort(): void;
  /**
   * For the access log, when the flow knows it: text, or an Ipv4Address (a TCP flow's, a 32-bit
   * number), which is shown as a dotted quad.
   */
  readonly remoteAddress?: { toString(): string } | undefined;
  readonly remotePort?: number | undefined;
}

export interface ConnectionInfo {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
}

export type FetchHandler = (request: Request, connection: ConnectionInfo) => Response | Promise<Response>;

/** Where access lines and errors go; by default the atoll/logs sources "http.access" (info) and "http". */
export interface HttpLogger {
  access(line: string): void;
  /** Whether access lines are wanted now; when it says false, they are not even built. Absent: always. */
  accessEnabled?(): boolean;
  error(message: string): void;
  /** Limits that bite (rate-limited); absent: they go to `error`. */
  warn?(message: string): void;
  debug(message: string): void;
}

export interface ServeOptions {
  /** Per connection (HttpLimits, DEFAULT_LIMITS) and per server (ServerLimits, DEFAULT_SERVER_LIMITS). */
  readonly limits?: Partial<HttpLimits & ServerLimits> | undefined;
  readonly timeouts?: Partial<HttpTimeouts> | undefined;
  /** Timers in ms; default: the image's scheduler. */
  readonly timers?: HttpTimers | undefined;
  /** Wall-clock time in ms since the epoch, for Date and the log; default: the base's clockWall. */
  readonly wallClock?: (() => number) | undefined;
  /** Send a Date header (RFC 9110 §6.6.1: an origin server with a clock MUST). Default true. */
  readonly sendDate?: boolean | undefined;
  /** The scheme of request URLs (default "http"). */
  readonly scheme?: "http" | "https" | undefined;
  /** The authority of request URLs when the request names none (HTTP/1.0 without Host). Default "localhost". */
  readonly defaultAuthority?: string | undefined;
  readonly logger?: HttpLogger | undefined;
  /** Access log on (default) or off. */
  readonly accessLog?: boolean | undefined;
  /** Counters to add to (serveHttp makes and registers one). */
  readonly stats?: HttpStats | undefined;
  /** After our FIN, how long to keep reading (and discarding) before closing. Default 2000 ms. */
  readonly lingerMs?: number | undefined;
  /** Turns a handler's exception into a response; default: log it and answer 500. */
  readonly onError?: ((error: unknown, request: Request) => Response | Promise<Response>) | undefined;
}

export interface HttpServer {
  readonly stats: HttpStats;
  /** Stops accepting connections, lets the open ones finish their requests, and resolves when all are closed. */
  close(): Promise<void>;
}

const NS_PER_MS = 1e6;
/** Output pieces smaller than this are merged into one write (a response head and a small body make one segment). */
const COALESCE_BELOW = 16 * 1024;
const COALESCE_LIMIT = 64 * 1024;
/**
 * Larger pieces (a big static file) are written in slices of this size: each slice taken by the
 * flow is progress for the send timeout, which thus measures a stalled peer, not a long response.
 */
const WRITE_SLICE_BYTES = 64 * 1024;
/** A merge buffer up to this size stays with its connection between answers (pipelined small answers reuse it). */
const MERGE_BUFFER_KEPT = 4 * 1024;

/** A wake-up for one waiting loop: wait() then notify(). */
class Signal {
  private waiting: Promise<void> | undefined;
  private release: (() => void) | undefined;

  wait(): Promise<void> {
    this.waiting ??= new Promise((resolve) => {
      this.release = resolve;
    });
    return this.waiting;
  }

  notify(): void {
    const release = this.release;
    this.waiting = undefined;
    this.release = undefined;
    release?.();
  }
}

/** A flow's remote address as text: a TCP flow's Ipv4Address is a number, which String() would show as "3323068417". */
function addressText(address: ByteFlow["remoteAddress"]): string | undefined {
  if (address === undefined) return undefined;
  if (typeof address === "number" && Number.isInteger(address) && address >= 0 && address <= 0xffff_ffff) return Ipv4Address.format(address as Ipv4Address);
  return String(address);
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}

function defaultTimers(): HttpTimers {
  const running = scheduler();
  return {
    now: () => running.now() / NS_PER_MS,
    at: (deadlineMs, callback) => running.at(deadlineMs * NS_PER_MS, callback),
  };
}

function defaultLogger(): HttpLogger {
  const access = logs.source("http.access");
  const log = logs.source("http");
  return {
    access: (line) => access.info(line),
    accessEnabled: () => access.enabled("info"),
    error: (message) => log.error(message),
    warn: (message) => log.warn(message),
    debug: (message) => log.debug(message),
  };
}

/** Dates change once a second: format once per second. */
function dateHeader(wallClock: () => number): () => string {
  let second = -1;
  let text = "";
  return () => {
    const now = Math.floor(wallClock() / 1000);
    if (now !== second) {
      second = now;
      text = httpDate(now * 1000);
    }
    return text;
  };
}

/**
 * Writes output pieces to a flow, merging runs of small pieces so that one flow write carries a
 * head and a small body together (one segment on the wire rather than two). Runs are merged into
 * one buffer per connection, reused from write to write: a flow is done with the bytes once its
 * write resolves, and allocating a fresh buffer per response costs more than the copy.
 */
class OutputWriter {
  private merged = new Uint8Array(0);
  private mergedBytes = 0;

  constructor(
    private readonly flow: ByteFlow,
    /** True once the connection broke: nothing more is written. */
    private readonly broken: () => boolean,
  ) {}

  /** The merge buffer kept from write to write (it grows to COALESCE_LIMIT at most). */
  get retainedBytes(): number {
    return this.merged.length;
  }

  /** Nothing to write for now: a merge buffer grown by a streamed answer is not kept by an idle connection. */
  trim(): void {
    if (this.merged.length > MERGE_BUFFER_KEPT) this.merged = new Uint8Array(0);
  }

  /** Writes every piece, in order; `written` counts bytes as each write completes. */
  async write(pieces: readonly Uint8Array[], written: (bytes: number) => void): Promise<void> {
    for (let index = 0; index < pieces.length && !this.broken(); index++) {
      const piece = pieces[index] ?? EMPTY;
      const next = pieces[index + 1];
      if (piece.length >= COALESCE_BELOW || (this.mergedBytes === 0 && (next === undefined || next.length >= COALESCE_BELOW))) {
        // Large, or small but alone: no copy.
        if (this.mergedBytes > 0) await this.flush(written);
        await this.writeSliced(piece, written);
        continue;
      }
      if (this.mergedBytes + piece.length > COALESCE_LIMIT) await this.flush(written);
      this.append(piece);
    }
    if (this.mergedBytes > 0) await this.flush(written);
  }

  /** Writes one piece, in slices of at most WRITE_SLICE_BYTES (views, no copy). */
  async writeSliced(piece: Uint8Array, written: (bytes: number) => void): Promise<void> {
    if (piece.length <= WRITE_SLICE_BYTES) {
      if (this.broken()) return;
      await this.flow.write(piece);
      written(piece.length);
      return;
    }
    for (let offset = 0; offset < piece.length; offset += WRITE_SLICE_BYTES) {
      if (this.broken()) return;
      const slice = piece.subarray(offset, offset + WRITE_SLICE_BYTES);
      await this.flow.write(slice);
      written(slice.length);
    }
  }

  private append(piece: Uint8Array): void {
    const needed = this.mergedBytes + piece.length;
    if (needed > this.merged.length) {
      const grown = new Uint8Array(Math.min(COALESCE_LIMIT, Math.max(needed, 2 * this.merged.length, 2048)));
      grown.set(this.merged.subarray(0, this.mergedBytes));
      this.merged = grown;
    }
    this.merged.set(piece, this.mergedBytes);
    this.mergedBytes = needed;
  }

  private async flush(written: (bytes: number) => void): Promise<void> {
    const count = this.mergedBytes;
    if (count === 0) return;
    this.mergedBytes = 0;
    if (this.broken()) return;
    await this.flow.write(this.merged.subarray(0, count));
    written(count);
  }
}

const EMPTY = new Uint8Array(0);

function plainResponse(status: number, text: string): Response {
  return new Response(`${text}\n`, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

/** The request body as a stream pulled from the exchange: nothing is read (nor 100 Continue sent) until the handler reads. */
function requestBodyStream(exchange: Exchange): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        return new Promise<void>((resolve) => {
          const step = (): void => {
            const read = exchange.readBody();
            if (read.kind === "pending") {
              exchange.onBodyReadable(step);
              return;
            }
            if (read.kind === "data") controller.enqueue(read.bytes);
            else if (read.kind === "end") controller.close();
            else controller.error(read.error);
            resolve();
          };
          step();
        });
      },
      cancel() {
        exchange.discardBody();
      },
    },
    { highWaterMark: 0 },
  );
}

interface ResolvedOptions {
  /** Per connection: the last request URL it made (see requestUrl). */
  readonly lastUrl: LastUrl;
  readonly scheme: string;
  readonly defaultAuthority: string;
  readonly logger: HttpLogger;
  readonly onError: ((error: unknown, request: Request) => Response | Promise<Response>) | undefined;
  readonly stats: HttpStats;
}

/**
 * The last request URL a connection reconstructed, with what it was made from: a client asking for
 * the same target of the same host again (the parser hands out the same strings for a repeated
 * line) gets the same string, which the URL parser then recognizes at once.
 */
interface LastUrl {
  scheme: string;
  authority: string;
  target: string;
  url: string;
}

/** The target URI (RFC 9112 §3.3): the absolute-form target, or scheme://authority + target. */
function requestUrl(info: Exchange["request"], scheme: string, authority: string, last: LastUrl): string {
  if (info.targetForm === "absolute") return info.target;
  if (last.target === info.target && last.authority === authority && last.scheme === scheme) return last.url;
  // "OPTIONS *" has no path; the URL says "/*" so that handlers can still tell it apart.
  const url = info.targetForm === "asterisk" ? `${scheme}://${authority}/*` : `${scheme}://${authority}${info.target}`;
  last.scheme = scheme;
  last.authority = authority;
  last.target = info.target;
  last.url = url;
  return url;
}

/** Builds the web Request for an exchange (RFC 9112 §3.3: reconstructing the target URI). */
function toRequest(exchange: Exchange, options: ResolvedOptions): Request {
  const info = exchange.request;
  const url = requestUrl(info, info.scheme ?? options.scheme, info.authority ?? options.defaultAuthority, options.lastUrl);
  const hasBody = info.body.kind !== "none";
  // Fetch's Request cannot carry a body with GET or HEAD: such a body (legal in HTTP, meaningless) is skipped.
  const bodyAllowed = info.method !== "GET" && info.method !== "HEAD";
  if (hasBody && !bodyAllowed) exchange.discardBody();
  // The URL is checked (and made canonical) here; the parser validated the method and every field
  // line, so serverRequest does not check them again.
  return serverRequest(serializedUrl(url), info.method, headersFromValidFields(info.fields), hasBody && bodyAllowed ? requestBodyStream(exchange) : null);
}

function declaredLength(headers: Headers): number | undefined {
  const value = headers.get("content-length");
  if (value === null || !/^\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Sends a Response through the exchange. A bytes (or null) body goes out at once, synchronously,
 * with Content-Length; a stream body is read with backpressure, and then a promise is returned.
 * Throws (or rejects) when the head cannot be sent (an invalid field, say).
 */
function sendResponse(exchange: Exchange, response: Response, options: ResolvedOptions): Promise<void> | undefined {
  if (response.type === "error") {
    exchange.abort();
    return undefined;
  }
  const body = responseBody(response);
  if (body.used) throw new TypeError("the response's body has already been read");
  const reason = response.statusText === "" ? undefined : response.statusText;
  if (body.isNull) {
    // A null body is empty, except that a HEAD handler may state the length GET would have.
    const contentLength = exchange.request.method === "HEAD" ? declaredLength(response.headers) : 0;
    exchange.respond({ status: response.status, reason, headers: response.headers, contentLength, fieldsKey: headersContentKey(response.headers) });
    exchange.end();
    return undefined;
  }
  const bytes = body.takeBytes();
  if (bytes !== undefined) {
    // A Headers copied from the same fields (a static file's, say) has the same content key: the
    // engine serializes those fields once.
    exchange.send({ status: response.status, reason, headers: response.headers, contentLength: bytes.length, fieldsKey: headersContentKey(response.headers) }, bytes);
    return undefined;
  }
  return sendStream(exchange, response, body.stream, options);
}

/** Sends a Response whose body is a stream: with backpressure, and with Content-Length only when the handler stated it. */
async function sendStream(exchange: Exchange, response: Response, stream: ReadableStream<Uint8Array> | null, options: ResolvedOptions): Promise<void> {
  const contentLength = declaredLength(response.headers);
  // Take the reader first: a stream that cannot be read fails here, while a 500 can still be sent.
  const reader = stream?.getReader();
  // RFC 9110 §10.1.1: a client that sent `Expect: 100-continue` holds its body back until a 100 or
  // a final status. A handler that streams the request body into its response (an echo, a
  // transform) returns before reading it; sending the head now would rule out the 100 it needs,
  // and the client would wait for its own timeout (curl: 1 s). So take such a stream's first
  // chunk before the head: reading the request body sends the 100.
  let first: { readonly done: boolean; readonly value?: Uint8Array | undefined } | undefined;
  if (reader !== undefined && exchange.request.expectContinue) {
    try {
      first = await reader.read();
    } catch (error) {
      if (exchange.cancelled) return;
      options.stats.handlerErrors++;
      options.logger.error(`response body for "${exchange.request.requestLine}" failed: ${describe(error)}`);
      exchange.discardBody();
      await sendResponse(exchange, plainResponse(500, "Internal Server Error"), options);
      return;
    }
    if (exchange.cancelled) {
      reader.cancel().catch(() => undefined);
      return;
    }
  }
  exchange.respond({ status: response.status, reason: response.statusText === "" ? undefined : response.statusText, headers: response.headers, contentLength });
  if (reader === undefined || !exchange.bodyAllowed) {
    if (reader !== undefined) await reader.cancel().catch(() => undefined);
    exchange.end();
    return;
  }
  exchange.onCancel(() => {
    reader.cancel().catch(() => undefined);
  });
  try {
    for (;;) {
      if (exchange.cancelled) return;
      if (!exchange.writable) {
        await new Promise<void>((resolve) => exchange.onWritable(resolve));
        continue;
      }
      const { done, value } = first ?? (await reader.read());
      first = undefined;
      if (done) break;
      if (!isUint8Array(value)) throw new TypeError("a response body stream produced a chunk that is not a Uint8Array");
      exchange.write(value);
    }
    exchange.end();
  } catch (error) {
    if (exchange.cancelled) return;
    options.stats.handlerErrors++;
    options.logger.error(`response body for "${exchange.request.requestLine}" failed: ${describe(error)}`);
    exchange.abort();
    reader.cancel(error).catch(() => undefined);
  }
}

/**
 * Answers one exchange with the handler. When the request has no body and the handler returns a
 * Response (not a promise of one) with a bytes body, the whole answer happens synchronously, with
 * no promise at all: that is every static file and most small API answers. Anything else
 * continues asynchronously.
 */
function answer(exchange: Exchange, handler: FetchHandler, connectionInfo: ConnectionInfo, options: ResolvedOptions): Promise<void> | undefined {
  let request: Request;
  try {
    request = toRequest(exchange, options);
  } catch (error) {
    // The target passed RFC 9112's syntax but not the URL parser (e.g. a port above 65535).
    options.logger.debug(`cannot build a URL for "${exchange.request.requestLine}": ${describe(error)}`);
    exchange.discardBody();
    return sendResponse(exchange, plainResponse(400, "Bad Request: the request-target is not a valid URL"), options);
  }
  let result: unknown;
  try {
    result = handler(request, connectionInfo);
  } catch (error) {
    return answerWithHandlerError(exchange, error, request, options);
  }
  // A request with a body answers a turn later, as an awaited handler always did: the rest of
  // the body is still being parsed in this same turn, and if it turns out malformed the engine
  // answers 400 in the handler's stead, which it can only do before the response has started.
  if (result instanceof Response && exchange.request.body.kind === "none") return deliver(exchange, result, options);
  return answerLater(exchange, result, request, options);
}

/** The handler returned a promise (or something that is not a Response): wait for it. */
async function answerLater(exchange: Exchange, result: unknown, request: Request, options: ResolvedOptions): Promise<void> {
  let response: Response;
  try {
    const settled: unknown = await result;
    if (!(settled instanceof Response)) throw new TypeError("the handler did not return a Response (is it a Response from atoll/web?)");
    response = settled;
  } catch (error) {
    return answerWithHandlerError(exchange, error, request, options);
  }
  return deliver(exchange, response, options);
}

async function answerWithHandlerError(exchange: Exchange, error: unknown, request: Request, options: ResolvedOptions): Promise<void> {
  options.stats.handlerErrors++;
  return deliver(exchange, await handlerErrorResponse(error, request, options), options);
}

/** Sends the handler's response, unless the exchange was cancelled meanwhile. */
function deliver(exchange: Exchange, response: Response, options: ResolvedOptions): Promise<void> | undefined {
  if (exchange.cancelled) {
    return response.body?.cancel().catch(() => undefined);
  }
  const failed = (error: unknown): void => {
    // respond() refused the head (an invalid field, say): answer 500 if nothing went out yet.
    options.stats.handlerErrors++;
    options.logger.error(`cannot send the response to "${exchange.request.requestLine}": ${describe(error)}`);
    exchange.abort();
  };
  try {
    return sendResponse(exchange, response, options)?.catch(failed);
  } catch (error) {
    failed(error);
    return undefined;
  }
}

async function handlerErrorResponse(error: unknown, request: Request, options: ResolvedOptions): Promise<Response> {
  if (options.onError !== undefined) {
    try {
      const custom = await options.onError(error, request);
      if (custom instanceof Response) return custom;
    } catch (secondError) {
      options.logger.error(`onError threw: ${describe(secondError)}`);
    }
  } else {
    options.logger.error(`handler failed for ${request.method} ${request.url}: ${describe(error)}`);
  }
  return plainResponse(500, "Internal Server Error");
}

/** What the connections of one server share: counters, budgets, the limit reports, the clock and the log. */
interface ServerContext {
  readonly stats: HttpStats;
  readonly limits: ServerLimits;
  readonly reporter: LimitReporter;
  readonly timers: HttpTimers;
  readonly logger: HttpLogger;
  /** A connection finished a response and may be idle: a connection waiting for a place may take it. */
  readonly onMaybeIdle: (session: Session) => void;
}

/** The server limits of `options.limits`, over the defaults. */
function serverLimits(limits: ServeOptions["limits"]): ServerLimits {
  return {
    maxConnections: limits?.maxConnections ?? DEFAULT_SERVER_LIMITS.maxConnections,
    maxQueuedConnections: limits?.maxQueuedConnections ?? DEFAULT_SERVER_LIMITS.maxQueuedConnections,
    stalledHeadMs: limits?.stalledHeadMs ?? DEFAULT_SERVER_LIMITS.stalledHeadMs,
    maxConcurrentRequests: limits?.maxConcurrentRequests ?? DEFAULT_SERVER_LIMITS.maxConcurrentRequests,
    retryAfterSeconds: limits?.retryAfterSeconds ?? DEFAULT_SERVER_LIMITS.retryAfterSeconds,
  };
}

function serverContext(options: ServeOptions, stats: HttpStats, onMaybeIdle: (session: Session) => void): ServerContext {
  // The image's scheduler only when a connection comes: serveHttp may be set up before it runs.
  let timers = options.timers;
  const clock: HttpTimers = {
    now: () => (timers ??= defaultTimers()).now(),
    at: (deadlineMs, callback) => (timers ??= defaultTimers()).at(deadlineMs, callback),
  };
  const logger = options.logger ?? defaultLogger();
  const warn = (line: string): void => {
    if (logger.warn !== undefined) logger.warn(line);
    else logger.error(line);
  };
  let reporter = reporters.get(stats);
  if (reporter === undefined) {
    reporter = new LimitReporter(clock.now, warn);
    reporters.set(stats, reporter);
  }
  return { stats, limits: serverLimits(options.limits), reporter, timers: clock, logger, onMaybeIdle };
}

/** One report per limit per interval for whatever shares its counters (a server, or connections given one HttpStats). */
const reporters = new WeakMap<HttpStats, LimitReporter>();

const OVERLOADED_BODY = latin1Encode("Service Unavailable: too many requests in progress; retry later\n");

interface Session {
  /** Graceful close: finish the requests in progress, then close. */
  shutdown(): void;
  /** Whether closing it now loses nothing: no request in progress, none begun (Http1Connection.idle). */
  readonly idle: boolean;
  /** Idle after answering at least one request: a keep-alive connection between requests. */
  readonly keptAlive: boolean;
  /**
   * Since when (ms) it has been only waiting for a request: idle and never answered (since it was
   * accepted), or with a request head arriving and nothing else in progress (since that head
   * began, Http1Connection.headStalledSince). Undefined while it does anything else.
   */
  readonly waitingSince: number | undefined;
  /** Closes an idle (or stalled) connection at once, with a FIN and without lingering: it owes the peer nothing. */
  reclaim(): void;
  /** Resolves when the connection has no more HTTP work to do (before lingering): its place is free. */
  readonly settled: Promise<void>;
  readonly done: Promise<void>;
}

function startSession(flow: ByteFlow, handler: FetchHandler, options: ServeOptions, context: ServerContext): Session {
  const { stats, reporter, timers, logger } = context;
  const wallClock = options.wallClock ?? (() => base().clockWall() / NS_PER_MS);
  const acceptedAt = timers.now();
  let answered = false;
  const resolved: ResolvedOptions = {
    lastUrl: { scheme: "", authority: "", target: "", url: "" },
    scheme: options.scheme ?? "http",
    defaultAuthority: options.defaultAuthority ?? "localhost",
    logger,
    onError: options.onError,
    stats,
  };
  const remoteAddress = addressText(flow.remoteAddress);
  const peer = remoteAddress === undefined ? "a peer" : `${remoteAddress}:${flow.remotePort ?? "?"}`;
  const connectionInfo: ConnectionInfo = { remoteAddress, remotePort: flow.remotePort };
  const accessLog = options.accessLog ?? true;
  const outputReady = new Signal();
  const inputWanted = new Signal();
  const requestLimit = context.limits.maxConcurrentRequests;
  /** Releases of this connection's requests in flight, so that a connection that dies releases them all. */
  const inFlight = new Set<() => void>();

  /** Answers at once with 503 rather than running the handler: maxConcurrentRequests are in flight. */
  const refuseRequest = (exchange: Exchange): void => {
    stats.limitHits.requestsRejected++;
    reporter.bit("requestsRejected", () => `${requestLimit} requests in flight (maxConcurrentRequests): answered 503 to "${exchange.request.requestLine}" from ${peer}`);
    exchange.discardBody();
    exchange.send(
      {
        status: 503,
        headers: [
          ["Content-Type", "text/plain; charset=utf-8"],
          ["Retry-After", String(context.limits.retryAfterSeconds)],
        ],
        contentLength: OVERLOADED_BODY.length,
      },
      OVERLOADED_BODY,
    );
  };

  const connection = new Http1Connection({
    timers,
    limits: options.limits,
    timeouts: options.timeouts,
    date: options.sendDate === false ? undefined : dateHeader(wallClock),
    hooks: {
      onRequest: (exchange) => {
        stats.requests++;
        if (stats.requestsInFlight >= requestLimit) {
          refuseRequest(exchange);
          return;
        }
        const unexpected = (error: unknown): void => {
          logger.error(`unexpected failure answering "${exchange.request.requestLine}": ${describe(error)}`);
          exchange.abort();
        };
        let answering: Promise<void> | undefined;
        try {
          answering = answer(exchange, handler, connectionInfo, resolved);
        } catch (error) {
          unexpected(error);
        }
        // An answer given in this same turn (a static file, most small answers) never holds a
        // place; one that goes on (a promise, a streamed body) holds it until it settles, or until
        // the connection goes away.
        if (answering === undefined) return;
        stats.requestsInFlight++;
        const release = (): void => {
          if (inFlight.delete(release)) stats.requestsInFlight--;
        };
        inFlight.add(release);
        answering.catch(unexpected).finally(release);
      },
      onOutput: () => outputReady.notify(),
      onInputWanted: () => inputWanted.notify(),
      onProtocolError: (error) => {
        stats.recordProtocolError(error);
        logger.debug(`${remoteAddress ?? "peer"}: ${error.status} ${error.kind}: ${error.message}`);
        // The slow-peer defences are limits too: reported at most every few seconds. (An idle
        // keep-alive connection timing out is ordinary, and stays a debug line.)
        const kind = error.kind;
        if (kind === "headersTimeout" || kind === "bodyTimeout") reporter.bit(kind, () => `${peer}: ${error.message} (${kind}Ms): ${error.status} and close`);
      },
      onExchangeComplete: (record: ExchangeRecord) => {
        stats.recordResponse(record);
        if (accessLog && logger.accessEnabled?.() !== false) logger.access(commonLogLine(remoteAddress, wallClock(), record));
      },
      onLimit: (kind: ConnectionLimitKind) => {
        stats.limitHits[kind]++;
        reporter.bit(kind, () => connectionLimitLine(kind, peer, connection));
        if (kind === "sendTimeout") stalled();
      },
    },
  });
  stats.connections++;
  stats.activeConnections++;

  let broken = false;
  let reclaimed = false;
  const fail = (): void => {
    if (broken) return;
    broken = true;
    stats.resets++;
    connection.destroy();
    outputReady.notify();
    inputWanted.notify();
  };
  /** The send timeout expired (the engine destroys itself): reset the flow, which also ends the write stuck in it. */
  const stalled = (): void => {
    if (broken) return;
    broken = true;
    flow.abort();
    outputReady.notify();
    inputWanted.notify();
  };

  const reading = (async (): Promise<void> => {
    for (;;) {
      if (broken || reclaimed) return;
      if (!connection.wantsInput) {
        await inputWanted.wait();
        continue;
      }
      let chunk: Uint8Array | undefined;
      try {
        const room = connection.bodyInputRoom;
        chunk = room !== undefined && flow.readInto !== undefined ? await readBounded(flow, flow.readInto, room) : await flow.read();
      } catch {
        fail();
        return;
      }
      if (chunk === undefined) {
        connection.receiveEnd();
        return;
      }
      stats.bytesIn += chunk.length;
      connection.receive(chunk);
    }
  })();

  const writer = new OutputWriter(flow, () => broken);
  /** Bytes taken from the engine and not yet taken by the flow. */
  let writingBytes = 0;
  const countOut = (bytes: number): void => {
    stats.bytesOut += bytes;
    writingBytes -= bytes;
    connection.outputProgress();
  };
  const untrack = stats.trackBuffers(() => connection.bufferedInputBytes + connection.bufferedOutputBytes + writingBytes + writer.retainedBytes);

  let settle: () => void = () => undefined;
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  /** After each response written: set once the session exists (below), before any response can be. */
  let afterResponse: () => void = () => undefined;

  const writing = (async (): Promise<void> => {
    for (;;) {
      const pieces = connection.takeOutput();
      if (pieces.length > 0) {
        if (broken) return;
        for (const piece of pieces) writingBytes += piece.length;
        try {
          // One piece (a response with its body, the usual case) needs no merging: write it as it is.
          const only = pieces.length === 1 ? pieces[0] : undefined;
          if (only !== undefined && only.length <= WRITE_SLICE_BYTES) {
            await flow.write(only);
            stats.bytesOut += only.length;
          } else {
            await writer.write(pieces, countOut);
          }
        } catch {
          fail();
          return;
        }
        writingBytes = 0;
        // The flow has taken every piece: the engine may reuse their memory.
        connection.releaseOutput();
        afterResponse();
        continue;
      }
      if (connection.finished || broken) return;
      writer.trim();
      await outputReady.wait();
    }
  })();

  const lingerMs = options.lingerMs ?? 2000;
  const done = (async (): Promise<void> => {
    await writing;
    settle();
    if (broken) {
      flow.abort();
    } else if (reclaimed) {
      await flow.close().catch(() => flow.abort());
    } else {
      try {
        // The FIN goes after what TCP still buffers: a peer that reads nothing never acknowledges
        // it, so the send timeout bounds this wait too.
        if (!(await withDeadline(flow.shutdown(), timers, connection.timeouts.sendTimeoutMs))) {
          stats.limitHits.sendTimeout++;
          reporter.bit("sendTimeout", () => connectionLimitLine("sendTimeout", peer, connection));
          flow.abort();
        } else {
          // RFC 9112 §9.6: keep reading a while after our FIN, or data the peer still sends would
          // make its stack answer with a reset that can destroy our last response in flight.
          await withDeadline(reading, timers, lingerMs);
          await flow.close();
        }
      } catch {
        flow.abort();
      }
    }
    connection.destroy();
    untrack();
    for (const release of [...inFlight]) release();
    stats.activeConnections--;
  })();

  const session: Session = {
    shutdown: () => connection.shutdown(),
    get idle() {
      // Not while the last answer is still being written: the engine is done with it, the flow not yet.
      return !broken && !reclaimed && writingBytes === 0 && connection.idle;
    },
    get keptAlive() {
      return answered && session.idle;
    },
    get waitingSince() {
      if (broken || reclaimed || writingBytes > 0) return undefined;
      return connection.idle ? (answered ? undefined : acceptedAt) : connection.headStalledSince;
    },
    reclaim() {
      if (broken || reclaimed) return;
      reclaimed = true;
      connection.destroy();
      outputReady.notify();
      inputWanted.notify();
    },
    settled,
    done,
  };
  afterResponse = () => {
    answered = true;
    context.onMaybeIdle(session);
  };
  return session;
}

/** Body reads go into buffers of at most this size (and at most the engine's room). */
const BODY_READ_BYTES = 16 * 1024;

/**
 * Reads at most `room` bytes (and BODY_READ_BYTES) into a buffer of the connection's own, which the
 * engine then keeps views of. A read that fills less than half of it is copied to its size, so a
 * trickle of small segments does not pin a buffer each.
 */
async function readBounded(flow: ByteFlow, readInto: (buffer: Uint8Array) => Promise<number>, room: number): Promise<Uint8Array | undefined> {
  const buffer = new Uint8Array(Math.max(1, Math.min(room, BODY_READ_BYTES)));
  const count = await readInto.call(flow, buffer);
  if (count === 0) return undefined;
  return count * 2 < buffer.length ? buffer.slice(0, count) : buffer.subarray(0, count);
}

/** Whether `promise` settled within `ms` (true), or the time ran out first (false). */
async function withDeadline(promise: Promise<unknown>, timers: HttpTimers, ms: number): Promise<boolean> {
  let timer: { cancel(): void } | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = timers.at(timers.now() + ms, () => resolve(false));
  });
  try {
    return await Promise.race([promise.then(() => true), expired]);
  } finally {
    timer?.cancel();
  }
}

function connectionLimitLine(kind: ConnectionLimitKind, peer: string, connection: Http1Connection): string {
  const limits = connection.limits;
  if (kind === "pipelinedRequests") return `${peer}: ${limits.maxPipelinedRequests} requests parsed ahead of their answers (maxPipelinedRequests): reading paused`;
  if (kind === "pipelinedBytes") return `${peer}: ${limits.maxPipelinedBytes} bytes of request heads parsed ahead of their answers (maxPipelinedBytes): reading paused`;
  return `${peer}: nothing could be sent for ${connection.timeouts.sendTimeoutMs} ms (sendTimeoutMs): connection reset`;
}

/** Serves HTTP/1.1 on one connection until it closes. Never rejects. */
export function serveHttpConnection(flow: ByteFlow, handler: FetchHandler, options: ServeOptions = {}): Promise<void> {
  const context = serverContext(options, options.stats ?? new HttpStats(), () => undefined);
  return startSession(flow, handler, options, context).done;
}

/**
 * Serves HTTP/1.1 on every connection `listen` accepts, e.g.
 * `serveHttp((accept) => tcp.listen(80, accept), handler)`. Counters are registered as "http"
 * (or `countersName`).
 *
 * At most `maxConnections` connections are served at once (ServerLimits). At the cap, a new one
 * takes the place of the oldest idle connection, which is closed (it owes nothing); with none
 * idle, it waits unread (its bytes stay in TCP, whose window then closes) among at most
 * `maxQueuedConnections`, and takes the next place that frees up, or that of the next
 * connection to turn idle; beyond those, it is reset. A request is never dropped to make room.
 */
export function serveHttp(
  listen: (accept: (flow: ByteFlow) => void) => unknown,
  handler: FetchHandler,
  options: ServeOptions & { readonly countersName?: string } = {},
): HttpServer {
  const stats = options.stats ?? new HttpStats();
  registerCounters(options.countersName ?? "http", () => stats.snapshot());
  /** Every session until it closed, for close(). */
  const sessions = new Set<Session>();
  /** Sessions holding a place under maxConnections, oldest first. */
  const serving = new Set<Session>();
  const waiting: ByteFlow[] = [];
  let closing = false;

  const reclaim = (session: Session): void => {
    serving.delete(session);
    session.reclaim();
    stats.limitHits.idleConnectionsClosed++;
    context.reporter.bit("idleConnectionsClosed", () => `${context.limits.maxConnections} connections open (maxConnections): closed the oldest idle one for a new one`);
  };
  /**
   * At the cap with no keep-alive connection idle: the connection that has been waiting longest
   * for a request (silent since accepted, or with an incomplete head), stalledHeadMs at least.
   */
  const oldestStalledHead = (): Session | undefined => {
    const before = context.timers.now() - context.limits.stalledHeadMs;
    let oldest: Session | undefined;
    let oldestSince = before;
    for (const session of serving) {
      const since = session.waitingSince;
      if (since !== undefined && since <= before && (oldest === undefined || since < oldestSince)) {
        oldest = session;
        oldestSince = since;
      }
    }
    return oldest;
  };
  const reclaimStalled = (session: Session): void => {
    serving.delete(session);
    session.reclaim();
    stats.limitHits.stalledHeadsClosed++;
    context.reporter.bit(
      "stalledHeadsClosed",
      () => `${context.limits.maxConnections} connections open (maxConnections), none idle: closed the one waiting longest for a request (silent, or its head incomplete; stalledHeadMs) for a new one`,
    );
  };
  const start = (flow: ByteFlow): void => {
    const session = startSession(flow, handler, options, context);
    sessions.add(session);
    serving.add(session);
    void session.settled.then(() => {
      serving.delete(session);
      admitWaiting();
    });
    void session.done.then(() => sessions.delete(session));
  };
  const admitWaiting = (): void => {
    while (!closing && serving.size < context.limits.maxConnections) {
      const next = waiting.shift();
      if (next === undefined) break;
      stats.queuedConnections = waiting.length;
      start(next);
    }
  };
  const context = serverContext(options, stats, (session) => {
    if (waiting.length === 0 || !serving.has(session) || !session.idle) return;
    reclaim(session);
    admitWaiting();
  });
  const { maxConnections, maxQueuedConnections } = context.limits;

  listen((flow) => {
    if (closing) {
      flow.close().catch(() => flow.abort());
      return;
    }
    if (serving.size >= maxConnections) {
      let idle: Session | undefined;
      // Keep-alive connections between requests first, as nginx reuses them; a connection not yet
      // answered is waiting for its first request, and competes by age with incomplete heads
      // (a new one whose request has not been read yet must not be the first to go).
      for (const session of serving) {
        if (session.keptAlive) {
          idle = session;
          break;
        }
      }
      const stalled = idle === undefined ? oldestStalledHead() : undefined;
      if (idle !== undefined) {
        reclaim(idle);
      } else if (stalled !== undefined) {
        reclaimStalled(stalled);
      } else if (waiting.length < maxQueuedConnections) {
        waiting.push(flow);
        stats.queuedConnections = waiting.length;
        stats.limitHits.connectionsQueued++;
        context.reporter.bit("connectionsQueued", () => `${maxConnections} connections open (maxConnections), none idle: new connections wait for a place`);
        return;
      } else {
        stats.limitHits.connectionsRefused++;
        context.reporter.bit(
          "connectionsRefused",
          () => `${maxConnections} connections open and ${maxQueuedConnections} waiting (maxConnections, maxQueuedConnections): new connection from ${addressText(flow.remoteAddress) ?? "a peer"} reset`,
        );
        flow.abort();
        return;
      }
    }
    start(flow);
  });
  return {
    stats,
    async close() {
      closing = true;
      for (const flow of waiting.splice(0)) flow.close().catch(() => flow.abort());
      stats.queuedConnections = 0;
      const open = [...sessions];
      for (const session of open) session.shutdown();
      await Promise.all(open.map((session) => session.done));
    },
  };
}

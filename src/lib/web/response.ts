/**
 * Response (Fetch Standard §5.5): what a handler returns. Bodies may be a string, bytes, an
 * ArrayBuffer, URLSearchParams, a ReadableStream of Uint8Array, or null; a server sends bytes
 * bodies with Content-Length and without building a stream (see `responseBody`).
 */
import { BodyState, type BodyInit } from "./body.ts";
import { Headers, type HeadersInit } from "./headers.ts";
import { isReasonPhrase } from "./field-syntax.ts";
import type { ReadableStream } from "./streams.ts";
import { URL } from "./url.ts";

export interface ResponseInit {
  readonly status?: number;
  readonly statusText?: string;
  readonly headers?: HeadersInit;
}

export type ResponseType = "default" | "error";

/** Statuses whose responses have no content (Fetch's "null body status"). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Reads a response's body state (set in Response's static block: the field is private). */
let bodyOf: (response: Response) => BodyState | undefined;
let setBodyOf: (response: Response, state: BodyState) => void;

export class Response {
  readonly #status: number;
  readonly #statusText: string;
  readonly #headers: Headers;
  readonly #type: ResponseType;
  // A private field, not a WeakMap keyed by the response: a WeakMap entry per response is an
  // ephemeron the garbage collector must trace, on every request a server answers.
  #body: BodyState;

  static {
    bodyOf = (response) => (#body in response ? response.#body : undefined);
    setBodyOf = (response, state) => {
      response.#body = state;
    };
  }

  constructor(body: BodyInit | null = null, init: ResponseInit = {}) {
    const status = init.status ?? 200;
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`status ${String(status)} is not in the range 200 to 599`);
    const statusText = init.statusText ?? "";
    if (!isReasonPhrase(statusText)) throw new TypeError("statusText contains a character a reason phrase cannot hold");
    const state = BodyState.from(body);
    if (!state.isNull && NULL_BODY_STATUSES.has(status)) throw new TypeError(`a ${status} response cannot have a body`);
    this.#status = status;
    this.#statusText = statusText;
    this.#headers = new Headers(init.headers);
    this.#type = "default";
    if (state.contentType !== null && !this.#headers.has("content-type")) this.#headers.set("content-type", state.contentType);
    this.#body = state;
  }

  /** A JSON response: `JSON.stringify(data)` with Content-Type application/json. */
  static json(data: unknown, init: ResponseInit = {}): Response {
    const text = JSON.stringify(data);
    if (text === undefined) throw new TypeError("the value cannot be serialized as JSON");
    const headers = new Headers(init.headers);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    return new Response(text, { ...init, headers });
  }

  /** A redirect to an absolute URL (this realm has no base URL to resolve a relative one against). */
  static redirect(url: string | URL, status = 302): Response {
    const location = new URL(String(url)).href;
    if (!REDIRECT_STATUSES.has(status)) throw new RangeError(`${status} is not a redirect status`);
    return new Response(null, { status, headers: { location } });
  }

  /** A network error. A server answers it by closing the connection without a response. */
  static error(): Response {
    return new ErrorResponse();
  }

  get type(): ResponseType {
    return this.#type;
  }
  get status(): number {
    return this instanceof ErrorResponse ? 0 : this.#status;
  }
  get ok(): boolean {
    return this.status >= 200 && this.status <= 299;
  }
  get statusText(): string {
    return this.#statusText;
  }
  get headers(): Headers {
    return this.#headers;
  }
  get redirected(): boolean {
    return false;
  }
  get url(): string {
    return "";
  }
  get body(): ReadableStream<Uint8Array> | null {
    return responseBody(this).stream;
  }
  get bodyUsed(): boolean {
    return responseBody(this).used;
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return responseBody(this).arrayBuffer();
  }
  bytes(): Promise<Uint8Array> {
    return responseBody(this).bytes();
  }
  text(): Promise<string> {
    return responseBody(this).text();
  }
  json(): Promise<unknown> {
    return responseBody(this).json();
  }

  clone(): Response {
    if (this instanceof ErrorResponse) return new ErrorResponse();
    const copy = new Response(null, { status: this.#status, statusText: this.#statusText, headers: this.#headers });
    setBodyOf(copy, responseBody(this).clone());
    return copy;
  }

  get [Symbol.toStringTag](): string {
    return "Response";
  }
}

/** Response.error(): type "error", status 0. */
class ErrorResponse extends Response {
  override get type(): ResponseType {
    return "error";
  }
}

/** The response's body state (for servers: `takeBytes()` gives bytes bodies without a stream). */
export function responseBody(response: Response): BodyState {
  return bodyOf(response) ?? BodyState.from(null);
}

/**
 * Request (Fetch Standard §5.4), the part a server's handler uses: method, url, headers, body
 * and the body readers, clone(). A server builds one per incoming request (see atoll/http).
 *
 * Differences from Fetch, which are about browsers' outgoing requests: every token is accepted
 * as a method (Fetch forbids CONNECT, TRACE and TRACK in requests a page makes), there is no
 * `signal`, and mode/credentials/cache and the like are absent.
 */
import { BodyState, type BodyInit } from "./body.ts";
import { Headers, type HeadersInit } from "./headers.ts";
import { isToken } from "./field-syntax.ts";
import type { ReadableStream } from "./streams.ts";
import { serializedUrl, type URL } from "./url.ts";

export interface RequestInit {
  readonly method?: string;
  readonly headers?: HeadersInit;
  readonly body?: BodyInit | null;
  readonly redirect?: RequestRedirect;
  /** Accepted for compatibility with code that sets it for streaming bodies; has no effect. */
  readonly duplex?: "half";
}

export type RequestRedirect = "follow" | "error" | "manual";

const NORMALIZED_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];

function normalizeMethod(method: string): string {
  if (!isToken(method)) throw new TypeError(`${JSON.stringify(method)} is not a valid HTTP method`);
  const upper = method.toUpperCase();
  // Fetch upper-cases only these six; "patch" stays "patch" (servers compare case-sensitively).
  return NORMALIZED_METHODS.includes(upper) ? upper : method;
}

/** What serverRequest hands the constructor (through `trusted`, read once: module-private). */
interface TrustedParts {
  readonly url: string;
  readonly method: string;
  readonly headers: Headers;
  readonly body: BodyState;
}

/** The init that tells the constructor to take `trusted` as it is. */
const TRUSTED_INIT: RequestInit = {};
let trusted: TrustedParts | undefined;

/**
 * For servers: a Request from parts the server has already checked, without checking them
 * again: `url` is serialized (serializedUrl), `method` a token, and `headers` are the request's
 * own (not copied). The method is normalized and a GET or HEAD with a body refused, as the
 * constructor does.
 */
export function serverRequest(url: string, method: string, headers: Headers, body: ReadableStream<Uint8Array> | null): Request {
  const normalized = normalizeMethod(method);
  if (body !== null && (normalized === "GET" || normalized === "HEAD")) throw new TypeError(`a ${normalized} request cannot have a body`);
  trusted = { url, method: normalized, headers, body: BodyState.fromStream(body) };
  return new Request(url, TRUSTED_INIT);
}

export class Request {
  readonly #method: string;
  readonly #url: string;
  readonly #headers: Headers;
  readonly #redirect: RequestRedirect;
  #body: BodyState;

  constructor(input: string | URL | Request, init: RequestInit = {}) {
    const parts = init === TRUSTED_INIT ? trusted : undefined;
    if (parts !== undefined) {
      trusted = undefined;
      this.#url = parts.url;
      this.#method = parts.method;
      this.#headers = parts.headers;
      this.#redirect = "follow";
      this.#body = parts.body;
      return;
    }
    let method = "GET";
    let headersInit: HeadersInit | undefined;
    let body: BodyState | undefined;
    let redirect: RequestRedirect = "follow";
    if (input instanceof Request) {
      this.#url = input.#url;
      method = input.#method;
      headersInit = input.#headers;
      redirect = input.#redirect;
      if (init.body === undefined && !input.#body.isNull) {
        if (input.#body.used) throw new TypeError("cannot construct a Request from one whose body has been read");
        // The new request takes the body over; the old one can no longer be read.
        body = input.#body;
        input.#body = BodyState.from(null);
      }
    } else {
      this.#url = serializedUrl(String(input));
    }
    if (init.method !== undefined) method = normalizeMethod(String(init.method));
    if (init.redirect !== undefined) redirect = init.redirect;
    this.#method = method;
    this.#redirect = redirect;
    this.#headers = new Headers(init.headers ?? headersInit);
    if (init.body !== undefined) body = BodyState.from(init.body);
    body ??= BodyState.from(null);
    if (!body.isNull && (method === "GET" || method === "HEAD")) throw new TypeError(`a ${method} request cannot have a body`);
    if (body.contentType !== null && !this.#headers.has("content-type")) this.#headers.set("content-type", body.contentType);
    this.#body = body;
  }

  get method(): string {
    return this.#method;
  }
  get url(): string {
    return this.#url;
  }
  get headers(): Headers {
    return this.#headers;
  }
  get redirect(): RequestRedirect {
    return this.#redirect;
  }
  get body(): ReadableStream<Uint8Array> | null {
    return this.#body.stream;
  }
  get bodyUsed(): boolean {
    return this.#body.used;
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return this.#body.arrayBuffer();
  }
  bytes(): Promise<Uint8Array> {
    return this.#body.bytes();
  }
  text(): Promise<string> {
    return this.#body.text();
  }
  json(): Promise<unknown> {
    return this.#body.json();
  }

  clone(): Request {
    const copy = new Request(this);
    // new Request(this) took the body: give this one a clone back.
    this.#body = copy.#body.clone();
    return copy;
  }

  get [Symbol.toStringTag](): string {
    return "Request";
  }
}

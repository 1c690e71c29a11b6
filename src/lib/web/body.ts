/**
 * The body of a Request or Response (Fetch Standard §5.2 "body mixin"): a ReadableStream of
 * Uint8Array chunks, made lazily from the source bytes when those are known, so that a server can
 * send a string or bytes body without ever building a stream for it.
 *
 * Deviation from Fetch, for zero-copy serving: a Uint8Array or ArrayBuffer body is not copied;
 * do not modify it after handing it to a Request or Response.
 */
import { encodeUtf8 } from "../runtime/utf8.ts";
import { decodeUtf8Text } from "./encoding.ts";
import { ReadableStream } from "./streams.ts";
import { URLSearchParams } from "./url.ts";

export type BodyInit = string | ArrayBuffer | ArrayBufferView | ReadableStream<Uint8Array> | URLSearchParams;

/** Uint8Array from any realm (instanceof fails across realms). */
export function isUint8Array(value: unknown): value is Uint8Array {
  // instanceof first: it answers this realm's arrays (nearly all of them) at once, where the
  // toString tag that also recognizes other realms' costs a call and a string comparison.
  return value instanceof Uint8Array || (ArrayBuffer.isView(value) && Object.prototype.toString.call(value) === "[object Uint8Array]");
}

function isArrayBuffer(value: unknown): value is ArrayBuffer {
  return Object.prototype.toString.call(value) === "[object ArrayBuffer]";
}

function isReadableStream(value: unknown): value is ReadableStream<Uint8Array> {
  return value instanceof ReadableStream || (typeof value === "object" && value !== null && typeof Reflect.get(value, "getReader") === "function");
}

function concatenate(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0] ?? new Uint8Array(0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

export class BodyState {
  #bytes: Uint8Array | null;
  #stream: ReadableStream<Uint8Array> | null;
  #used = false;
  /** The Content-Type Fetch derives from the body's kind, or null. */
  readonly contentType: string | null;

  private constructor(bytes: Uint8Array | null, stream: ReadableStream<Uint8Array> | null, contentType: string | null) {
    this.#bytes = bytes;
    this.#stream = stream;
    this.contentType = contentType;
  }

  /** "Extract a body" (Fetch §5.2), for the kinds this realm has (no Blob, no FormData). */
  static from(init: BodyInit | null | undefined): BodyState {
    if (init === null || init === undefined) return new BodyState(null, null, null);
    if (typeof init === "string") return new BodyState(encodeUtf8(init), null, "text/plain;charset=UTF-8");
    if (init instanceof URLSearchParams) return new BodyState(encodeUtf8(init.toString()), null, "application/x-www-form-urlencoded;charset=UTF-8");
    if (isUint8Array(init)) return new BodyState(init, null, null);
    if (ArrayBuffer.isView(init)) return new BodyState(new Uint8Array(init.buffer, init.byteOffset, init.byteLength), null, null);
    if (isArrayBuffer(init)) return new BodyState(new Uint8Array(init), null, null);
    if (isReadableStream(init)) return new BodyState(null, init, null);
    return new BodyState(encodeUtf8(String(init)), null, "text/plain;charset=UTF-8");
  }

  /** A body that is only a stream (an incoming request's, say). */
  static fromStream(stream: ReadableStream<Uint8Array> | null): BodyState {
    return new BodyState(null, stream, null);
  }

  get isNull(): boolean {
    return this.#bytes === null && this.#stream === null;
  }

  /** The stream, made on first use from the source bytes when those are known. */
  get stream(): ReadableStream<Uint8Array> | null {
    if (this.#stream === null && this.#bytes !== null) {
      const bytes = this.#bytes;
      this.#stream = new ReadableStream<Uint8Array>({
        start(controller) {
          if (bytes.length > 0) controller.enqueue(bytes);
          controller.close();
        },
      });
    }
    return this.#stream;
  }

  /** Fetch's "disturbed": read (or being read). For streams, approximated by `locked`. */
  get used(): boolean {
    return this.#used || (this.#stream !== null && this.#stream.locked);
  }

  /** The body's length when known without reading it. */
  get knownLength(): number | undefined {
    if (this.#stream === null) return this.#bytes?.length ?? 0;
    return undefined;
  }

  /**
   * For servers: the source bytes, when the body was never turned into a stream, marking the
   * body used; undefined otherwise (then read `stream`).
   */
  takeBytes(): Uint8Array | undefined {
    if (this.#stream !== null || this.#bytes === null || this.#used) return undefined;
    this.#used = true;
    return this.#bytes;
  }

  /** Reads the whole body ("consume body"). Rejects with TypeError when already used. */
  async consume(): Promise<Uint8Array> {
    if (this.used) throw new TypeError("the body has already been read");
    const bytes = this.takeBytes();
    if (bytes !== undefined) return bytes;
    const stream = this.#stream;
    this.#used = true;
    if (stream === null) return new Uint8Array(0);
    const reader = stream.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!isUint8Array(value)) {
        await reader.cancel();
        throw new TypeError("a body stream produced a chunk that is not a Uint8Array");
      }
      chunks.push(value);
      total += value.length;
    }
    return concatenate(chunks, total);
  }

  async text(): Promise<string> {
    return decodeUtf8Text(await this.consume());
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.consume();
    // A fresh ArrayBuffer holding exactly the body (bytes may be a view into a larger buffer).
    return bytes.slice().buffer;
  }

  async bytes(): Promise<Uint8Array> {
    return (await this.consume()).slice();
  }

  /** "Clone a body": both get the same bytes; a stream is teed. */
  clone(): BodyState {
    if (this.used) throw new TypeError("cannot clone a body that has already been read");
    if (this.#stream === null) return new BodyState(this.#bytes, null, this.contentType);
    const [first, second] = this.#stream.tee();
    this.#stream = first;
    return new BodyState(null, second, this.contentType);
  }
}

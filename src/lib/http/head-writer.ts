/**
 * Serializing a response head (RFC 9112 §4, §5) straight into octets. Every response goes through
 * here, so it works without intermediate strings: each field's name and value are checked and
 * copied in the same pass, into a scratch buffer the connection reuses, and only the finished
 * message (the head, and a small body with it when the caller has one) is copied out, into
 * memory the connection provides.
 */
import { isFieldValueOctet, isTokenOctet } from "./syntax.ts";

const CR = 0x0d;
const LF = 0x0a;

/** A growable octet buffer, reused from head to head. */
export class HeadWriter {
  private buffer = new Uint8Array(1024);
  private length = 0;

  /** Starts a new head. */
  reset(): void {
    this.length = 0;
  }

  /** `HTTP/1.1 <status> <reason>` CRLF. The caller checked the status and the reason. */
  statusLine(status: number, reason: string): void {
    this.latin1("HTTP/1.1 ");
    this.decimal(status);
    this.octet(0x20);
    this.latin1(reason);
    this.crlf();
  }

  /**
   * `name: value` CRLF. Throws TypeError, leaving the head unusable (the caller starts again or
   * gives up), for a name that is not a token or a value with an octet a field value cannot hold:
   * CR or LF in a value would let whoever supplied it split the response.
   */
  field(name: string, value: string): void {
    if (name.length === 0) throw new TypeError(`invalid field name ${JSON.stringify(name)}`);
    this.reserve(name.length + value.length + 4);
    const buffer = this.buffer;
    let at = this.length;
    for (let i = 0; i < name.length; i++) {
      const code = name.charCodeAt(i);
      if (code > 0xff || !isTokenOctet(code)) throw new TypeError(`invalid field name ${JSON.stringify(name)}`);
      buffer[at++] = code;
    }
    buffer[at++] = 0x3a;
    buffer[at++] = 0x20;
    for (let i = 0; i < value.length; i++) {
      const code = value.charCodeAt(i);
      if (!isFieldValueOctet(code)) throw new TypeError(`invalid value for field ${name}: it contains a control character`);
      buffer[at++] = code;
    }
    buffer[at++] = CR;
    buffer[at++] = LF;
    this.length = at;
  }

  /** Where the next octet goes: a mark for copy(). */
  get position(): number {
    return this.length;
  }

  /** A copy of what was written since `start`. */
  copy(start: number): Uint8Array {
    return this.buffer.slice(start, this.length);
  }

  /** Octets already checked (fields serialized before, by this writer's field()). */
  octets(octets: Uint8Array): void {
    this.reserve(octets.length);
    this.buffer.set(octets, this.length);
    this.length += octets.length;
  }

  /** A field whose name and value are known to be valid (the engine's own). */
  trustedField(name: string, value: string | number): void {
    this.latin1(name);
    this.octet(0x3a);
    this.octet(0x20);
    if (typeof value === "number") this.decimal(value);
    else this.latin1(value);
    this.crlf();
  }

  /**
   * Ends the head (the empty line) and returns it, followed by `body` when given, in one buffer
   * from `allocate` (a new one, or a view of the connection's output arena).
   */
  finish(allocate: (size: number) => Uint8Array, body?: Uint8Array): Uint8Array {
    this.crlf();
    const out = allocate(this.length + (body?.length ?? 0));
    // A view made by the constructor: subarray() goes through the species protocol, slower in V8.
    out.set(new Uint8Array(this.buffer.buffer, this.buffer.byteOffset, this.length));
    if (body !== undefined) out.set(body, this.length);
    return out;
  }

  private crlf(): void {
    this.octet(CR);
    this.octet(LF);
  }

  private octet(value: number): void {
    if (this.length === this.buffer.length) this.reserve(1);
    this.buffer[this.length++] = value;
  }

  /** Characters up to U+00FF, one octet each (the caller validated them). */
  private latin1(text: string): void {
    this.reserve(text.length);
    const buffer = this.buffer;
    let at = this.length;
    for (let i = 0; i < text.length; i++) buffer[at++] = text.charCodeAt(i);
    this.length = at;
  }

  private decimal(value: number): void {
    this.latin1(String(value));
  }

  private reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < needed) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }
}

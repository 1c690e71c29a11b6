/**
 * Headers (Fetch Standard §5.2) for the image realm: case-insensitive names, values combined with
 * ", " except Set-Cookie, whose values stay separate (getSetCookie(), and one entry each when
 * iterating), iteration sorted by lower-cased name. Names must be tokens and values byte strings
 * without NUL, CR or LF, so that nothing put in a Headers object can split an HTTP head.
 *
 * Not implemented: guards ("immutable", "request", ...) and the forbidden-header lists, which
 * protect browsers' own requests and have no meaning in a server.
 */
import { isToken } from "./field-syntax.ts";

export type HeadersInit = Headers | Iterable<readonly string[]> | Readonly<Record<string, string>>;

/** HTTP whitespace of the Fetch standard: what `append`/`set` strip from both ends of a value. */
function isHttpWhitespace(code: number): boolean {
  return code === 0x09 || code === 0x0a || code === 0x0d || code === 0x20;
}

export function normalizeHeaderValue(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isHttpWhitespace(value.charCodeAt(start))) start++;
  while (end > start && isHttpWhitespace(value.charCodeAt(end - 1))) end--;
  return value.slice(start, end);
}

function validName(name: unknown): string {
  const text = String(name);
  if (!isToken(text)) throw new TypeError(`${JSON.stringify(text)} is not a valid header name`);
  return text.toLowerCase();
}

function validValue(value: unknown): string {
  const text = normalizeHeaderValue(String(value));
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0 || code === 0x0a || code === 0x0d) throw new TypeError("a header value must not contain NUL, CR or LF");
    if (code > 0xff) throw new TypeError("a header value must be a byte string (characters up to U+00FF)");
  }
  return text;
}

/** Lower-cased field names by name as sent: a server meets the same few names on every request. */
const lowerNames = new Map<string, string>();
const MAX_LOWER_NAMES = 512;

function lowerCaseName(name: string): string {
  let lower = lowerNames.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (lowerNames.size >= MAX_LOWER_NAMES) lowerNames.clear();
    lowerNames.set(name, lower);
  }
  return lower;
}

let fromValidFields: (fields: Iterable<readonly [string, string]>) => Headers;
let contentKeyOf: (headers: Headers) => object | undefined;

/**
 * For servers: an object that stands for the headers' current content, shared by a Headers and
 * its copies for as long as none of them changes; undefined for a Headers that is not a copy
 * (nor copied). A server can keep work done for one response's fields (their serialization) under
 * it and reuse it for the next response copied from the same fields.
 */
export function headersContentKey(headers: Headers): object | undefined {
  return contentKeyOf(headers);
}

/**
 * For servers: Headers holding field lines an HTTP parser already validated (names are tokens;
 * values are field values, trimmed of whitespace, without CR, LF or NUL), so that they are not
 * checked a second time. Names are lower-cased as append would.
 */
export function headersFromValidFields(fields: Iterable<readonly [string, string]>): Headers {
  return fromValidFields(fields);
}

function isIterable(value: object): value is Iterable<unknown> {
  return typeof Reflect.get(value, Symbol.iterator) === "function";
}

export class Headers implements Iterable<[string, string]> {
  /**
   * Lower-cased name → values in the order they were appended. The arrays are never changed in
   * place (append makes a new one). A copy of a Headers shares the whole map until either of them
   * changes (copy on write): a server copies the same fields into every response it makes.
   */
  #entries: Map<string, readonly string[]>;
  /** Whether another Headers may share #entries: then it is copied before any change. */
  #shared = false;
  /** See headersContentKey: made when the Headers is copied, dropped when it changes. */
  #contentKey: object | undefined;
  /** The names, sorted, for iteration; undefined until needed after a name came or went. Shared by copies. */
  #sortedNames: readonly string[] | undefined;

  static {
    fromValidFields = (fields) => {
      const headers = new Headers();
      const entries = headers.#entries;
      for (const [name, value] of fields) {
        const key = lowerCaseName(name);
        const values = entries.get(key);
        entries.set(key, values === undefined ? [value] : [...values, value]);
      }
      return headers;
    };
    contentKeyOf = (headers) => headers.#contentKey;
  }

  constructor(init?: HeadersInit) {
    if (init instanceof Headers) {
      this.#entries = init.#entries;
      this.#shared = true;
      init.#shared = true;
      init.#contentKey ??= {};
      this.#contentKey = init.#contentKey;
      // Sorted once on the original and shared: a server copies the same template per response.
      this.#sortedNames = init.#names();
      return;
    }
    this.#entries = new Map();
    if (init === undefined || init === null) return;
    if (typeof init !== "object") throw new TypeError("Headers init must be an object, a sequence of pairs or a Headers");
    if (isIterable(init)) {
      for (const pair of init) {
        if (typeof pair !== "object" || pair === null || !isIterable(pair)) throw new TypeError("each header must be a [name, value] pair");
        const items = [...pair];
        if (items.length !== 2) throw new TypeError("each header must be a [name, value] pair");
        this.append(String(items[0]), String(items[1]));
      }
      return;
    }
    for (const name of Object.keys(init)) this.append(name, String(Reflect.get(init, name)));
  }

  append(name: string, value: string): void {
    const key = validName(name);
    const text = validValue(value);
    const values = this.#entries.get(key);
    if (values === undefined) this.#add(key, [text]);
    else this.#writable().set(key, [...values, text]);
  }

  set(name: string, value: string): void {
    this.#add(validName(name), [validValue(value)]);
  }

  delete(name: string): void {
    const key = validName(name);
    if (this.#entries.has(key)) {
      this.#writable().delete(key);
      this.#sortedNames = undefined;
    }
  }

  /** The values joined with ", ", or null. (For Set-Cookie use getSetCookie: cookies contain commas.) */
  get(name: string): string | null {
    const values = this.#entries.get(validName(name));
    if (values === undefined) return null;
    return values.length === 1 ? (values[0] ?? "") : values.join(", ");
  }

  has(name: string): boolean {
    return this.#entries.has(validName(name));
  }

  getSetCookie(): string[] {
    return [...(this.#entries.get("set-cookie") ?? [])];
  }

  forEach(callback: (value: string, name: string, headers: Headers) => void, thisArg?: unknown): void {
    for (const [name, value] of this) callback.call(thisArg, value, name, this);
  }

  entries(): IterableIterator<[string, string]> {
    // An array's iterator rather than a generator: iterating headers is on every response's path.
    const pairs: [string, string][] = [];
    for (const name of this.#names()) {
      const values = this.#entries.get(name) ?? [];
      if (name === "set-cookie") {
        for (const value of values) pairs.push([name, value]);
      } else {
        pairs.push([name, values.length === 1 ? (values[0] ?? "") : values.join(", ")]);
      }
    }
    return pairs.values();
  }

  *keys(): IterableIterator<string> {
    for (const [name] of this.entries()) yield name;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return "Headers";
  }

  #add(key: string, values: readonly string[]): void {
    if (!this.#entries.has(key)) this.#sortedNames = undefined;
    this.#writable().set(key, values);
  }

  /** The map, to be changed: first a copy of its own if it is shared. */
  #writable(): Map<string, readonly string[]> {
    // Every change goes through here: the content is no longer what the key stood for.
    this.#contentKey = undefined;
    if (this.#shared) {
      this.#entries = new Map(this.#entries);
      this.#shared = false;
    }
    return this.#entries;
  }

  #names(): readonly string[] {
    this.#sortedNames ??= [...this.#entries.keys()].sort();
    return this.#sortedNames;
  }
}

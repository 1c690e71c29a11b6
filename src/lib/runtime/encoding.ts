/**
 * TextEncoder and TextDecoder (WHATWG Encoding Standard), UTF-8 only, for the image realm, which
 * has neither. The decoder follows the standard's UTF-8 decoder exactly (§4.1 "UTF-8 decoder"):
 * each maximal ill-formed subpart becomes one U+FFFD, as in every browser and in Node, and
 * `{ stream: true }` carries an incomplete sequence over to the next call.
 */
import { encodeUtf8, utf8Length } from "./utf8.ts";

const REPLACEMENT = 0xfffd;
const UTF8_LABELS = new Set(["unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"]);

export interface TextDecoderOptions {
  readonly fatal?: boolean;
  readonly ignoreBOM?: boolean;
}

export interface TextDecodeOptions {
  readonly stream?: boolean;
}

export interface TextEncoderEncodeIntoResult {
  readonly read: number;
  readonly written: number;
}

export class TextEncoder {
  get encoding(): "utf-8" {
    return "utf-8";
  }

  encode(input = ""): Uint8Array {
    return encodeUtf8(String(input));
  }

  /** Encodes as much of `source` as fits into `destination`, never splitting a code point. */
  encodeInto(source: string, destination: Uint8Array): TextEncoderEncodeIntoResult {
    let read = 0;
    let written = 0;
    const text = String(source);
    while (read < text.length) {
      const unit = text.charCodeAt(read);
      const isPair = unit >= 0xd800 && unit <= 0xdbff && read + 1 < text.length && (text.charCodeAt(read + 1) & 0xfc00) === 0xdc00;
      const units = isPair ? 2 : 1;
      const piece = text.slice(read, read + units);
      const size = utf8Length(piece);
      if (written + size > destination.length) break;
      destination.set(encodeUtf8(piece), written);
      written += size;
      read += units;
    }
    return { read, written };
  }
}

/** Bytes of any ArrayBuffer or view, as a Uint8Array view (no copy). Works across realms. */
export function bytesOf(input: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  return new Uint8Array(input);
}

export class TextDecoder {
  readonly #fatal: boolean;
  readonly #ignoreBOM: boolean;
  // The standard's decoder state: the code point so far, bytes seen and needed, the bounds for the next byte.
  #codePoint = 0;
  #bytesSeen = 0;
  #bytesNeeded = 0;
  #lowerBoundary = 0x80;
  #upperBoundary = 0xbf;
  #bomSeen = false;

  constructor(label = "utf-8", options: TextDecoderOptions = {}) {
    const normalized = String(label).trim().toLowerCase();
    if (!UTF8_LABELS.has(normalized)) throw new RangeError(`the encoding '${label}' is not supported (only utf-8 is)`);
    this.#fatal = options.fatal === true;
    this.#ignoreBOM = options.ignoreBOM === true;
  }

  get encoding(): "utf-8" {
    return "utf-8";
  }
  get fatal(): boolean {
    return this.#fatal;
  }
  get ignoreBOM(): boolean {
    return this.#ignoreBOM;
  }

  decode(input?: ArrayBuffer | ArrayBufferView, options: TextDecodeOptions = {}): string {
    const bytes = input === undefined ? new Uint8Array(0) : bytesOf(input);
    const units: number[] = [];
    let text = "";
    const flush = (): void => {
      text += String.fromCharCode(...units);
      units.length = 0;
    };
    const emit = (codePoint: number): void => {
      if (!this.#bomSeen) {
        this.#bomSeen = true;
        if (codePoint === 0xfeff && !this.#ignoreBOM) return;
      }
      if (codePoint > 0xffff) {
        const offset = codePoint - 0x10000;
        units.push(0xd800 + (offset >> 10), 0xdc00 + (offset & 0x3ff));
      } else {
        units.push(codePoint);
      }
      if (units.length >= 8192) flush();
    };
    const error = (): void => {
      if (this.#fatal) {
        this.#reset();
        this.#bomSeen = false;
        throw new TypeError("the input is not valid UTF-8");
      }
      emit(REPLACEMENT);
    };

    for (let index = 0; index < bytes.length; index++) {
      const byte = bytes[index] ?? 0;
      if (this.#bytesNeeded === 0) {
        if (byte <= 0x7f) emit(byte);
        else if (byte >= 0xc2 && byte <= 0xdf) this.#start(1, byte & 0x1f);
        else if (byte >= 0xe0 && byte <= 0xef) {
          if (byte === 0xe0) this.#lowerBoundary = 0xa0;
          if (byte === 0xed) this.#upperBoundary = 0x9f;
          this.#start(2, byte & 0xf);
        } else if (byte >= 0xf0 && byte <= 0xf4) {
          if (byte === 0xf0) this.#lowerBoundary = 0x90;
          if (byte === 0xf4) this.#upperBoundary = 0x8f;
          this.#start(3, byte & 0x7);
        } else error();
        continue;
      }
      if (byte < this.#lowerBoundary || byte > this.#upperBoundary) {
        // The sequence so far is one error; the byte is processed again from scratch.
        this.#reset();
        error();
        index--;
        continue;
      }
      this.#lowerBoundary = 0x80;
      this.#upperBoundary = 0xbf;
      this.#codePoint = (this.#codePoint << 6) | (byte & 0x3f);
      this.#bytesSeen++;
      if (this.#bytesSeen === this.#bytesNeeded) {
        const codePoint = this.#codePoint;
        this.#reset();
        emit(codePoint);
      }
    }
    if (options.stream !== true) {
      if (this.#bytesNeeded !== 0) {
        this.#reset();
        error();
      }
      this.#bomSeen = false;
    }
    flush();
    return text;
  }

  #start(needed: number, bits: number): void {
    this.#bytesNeeded = needed;
    this.#codePoint = bits;
  }

  #reset(): void {
    this.#codePoint = 0;
    this.#bytesSeen = 0;
    this.#bytesNeeded = 0;
    this.#lowerBoundary = 0x80;
    this.#upperBoundary = 0xbf;
  }
}

const sharedDecoder = new TextDecoder();

/** Decodes complete UTF-8 as the web does (U+FFFD per maximal ill-formed subpart, BOM stripped). */
export function decodeUtf8Text(bytes: Uint8Array): string {
  return sharedDecoder.decode(bytes);
}

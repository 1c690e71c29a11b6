/**
 * UTF-8 for the image, which has no TextEncoder/TextDecoder (those are host APIs, not ECMAScript).
 * Lone surrogates become U+FFFD, as TextEncoder does.
 */

export function utf8Length(text: string): number {
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) length += 1;
    else if (unit < 0x800) length += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      length += 4;
      i++;
    } else length += 3;
  }
  return length;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

export function encodeUtf8(text: string): Uint8Array {
  const out = new Uint8Array(utf8Length(text));
  let at = 0;
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      code = 0x10000 + ((code - 0xd800) << 10) + (text.charCodeAt(i + 1) - 0xdc00);
      i++;
    } else if (code >= 0xd800 && code <= 0xdfff) {
      code = 0xfffd;
    }
    if (code < 0x80) {
      out[at++] = code;
    } else if (code < 0x800) {
      out[at++] = 0xc0 | (code >> 6);
      out[at++] = 0x80 | (code & 0x3f);
    } else if (code < 0x10000) {
      out[at++] = 0xe0 | (code >> 12);
      out[at++] = 0x80 | ((code >> 6) & 0x3f);
      out[at++] = 0x80 | (code & 0x3f);
    } else {
      out[at++] = 0xf0 | (code >> 18);
      out[at++] = 0x80 | ((code >> 12) & 0x3f);
      out[at++] = 0x80 | ((code >> 6) & 0x3f);
      out[at++] = 0x80 | (code & 0x3f);
    }
  }
  return out;
}

/** Decodes UTF-8, replacing each malformed sequence with U+FFFD (never throws). */
export function decodeUtf8(bytes: Uint8Array): string {
  let text = "";
  let i = 0;
  while (i < bytes.length) {
    const first = bytes[i] ?? 0;
    let code = 0xfffd;
    let size = 1;
    if (first < 0x80) {
      code = first;
    } else if (first >= 0xc2 && first <= 0xf4) {
      size = first < 0xe0 ? 2 : first < 0xf0 ? 3 : 4;
      let value = first & (0xff >> (size + 1));
      let valid = i + size <= bytes.length;
      for (let k = 1; valid && k < size; k++) {
        const next = bytes[i + k] ?? 0;
        if ((next & 0xc0) !== 0x80) valid = false;
        value = (value << 6) | (next & 0x3f);
      }
      const minimum = size === 2 ? 0x80 : size === 3 ? 0x800 : 0x10000;
      if (valid && value >= minimum && value <= 0x10ffff && !(value >= 0xd800 && value <= 0xdfff)) code = value;
      else size = 1;
    }
    text += String.fromCodePoint(code);
    i += size;
  }
  return text;
}

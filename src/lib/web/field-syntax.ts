/**
 * The lexical rules of header fields that the web classes enforce (RFC 9110 §5.5, §5.6.2):
 * Headers and Request check tokens (names, methods), Response checks reason phrases. The HTTP
 * engine (src/lib/http) applies the same rules to bytes, but it is the layer above web, so they
 * live here and src/lib/http/syntax.ts re-exports them beside the rules only HTTP needs. Strings
 * are "byte strings" as in the Fetch standard: each character is one octet (U+0000 to U+00FF).
 */

/** HTAB, the one control octet a field value may hold (RFC 9110 §5.5). */
export const HTAB = 0x09;

const TCHAR_TABLE = new Uint8Array(256);
for (const char of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR_TABLE[char.charCodeAt(0)] = 1;
}

/** tchar (RFC 9110 §5.6.2): the octets a token, a method or a field name may contain. */
export function isTokenOctet(octet: number): boolean {
  return TCHAR_TABLE[octet] === 1;
}

/** token = 1*tchar (RFC 9110 §5.6.2). */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff || !isTokenOctet(code)) return false;
  }
  return true;
}

/**
 * An octet allowed inside a field value (RFC 9110 §5.5): field-vchar (VCHAR / obs-text), SP and
 * HTAB. Every other control, and CR, LF and NUL above all, is refused: RFC 9110 §5.5 calls them
 * "invalid and dangerous", and a bare CR or LF is how responses get split and requests smuggled.
 */
export function isFieldValueOctet(octet: number): boolean {
  return octet === HTAB || (octet >= 0x20 && octet !== 0x7f && octet <= 0xff);
}

/** A field value (already trimmed or not) made only of field-value octets. */
export function isFieldValue(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (!isFieldValueOctet(text.charCodeAt(i))) return false;
  }
  return true;
}

/** reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4), or empty. */
export function isReasonPhrase(text: string): boolean {
  return isFieldValue(text);
}

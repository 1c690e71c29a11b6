/**
 * Text from an image (its manifest's strings, an abort reason, a load error) on its way to the
 * operator's terminal, in the tender's or the CLI's own name. An image must not be able to move
 * the cursor, recolour or rewrite earlier lines, set the window title, or print a line that looks
 * like one of atoll's own: every control character is shown as an escape instead of being sent,
 * and a message has a bounded length.
 *
 * What counts as control: C0 (U+0000–U+001F) except tab, DEL (U+007F), C1 (U+0080–U+009F: a
 * UTF-8 terminal may take U+009B for CSI), the line and paragraph separators (U+2028, U+2029)
 * and the bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069), which reorder
 * what the reader sees. ESC becomes `\x1b`, a newline `\n`, a carriage return `\r`, anything
 * else `\xNN` or `\u{NNNN}`.
 *
 * The appliance's console output (consoleWrite) is its own stdout and never passes through here.
 */

/** The longest message from an image that a tender prints (an abort reason, a load error). */
export const MAX_IMAGE_MESSAGE_BYTES = 64 * 1024;

/** Lines after the first of a multi-line message start with this, so that none can pass for an `atoll:` line. */
export const CONTINUATION_PREFIX = "  ";

const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
const CONTROL_EXCEPT_NEWLINE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

function escapeCharacter(character: string): string {
  const code = character.codePointAt(0) ?? 0;
  if (character === "\n") return "\\n";
  if (character === "\r") return "\\r";
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, "0")}`;
  return `\\u{${code.toString(16)}}`;
}

/**
 * Cuts text to at most maxBytes of UTF-8 (never inside a character) and says how much was left
 * out: "... (N bytes more)".
 */
export function boundText(text: string, maxBytes: number = MAX_IMAGE_MESSAGE_BYTES): string {
  // Every UTF-16 unit is at least one UTF-8 byte, so no string longer than maxBytes units fits.
  const total = Buffer.byteLength(text);
  if (total <= maxBytes) return text;
  const prefix = Buffer.from(text.slice(0, maxBytes));
  // Cut at a character boundary: back up over UTF-8 continuation bytes (10xxxxxx).
  let end = maxBytes;
  while (end > 0 && ((prefix[end] ?? 0) & 0xc0) === 0x80) end--;
  const kept = prefix.subarray(0, end).toString("utf8");
  return `${kept}... (${total - end} bytes more)`;
}

/** A one-line field (a name, builtBy, a load error): every control character escaped, newlines too. */
export function escapeLine(text: string, maxBytes: number = MAX_IMAGE_MESSAGE_BYTES): string {
  return boundText(text, maxBytes).replace(CONTROL, escapeCharacter);
}

/**
 * A message that may span lines (an abort reason with its stack trace): the newlines stay, every
 * other control character is escaped (a lone carriage return too), and each line after the first
 * starts with CONTINUATION_PREFIX, so that only the tender's own lines begin with `atoll:`.
 */
export function escapeMultiline(text: string, maxBytes: number = MAX_IMAGE_MESSAGE_BYTES): string {
  return boundText(text, maxBytes)
    .replace(/\r\n/g, "\n")
    .replace(CONTROL_EXCEPT_NEWLINE, escapeCharacter)
    .split("\n")
    .join(`\n${CONTINUATION_PREFIX}`);
}

/**
 * JSON.stringify already writes C0 controls as \u00NN; this writes DEL, C1, the separators and
 * the bidirectional controls the same way, so the output is the same JSON value and safe to show.
 */
export function terminalSafeJson(json: string): string {
  return json.replace(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu, (character) => `\\u${(character.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`);
}

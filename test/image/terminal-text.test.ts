/** The escaping and bounding of image text on its way to the terminal (src/tenders/common/terminal-text.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { boundText, escapeLine, escapeMultiline, terminalSafeJson } from "../../src/tenders/common/terminal-text.ts";

test("escapeLine shows C0 (but tab), DEL, C1, separators and bidi controls as escapes", () => {
  assert.equal(escapeLine("a\u001b[31mb\tc\nd\re\u0000\u007f\u009b\u2028\u202e"), "a\\x1b[31mb\tc\\nd\\re\\x00\\x7f\\x9b\\u{2028}\\u{202e}");
  assert.equal(escapeLine("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
});

test("escapeMultiline keeps newlines, prefixes continuation lines and escapes the rest", () => {
  assert.equal(escapeMultiline("Error: x\u001b]0;t\u0007\r\n    at f (a.js:1:2)\natoll: forged\rtail"), "Error: x\\x1b]0;t\\x07\n      at f (a.js:1:2)\n  atoll: forged\\rtail");
});

test("boundText cuts at a UTF-8 character boundary and counts what it left out", () => {
  assert.equal(boundText("abc", 3), "abc");
  assert.equal(boundText("abcdef", 4), "abcd... (2 bytes more)");
  // "é" is two bytes: a cut inside it keeps the character out whole.
  assert.equal(boundText("aé€", 2), "a... (5 bytes more)");
  assert.equal(boundText("aé€", 3), "aé... (3 bytes more)");
  assert.equal(boundText("😀😀", 5), "😀... (4 bytes more)");
  const big = boundText("x".repeat(100_000));
  assert.equal(big, `${"x".repeat(64 * 1024)}... (${100_000 - 64 * 1024} bytes more)`);
});

test("terminalSafeJson keeps the JSON value and escapes what JSON.stringify leaves raw", () => {
  const value = { builtBy: "a\u009b31m\u007f\u2029\u001b" };
  const json = terminalSafeJson(JSON.stringify(value));
  assert.doesNotMatch(json, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u);
  assert.deepEqual(JSON.parse(json), value);
});

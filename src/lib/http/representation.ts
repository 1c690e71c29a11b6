/**
 * Choosing and qualifying a representation, for handlers that serve files: content-coding
 * negotiation (RFC 9110 §12.5.3), entity-tag comparison and the conditional requests built on it
 * (RFC 9110 §8.8.3, §13), and byte ranges (RFC 9110 §14). Pure functions over header values.
 */
import { parseWeighted, splitList, trimWhitespace } from "./syntax.ts";

// ── Accept-Encoding ─────────────────────────────────────────────────────────────────────────────

/**
 * Parsed Accept-Encoding values: a client sends the same value on every request, and a site's
 * clients send a handful of different ones, so each is parsed once. Bounded: cleared when full.
 */
const parsedAcceptEncodings = new Map<string, ReadonlyMap<string, number>>();
const MAX_PARSED_ACCEPT_ENCODINGS = 64;

/** Coding → weight, as listed (a coding listed twice keeps its first weight; "x-gzip" is gzip). */
function acceptEncodingWeights(acceptEncoding: string): ReadonlyMap<string, number> {
  const known = parsedAcceptEncodings.get(acceptEncoding);
  if (known !== undefined) return known;
  const weights = new Map<string, number>();
  for (const element of splitList(acceptEncoding)) {
    const weighted = parseWeighted(element);
    if (weighted === undefined) continue;
    const name = weighted.name === "x-gzip" ? "gzip" : weighted.name;
    if (!weights.has(name)) weights.set(name, weighted.quality);
  }
  if (parsedAcceptEncodings.size >= MAX_PARSED_ACCEPT_ENCODINGS) parsedAcceptEncodings.clear();
  parsedAcceptEncodings.set(acceptEncoding, weights);
  return weights;
}

/**
 * Picks the content coding to send among `available` (in the server's order of preference,
 * e.g. ["br", "gzip"]; "identity" is always available): the one the client weights highest,
 * ties going to the server's preference. Returns undefined when none is acceptable (→ 406).
 *
 * RFC 9110 §12.5.3: no header → identity (any coding would be acceptable, but a client that
 * does not say so may not decode one); an empty header → identity only; a coding not listed
 * gets the weight of "*" if present, else 0, except identity, which is acceptable (with the
 * lowest weight) unless excluded by "identity;q=0" or by "*;q=0" without an identity entry.
 * "x-gzip" is gzip (§8.4.1.3).
 */
export function chooseContentCoding(acceptEncoding: string | null, available: readonly string[]): string | undefined {
  if (acceptEncoding === null) return "identity";
  const weights = acceptEncodingWeights(acceptEncoding);
  const star = weights.get("*");
  // An unlisted identity is acceptable but least preferred (the smallest qvalue): "gzip;q=0.5"
  // asks for gzip, and identity should not win over it just by being implicit.
  const weightOf = (coding: string): number => weights.get(coding) ?? star ?? (coding === "identity" ? 0.001 : 0);
  let best: string | undefined;
  let bestWeight = 0;
  for (const coding of available) {
    const weight = weightOf(coding);
    if (weight > bestWeight) {
      best = coding;
      bestWeight = weight;
    }
  }
  if (weightOf("identity") > bestWeight) best = "identity";
  return best;
}

// ── Entity tags and conditional requests ────────────────────────────────────────────────────────

export interface EntityTag {
  readonly weak: boolean;
  /** The opaque-tag, quotes included. */
  readonly opaque: string;
}

/** Parses `"*"` or a list of entity-tags (RFC 9110 §8.8.3); undefined when malformed. */
export function parseEntityTagList(value: string): "*" | EntityTag[] | undefined {
  const text = trimWhitespace(value);
  if (text === "*") return "*";
  const tags: EntityTag[] = [];
  let at = 0;
  while (at < text.length) {
    const char = text[at];
    if (char === " " || char === "\t" || char === ",") {
      at++;
      continue;
    }
    let weak = false;
    if (text.startsWith("W/", at)) {
      weak = true;
      at += 2;
    }
    if (text[at] !== '"') return undefined;
    const close = text.indexOf('"', at + 1);
    if (close < 0) return undefined;
    const opaque = text.slice(at, close + 1);
    // etagc = %x21 / %x23-7E / obs-text
    for (let i = 1; i < opaque.length - 1; i++) {
      const code = opaque.charCodeAt(i);
      if (code < 0x21 || code === 0x7f || code > 0xff) return undefined;
    }
    tags.push({ weak, opaque });
    at = close + 1;
    while (text[at] === " " || text[at] === "\t") at++;
    if (at < text.length && text[at] !== ",") return undefined;
  }
  return tags;
}

function parseSingleTag(etag: string): EntityTag {
  return etag.startsWith("W/") ? { weak: true, opaque: etag.slice(2) } : { weak: false, opaque: etag };
}

/** Weak comparison (RFC 9110 §8.8.3.2): the opaque tags match, weak or not. */
export function weakMatch(a: EntityTag, b: EntityTag): boolean {
  return a.opaque === b.opaque;
}

/** Strong comparison: both strong, and the opaque tags match. */
export function strongMatch(a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && a.opaque === b.opaque;
}

export type PreconditionOutcome = "proceed" | "not-modified" | "precondition-failed";

/**
 * Evaluates If-Match and If-None-Match for a GET or HEAD of a representation with entity tag
 * `etag`, in RFC 9110 §13.2.2's order. (If-Unmodified-Since and If-Modified-Since need a
 * Last-Modified date, which baked assets do not have; they are ignored, as §13.1.3 and §13.1.4
 * allow when the date is unknown.)
 */
export function evaluatePreconditions(ifMatch: string | null, ifNoneMatch: string | null, etag: string): PreconditionOutcome {
  const current = parseSingleTag(etag);
  if (ifMatch !== null) {
    // §13.1.1: true for "*" (the representation exists) or a strong match; a malformed field cannot match.
    const list = parseEntityTagList(ifMatch);
    if (list !== "*" && (list === undefined || !list.some((tag) => strongMatch(tag, current)))) return "precondition-failed";
  }
  if (ifNoneMatch !== null) {
    // §13.1.2: false (→ 304 for GET/HEAD) for "*" or a weak match; a malformed field is ignored.
    const list = parseEntityTagList(ifNoneMatch);
    if (list === "*" || (list !== undefined && list.some((tag) => weakMatch(tag, current)))) return "not-modified";
  }
  return "proceed";
}

/**
 * If-Range (RFC 9110 §13.1.5): whether a Range request may be answered with a part. Only an
 * entity-tag that strongly matches validates; a date cannot, as the representation has no
 * Last-Modified.
 */
export function ifRangeAllows(ifRange: string | null, etag: string): boolean {
  if (ifRange === null) return true;
  const list = parseEntityTagList(ifRange);
  if (list === undefined || list === "*" || list.length !== 1) return false;
  const [tag] = list;
  return tag !== undefined && strongMatch(tag, parseSingleTag(etag));
}

// ── Range ──────────────────────────────────────────────────────────────────────────────────────

export type RangeOutcome =
  /** Ignore the Range field and send the whole representation (absent, not bytes, malformed, several parts). */
  | { readonly kind: "full" }
  /** 206 with this inclusive byte range. */
  | { readonly kind: "partial"; readonly first: number; readonly last: number }
  /** 416 with `Content-Range: bytes * /size`. */
  | { readonly kind: "unsatisfiable" };

/**
 * Evaluates `Range` for a representation of `size` bytes (RFC 9110 §14.1.2, §14.2). Ranges that
 * overlap or touch are coalesced (§14.2 allows it); when more than one part remains, the answer
 * is the whole representation with 200 (multipart/byteranges is not produced: §14.2 lets a
 * server ignore Range, and whole files are what static sites are asked for).
 */
export function evaluateRange(range: string | null, size: number): RangeOutcome {
  if (range === null || size === 0) return { kind: "full" };
  const equals = range.indexOf("=");
  if (equals < 0 || trimWhitespace(range.slice(0, equals)).toLowerCase() !== "bytes") return { kind: "full" };
  const parts: { first: number; last: number }[] = [];
  let sawRange = false;
  for (const element of splitList(range.slice(equals + 1))) {
    const match = /^(\d*)-(\d*)$/.exec(element);
    if (match === null) return { kind: "full" };
    const [, firstText = "", lastText = ""] = match;
    sawRange = true;
    if (firstText === "") {
      // suffix-range: the last N bytes; N = 0 is unsatisfiable.
      if (lastText === "") return { kind: "full" };
      const length = Number(lastText);
      if (length > 0) parts.push({ first: Math.max(0, size - length), last: size - 1 });
      continue;
    }
    const first = Number(firstText);
    const last = lastText === "" ? size - 1 : Number(lastText);
    // §14.1.1: an int-range whose last is below its first is invalid: the whole field is ignored.
    if (lastText !== "" && last < first) return { kind: "full" };
    if (first < size) parts.push({ first, last: Math.min(last, size - 1) });
  }
  if (!sawRange) return { kind: "full" };
  if (parts.length === 0) return { kind: "unsatisfiable" };
  parts.sort((a, b) => a.first - b.first);
  const merged: { first: number; last: number }[] = [];
  for (const part of parts) {
    const previous = merged[merged.length - 1];
    if (previous !== undefined && part.first <= previous.last + 1) previous.last = Math.max(previous.last, part.last);
    else merged.push({ ...part });
  }
  const only = merged[0];
  if (merged.length !== 1 || only === undefined) return { kind: "full" };
  return { kind: "partial", first: only.first, last: only.last };
}

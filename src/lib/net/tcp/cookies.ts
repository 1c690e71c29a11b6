/**
 * SYN cookies (RFC 4987 §3.6, in the manner of Linux): when a listener's half-open queue is full,
 * the SYN-ACK's sequence number encodes what the connection needs, so that no state is kept
 * until the handshake's ACK returns it (as ACK − 1) to be checked.
 *
 *   bits 31-27  time slot: minutes/64 s modulo 32; a cookie is good for two slots after its own
 *   bits 26-24  index of the MSS in COOKIE_MSS_TABLE (the largest not above the peer's)
 *   bits 23-0   SipHash MAC over the 4-tuple, the client's ISN and bits 31-24
 *
 * Window scale and SACK-permitted are encoded, as Linux does, in the low six bits of the
 * SYN-ACK's TSval, which the ACK echoes: bits 0-3 the peer's shift (15: none), bit 4 SACK. When
 * the SYN has no timestamps, a cookie connection goes without window scaling and SACK.
 */
import type { Ipv4Address } from "../../wire/address.ts";
import type { TcpSecrets } from "./isn.ts";
import { seqGt } from "./seq.ts";

/** MSS values a cookie can express (3 bits). */
export const COOKIE_MSS_TABLE: readonly number[] = [536, 1024, 1220, 1300, 1360, 1400, 1440, 1460];
/** Length of one time slot. */
const SLOT_MS = 64_000;
/** Slots a cookie stays valid after the one it was made in. */
const MAX_AGE_SLOTS = 2;
/** How long after sending cookies a listener still checks ACKs for them. */
export const COOKIE_LIFETIME_MS = (MAX_AGE_SLOTS + 1) * SLOT_MS;
const TS_BITS = 6;
const TS_MASK = (1 << TS_BITS) - 1;
const NO_WINDOW_SCALE = 15;
const SACK_BIT = 16;

export interface CookieTuple {
  local: Ipv4Address;
  localPort: number;
  remote: Ipv4Address;
  remotePort: number;
}

export function cookieMssIndex(peerMss: number): number {
  let index = 0;
  for (let i = 0; i < COOKIE_MSS_TABLE.length; i++) if ((COOKIE_MSS_TABLE[i] ?? 0) <= peerMss) index = i;
  return index;
}

function slotAt(nowMs: number): number {
  return Math.floor(nowMs / SLOT_MS) & 31;
}

/** The ISN of a cookie SYN-ACK. */
export function makeCookie(secrets: TcpSecrets, tuple: CookieTuple, clientIsn: number, mssIndex: number, nowMs: number): number {
  const data = (slotAt(nowMs) << 3) | (mssIndex & 7);
  const mac = secrets.cookieMac(tuple.local, tuple.localPort, tuple.remote, tuple.remotePort, clientIsn, data);
  return ((data << 24) | mac) >>> 0;
}

/** The MSS a returned cookie encodes, or -1 when it is forged or too old. */
export function checkCookie(secrets: TcpSecrets, tuple: CookieTuple, clientIsn: number, cookie: number, nowMs: number): number {
  const data = cookie >>> 24;
  const age = (slotAt(nowMs) - (data >>> 3)) & 31;
  if (age > MAX_AGE_SLOTS) return -1;
  const mac = secrets.cookieMac(tuple.local, tuple.localPort, tuple.remote, tuple.remotePort, clientIsn, data);
  if (mac !== (cookie & 0xffffff)) return -1;
  return COOKIE_MSS_TABLE[data & 7] ?? -1;
}

/** A TSval carrying the options bits, not above the current clock `tsNow` (so later TSvals still grow). */
export function encodeCookieTimestamp(tsNow: number, windowScale: number, sackPermitted: boolean): number {
  const bits = (windowScale >= 0 ? Math.min(windowScale, 14) : NO_WINDOW_SCALE) | (sackPermitted ? SACK_BIT : 0);
  let value = ((tsNow & ~TS_MASK) | bits) >>> 0;
  if (seqGt(value, tsNow)) value = (((tsNow & ~TS_MASK) - (1 << TS_BITS)) | bits) >>> 0;
  return value;
}

export function decodeCookieTimestamp(tsEcho: number): { windowScale: number; sackPermitted: boolean } {
  const scale = tsEcho & 15;
  return { windowScale: scale === NO_WINDOW_SCALE ? -1 : scale, sackPermitted: (tsEcho & SACK_BIT) !== 0 };
}

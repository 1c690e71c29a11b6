/**
 * Keyed hashing for the values an off-path attacker must not predict: initial sequence numbers
 * (RFC 6528), the timestamp offset of a connection (RFC 7323 §5.4), SYN cookies (RFC 4987 §3.6)
 * and ephemeral port choice (RFC 6056 §3.3.3). The hash is SipHash-2-4 (Aumasson and Bernstein,
 * 2012), a short-input PRF, written here over 32-bit halves since ECMAScript has no 64-bit
 * integer arithmetic outside BigInt (which allocates).
 */
import type { Ipv4Address } from "../../wire/address.ts";
import type { RandomSource } from "../types.ts";

/** SipHash-2-4 with a 128-bit key. Not re-entrant: the result lives in `low` and `high`. */
export class SipHash24 {
  /** The last hash, as two unsigned 32-bit halves. */
  low = 0;
  high = 0;
  private readonly k0l: number;
  private readonly k0h: number;
  private readonly k1l: number;
  private readonly k1h: number;
  // The state v0..v3, each as low and high halves.
  private v0l = 0;
  private v0h = 0;
  private v1l = 0;
  private v1h = 0;
  private v2l = 0;
  private v2h = 0;
  private v3l = 0;
  private v3h = 0;

  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new RangeError(`siphash: key of ${key.length} bytes, needs 16`);
    this.k0l = readLe32(key, 0);
    this.k0h = readLe32(key, 4);
    this.k1l = readLe32(key, 8);
    this.k1h = readLe32(key, 12);
  }

  /** Hashes bytes[0, length); returns the low 32 bits (the whole 64 are in `low` and `high`). */
  hash(bytes: Uint8Array, length = bytes.length): number {
    // "somepseudorandomlygeneratedbytes", XORed with the key.
    this.v0l = (this.k0l ^ 0x70736575) >>> 0;
    this.v0h = (this.k0h ^ 0x736f6d65) >>> 0;
    this.v1l = (this.k1l ^ 0x6e646f6d) >>> 0;
    this.v1h = (this.k1h ^ 0x646f7261) >>> 0;
    this.v2l = (this.k0l ^ 0x6e657261) >>> 0;
    this.v2h = (this.k0h ^ 0x6c796765) >>> 0;
    this.v3l = (this.k1l ^ 0x79746573) >>> 0;
    this.v3h = (this.k1h ^ 0x74656462) >>> 0;
    const whole = length - (length % 8);
    for (let at = 0; at < whole; at += 8) this.compress(readLe32(bytes, at), readLe32(bytes, at + 4));
    // The last word: the remaining bytes, little-endian, with the length's low byte on top.
    let lastLow = 0;
    let lastHigh = (length & 0xff) << 24;
    for (let i = whole; i < length; i++) {
      const shift = 8 * (i - whole);
      if (shift < 32) lastLow |= bytes[i] << shift;
      else lastHigh |= bytes[i] << (shift - 32);
    }
    this.compress(lastLow >>> 0, lastHigh >>> 0);
    this.v2l = (this.v2l ^ 0xff) >>> 0;
    this.round();
    this.round();
    this.round();
    this.round();
    this.low = (this.v0l ^ this.v1l ^ this.v2l ^ this.v3l) >>> 0;
    this.high = (this.v0h ^ this.v1h ^ this.v2h ^ this.v3h) >>> 0;
    return this.low;
  }

  private compress(mLow: number, mHigh: number): void {
    this.v3l = (this.v3l ^ mLow) >>> 0;
    this.v3h = (this.v3h ^ mHigh) >>> 0;
    this.round();
    this.round();
    this.v0l = (this.v0l ^ mLow) >>> 0;
    this.v0h = (this.v0h ^ mHigh) >>> 0;
  }

  /** SipRound: add-rotate-xor over the four words. */
  private round(): void {
    let l: number;
    let h: number;
    // v0 += v1; v1 = rotl(v1, 13) ^ v0; v0 = rotl(v0, 32)
    l = (this.v0l + this.v1l) >>> 0;
    this.v0h = (this.v0h + this.v1h + (l < this.v0l ? 1 : 0)) >>> 0;
    this.v0l = l;
    l = ((this.v1l << 13) | (this.v1h >>> 19)) >>> 0;
    h = ((this.v1h << 13) | (this.v1l >>> 19)) >>> 0;
    this.v1l = (l ^ this.v0l) >>> 0;
    this.v1h = (h ^ this.v0h) >>> 0;
    l = this.v0l;
    this.v0l = this.v0h;
    this.v0h = l;
    // v2 += v3; v3 = rotl(v3, 16) ^ v2
    l = (this.v2l + this.v3l) >>> 0;
    this.v2h = (this.v2h + this.v3h + (l < this.v2l ? 1 : 0)) >>> 0;
    this.v2l = l;
    l = ((this.v3l << 16) | (this.v3h >>> 16)) >>> 0;
    h = ((this.v3h << 16) | (this.v3l >>> 16)) >>> 0;
    this.v3l = (l ^ this.v2l) >>> 0;
    this.v3h = (h ^ this.v2h) >>> 0;
    // v0 += v3; v3 = rotl(v3, 21) ^ v0
    l = (this.v0l + this.v3l) >>> 0;
    this.v0h = (this.v0h + this.v3h + (l < this.v0l ? 1 : 0)) >>> 0;
    this.v0l = l;
    l = ((this.v3l << 21) | (this.v3h >>> 11)) >>> 0;
    h = ((this.v3h << 21) | (this.v3l >>> 11)) >>> 0;
    this.v3l = (l ^ this.v0l) >>> 0;
    this.v3h = (h ^ this.v0h) >>> 0;
    // v2 += v1; v1 = rotl(v1, 17) ^ v2; v2 = rotl(v2, 32)
    l = (this.v2l + this.v1l) >>> 0;
    this.v2h = (this.v2h + this.v1h + (l < this.v2l ? 1 : 0)) >>> 0;
    this.v2l = l;
    l = ((this.v1l << 17) | (this.v1h >>> 15)) >>> 0;
    h = ((this.v1h << 17) | (this.v1l >>> 15)) >>> 0;
    this.v1l = (l ^ this.v2l) >>> 0;
    this.v1h = (h ^ this.v2h) >>> 0;
    l = this.v2l;
    this.v2l = this.v2h;
    this.v2h = l;
  }
}

function readLe32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

/** What a hash is for, mixed into its input so that one key serves every purpose independently. */
const Purpose = { Isn: 1, TimestampOffset: 2, Cookie: 3, EphemeralPort: 4 } as const;
type Purpose = (typeof Purpose)[keyof typeof Purpose];

/** RFC 6528 §3: M is a timer that ticks every 4 microseconds. */
const ISN_TICKS_PER_MS = 250;

/**
 * The secrets of one TCP layer: drawn once from the RandomSource, so that values computed from
 * them do not repeat across boots (RFC 6528 §3 asks that the key be changed "at least on reboot").
 */
export class TcpSecrets {
  private readonly siphash: SipHash24;
  /** The hash input: tuple (12 bytes), purpose, and up to 11 more bytes. */
  private readonly input = new Uint8Array(24);

  constructor(random: RandomSource) {
    const key = new Uint8Array(16);
    random(key);
    this.siphash = new SipHash24(key);
  }

  /**
   * RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), with M the
   * 4 µs clock, so that sequence spaces of successive incarnations of a connection move forward
   * while an off-path attacker cannot guess them.
   */
  initialSequence(local: Ipv4Address, localPort: number, remote: Ipv4Address, remotePort: number, nowMs: number): number {
    const hash = this.tupleHash(Purpose.Isn, local, localPort, remote, remotePort, 0);
    return (hash + Math.floor(nowMs * ISN_TICKS_PER_MS)) >>> 0;
  }

  /** RFC 7323 §5.4: a per-connection random offset for TSval, so that timestamps do not reveal uptime. */
  timestampOffset(local: Ipv4Address, localPort: number, remote: Ipv4Address, remotePort: number): number {
    return this.tupleHash(Purpose.TimestampOffset, local, localPort, remote, remotePort, 0);
  }

  /** The 24-bit MAC of a SYN cookie over the tuple, the client's ISN, the time slot and the encoded data. */
  cookieMac(local: Ipv4Address, localPort: number, remote: Ipv4Address, remotePort: number, clientIsn: number, slotAndData: number): number {
    const input = this.input;
    writeBe32(input, 13, clientIsn);
    writeBe32(input, 17, slotAndData);
    return this.tupleHash(Purpose.Cookie, local, localPort, remote, remotePort, 8) & 0xffffff;
  }

  /** RFC 6056 §3.3.3 (algorithm 3): the start of the ephemeral port search for a destination. */
  portOffset(local: Ipv4Address, remote: Ipv4Address, remotePort: number): number {
    return this.tupleHash(Purpose.EphemeralPort, local, 0, remote, remotePort, 0);
  }

  private tupleHash(purpose: Purpose, local: Ipv4Address, localPort: number, remote: Ipv4Address, remotePort: number, extra: number): number {
    const input = this.input;
    writeBe32(input, 0, local);
    writeBe32(input, 4, remote);
    input[8] = localPort >>> 8;
    input[9] = localPort;
    input[10] = remotePort >>> 8;
    input[11] = remotePort;
    input[12] = purpose;
    return this.siphash.hash(input, 13 + extra);
  }
}

function writeBe32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

/**
 * The Internet checksum (RFC 1071): the 16-bit ones' complement of the ones' complement sum of
 * the data taken as big-endian 16-bit words.
 *
 * Sums are kept as plain numbers with the carries folded back in lazily (RFC 1071 §1 (D),
 * "deferred carries"): adding up to 2^37 words cannot lose precision in a float64, so a caller can
 * accumulate several ranges (a pseudo-header, a header, a payload) and fold once at the end.
 *
 * Accumulating in pieces is only byte-order correct when every piece but the last starts and
 * ends at an even offset of the checksummed stream (RFC 1071 §1 (A): an odd piece would swap the
 * bytes of every later word). All Atoll headers have even lengths, so this holds for
 * pseudo-header + header + payload.
 */
import type { Ipv4Address } from "./address.ts";

/**
 * Adds bytes[start, end) to `sum` as big-endian 16-bit words; an odd last byte counts as the high
 * byte of a word whose low byte is zero (RFC 1071 §1, [Z,0]). The range is clamped to the buffer.
 * Returns a partial sum with the carries folded, ready to be passed back in as `sum`.
 */
export function sumBytes(bytes: Uint8Array, start = 0, end = bytes.length, sum = 0): number {
  const stop = end < bytes.length ? end : bytes.length;
  let at = start < 0 ? 0 : start;
  // Four words per iteration: fewer loop tests, and V8 keeps `sum` in a register.
  const unrolledStop = stop - 7;
  while (at < unrolledStop) {
    sum +=
      ((bytes[at] << 8) | bytes[at + 1]) +
      ((bytes[at + 2] << 8) | bytes[at + 3]) +
      ((bytes[at + 4] << 8) | bytes[at + 5]) +
      ((bytes[at + 6] << 8) | bytes[at + 7]);
    at += 8;
  }
  while (at + 1 < stop) {
    sum += (bytes[at] << 8) | bytes[at + 1];
    at += 2;
  }
  if (at < stop) sum += bytes[at] << 8;
  return foldCarries(sum);
}

/** Folds the carries of a running sum back into 16 bits (end-around carry, RFC 1071 §1 (1)). */
export function foldCarries(sum: number): number {
  // Division rather than `>>> 16`: a sum accumulated over many calls may exceed 32 bits.
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for a running sum taken with the checksum field zeroed. */
export function finishChecksum(sum: number): number {
  return ~foldCarries(sum) & 0xffff;
}

/**
 * True when a running sum taken over data that includes its checksum field verifies: the ones'
 * complement sum of correct data plus its checksum is all ones (RFC 1071 §1 (3)).
 */
export function checksumVerifies(sum: number): boolean {
  return foldCarries(sum) === 0xffff;
}

/** The checksum of bytes[start, end), for a range whose checksum field is zero. */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return finishChecksum(sumBytes(bytes, start, end));
}

/**
 * The sum of the pseudo-header that UDP (RFC 768, "Fields") and TCP (RFC 793 §3.1) prepend over
 * IPv4: source, destination, zero, protocol, and the UDP/TCP length (header plus data).
 */
export function ipv4PseudoHeaderSum(src: Ipv4Address, dst: Ipv4Address, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + (protocol & 0xff) + (length & 0xffff);
}

/**
 * Big-endian (network order, RFC 791 Appendix B) field access on a Uint8Array, without a DataView:
 * views are created per packet, and a DataView per view would double the allocations.
 * Callers check bounds first (each view's `check`); these helpers do not.
 */

export function readU16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset] << 8) | bytes[offset + 1];
}

export function writeU16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 8;
  bytes[offset + 1] = value;
}

export function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3]) >>> 0;
}

export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = value >>> 16;
  bytes[offset + 2] = value >>> 8;
  bytes[offset + 3] = value;
}

/**
 * Copies `source` to `target` at `offset`, unless it is already there: a stack that built the
 * payload in place (the zero-copy path) passes that very subarray back in the repr.
 */
export function placeBytes(source: Uint8Array, target: Uint8Array, offset: number): void {
  if (source.buffer === target.buffer && source.byteOffset === target.byteOffset + offset) return;
  target.set(source, offset);
}

/** Throws when an emit target is too short: that is a bug in the caller, not bad input. */
export function requireRoom(protocol: string, into: Uint8Array, needed: number): void {
  if (into.length < needed) {
    throw new RangeError(`${protocol}: emit needs ${needed} bytes, buffer has ${into.length}`);
  }
}

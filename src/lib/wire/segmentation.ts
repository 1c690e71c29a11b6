/**
 * Offloads done in software: finishing a partial transport checksum and cutting a TCP/IPv4
 * segmentation-offload frame into the frames that go on the wire, with the semantics of
 * virtio-net's header (VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4) and of Linux's
 * GSO for TCP (net/ipv4/tcp_offload.c): headers copied to every segment, sequence numbers
 * advanced, IP total length, identification (incremented per segment) and header checksum
 * rewritten, CWR only on the first segment, FIN and PSH only on the last, checksums finished.
 *
 * Used where no device does the work: a capture file must hold the frames as the wire carries
 * them, and a virtual link in tests behaves as an offloading TAP.
 */
import { Ipv4Address } from "./address.ts";
import { readU16, readU32, writeU16, writeU32 } from "./bytes.ts";
import { finishChecksum, ipv4PseudoHeaderSum, sumBytes } from "./checksum.ts";
import { ETHERNET_HEADER_LENGTH, EtherType } from "./ethernet.ts";
import { IpProtocol } from "./ipv4.ts";

/** Where a frame's partial checksum lies and how it is to be segmented (NetFrameMeta's write half). */
export interface OffloadRequest {
  /** From the frame's start to the transport header; 0: the checksum is complete. */
  readonly checksumStart: number;
  /** From the transport header to its checksum field. */
  readonly checksumOffset: number;
  /** TCP data bytes per segment; 0: one frame. */
  readonly segmentSize: number;
}

const TCP_FLAG_FIN = 0x01;
const TCP_FLAG_PSH = 0x08;
const TCP_FLAG_CWR = 0x80;

/**
 * Finishes the checksum of `frame` in place: the Internet checksum over frame[checksumStart..]
 * (whose checksum field holds the pseudo-header sum) goes into the field. Returns false, leaving
 * the frame alone, when the offsets do not fit it.
 */
export function finishPartialChecksum(frame: Uint8Array, checksumStart: number, checksumOffset: number): boolean {
  const field = checksumStart + checksumOffset;
  if (checksumStart <= 0 || field + 2 > frame.length) return false;
  writeU16(frame, field, finishChecksum(sumBytes(frame, checksumStart)));
  return true;
}

/**
 * The frames a device would put on the wire for `frame` under `request`: the frame itself with its
 * checksum finished, or the segments of a TCP/IPv4 frame. Returns undefined for a request that
 * does not describe the frame (not untagged TCP/IPv4, offsets outside it): a device refuses those.
 * Never modifies `frame`.
 */
export function applyOffloads(frame: Uint8Array, request: OffloadRequest): Uint8Array[] | undefined {
  if (request.segmentSize === 0) {
    const copy = frame.slice();
    if (request.checksumStart > 0 && !finishPartialChecksum(copy, request.checksumStart, request.checksumOffset)) return undefined;
    return [copy];
  }
  const ip = ETHERNET_HEADER_LENGTH;
  if (frame.length < ip + 20 || readU16(frame, 12) !== EtherType.Ipv4 || (frame[ip] ?? 0) >>> 4 !== 4 || frame[ip + 9] !== IpProtocol.Tcp) return undefined;
  const ipHeaderLength = ((frame[ip] ?? 0) & 0x0f) * 4;
  const tcp = ip + ipHeaderLength;
  if (ipHeaderLength < 20 || request.checksumStart !== tcp || tcp + 20 > frame.length) return undefined;
  const tcpHeaderLength = ((frame[tcp + 12] ?? 0) >>> 4) * 4;
  const dataStart = tcp + tcpHeaderLength;
  if (tcpHeaderLength < 20 || dataStart > frame.length) return undefined;
  const src = Ipv4Address.read(frame, ip + 12);
  const dst = Ipv4Address.read(frame, ip + 16);
  const firstSeq = readU32(frame, tcp + 4);
  const flags = frame[tcp + 13] ?? 0;
  const firstId = readU16(frame, ip + 4);
  const dataLength = frame.length - dataStart;
  const segments: Uint8Array[] = [];
  for (let offset = 0, index = 0; offset < dataLength || (dataLength === 0 && index === 0); offset += request.segmentSize, index++) {
    const length = Math.min(request.segmentSize, dataLength - offset);
    const last = offset + length >= dataLength;
    const segment = new Uint8Array(dataStart + length);
    segment.set(frame.subarray(0, dataStart));
    segment.set(frame.subarray(dataStart + offset, dataStart + offset + length), dataStart);
    writeU16(segment, ip + 2, ipHeaderLength + tcpHeaderLength + length);
    writeU16(segment, ip + 4, (firstId + index) & 0xffff);
    writeU16(segment, ip + 10, 0);
    writeU16(segment, ip + 10, finishChecksum(sumBytes(segment, ip, tcp)));
    writeU32(segment, tcp + 4, (firstSeq + offset) >>> 0);
    let segmentFlags = flags;
    if (index > 0) segmentFlags &= ~TCP_FLAG_CWR;
    if (!last) segmentFlags &= ~(TCP_FLAG_FIN | TCP_FLAG_PSH);
    segment[tcp + 13] = segmentFlags;
    const tcpLength = tcpHeaderLength + length;
    writeU16(segment, tcp + 16, 0);
    writeU16(segment, tcp + 16, finishChecksum(sumBytes(segment, tcp, segment.length, ipv4PseudoHeaderSum(src, dst, IpProtocol.Tcp, tcpLength))));
    segments.push(segment);
    if (last) break;
  }
  return segments;
}

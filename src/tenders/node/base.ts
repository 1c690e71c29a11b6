/**
 * The base ABI as the node tender serves it. Every call checks its arguments as if the image were
 * hostile (it will be, under `spt`): wrong types, unknown handles and out-of-range offsets return
 * EINVAL and never reach the host. The node tender is no isolation boundary (the image can reach
 * `process` through the Function constructor), but honest appliances have bugs too, so no check
 * trusts what the image's objects say about themselves: byte arguments are re-viewed from their
 * internal slots (hostBytes) and frame metadata is copied once, before anything is checked.
 */
import { randomFillSync } from "node:crypto";
import { ABI_VERSION, ETHERNET_HEADER_ROOM, MAX_NET_DEVICES, Status, type Base, type BlockInfo, type NetFrameMeta, type NetInfo } from "../../abi/base.ts";
import { applyOffloads } from "../../lib/wire/segmentation.ts";
import { consoleFd, hostBytes, inputWaiter, isHandle, MAX_ENTROPY, writeConsole, type HostBaseOptions } from "../common/base.ts";
import { BLOCK_SIZE } from "../common/block.ts";
import { readFrame, type HostBlock } from "../common/devices.ts";
import type { PcapWriter } from "../common/pcap.ts";

/**
 * A host copy of the NetFrameMeta the image passed, or undefined unless it is an object whose
 * fields are small non-negative integers. Each field is read once: a getter on the image's object
 * could otherwise pass the checks with one value and reach the TAP's header with another.
 */
function copyFrameMeta(given: unknown): NetFrameMeta | undefined {
  if (!isObject(given)) return undefined;
  // Plain property accesses, not Reflect.get/set: on an object of the image's realm Reflect's
  // generic path took ~130 ns for the four properties where inline caches take ~5 (measured,
  // Node 20), and this is on every frame read and written.
  const checksumStart = given.checksumStart;
  const checksumOffset = given.checksumOffset;
  const segmentSize = given.segmentSize;
  if (!isUint16(checksumStart) || !isUint16(checksumOffset) || !isUint16(segmentSize)) return undefined;
  return { checksumTrusted: false, checksumStart, checksumOffset, segmentSize };
}

/** Hands what a read filled in back to the image's own metadata object. */
function copyFrameMetaOut(from: NetFrameMeta, to: unknown): void {
  if (!isObject(to)) return;
  // Plain stores (see copyFrameMeta for why); a frozen object or a throwing setter is the image's
  // own doing and must not escape the base call, as Reflect.set's false did not.
  try {
    to.checksumTrusted = from.checksumTrusted;
    to.checksumStart = from.checksumStart;
    to.checksumOffset = from.checksumOffset;
    to.segmentSize = from.segmentSize;
  } catch {
    // The read itself happened; the image's object just did not take the metadata.
  }
}

/** Any object, as a bag of properties to read or set by name. */
function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isUint16(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0xffff;
}

const ETHERNET_HEADER_LENGTH = 14;
const ETHERTYPE_IPV4 = 0x0800;
const IP_PROTOCOL_TCP = 6;
/** Where a TCP header keeps its checksum. */
const TCP_CHECKSUM_OFFSET = 16;

/**
 * Checks a netWrite's metadata against its frame before the host acts on it (the kernel checks
 * too, but an error here names the problem): a checksum request must lie inside the frame, a
 * segmentation request must describe an untagged TCP/IPv4 frame whose segments fit the MTU, and
 * a frame with neither must fit the MTU as any plain frame.
 */
function checkWriteMeta(frame: Uint8Array, meta: NetFrameMeta, mtu: number): number {
  const { checksumStart, checksumOffset, segmentSize } = meta;
  if (checksumStart > 0 && (checksumStart < ETHERNET_HEADER_LENGTH || checksumStart + checksumOffset + 2 > frame.length)) return Status.EINVAL;
  if (segmentSize === 0) return frame.length > mtu + ETHERNET_HEADER_ROOM ? Status.EMSGSIZE : Status.OK;
  const ipHeaderLength = ((frame[ETHERNET_HEADER_LENGTH] ?? 0) & 0x0f) * 4;
  const tcpHeaderLength = ((frame[checksumStart + 12] ?? 0) >>> 4) * 4;
  const isTcpIpv4 =
    (((frame[12] ?? 0) << 8) | (frame[13] ?? 0)) === ETHERTYPE_IPV4 &&
    (frame[ETHERNET_HEADER_LENGTH] ?? 0) >>> 4 === 4 &&
    frame[ETHERNET_HEADER_LENGTH + 9] === IP_PROTOCOL_TCP &&
    checksumStart === ETHERNET_HEADER_LENGTH + ipHeaderLength &&
    checksumOffset === TCP_CHECKSUM_OFFSET &&
    tcpHeaderLength >= 20 &&
    checksumStart + tcpHeaderLength <= frame.length;
  if (!isTcpIpv4) return Status.EINVAL;
  return ipHeaderLength + tcpHeaderLength + segmentSize > mtu ? Status.EMSGSIZE : Status.OK;
}

/**
 * Records a frame in a capture as the wire carries it: with an offloaded checksum finished, and a
 * segmentation-offload frame as its segments (else tshark would flag every checksum as wrong).
 */
function recordFrame(pcap: PcapWriter, frame: Uint8Array, meta: NetFrameMeta | undefined): void {
  if (meta === undefined || (meta.checksumStart === 0 && meta.segmentSize === 0)) {
    pcap.record(frame);
    return;
  }
  // A coalesced frame the host vouched for (DATA_VALID) names no checksum start: it is the TCP
  // header's, which segmentation needs (each segment's checksum is computed afresh).
  const checksumStart = meta.checksumStart > 0 ? meta.checksumStart : ETHERNET_HEADER_LENGTH + ((frame[ETHERNET_HEADER_LENGTH] ?? 0) & 0x0f) * 4;
  const request = meta.checksumStart > 0 ? meta : { checksumStart, checksumOffset: TCP_CHECKSUM_OFFSET, segmentSize: meta.segmentSize };
  const frames = applyOffloads(frame, request) ?? [frame];
  for (const wireFrame of frames) pcap.record(wireFrame);
}

export function createNodeBase(options: HostBaseOptions): Base {
  const { nets, blocks } = options;
  if (nets.length > MAX_NET_DEVICES) throw new Error(`at most ${MAX_NET_DEVICES} net devices are supported`);
  // Only acquired devices are polled: input on a device the image never asked for must not wake it.
  const pollFds = new Int32Array(nets.length).fill(-1);
  /** What netAcquire returned for each handle, so that a second acquisition returns the same. */
  const acquired: (NetInfo | undefined)[] = [];
  /** For each handle with offloads on, the largest frame (see NetOffloads.maxFrame). */
  const offloadMaxFrame: number[] = [];
  const captures = nets.flatMap((net) => (net.pcap === undefined ? [] : [net.pcap]));
  const startNs = process.hrtime.bigint();
  // The section is lent without a copy: its ArrayBuffer is the image file's, which is the image's
  // own content. A small file may have been read into Node's shared buffer pool, though, whose
  // other bytes are the host's: then (and only then, at most a pool's size) the section is copied.
  const section = options.assets;
  const assets = section === undefined || section.buffer.byteLength > Buffer.poolSize ? section : new Uint8Array(section);
  let yielding = false;

  const monotonic = (): number => Number(process.hrtime.bigint() - startNs);

  const waitForInput = inputWaiter({ poll: options.poll, maxWaitNs: options.maxWaitNs, pollFds, captures, monotonic });

  const positions = options.positions;
  const base: Base = {
    abiVersion: ABI_VERSION,
    cmdline: options.cmdline,

    consoleWrite(given, stream) {
      const bytes = hostBytes(given);
      if (bytes === undefined) return Status.EINVAL;
      const fd = consoleFd(stream);
      if (fd === undefined) return Status.EINVAL;
      return writeConsole(fd, positions === undefined ? bytes : positions.rewriteBytes(bytes));
    },

    clockMonotonic: monotonic,
    // Date.now follows changes to the host's clock (the ABI says wall time may jump), at 1 ms precision.
    clockWall: () => Date.now() * 1e6,

    yield(deadline) {
      if (typeof deadline !== "number" || Number.isNaN(deadline)) return Promise.resolve(Status.EINVAL);
      if (yielding) return Promise.resolve(Status.EINVAL);
      yielding = true;
      return new Promise<number>((resolve) => {
        waitForInput(deadline, (ready) => {
          yielding = false;
          resolve(ready);
        });
      });
    },

    netAcquire(name, acquireOptions) {
      if (typeof name !== "string") return Status.EINVAL;
      const handle = nets.findIndex((net) => net.name === name);
      const net = nets[handle];
      if (net === undefined) return Status.ENODEV;
      const known = acquired[handle];
      if (known !== undefined) return known;
      pollFds[handle] = net.backend.fd;
      // Offloads only when asked for: an image that does not know them must never see a
      // coalesced frame or a partial checksum. Read defensively: the options come from the image.
      const wantsOffloads = typeof acquireOptions === "object" && acquireOptions !== null && Reflect.get(acquireOptions, "offloads") === true;
      const maxFrame = wantsOffloads && net.backend.offloads !== undefined ? net.backend.offloads.enable() : 0;
      if (maxFrame > 0) offloadMaxFrame[handle] = maxFrame;
      const info: NetInfo = maxFrame > 0 ? { handle, mac: net.mac.slice(), mtu: net.backend.mtu, offloads: { maxFrame } } : { handle, mac: net.mac.slice(), mtu: net.backend.mtu };
      acquired[handle] = info;
      return info;
    },

    netRead(handle, given, givenMeta) {
      const buffer = hostBytes(given);
      if (!isHandle(handle, nets.length) || buffer === undefined) return Status.EINVAL;
      const net = nets[handle];
      if (net === undefined) return Status.EINVAL;
      const maxFrame = offloadMaxFrame[handle] ?? 0;
      const offloads = maxFrame > 0 ? net.backend.offloads : undefined;
      const meta = offloads !== undefined ? copyFrameMeta(givenMeta) : undefined;
      if (offloads !== undefined ? buffer.length < maxFrame || meta === undefined : buffer.length < net.backend.mtu + ETHERNET_HEADER_ROOM) return Status.EINVAL;
      let n = readFrame(net, () => (offloads !== undefined && meta !== undefined ? offloads.read(buffer, meta) : net.backend.read(buffer)), options);
      if (meta !== undefined && n > 0) copyFrameMetaOut(meta, givenMeta);
      if (n <= 0) return n;
      // Only a coalesced frame may exceed the MTU: cut any other as a TAP without offloads cuts it
      // (the image then sees a truncated datagram, counted as malformed, not a jumbo frame).
      if (offloads !== undefined && meta !== undefined && meta.segmentSize === 0 && n > net.backend.mtu + ETHERNET_HEADER_ROOM) n = net.backend.mtu + ETHERNET_HEADER_ROOM;
      if (net.pcap !== undefined) recordFrame(net.pcap, buffer.subarray(0, n), offloads !== undefined ? meta : undefined);
      return n;
    },

    netWrite(handle, given, givenMeta) {
      const frame = hostBytes(given);
      if (!isHandle(handle, nets.length) || frame === undefined) return Status.EINVAL;
      const net = nets[handle];
      if (net === undefined || frame.length < 14) return Status.EINVAL;
      const maxFrame = offloadMaxFrame[handle] ?? 0;
      const offloads = maxFrame > 0 ? net.backend.offloads : undefined;
      const meta = offloads !== undefined ? copyFrameMeta(givenMeta) : undefined;
      let n: number;
      if (offloads !== undefined) {
        if (meta === undefined) return Status.EINVAL;
        if (frame.length > maxFrame) return Status.EMSGSIZE;
        const problem = checkWriteMeta(frame, meta, net.backend.mtu);
        if (problem !== Status.OK) return problem;
        n = offloads.write(frame, meta);
      } else {
        if (frame.length > net.backend.mtu + ETHERNET_HEADER_ROOM) return Status.EMSGSIZE;
        n = net.backend.write(frame);
      }
      if (n !== frame.length) return Status.EIO;
      if (net.pcap !== undefined) recordFrame(net.pcap, frame, offloads !== undefined ? meta : undefined);
      return Status.OK;
    },

    blockAcquire(name) {
      if (typeof name !== "string") return Status.EINVAL;
      const handle = blocks.findIndex((block) => block.name === name);
      const block = blocks[handle];
      if (block === undefined) return Status.ENODEV;
      const info: BlockInfo = { handle, capacity: block.device.capacity, blockSize: BLOCK_SIZE };
      return info;
    },

    blockRead(handle, offset, given) {
      const buffer = hostBytes(given);
      const block = checkBlockRange(handle, offset, buffer);
      if (block === undefined || buffer === undefined || typeof offset !== "number") return Status.EINVAL;
      try {
        block.device.read(offset, buffer);
        return Status.OK;
      } catch (error) {
        options.warn(`block device '${block.name}': read at ${offset} failed: ${String(error)}`);
        return Status.EIO;
      }
    },

    blockWrite(handle, offset, given) {
      const data = hostBytes(given);
      const block = checkBlockRange(handle, offset, data);
      if (block === undefined || data === undefined || typeof offset !== "number") return Status.EINVAL;
      try {
        block.device.write(offset, data);
        return Status.OK;
      } catch (error) {
        options.warn(`block device '${block.name}': write at ${offset} failed: ${String(error)}`);
        return Status.EIO;
      }
    },

    entropy(given) {
      const buffer = hostBytes(given);
      if (buffer === undefined || buffer.length > MAX_ENTROPY) return Status.EINVAL;
      randomFillSync(buffer);
      return Status.OK;
    },

    assets() {
      return assets;
    },

    exit(code) {
      return options.onExit(typeof code === "number" && Number.isInteger(code) && code >= 0 && code <= 255 ? code : 255);
    },

    abort(reason) {
      return options.onAbort(typeof reason === "string" ? reason : "abort called without a reason");
    },
  };

  /** The block device for a transfer of `buffer` (a host view: its length is the real one) at `offset`, if the ABI allows it. */
  function checkBlockRange(handle: unknown, offset: unknown, buffer: Uint8Array | undefined): HostBlock | undefined {
    if (!isHandle(handle, blocks.length) || buffer === undefined) return undefined;
    const block = blocks[handle];
    if (block === undefined || typeof offset !== "number" || !Number.isInteger(offset) || offset < 0) return undefined;
    if (offset % BLOCK_SIZE !== 0 || buffer.length % BLOCK_SIZE !== 0 || buffer.length === 0) return undefined;
    if (offset + buffer.length > block.device.capacity) return undefined;
    return block;
  }

  return Object.freeze(base);
}

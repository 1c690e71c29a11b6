/**
 * The node tender's base ABI with offloads (docs/abi.md, "Offloads"), over a fake backend: granted
 * only when asked for, and every netRead/netWrite argument checked as if the image were hostile.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Status, type Base, type NetFrameMeta, type NetInfo } from "../../src/abi/base.ts";
import type { HostNetBackend } from "../../src/tenders/common/devices.ts";
import { DEFAULT_PCAP_MAX_BYTES, PcapWriter } from "../../src/tenders/common/pcap.ts";
import { testNodeBase } from "../helpers/node-base.ts";
import { Ipv4Address, MacAddress } from "atoll/wire/address";
import { ETHERNET_HEADER_LENGTH, EtherType, EthernetRepr } from "../../src/lib/wire/ethernet.ts";
import { IPV4_MIN_HEADER_LENGTH, IpProtocol, Ipv4Repr } from "../../src/lib/wire/ipv4.ts";
import { TcpFlag, TcpOptions, emitTcpHeader } from "../../src/lib/wire/tcp.ts";

const MTU = 1500;
const MAX_FRAME = 65535 + 18;
const TCP_START = ETHERNET_HEADER_LENGTH + IPV4_MIN_HEADER_LENGTH;

interface FakeBackend extends HostNetBackend {
  readonly enabled: number;
  readonly written: { frame: Uint8Array; meta: NetFrameMeta | undefined }[];
  /** The next frame a read returns, with the metadata the host gives it. */
  next: { frame: Uint8Array; meta: NetFrameMeta } | undefined;
}

function fakeBackend(withOffloads: boolean): FakeBackend {
  const backend: FakeBackend = {
    fd: -1,
    mtu: MTU,
    enabled: 0,
    written: [],
    next: undefined,
    read: () => 0,
    write(frame) {
      backend.written.push({ frame: frame.slice(), meta: undefined });
      return frame.length;
    },
    close: () => undefined,
    offloads: withOffloads
      ? {
          enable() {
            Reflect.set(backend, "enabled", backend.enabled + 1);
            return MAX_FRAME;
          },
          read(buffer, meta) {
            const next = backend.next;
            if (next === undefined) return 0;
            buffer.set(next.frame);
            Object.assign(meta, next.meta);
            return next.frame.length;
          },
          write(frame, meta) {
            backend.written.push({ frame: frame.slice(), meta: { ...meta } });
            return frame.length;
          },
        }
      : undefined,
  };
  return backend;
}

function baseWith(backend: HostNetBackend): Base {
  return testNodeBase({ nets: [{ name: "service", mac: Uint8Array.of(2, 0, 0, 0, 0, 1), backend }] });
}

/** A TCP/IPv4 frame with `dataLength` bytes of data and a partial checksum, as the stack emits it for TSO. */
function tcpFrame(dataLength: number): Uint8Array {
  const options = new TcpOptions();
  const tcpLength = 20 + dataLength;
  const frame = new Uint8Array(TCP_START + tcpLength);
  const src = Ipv4Address.fromOctets(198, 18, 0, 2);
  const dst = Ipv4Address.fromOctets(198, 18, 0, 1);
  EthernetRepr.emit({ dst: MacAddress.fromOctets(2, 0, 0, 0, 0, 9), src: MacAddress.fromOctets(2, 0, 0, 0, 0, 1), etherType: EtherType.Ipv4 }, frame);
  Ipv4Repr.emit(
    { src, dst, protocol: IpProtocol.Tcp, ttl: 64, dscp: 0, ecn: 0, identification: 1, dontFragment: true, moreFragments: false, fragmentOffset: 0, payloadLength: tcpLength },
    frame.subarray(ETHERNET_HEADER_LENGTH),
  );
  emitTcpHeader({ srcPort: 80, dstPort: 40000, seq: 1, ack: 1, flags: TcpFlag.Ack, window: 1000, urgentPointer: 0 }, options, frame.subarray(TCP_START), dataLength, src, dst, true);
  return frame;
}

function meta(fields: Partial<NetFrameMeta> = {}): NetFrameMeta {
  return { checksumTrusted: false, checksumStart: 0, checksumOffset: 0, segmentSize: 0, ...fields };
}

function acquire(base: Base, options?: { offloads?: boolean }): NetInfo {
  const info = base.netAcquire("service", options);
  assert.ok(typeof info !== "number", `netAcquire: ${String(info)}`);
  return info;
}

test("offloads are granted only when asked for, once, and acquiring again returns the same NetInfo", () => {
  const plain = fakeBackend(true);
  const plainBase = baseWith(plain);
  const first = acquire(plainBase);
  assert.equal(first.offloads, undefined);
  assert.equal(plain.enabled, 0, "TUNSETOFFLOAD never issued for an image that did not ask");
  assert.equal(acquire(plainBase, { offloads: true }), first, "the first acquisition decides");

  const offloading = fakeBackend(true);
  const base = baseWith(offloading);
  const info = acquire(base, { offloads: true });
  assert.deepEqual(info.offloads, { maxFrame: MAX_FRAME });
  assert.equal(acquire(base, { offloads: true }), info);
  assert.equal(offloading.enabled, 1);

  assert.equal(acquire(baseWith(fakeBackend(false)), { offloads: true }).offloads, undefined, "a backend without offloads grants none");
});

test("netRead with offloads: metadata required, a large buffer required, a plain frame above the MTU cut", () => {
  const backend = fakeBackend(true);
  const base = baseWith(backend);
  acquire(base, { offloads: true });
  const buffer = new Uint8Array(MAX_FRAME);
  assert.equal(base.netRead(0, buffer), Status.EINVAL, "no metadata");
  assert.equal(base.netRead(0, new Uint8Array(MTU + 18), meta()), Status.EINVAL, "a buffer for plain frames only");
  assert.equal(base.netRead(0, buffer, { ...meta(), segmentSize: -1 }), Status.EINVAL, "metadata with a bad field");
  assert.equal(base.netRead(0, buffer, meta()), Status.AGAIN);

  const coalesced = tcpFrame(20_000);
  backend.next = { frame: coalesced, meta: meta({ checksumTrusted: true, checksumStart: TCP_START, checksumOffset: 16, segmentSize: 1448 }) };
  const received = meta();
  assert.equal(base.netRead(0, buffer, received), coalesced.length);
  assert.deepEqual(received, { checksumTrusted: true, checksumStart: TCP_START, checksumOffset: 16, segmentSize: 1448 });

  backend.next = { frame: new Uint8Array(9014), meta: meta() };
  assert.equal(base.netRead(0, buffer, meta()), MTU + 18, "a jumbo frame that is not a coalesced segment is cut, as a TAP without offloads cuts it");
});

test("netWrite with offloads: the metadata must describe the frame", () => {
  const backend = fakeBackend(true);
  const base = baseWith(backend);
  acquire(base, { offloads: true });
  const segmented = tcpFrame(10_000);
  const tso = meta({ checksumStart: TCP_START, checksumOffset: 16, segmentSize: 1460 });

  assert.equal(base.netWrite(0, segmented), Status.EINVAL, "no metadata");
  assert.equal(base.netWrite(0, segmented, meta()), Status.EMSGSIZE, "too large without segmentation");
  assert.equal(base.netWrite(0, segmented, { ...tso, checksumStart: 20 }), Status.EINVAL, "checksum not at the TCP header");
  assert.equal(base.netWrite(0, segmented, { ...tso, checksumOffset: 6 }), Status.EINVAL, "not TCP's checksum field");
  assert.equal(base.netWrite(0, segmented, { ...tso, segmentSize: 1461 }), Status.EMSGSIZE, "segments above the MTU");
  assert.equal(base.netWrite(0, tcpFrame(100), { ...tso, checksumStart: 200 }), Status.EINVAL, "checksum beyond the frame");
  const udp = segmented.slice();
  udp[ETHERNET_HEADER_LENGTH + 9] = IpProtocol.Udp;
  assert.equal(base.netWrite(0, udp, tso), Status.EINVAL, "segmentation of a non-TCP frame");
  assert.equal(base.netWrite(0, new Uint8Array(MAX_FRAME + 1), tso), Status.EMSGSIZE);
  assert.equal(backend.written.length, 0, "nothing reached the host");

  assert.equal(base.netWrite(0, segmented, tso), Status.OK);
  assert.equal(base.netWrite(0, tcpFrame(100), meta({ checksumStart: TCP_START, checksumOffset: 16 })), Status.OK);
  assert.deepEqual(
    backend.written.map((written) => [written.frame.length, written.meta?.segmentSize]),
    [
      [segmented.length, 1460],
      [TCP_START + 120, 0],
    ],
  );
});

test("without offloads, netRead and netWrite move plain frames and ignore metadata", () => {
  const backend = fakeBackend(true);
  const base = baseWith(backend);
  acquire(base);
  assert.equal(base.netWrite(0, tcpFrame(100), meta({ segmentSize: 1460 })), Status.OK);
  assert.equal(backend.written[0]?.meta, undefined, "the plain write path");
  assert.equal(base.netWrite(0, tcpFrame(2000)), Status.EMSGSIZE);
  assert.equal(base.netRead(0, new Uint8Array(MTU + 18)), Status.AGAIN);
});

test("captures hold wire frames: coalesced and segmentation-offload frames as their segments", () => {
  const dir = mkdtempSync(join(tmpdir(), "atoll-pcap-offload-"));
  try {
    const path = join(dir, "service.pcap");
    const pcap = new PcapWriter("service", { path, maxBytes: DEFAULT_PCAP_MAX_BYTES, files: 1 });
    const backend = fakeBackend(true);
    const base = testNodeBase({ nets: [{ name: "service", mac: Uint8Array.of(2, 0, 0, 0, 0, 1), backend, pcap }] });
    acquire(base, { offloads: true });
    // Received: coalesced by the host, once with a partial checksum, once vouched for (no start named).
    backend.next = { frame: tcpFrame(4000), meta: meta({ checksumTrusted: true, checksumStart: TCP_START, checksumOffset: 16, segmentSize: 1448 }) };
    assert.equal(base.netRead(0, new Uint8Array(MAX_FRAME), meta()), TCP_START + 4020);
    backend.next = { frame: tcpFrame(3000), meta: meta({ checksumTrusted: true, segmentSize: 1448 }) };
    assert.equal(base.netRead(0, new Uint8Array(MAX_FRAME), meta()), TCP_START + 3020);
    // Sent: cut at 1000 bytes of data.
    assert.equal(base.netWrite(0, tcpFrame(2500), meta({ checksumStart: TCP_START, checksumOffset: 16, segmentSize: 1000 })), Status.OK);
    pcap.close();
    const file = readFileSync(path);
    const lengths: number[] = [];
    for (let offset = 24; offset + 16 <= file.length; offset += 16 + file.readUInt32LE(offset + 8)) lengths.push(file.readUInt32LE(offset + 8));
    const segment = (data: number): number => TCP_START + 20 + data;
    assert.deepEqual(lengths, [segment(1448), segment(1448), segment(1104), segment(1448), segment(1448), segment(104), segment(1000), segment(1000), segment(500)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Software offloads (src/lib/wire/segmentation.ts): cutting a TCP segmentation-offload frame and
 * finishing partial checksums must give frames that parse with valid checksums, carry the data in
 * order, and follow Linux's GSO rules for flags and IP identification.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Ipv4Address, MacAddress } from "atoll/wire/address";
import { ETHERNET_HEADER_LENGTH, EtherType, EthernetRepr } from "../../src/lib/wire/ethernet.ts";
import { WireError } from "../../src/lib/wire/error.ts";
import { IPV4_MIN_HEADER_LENGTH, IpProtocol, Ipv4Repr } from "../../src/lib/wire/ipv4.ts";
import { applyOffloads } from "../../src/lib/wire/segmentation.ts";
import { TcpFlag, TcpOptions, TcpRepr, emitTcpHeader } from "../../src/lib/wire/tcp.ts";

const SRC = Ipv4Address.fromOctets(198, 18, 0, 2);
const DST = Ipv4Address.fromOctets(198, 18, 0, 1);
const TCP_START = ETHERNET_HEADER_LENGTH + IPV4_MIN_HEADER_LENGTH;

interface Offloaded {
  frame: Uint8Array;
  data: Uint8Array;
  seq: number;
  flags: number;
  identification: number;
}

/** A TCP/IPv4 frame as the stack emits it for the link to finish: the checksum field holds the pseudo-header sum. */
function offloadedFrame(data: Uint8Array, seq: number, flags: number, identification: number, timestamps: boolean): Offloaded {
  const options = new TcpOptions();
  if (timestamps) options.setTimestamps(1234, 5678);
  const tcpLength = 20 + options.length + data.length;
  const frame = new Uint8Array(TCP_START + tcpLength);
  EthernetRepr.emit({ dst: MacAddress.fromOctets(2, 0, 0, 0, 0, 1), src: MacAddress.fromOctets(2, 0, 0, 0, 0, 2), etherType: EtherType.Ipv4 }, frame);
  Ipv4Repr.emit(
    { src: SRC, dst: DST, protocol: IpProtocol.Tcp, ttl: 64, dscp: 0, ecn: 0, identification, dontFragment: true, moreFragments: false, fragmentOffset: 0, payloadLength: tcpLength },
    frame.subarray(ETHERNET_HEADER_LENGTH),
  );
  const tcp = frame.subarray(TCP_START);
  tcp.set(data, 20 + options.length);
  emitTcpHeader({ srcPort: 7, dstPort: 40000, seq, ack: 99, flags, window: 1000, urgentPointer: 0 }, options, tcp, data.length, SRC, DST, true);
  return { frame, data, seq, flags, identification };
}

function parseSegment(frame: Uint8Array): { ip: Ipv4Repr; tcp: TcpRepr } {
  const ip = Ipv4Repr.parse(frame.subarray(ETHERNET_HEADER_LENGTH));
  assert.ok(!(ip instanceof WireError), `ipv4: ${String(ip)}`);
  const tcp = TcpRepr.parse(frame.subarray(TCP_START, ETHERNET_HEADER_LENGTH + IPV4_MIN_HEADER_LENGTH + ip.payloadLength), ip.src, ip.dst);
  assert.ok(!(tcp instanceof WireError), `tcp: ${String(tcp)}`);
  return { ip, tcp };
}

describe("software offloads", () => {
  it("cuts any segmentation-offload frame into valid segments that carry its data in order (Linux's GSO rules)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 20_000 }),
        fc.integer({ min: 1, max: 1460 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        (data, segmentSize, seq, identification, withFin, withCwr, timestamps) => {
          const flags = TcpFlag.Ack | TcpFlag.Psh | (withFin ? TcpFlag.Fin : 0) | (withCwr ? TcpFlag.Cwr : 0);
          const input = offloadedFrame(data, seq, flags, identification, timestamps);
          const before = input.frame.slice();
          const segments = applyOffloads(input.frame, { checksumStart: TCP_START, checksumOffset: 16, segmentSize });
          assert.ok(segments !== undefined);
          assert.deepEqual(input.frame, before, "the input is left alone");
          assert.equal(segments.length, Math.max(1, Math.ceil(data.length / segmentSize)));
          let offset = 0;
          segments.forEach((segment, index) => {
            const { ip, tcp } = parseSegment(segment);
            const last = index === segments.length - 1;
            assert.equal(ip.identification, (identification + index) & 0xffff);
            assert.equal(tcp.seq, (seq + offset) >>> 0);
            assert.ok(tcp.payload.length <= segmentSize);
            assert.deepEqual(tcp.payload, data.subarray(offset, offset + tcp.payload.length));
            assert.equal((tcp.flags & TcpFlag.Fin) !== 0, withFin && last);
            assert.equal((tcp.flags & TcpFlag.Psh) !== 0, last);
            assert.equal((tcp.flags & TcpFlag.Cwr) !== 0, withCwr && index === 0);
            assert.equal(tcp.options.timestamps?.value, timestamps ? 1234 : undefined);
            offset += tcp.payload.length;
          });
          assert.equal(offset, data.length);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("finishes a partial checksum without cutting when no segment size is asked", () => {
    const input = offloadedFrame(Uint8Array.from({ length: 999 }, (_, i) => i & 0xff), 5, TcpFlag.Ack, 1, true);
    const frames = applyOffloads(input.frame, { checksumStart: TCP_START, checksumOffset: 16, segmentSize: 0 });
    assert.ok(frames !== undefined && frames.length === 1 && frames[0] !== undefined);
    assert.equal(parseSegment(frames[0]).tcp.payload.length, 999);
  });

  it("refuses requests that do not describe the frame, and never throws on any bytes", () => {
    const input = offloadedFrame(new Uint8Array(3000), 5, TcpFlag.Ack, 1, false);
    assert.equal(applyOffloads(input.frame, { checksumStart: TCP_START + 2, checksumOffset: 16, segmentSize: 1000 }), undefined);
    assert.equal(applyOffloads(input.frame, { checksumStart: input.frame.length, checksumOffset: 16, segmentSize: 0 }), undefined);
    const udp = input.frame.slice();
    udp[ETHERNET_HEADER_LENGTH + 9] = IpProtocol.Udp;
    assert.equal(applyOffloads(udp, { checksumStart: TCP_START, checksumOffset: 6, segmentSize: 1000 }), undefined);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(300), fc.nat(40), fc.nat(2000), (bytes, checksumStart, checksumOffset, segmentSize) => {
        const result = applyOffloads(bytes, { checksumStart, checksumOffset, segmentSize });
        assert.ok(result === undefined || Array.isArray(result));
      }),
    );
  });
});

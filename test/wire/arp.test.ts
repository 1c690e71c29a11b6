import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ArpPacket, ArpRepr, EthernetFrame, Ipv4Address, MacAddress } from "atoll/wire";
import { ARP_REQUEST_FRAME } from "./fixtures/captures.ts";
import { assertParsed, assertReprOrWireError, assertWireError, guarded, hex, ipv4Address, macAddress, mutatedInputs } from "./fixtures/support.ts";

const arpRepr: fc.Arbitrary<ArpRepr> = fc.record(
  {
    operation: fc.constantFrom("request" as const, "reply" as const),
    senderHardwareAddress: macAddress,
    senderProtocolAddress: ipv4Address,
    targetHardwareAddress: macAddress,
    targetProtocolAddress: ipv4Address,
  },
  { noNullPrototype: true },
);

function emitted(repr: ArpRepr): Uint8Array {
  const bytes = new Uint8Array(ArpRepr.bufferLength(repr));
  ArpRepr.emit(repr, bytes);
  return bytes;
}

function arpPayload(frameBytes: Uint8Array): Uint8Array {
  const frame = EthernetFrame.check(frameBytes);
  assertParsed(frame);
  return frame.payload;
}

describe("arp", () => {
  it("parses a request captured from Linux", () => {
    assert.deepEqual(ArpRepr.parse(arpPayload(ARP_REQUEST_FRAME)), {
      operation: "request",
      senderHardwareAddress: MacAddress.parse("02:00:00:00:00:01"),
      senderProtocolAddress: Ipv4Address.parse("198.18.0.1"),
      targetHardwareAddress: MacAddress.UNSPECIFIED,
      targetProtocolAddress: Ipv4Address.parse("198.18.0.3"),
    });
  });

  it("ignores the padding of a minimum-size frame", () => {
    const padded = new Uint8Array(60);
    padded.set(ARP_REQUEST_FRAME);
    padded.fill(0xee, ARP_REQUEST_FRAME.length);
    const packet = ArpPacket.check(arpPayload(padded));
    assertParsed(packet);
    assert.equal(packet.bytes.length, 28);
    assert.deepEqual(ArpRepr.parse(packet), ArpRepr.parse(arpPayload(ARP_REQUEST_FRAME)));
  });

  it("emits the captured request byte for byte", () => {
    const repr = ArpRepr.parse(arpPayload(ARP_REQUEST_FRAME));
    assertParsed(repr);
    assert.deepEqual(emitted(repr), arpPayload(ARP_REQUEST_FRAME));
  });

  it("round-trips any valid repr", () => {
    fc.assert(
      fc.property(arpRepr, (repr) => {
        assert.deepEqual(ArpRepr.parse(emitted(repr)), repr);
      }),
    );
  });

  it("reports other hardware, protocols and operations as unsupported", () => {
    const request = arpPayload(ARP_REQUEST_FRAME);
    const variants: [offset: number, value: number][] = [
      [1, 6], // hardware type 6 (IEEE 802)
      [2, 0x86], // protocol type 0x86dd
      [4, 8], // hardware length 8
      [5, 16], // protocol length 16
      [7, 3], // RARP request
    ];
    for (const [offset, value] of variants) {
      const bytes = request.slice();
      bytes[offset] = value;
      assertWireError(ArpRepr.parse(bytes), "unsupported");
    }
    assertWireError(ArpRepr.parse(request.subarray(0, 27)), "truncated");
    assertWireError(ArpRepr.parse(hex("0001 0800 0604")), "truncated");
  });

  it("never throws or reads out of bounds on any input", () => {
    fc.assert(
      fc.property(mutatedInputs(arpRepr.map(emitted), 40), (bytes) => {
        assertReprOrWireError(ArpRepr.parse(guarded(bytes)));
      }),
      { numRuns: 500 },
    );
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { EtherType, EthernetFrame, EthernetRepr, MacAddress, WireError } from "atoll/wire";
import { PING_FRAME } from "./fixtures/captures.ts";
import { assertParsed, assertReprOrWireError, assertWireError, guarded, hex, macAddress, mutatedInputs, u16 } from "./fixtures/support.ts";

const ethernetRepr: fc.Arbitrary<EthernetRepr> = fc
  .record(
    {
      dst: macAddress,
      src: macAddress,
      etherType: fc.integer({ min: 0x0600, max: 0xffff }),
      vlan: fc.record(
        { id: fc.integer({ min: 0, max: 4095 }), priority: fc.integer({ min: 0, max: 7 }), dropEligible: fc.boolean() },
        { noNullPrototype: true },
      ),
    },
    { requiredKeys: ["dst", "src", "etherType"], noNullPrototype: true },
  )
  // A tag's TPID as the payload type would read back as a (stacked) tag.
  .filter((repr) => repr.etherType !== EtherType.Vlan && !(repr.vlan !== undefined && repr.etherType === EtherType.ServiceVlan));

const frameWithPayload = fc.tuple(ethernetRepr, fc.uint8Array({ maxLength: 32 })).map(([repr, payload]) => {
  const bytes = new Uint8Array(EthernetRepr.bufferLength(repr, payload.length));
  EthernetRepr.emit(repr, bytes);
  bytes.set(payload, EthernetRepr.headerLength(repr));
  return { repr, payload, bytes };
});

describe("ethernet", () => {
  it("parses a captured frame", () => {
    const frame = EthernetFrame.check(PING_FRAME);
    assertParsed(frame);
    assert.equal(MacAddress.format(frame.dst), "02:00:00:00:00:02");
    assert.equal(MacAddress.format(frame.src), "02:00:00:00:00:01");
    assert.equal(frame.etherType, EtherType.Ipv4);
    assert.equal(frame.hasVlanTag, false);
    assert.equal(frame.payload.length, PING_FRAME.length - 14);
    assert.equal(frame.payload[0], 0x45);
    assert.deepEqual(EthernetRepr.parse(PING_FRAME), { dst: frame.dst, src: frame.src, etherType: EtherType.Ipv4 });
  });

  it("parses an 802.1Q tag and finds the payload after it", () => {
    // VLAN 100, priority 5, drop eligible, carrying ARP.
    const bytes = hex("ffff ffff ffff 0200 0000 0001 8100 b064 0806 0001 0203");
    const repr = EthernetRepr.parse(bytes);
    assert.deepEqual(repr, {
      dst: MacAddress.BROADCAST,
      src: MacAddress.fromOctets(2, 0, 0, 0, 0, 1),
      etherType: EtherType.Arp,
      vlan: { id: 100, priority: 5, dropEligible: true },
    });
    const frame = EthernetFrame.check(bytes);
    assertParsed(frame);
    assert.equal(frame.headerLength, 18);
    assert.deepEqual([...frame.payload], [0x00, 0x01, 0x02, 0x03]);
  });

  it("round-trips any valid repr", () => {
    fc.assert(
      fc.property(frameWithPayload, ({ repr, payload, bytes }) => {
        assert.deepEqual(EthernetRepr.parse(bytes), repr);
        const frame = EthernetFrame.check(bytes);
        assertParsed(frame);
        assert.deepEqual(frame.payload, payload);
        assert.equal(frame.payloadEtherType, repr.etherType);
      }),
    );
  });

  it("rejects short headers, length fields and stacked tags", () => {
    assertWireError(EthernetRepr.parse(new Uint8Array(13)), "truncated");
    assertWireError(EthernetRepr.parse(hex("ffff ffff ffff 0200 0000 0001 8100 0064")), "truncated");
    assertWireError(EthernetRepr.parse(hex("ffff ffff ffff 0200 0000 0001 0040 aaaa")), "unsupported");
    assertWireError(EthernetRepr.parse(hex("ffff ffff ffff 0200 0000 0001 8100 0064 8100 0065 0800")), "unsupported");
  });

  it("never throws or reads out of bounds on any input", () => {
    fc.assert(
      fc.property(mutatedInputs(frameWithPayload.map(({ bytes }) => bytes)), (bytes) => {
        const result = EthernetRepr.parse(guarded(bytes));
        assertReprOrWireError(result);
        if (!(result instanceof WireError)) {
          const frame = EthernetFrame.check(guarded(bytes));
          assertParsed(frame);
          assert.ok(frame.headerLength + frame.payload.length === bytes.length);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("refuses to emit into a buffer shorter than the header", () => {
    fc.assert(
      fc.property(ethernetRepr, u16, (repr, extra) => {
        const needed = EthernetRepr.headerLength(repr);
        assert.throws(() => EthernetRepr.emit(repr, new Uint8Array(needed - 1 - (extra % 4))), RangeError);
      }),
      { numRuns: 20 },
    );
  });
});

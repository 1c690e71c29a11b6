import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  DHCP_OPTIONS_OFFSET,
  DhcpOptionCode,
  DhcpPacket,
  DhcpRepr,
  Ipv4Address,
  MacAddress,
  WireError,
} from "atoll/wire";
import { DHCP_DISCOVER } from "./fixtures/captures.ts";
import {
  assertParsed,
  assertReprOrWireError,
  assertWireError,
  guarded,
  hex,
  ipv4Address,
  macAddress,
  mutatedInputs,
  u16,
  u32,
  u8,
} from "./fixtures/support.ts";

function ip(text: string): Ipv4Address {
  const address = Ipv4Address.parse(text);
  assertParsed(address);
  return address;
}

function emitted(repr: DhcpRepr): Uint8Array {
  const bytes = new Uint8Array(DhcpRepr.bufferLength(repr));
  DhcpRepr.emit(repr, bytes);
  return bytes;
}

/** Strings of bytes as code points 0..255, as the repr holds them. */
function latin1(minLength: number, maxLength: number, lowest = 0): fc.Arbitrary<string> {
  return fc.string({ unit: fc.integer({ min: lowest, max: 255 }).map((code) => String.fromCharCode(code)), minLength, maxLength });
}

const DEDICATED: ReadonlySet<number> = new Set(Object.values(DhcpOptionCode));

const dhcpRepr: fc.Arbitrary<DhcpRepr> = fc.record(
  {
    operation: fc.constantFrom("boot-request" as const, "boot-reply" as const),
    messageType: fc.constantFrom("discover", "offer", "request", "decline", "ack", "nak", "release", "inform" as const),
    transactionId: u32,
    secs: u16,
    broadcast: fc.boolean(),
    hops: u8,
    clientAddress: ipv4Address,
    yourAddress: ipv4Address,
    serverAddress: ipv4Address,
    relayAgentAddress: ipv4Address,
    clientHardwareAddress: macAddress,
    serverName: latin1(1, 64, 1), // no NUL: the field ends at the first one
    bootFileName: latin1(1, 128, 1),
    subnetMask: ipv4Address,
    routers: fc.array(ipv4Address, { minLength: 1, maxLength: 3 }),
    dnsServers: fc.array(ipv4Address, { minLength: 1, maxLength: 70 }), // 280 bytes: split in two instances
    hostname: latin1(1, 300),
    requestedAddress: ipv4Address,
    leaseTime: u32,
    serverIdentifier: ipv4Address,
    parameterRequestList: fc.array(u8, { minLength: 1, maxLength: 20 }),
    maxMessageSize: fc.integer({ min: 576, max: 0xffff }),
    renewalTime: u32,
    rebindingTime: u32,
    clientIdentifier: fc.uint8Array({ minLength: 2, maxLength: 20 }),
    otherOptions: fc.uniqueArray(
      fc.record(
        { code: fc.integer({ min: 1, max: 254 }).filter((code) => !DEDICATED.has(code)), data: fc.uint8Array({ maxLength: 300 }) },
        { noNullPrototype: true },
      ),
      { selector: (option) => option.code, minLength: 1, maxLength: 4 },
    ),
  },
  {
    requiredKeys: [
      "operation",
      "messageType",
      "transactionId",
      "secs",
      "broadcast",
      "hops",
      "clientAddress",
      "yourAddress",
      "serverAddress",
      "relayAgentAddress",
      "clientHardwareAddress",
    ],
    noNullPrototype: true,
  },
);

const DISCOVER_REPR: DhcpRepr = {
  operation: "boot-request",
  messageType: "discover",
  transactionId: 0x3d1d,
  secs: 0,
  broadcast: false,
  hops: 0,
  clientAddress: Ipv4Address.UNSPECIFIED,
  yourAddress: Ipv4Address.UNSPECIFIED,
  serverAddress: Ipv4Address.UNSPECIFIED,
  relayAgentAddress: Ipv4Address.UNSPECIFIED,
  clientHardwareAddress: MacAddress.fromOctets(0x00, 0x0b, 0x82, 0x01, 0xfc, 0x42),
  clientIdentifier: hex("01 000b8201fc42"),
  requestedAddress: Ipv4Address.UNSPECIFIED,
  parameterRequestList: [1, 3, 6, 42],
};

/** A DISCOVER's bytes with the options area replaced by `options` (no End added). */
function withOptions(options: string): Uint8Array {
  const optionBytes = hex(options);
  const bytes = new Uint8Array(DHCP_OPTIONS_OFFSET + optionBytes.length);
  bytes.set(DHCP_DISCOVER.subarray(0, DHCP_OPTIONS_OFFSET));
  bytes.set(optionBytes, DHCP_OPTIONS_OFFSET);
  return bytes;
}

describe("dhcp", () => {
  it("parses a captured DHCPDISCOVER", () => {
    assert.deepEqual(DhcpRepr.parse(DHCP_DISCOVER), DISCOVER_REPR);
  });

  it("emits that DISCOVER byte for byte, padded to 300 bytes", () => {
    const bytes = emitted(DISCOVER_REPR);
    assert.equal(bytes.length, 300);
    assert.deepEqual(bytes.subarray(0, DHCP_DISCOVER.length), DHCP_DISCOVER);
    assert.ok(bytes.subarray(DHCP_DISCOVER.length).every((byte) => byte === 0));
  });

  it("encodes the options of a typical ACK as RFC 2132 lays them out", () => {
    const repr: DhcpRepr = {
      ...DISCOVER_REPR,
      operation: "boot-reply",
      messageType: "ack",
      yourAddress: ip("192.168.0.10"),
      serverIdentifier: ip("192.168.0.1"),
      leaseTime: 3600,
      renewalTime: 1800,
      rebindingTime: 3150,
      subnetMask: ip("255.255.255.0"),
      routers: [ip("192.168.0.1")],
      dnsServers: [ip("192.168.0.1"), ip("9.9.9.9")],
      hostname: "atoll",
    };
    delete repr.clientIdentifier;
    delete repr.requestedAddress;
    delete repr.parameterRequestList;
    const bytes = emitted(repr);
    const expected = hex(`
      3501 05
      3604 c0a8 0001
      3304 0000 0e10
      3a04 0000 0708
      3b04 0000 0c4e
      0104 ffff ff00
      0304 c0a8 0001
      0608 c0a8 0001 0909 0909
      0c05 6174 6f6c 6c
      ff
    `);
    assert.deepEqual(bytes.subarray(DHCP_OPTIONS_OFFSET, DHCP_OPTIONS_OFFSET + expected.length), expected);
    assert.deepEqual(DhcpRepr.parse(bytes), repr);
    const packet = DhcpPacket.check(bytes);
    assertParsed(packet);
    assert.equal(packet.op, 2);
    assert.equal(packet.magicCookie, 0x63825363);
    assert.equal(Ipv4Address.format(packet.yourAddress), "192.168.0.10");
  });

  it("round-trips any valid repr", () => {
    fc.assert(
      fc.property(dhcpRepr, (repr) => {
        assert.deepEqual(DhcpRepr.parse(emitted(repr)), repr);
      }),
      { numRuns: 200 },
    );
  });

  it("joins split options (RFC 3396) and skips padding", () => {
    const repr = DhcpRepr.parse(withOptions("3501 02 0602 0a00 00 0606 0001 0a00 0002 ff"));
    assertParsed(repr);
    assert.deepEqual(repr.dnsServers, [ip("10.0.0.1"), ip("10.0.0.2")]);
    const noEnd = DhcpRepr.parse(withOptions("3501 02 0104 ffff ff00"));
    assertParsed(noEnd);
    assert.equal(noEnd.subnetMask, ip("255.255.255.0"));
  });

  it("stops at End, whatever follows", () => {
    const repr = DhcpRepr.parse(withOptions("3501 01 ff 0104 ffff"));
    assertParsed(repr);
    assert.equal(repr.subnetMask, undefined);
  });

  it("reports each kind of bad message", () => {
    assertWireError(DhcpRepr.parse(DHCP_DISCOVER.subarray(0, 239)), "truncated");
    const changed = (offset: number, value: number): Uint8Array => {
      const bytes = DHCP_DISCOVER.slice();
      bytes[offset] = value;
      return bytes;
    };
    assertWireError(DhcpRepr.parse(changed(0, 3)), "malformed"); // op
    assertWireError(DhcpRepr.parse(changed(1, 6)), "unsupported"); // htype IEEE 802
    assertWireError(DhcpRepr.parse(changed(2, 16)), "unsupported"); // hlen
    assertWireError(DhcpRepr.parse(changed(236, 0)), "unsupported"); // no magic cookie: BOOTP
    assertWireError(DhcpRepr.parse(withOptions("3501 01 0104 ffff")), "truncated");
    assertWireError(DhcpRepr.parse(withOptions("3501 01 01")), "truncated");
    assertWireError(DhcpRepr.parse(withOptions("0104 ffff ff00 ff")), "malformed"); // no message type
    assertWireError(DhcpRepr.parse(withOptions("3501 09 ff")), "unsupported"); // FORCERENEW
    assertWireError(DhcpRepr.parse(withOptions("3502 0101 ff")), "bad-length");
    assertWireError(DhcpRepr.parse(withOptions("3501 01 3401 03 ff")), "unsupported"); // overload
    assertWireError(DhcpRepr.parse(withOptions("3501 01 0103 ffff ff ff")), "bad-length");
    assertWireError(DhcpRepr.parse(withOptions("3501 01 0306 0a00 0001 0a00 ff")), "bad-length");
    assertWireError(DhcpRepr.parse(withOptions("3501 01 0c00 ff")), "bad-length");
    assertWireError(DhcpRepr.parse(withOptions("3501 01 3d01 01 ff")), "bad-length");
    assertWireError(DhcpRepr.parse(withOptions("3501 01 3902 01f4 ff")), "malformed"); // max size 500
    assertWireError(DhcpRepr.parse(withOptions("3501 01 3501 01 ff")), "bad-length"); // joined: 2 bytes
  });

  it("refuses to emit what would not parse back", () => {
    const bad: Partial<DhcpRepr>[] = [
      { routers: [] },
      { hostname: "" },
      { hostname: "café ☕" },
      { clientIdentifier: Uint8Array.of(1) },
      { parameterRequestList: [] },
      { maxMessageSize: 575 },
      { serverName: "x".repeat(65) },
      { otherOptions: [{ code: DhcpOptionCode.SubnetMask, data: new Uint8Array(4) }] },
      { otherOptions: [{ code: 255, data: new Uint8Array(0) }] },
    ];
    for (const change of bad) {
      assert.throws(() => emitted({ ...DISCOVER_REPR, ...change }), RangeError, JSON.stringify(change));
    }
    assert.throws(() => DhcpRepr.emit(DISCOVER_REPR, new Uint8Array(299)), RangeError);
  });

  it("never throws or reads out of bounds on any input", () => {
    const valid = fc.oneof(dhcpRepr.map(emitted), fc.constant(DHCP_DISCOVER));
    // Random option areas behind valid fixed fields reach the option parser far more often.
    const randomOptions = fc
      .uint8Array({ maxLength: 80 })
      .map((options) => withOptions(Array.from(options, (byte) => byte.toString(16).padStart(2, "0")).join("")));
    const optionMutations = valid.chain((bytes) =>
      fc.array(fc.tuple(fc.integer({ min: DHCP_OPTIONS_OFFSET, max: bytes.length - 1 }), u8), { minLength: 1, maxLength: 4 }).map((writes) => {
        const copy = bytes.slice();
        for (const [index, value] of writes) copy[index] = value;
        return copy;
      }),
    );
    fc.assert(
      fc.property(fc.oneof(mutatedInputs(valid, 300), randomOptions, optionMutations), (bytes) => {
        const result = DhcpRepr.parse(guarded(bytes));
        assertReprOrWireError(result);
        if (!(result instanceof WireError)) assert.ok(typeof result.messageType === "string");
      }),
      { numRuns: 400 },
    );
  });
});

/**
 * The PROXY protocol v2 codec (HAProxy's spec, §2.2): a known vector, round trips, stream
 * prefixes that are incomplete rather than wrong, refusals, and "parse never throws".
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Ipv4Address, PROXY_V2_FIXED_LENGTH, PROXY_V2_SIGNATURE, ProxyHeaderPacket, ProxyHeaderRepr, WireError, type ProxyHeaderRepr as Header } from "atoll/wire";

const u16 = fc.integer({ min: 0, max: 0xffff });
const address = fc.integer({ min: 0, max: 0xffff_ffff }).map((value) => Ipv4Address.fromNumber(value));

/** TCP over IPv4 from 127.0.0.1:56324 to 10.0.2.15:80, as the spec lays it out (bytes written by hand from §2.2). */
const VECTOR = Uint8Array.of(
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
  0x21, // version 2, PROXY
  0x11, // AF_INET, STREAM
  0x00, 0x0c, // 12 bytes follow
  127, 0, 0, 1, // source address
  10, 0, 2, 15, // destination address
  0xdc, 0x04, // source port 56324
  0x00, 0x50, // destination port 80
);

function inetHeader(fields: { source: [Ipv4Address, number]; destination: [Ipv4Address, number]; tlvs?: Uint8Array; command?: "local" | "proxy" }): Header {
  return {
    command: fields.command ?? "proxy",
    family: "inet",
    transport: "stream",
    source: { address: fields.source[0], port: fields.source[1] },
    destination: { address: fields.destination[0], port: fields.destination[1] },
    tlvs: fields.tlvs ?? new Uint8Array(0),
  };
}

function emitted(header: Header): Uint8Array {
  const bytes = new Uint8Array(ProxyHeaderRepr.bufferLength(header));
  ProxyHeaderRepr.emit(header, bytes);
  return bytes;
}

const ip = (text: string): Ipv4Address => {
  const parsed = Ipv4Address.parse(text);
  assert.ok(!(parsed instanceof WireError));
  return parsed;
};

const inetArbitrary: fc.Arbitrary<Header> = fc
  .record({ source: fc.tuple(address, u16), destination: fc.tuple(address, u16), tlvs: fc.uint8Array({ maxLength: 64 }), command: fc.constantFrom("local" as const, "proxy" as const) }, { noNullPrototype: true })
  .map(inetHeader);

describe("PROXY protocol v2", () => {
  it("parses the known vector, and emits exactly it", () => {
    const parsed = ProxyHeaderRepr.parse(VECTOR);
    assert.ok(!(parsed instanceof WireError) && !parsed.incomplete, String(parsed));
    assert.equal(parsed.length, 28);
    assert.deepEqual(parsed.header, inetHeader({ source: [ip("127.0.0.1"), 56324], destination: [ip("10.0.2.15"), 80] }));
    assert.deepEqual(emitted(parsed.header), VECTOR);
    const view = new ProxyHeaderPacket(VECTOR);
    assert.deepEqual([view.version, view.commandCode, view.familyCode, view.transportCode, view.length], [2, 1, 1, 1, 28]);
    assert.equal(view.sourcePort, 56324);
  });

  it("round-trips any INET header, TLVs included; data after it is not the header's", () => {
    fc.assert(
      fc.property(inetArbitrary, fc.uint8Array({ maxLength: 32 }), (header, data) => {
        const bytes = emitted(header);
        const stream = new Uint8Array(bytes.length + data.length);
        stream.set(bytes);
        stream.set(data, bytes.length);
        const parsed = ProxyHeaderRepr.parse(stream);
        assert.ok(!(parsed instanceof WireError) && !parsed.incomplete);
        assert.equal(parsed.length, bytes.length);
        assert.deepEqual(parsed.header, header);
      }),
    );
  });

  it("every proper prefix of a header is incomplete, never an error, and asks for more than it has", () => {
    fc.assert(
      fc.property(inetArbitrary, fc.nat(), (header, cut) => {
        const bytes = emitted(header);
        const prefix = bytes.subarray(0, cut % bytes.length);
        const parsed = ProxyHeaderRepr.parse(prefix);
        assert.ok(!(parsed instanceof WireError) && parsed.incomplete, String(parsed));
        assert.ok(parsed.needed > prefix.length && parsed.needed <= bytes.length);
      }),
    );
  });

  it("refuses at once what cannot be a header: other bytes, v1 text, bad version, command, family, short lengths, over the limit", () => {
    const cases: [Uint8Array, RegExp][] = [
      [new TextEncoder().encode("GET / HTTP/1.1\r\n"), /no PROXY protocol v2 signature/],
      [new TextEncoder().encode("PROXY TCP4 127.0.0.1 10.0.2.15 1 80\r\n"), /no PROXY protocol v2 signature/],
      [Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x00), /no PROXY protocol v2 signature/],
      [withByte(VECTOR, 12, 0x11), /version 1, expected 2/],
      [withByte(VECTOR, 12, 0x22), /unknown command 2/],
      [withByte(VECTOR, 13, 0x41), /unknown family 4/],
      [withByte(VECTOR, 13, 0x13), /transport 3/],
      [withByte(VECTOR, 15, 11), /length 11 below the 12 bytes of inet addresses/],
      [withByte(withByte(VECTOR, 13, 0x21), 15, 12), /below the 36 bytes of inet6 addresses/],
    ];
    for (const [bytes, pattern] of cases) {
      const parsed = ProxyHeaderRepr.parse(bytes);
      assert.ok(parsed instanceof WireError, `${pattern}: ${JSON.stringify(parsed)}`);
      assert.match(parsed.message, pattern);
    }
    const limited = ProxyHeaderRepr.parse(VECTOR, 27);
    assert.ok(limited instanceof WireError && /28 bytes above the limit of 27/.test(limited.message));
  });

  it("LOCAL (a proxy's own health check) and other families parse without addresses", () => {
    const local = Uint8Array.of(...PROXY_V2_SIGNATURE, 0x20, 0x00, 0x00, 0x00);
    const parsed = ProxyHeaderRepr.parse(local);
    assert.ok(!(parsed instanceof WireError) && !parsed.incomplete);
    assert.deepEqual(parsed.header, { command: "local", family: "unspec", transport: "unspec", source: undefined, destination: undefined, tlvs: new Uint8Array(0) });
    assert.deepEqual(emitted(parsed.header), local);
    const inet6 = new Uint8Array(PROXY_V2_FIXED_LENGTH + 36);
    inet6.set(PROXY_V2_SIGNATURE);
    inet6.set([0x21, 0x21, 0x00, 36], 12);
    const six = ProxyHeaderRepr.parse(inet6);
    assert.ok(!(six instanceof WireError) && !six.incomplete);
    assert.equal(six.header.family, "inet6");
    assert.equal(six.header.source, undefined);
  });

  it("emit refuses reprs it cannot write", () => {
    const good = inetHeader({ source: [ip("127.0.0.1"), 1], destination: [ip("10.0.2.15"), 2] });
    assert.throws(() => ProxyHeaderRepr.emit({ ...good, family: "inet6" }, new Uint8Array(64)), RangeError);
    assert.throws(() => ProxyHeaderRepr.emit({ ...good, source: undefined }, new Uint8Array(64)), RangeError);
    assert.throws(() => ProxyHeaderRepr.emit({ ...good, source: { address: ip("127.0.0.1"), port: 70000 } }, new Uint8Array(64)), RangeError);
    assert.throws(() => ProxyHeaderRepr.emit(good, new Uint8Array(27)), RangeError);
  });

  it("parse never throws on any input", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (tail, signed) => {
        const bytes = signed ? Uint8Array.of(...PROXY_V2_SIGNATURE, ...tail) : tail;
        const parsed = ProxyHeaderRepr.parse(bytes);
        assert.ok(parsed instanceof WireError || typeof parsed.incomplete === "boolean");
      }),
      { numRuns: 2000 },
    );
  });
});

function withByte(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[index] = value;
  return copy;
}

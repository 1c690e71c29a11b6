import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Ipv4Address, Ipv4Cidr, MacAddress, WireError } from "atoll/wire";
import { assertParsed, assertWireError, ipv4Address, macAddress } from "./fixtures/support.ts";

function ip(text: string): Ipv4Address {
  const address = Ipv4Address.parse(text);
  assertParsed(address);
  return address;
}

describe("Ipv4Address", () => {
  it("formats and parses dotted quads both ways", () => {
    fc.assert(
      fc.property(ipv4Address, (address) => {
        assert.equal(Ipv4Address.parse(Ipv4Address.format(address)), address);
      }),
    );
    assert.equal(Ipv4Address.format(ip("198.18.0.1")), "198.18.0.1");
    assert.equal(ip("255.255.255.255"), Ipv4Address.BROADCAST);
    assert.equal(ip("10.1.2.3"), Ipv4Address.fromOctets(10, 1, 2, 3));
  });

  it("rejects what is not a plain dotted quad, without throwing", () => {
    for (const text of ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.-4", "1.2.3.4 ", "0x1.2.3.4", "1..3.4", "1.2.3.4/24"]) {
      assertWireError(Ipv4Address.parse(text), "malformed");
    }
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (text) => {
        const result = Ipv4Address.parse(text);
        if (!(result instanceof WireError)) assert.equal(Ipv4Address.format(result), text);
      }),
    );
  });

  it("reads and writes big-endian", () => {
    fc.assert(
      fc.property(ipv4Address, fc.nat(4), (address, offset) => {
        const bytes = new Uint8Array(8);
        Ipv4Address.write(address, bytes, offset);
        assert.equal(Ipv4Address.read(bytes, offset), address);
      }),
    );
    const bytes = new Uint8Array(4);
    Ipv4Address.write(ip("1.2.3.4"), bytes, 0);
    assert.deepEqual([...bytes], [1, 2, 3, 4]);
  });

  it("classifies addresses", () => {
    assert.ok(Ipv4Address.isUnspecified(Ipv4Address.UNSPECIFIED));
    assert.ok(Ipv4Address.isBroadcast(ip("255.255.255.255")));
    assert.ok(Ipv4Address.isMulticast(ip("224.0.0.1")));
    assert.ok(Ipv4Address.isMulticast(ip("239.255.255.250")));
    assert.ok(!Ipv4Address.isMulticast(ip("240.0.0.1")));
    assert.ok(Ipv4Address.isLoopback(ip("127.0.0.1")));
    assert.ok(Ipv4Address.isLinkLocal(ip("169.254.1.1")));
    assert.ok(Ipv4Address.isUnicast(ip("198.18.0.1")));
    for (const text of ["0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255"]) assert.ok(!Ipv4Address.isUnicast(ip(text)), text);
  });

  it("wraps arithmetic modulo 2^32", () => {
    assert.equal(Ipv4Address.fromNumber(ip("255.255.255.255") + 1), Ipv4Address.UNSPECIFIED);
    assert.equal(Ipv4Address.fromNumber(-1), Ipv4Address.BROADCAST);
  });
});

describe("MacAddress", () => {
  it("formats and parses both ways", () => {
    fc.assert(
      fc.property(macAddress, (address) => {
        const text = MacAddress.format(address);
        assert.match(text, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        assert.equal(MacAddress.parse(text), address);
        assert.equal(MacAddress.parse(text.toUpperCase().replaceAll(":", "-")), address);
      }),
    );
    assert.equal(MacAddress.parse("2:0:0:0:0:1"), MacAddress.fromOctets(2, 0, 0, 0, 0, 1));
  });

  it("rejects malformed text", () => {
    for (const text of ["", "02:00:00:00:00", "02:00:00:00:00:00:00", "02:00:00:00:00:0g", "020:00:00:00:00:01", "02:00:00-00:00:01"]) {
      assertWireError(MacAddress.parse(text), "malformed");
    }
  });

  it("reads and writes the six bytes in order", () => {
    fc.assert(
      fc.property(macAddress, fc.nat(4), (address, offset) => {
        const bytes = new Uint8Array(10);
        MacAddress.write(address, bytes, offset);
        assert.equal(MacAddress.read(bytes, offset), address);
        assert.equal(MacAddress.format(MacAddress.read(bytes, offset)), MacAddress.format(address));
      }),
    );
    const bytes = new Uint8Array(6);
    MacAddress.write(MacAddress.fromOctets(0x02, 0xfc, 0x00, 0x10, 0xab, 0xff), bytes, 0);
    assert.deepEqual([...bytes], [0x02, 0xfc, 0x00, 0x10, 0xab, 0xff]);
  });

  it("classifies by the I/G and U/L bits", () => {
    assert.ok(MacAddress.isBroadcast(MacAddress.BROADCAST));
    assert.ok(MacAddress.isMulticast(MacAddress.BROADCAST));
    assert.ok(MacAddress.isMulticast(MacAddress.fromOctets(0x01, 0, 0x5e, 0, 0, 1)));
    assert.ok(MacAddress.isUnicast(MacAddress.fromOctets(0x02, 0, 0, 0, 0, 1)));
    assert.ok(MacAddress.isLocallyAdministered(MacAddress.fromOctets(0x02, 0, 0, 0, 0, 1)));
    assert.ok(!MacAddress.isLocallyAdministered(MacAddress.fromOctets(0x00, 0x0b, 0x82, 1, 0xfc, 0x42)));
  });

  it("maps IPv4 multicast groups to 01:00:5e plus 23 bits (RFC 1112 §6.4)", () => {
    assert.equal(MacAddress.format(MacAddress.forIpv4Multicast(ip("239.255.255.250"))), "01:00:5e:7f:ff:fa");
    assert.equal(MacAddress.format(MacAddress.forIpv4Multicast(ip("224.128.0.1"))), "01:00:5e:00:00:01");
  });

  it("refuses numbers that are not 48-bit values", () => {
    for (const value of [-1, 2 ** 48, 1.5, Number.NaN]) assert.throws(() => MacAddress.fromNumber(value), RangeError);
  });
});

describe("Ipv4Cidr", () => {
  it("derives netmask, network and broadcast", () => {
    const cidr = Ipv4Cidr.parse("198.18.0.2/24");
    assertParsed(cidr);
    assert.equal(cidr.toString(), "198.18.0.2/24");
    assert.equal(Ipv4Address.format(cidr.netmask), "255.255.255.0");
    assert.equal(Ipv4Address.format(cidr.network), "198.18.0.0");
    assert.equal(Ipv4Address.format(cidr.broadcast), "198.18.0.255");
    assert.ok(cidr.contains(ip("198.18.0.77")));
    assert.ok(!cidr.contains(ip("198.18.1.1")));
    assert.ok(cidr.isBroadcast(ip("198.18.0.255")));
    const everything = new Ipv4Cidr(ip("1.2.3.4"), 0);
    assert.equal(everything.netmask, Ipv4Address.UNSPECIFIED);
    assert.ok(everything.contains(ip("255.1.2.3")));
    assert.ok(!new Ipv4Cidr(ip("10.0.0.0"), 31).isBroadcast(ip("10.0.0.1")));
  });

  it("contains exactly the addresses between its network and broadcast addresses", () => {
    fc.assert(
      fc.property(ipv4Address, fc.integer({ min: 0, max: 32 }), ipv4Address, (address, prefixLength, other) => {
        const cidr = new Ipv4Cidr(address, prefixLength);
        assert.ok(cidr.contains(address));
        assert.ok(cidr.contains(cidr.network));
        assert.ok(cidr.contains(cidr.broadcast));
        assert.equal(cidr.contains(other), other >= cidr.network && other <= cidr.broadcast);
        assert.equal(cidr.broadcast - cidr.network + 1, 2 ** (32 - prefixLength));
      }),
    );
  });

  it("parses what it prints and converts from netmasks", () => {
    fc.assert(
      fc.property(ipv4Address, fc.integer({ min: 0, max: 32 }), (address, prefixLength) => {
        const cidr = new Ipv4Cidr(address, prefixLength);
        assert.deepEqual(Ipv4Cidr.parse(cidr.toString()), cidr);
        assert.deepEqual(Ipv4Cidr.fromNetmask(address, cidr.netmask), cidr);
      }),
    );
    assertWireError(Ipv4Cidr.fromNetmask(ip("10.0.0.1"), ip("255.0.255.0")), "malformed");
    for (const text of ["198.18.0.2", "198.18.0.2/33", "198.18.0.2/", "198.18.0.2/024", "198.18.0.2/2a", "x/24"]) {
      assertWireError(Ipv4Cidr.parse(text), "malformed");
    }
    assert.throws(() => new Ipv4Cidr(ip("1.2.3.4"), 33), RangeError);
  });
});

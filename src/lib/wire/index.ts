/**
 * The wire layer: zero-copy views and plain reprs for the packets the network stack speaks,
 * in the manner of smoltcp's `wire` module. Parsers return a value or a WireError; they never
 * throw on any input.
 */
export * from "./error.ts";
export * from "./checksum.ts";
export * from "./address.ts";
export * from "./ethernet.ts";
export * from "./arp.ts";
export * from "./ipv4.ts";
export * from "./icmpv4.ts";
export * from "./udp.ts";
export * from "./dhcp.ts";
export * from "./tcp.ts";
export * from "./proxy-protocol.ts";

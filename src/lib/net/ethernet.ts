/**
 * The interface layer: one Ethernet link, its MAC filter and its EtherType demultiplexer, plus
 * the one transmit buffer every layer above builds its frames in.
 *
 * Received frames are accepted when addressed to our unicast MAC, to the broadcast address, or
 * to a multicast group some layer joined; everything else is counted and dropped. Frames with
 * an IEEE 802.1Q tag are taken as untagged only when they are merely priority-tagged (VLAN id 0,
 * IEEE 802.1Q §6.9.1); Atoll is not a VLAN member otherwise.
 */
import type { Logger } from "../logs/index.ts";
import { MacAddress } from "../wire/address.ts";
import { ETHERNET_HEADER_LENGTH, EtherType, EthernetFrame, EthernetRepr } from "../wire/ethernet.ts";
import { WireError } from "../wire/error.ts";
import type { Link, LinkOffloads, TransmitOffload } from "./types.ts";

/** The part of a logs Logger the stack uses, so tests can pass a recording one. */
export type NetLogger = Pick<Logger, "error" | "warn" | "info" | "debug">;
/** Gives the logger for a source name ("arp", "ipv4", ...); `source` from atoll/logs is one. */
export type NetLogFactory = (source: string) => NetLogger;

/** How a received frame was addressed at the link layer; ICMP errors are never sent for group-addressed frames (RFC 1122 §3.2.2). */
export type LinkDestination = "unicast" | "broadcast" | "multicast";

/**
 * Every received frame lands in `rxFrames` and then in exactly one of: the drops below, or the
 * receive counter of the layer it went to (`arp.rxPackets`, `ipv4.rxPackets`).
 */
export type EthernetCounters = {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Drop: shorter than its header, or a group address as the source (IEEE Std 802 §8.2). */
  malformed: number;
  /** Drop: addressed to another station or to a multicast group nobody joined. */
  notForUs: number;
  /** Drop: IEEE 802.3 length-field frames, stacked tags, and frames of a VLAN (id other than 0). */
  unsupported: number;
  /** Drop: an EtherType other than ARP and IPv4 (IPv6 among them). */
  unknownEtherType: number;
};

/** The layers a frame can go up to; each receives the payload, valid only during the call. */
export interface EthernetReceivers {
  arp(payload: Uint8Array, destination: LinkDestination): void;
  /** `checksumTrusted`: the link vouches for the transport checksum (see Link.onFrame). */
  ipv4(payload: Uint8Array, destination: LinkDestination, checksumTrusted: boolean): void;
}

/** IEEE 802.3 §4.2.3.3: the minimum frame is 64 bytes, 60 before the frame check sequence. */
const MIN_FRAME_LENGTH = 60;

export class EthernetInterface {
  readonly counters: EthernetCounters = {
    rxFrames: 0,
    rxBytes: 0,
    txFrames: 0,
    txBytes: 0,
    malformed: 0,
    notForUs: 0,
    unsupported: 0,
    unknownEtherType: 0,
  };
  readonly mac: MacAddress;
  /** Largest IP datagram a frame carries. */
  readonly mtu: number;
  /** The link's offloads, if any: then a TCP datagram may be up to offloads.maxTcpDatagram. */
  readonly offloads: LinkOffloads | undefined;
  /** The offload request handed to the link, reused (checksumStart counts from the frame's start). */
  private readonly linkOffload: TransmitOffload = { checksumStart: 0, checksumOffset: 0, segmentSize: 0 };
  /** Joined groups with a reference count: several IPv4 groups map to one MAC (RFC 1112 §6.4). */
  private readonly groups = new Map<MacAddress, number>();
  private readonly transmitFrame: Uint8Array;
  /** A view kept over `transmitFrame`, so that writing a header allocates nothing. */
  private readonly transmitHeader: EthernetFrame;
  private readonly transmitPayload: Uint8Array;

  constructor(
    private readonly link: Link,
    private readonly receivers: EthernetReceivers,
  ) {
    this.mac = link.mac;
    this.mtu = link.mtu;
    this.offloads = link.offloads;
    const maxPayload = Math.max(link.mtu, link.offloads?.maxTcpDatagram ?? 0);
    this.transmitFrame = new Uint8Array(Math.max(MIN_FRAME_LENGTH, ETHERNET_HEADER_LENGTH + maxPayload));
    this.transmitHeader = new EthernetFrame(this.transmitFrame);
    this.transmitPayload = this.transmitFrame.subarray(ETHERNET_HEADER_LENGTH, ETHERNET_HEADER_LENGTH + maxPayload);
  }

  /** Starts accepting frames for `group` (a multicast MAC); each join needs its own leave. */
  joinGroup(group: MacAddress): void {
    this.groups.set(group, (this.groups.get(group) ?? 0) + 1);
  }

  leaveGroup(group: MacAddress): void {
    const count = this.groups.get(group);
    if (count === undefined) return;
    if (count <= 1) this.groups.delete(group);
    else this.groups.set(group, count - 1);
  }

  /** Handles one received frame; never throws on any input. */
  receive(bytes: Uint8Array, checksumTrusted = false): void {
    const counters = this.counters;
    counters.rxFrames++;
    counters.rxBytes += bytes.length;
    const header = EthernetRepr.parse(bytes);
    if (header instanceof WireError) {
      if (header.kind === "unsupported") counters.unsupported++;
      else counters.malformed++;
      return;
    }
    let destination: LinkDestination;
    if (header.dst === this.mac) destination = "unicast";
    else if (MacAddress.isBroadcast(header.dst)) destination = "broadcast";
    else if (this.groups.has(header.dst)) destination = "multicast";
    else {
      counters.notForUs++;
      return;
    }
    if (MacAddress.isMulticast(header.src)) {
      counters.malformed++;
      return;
    }
    if (header.vlan !== undefined && header.vlan.id !== 0) {
      counters.unsupported++;
      return;
    }
    const payload = bytes.subarray(EthernetRepr.headerLength(header));
    if (header.etherType === EtherType.Ipv4) this.receivers.ipv4(payload, destination, checksumTrusted);
    else if (header.etherType === EtherType.Arp) this.receivers.arp(payload, destination);
    else counters.unknownEtherType++;
  }

  /**
   * The payload area (`mtu` bytes, or offloads.maxTcpDatagram) of the one transmit frame: a layer
   * writes its packet there, then calls `send`. Valid until the next `send`; nothing may be built
   * in it across a call that could itself send.
   */
  get payloadBuffer(): Uint8Array {
    return this.transmitPayload;
  }

  /**
   * Sends the first `payloadLength` bytes of `payloadBuffer` to `dst`, padded to Ethernet's
   * minimum. `offload` (on a link with offloads) counts its checksumStart from the payload's start;
   * with a segmentSize the payload may exceed the MTU, up to offloads.maxTcpDatagram.
   */
  send(dst: MacAddress, etherType: number, payloadLength: number, offload?: TransmitOffload): void {
    const limit = offload !== undefined && offload.segmentSize > 0 && this.offloads !== undefined ? this.offloads.maxTcpDatagram : this.mtu;
    if (payloadLength > limit) throw new RangeError(`ethernet: ${payloadLength}-byte payload above the limit of ${limit}`);
    const frame = this.transmitFrame;
    const header = this.transmitHeader;
    header.dst = dst;
    header.src = this.mac;
    header.etherType = etherType;
    let length = ETHERNET_HEADER_LENGTH + payloadLength;
    if (length < MIN_FRAME_LENGTH) {
      frame.fill(0, length, MIN_FRAME_LENGTH);
      length = MIN_FRAME_LENGTH;
    }
    this.counters.txFrames++;
    this.counters.txBytes += length;
    if (offload === undefined) {
      this.link.send(frame.subarray(0, length));
      return;
    }
    const linkOffload = this.linkOffload;
    linkOffload.checksumStart = ETHERNET_HEADER_LENGTH + offload.checksumStart;
    linkOffload.checksumOffset = offload.checksumOffset;
    linkOffload.segmentSize = offload.segmentSize;
    this.link.send(frame.subarray(0, length), linkOffload);
  }
}

/**
 * UDP (RFC 768, RFC 1122 §4.1) sockets. A socket binds a port (0 picks an ephemeral one from
 * 49152-65535, RFC 6335 §6) on any of our addresses or one of them, sends datagrams of up to
 * 65507 bytes (the IP layer fragments them) and receives either through a callback, which sees
 * the payload in place, or through `receive()` and async iteration, which see copies taken from
 * a bounded queue. ICMP errors about datagrams a socket sent reach its error listener.
 *
 * Checksums are always generated; a received zero checksum means "none" and is accepted (RFC 768;
 * RFC 1122 §4.1.3.4 lets a host insist, which would lose datagrams from senders that skip it).
 * Port unreachable goes back for unicast datagrams nobody listens for (RFC 1122 §4.1.3.1).
 */
import { Ipv4Address } from "../wire/address.ts";
import { readU16 } from "../wire/bytes.ts";
import { WireError } from "../wire/error.ts";
import { Icmpv4Type, Icmpv4UnreachableCode } from "../wire/icmpv4.ts";
import { IPV4_MAX_TOTAL_LENGTH, IPV4_MIN_HEADER_LENGTH, IpProtocol } from "../wire/ipv4.ts";
import { UDP_HEADER_LENGTH, UdpPacket, UdpRepr } from "../wire/udp.ts";
import {
  NetError,
  type Ipv4Datagram,
  type Ipv4ErrorReport,
  type Ipv4ErrorSender,
  type Ipv4Layer,
  type Ipv4ProtocolHandler,
  type NetErrorCode,
} from "./ipv4.ts";
import type { RandomSource } from "./types.ts";

/** The largest UDP payload IPv4 carries: 65535 minus the IPv4 and UDP headers. */
export const UDP_MAX_PAYLOAD = IPV4_MAX_TOTAL_LENGTH - IPV4_MIN_HEADER_LENGTH - UDP_HEADER_LENGTH;
/** RFC 6335 §6: the dynamic (ephemeral) port range. */
export const EPHEMERAL_PORT_FIRST = 49152;
export const EPHEMERAL_PORT_LAST = 65535;

export interface UdpEndpoint {
  readonly address: Ipv4Address;
  readonly port: number;
}

/** A received datagram as `receive()` and async iteration give it: the payload is a copy the caller owns. */
export interface UdpDatagram {
  readonly payload: Uint8Array;
  readonly from: UdpEndpoint;
}

export interface UdpBindOptions {
  /** 0 or absent: an ephemeral port. */
  port?: number;
  /** Receive only datagrams to this address; default 0.0.0.0, any of ours (and broadcasts). */
  address?: Ipv4Address;
  /** Datagrams the receive queue holds at most (default 64); more are dropped and counted. */
  queueLength?: number;
  /** Bytes the receive queue holds at most (default 256 KiB). */
  queueBytes?: number;
  /**
   * Take datagrams to this port whatever their destination address: for a DHCP client, whose
   * server may unicast to the address it offers before we have configured it (RFC 2131 §4.1).
   */
  acceptAnyDestination?: boolean;
}

export interface UdpSendOptions {
  /** The source address; default the socket's, or the interface's. 0.0.0.0 is for DHCP clients (RFC 2131 §4.1). */
  src?: Ipv4Address;
  ttl?: number;
  dscp?: number;
  /** Fail with "message-too-long" rather than fragment. */
  dontFragment?: boolean;
}

/** An error about a datagram a socket sent, given to its error listener. */
export class UdpSocketError extends NetError {
  constructor(
    code: NetErrorCode,
    message: string,
    /** Where the datagram was going. */
    readonly remote: UdpEndpoint,
    /** Who reported the error: a router or host (ICMP), or our own address (no ARP reply). */
    readonly reporter: Ipv4Address,
    /** The ICMP message it came in, if it came in one. */
    readonly icmp: { readonly type: number; readonly code: number } | undefined,
  ) {
    super(code, message);
  }
}

export type DatagramListener = (payload: Uint8Array, from: UdpEndpoint) => void;
export type SocketErrorListener = (error: UdpSocketError) => void;

/**
 * Each received datagram lands in `rxDatagrams` and then in exactly one of `delivered` or the
 * drops (`malformed`, `badChecksum`, `noListener`, `queueFull`).
 */
export type UdpCounters = {
  rxDatagrams: number;
  delivered: number;
  /** Drop: shorter than its header or its length field. */
  malformed: number;
  badChecksum: number;
  /** Drop: no socket on the port (port unreachable goes back for unicast ones). */
  noListener: number;
  /** Drop: the socket's receive queue was full. */
  queueFull: number;
  txDatagrams: number;
  /** ICMP (or ARP) errors handed to a socket. */
  errorsDelivered: number;
};

const DEFAULT_QUEUE_LENGTH = 64;
const DEFAULT_QUEUE_BYTES = 256 * 1024;

export class UdpSocket {
  readonly localPort: number;
  readonly localAddress: Ipv4Address;
  readonly acceptsAnyDestination: boolean;
  private datagramListener: DatagramListener | undefined;
  private errorListener: SocketErrorListener | undefined;
  private readonly queue: UdpDatagram[] = [];
  private queuedBytes = 0;
  private readonly waiters: ((datagram: UdpDatagram | undefined) => void)[] = [];
  private isClosed = false;
  private readonly queueLength: number;
  private readonly queueBytes: number;

  /** Sockets come from `UdpLayer.bind`. */
  constructor(
    private readonly layer: UdpLayer,
    port: number,
    options: UdpBindOptions,
  ) {
    this.localPort = port;
    this.localAddress = options.address ?? Ipv4Address.UNSPECIFIED;
    this.acceptsAnyDestination = options.acceptAnyDestination ?? false;
    this.queueLength = options.queueLength ?? DEFAULT_QUEUE_LENGTH;
    this.queueBytes = options.queueBytes ?? DEFAULT_QUEUE_BYTES;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Delivers each datagram to `listener` instead of the queue. The payload is a view valid only
   * during the call: copy what must outlive it. An exception from the listener propagates to
   * whoever delivered the frame (the scheduler, which ends the appliance), as a bug should.
   */
  onDatagram(listener: DatagramListener | undefined): void {
    this.datagramListener = listener;
  }

  /** Errors about datagrams this socket sent (ICMP unreachable, time exceeded, ARP failure). */
  onError(listener: SocketErrorListener | undefined): void {
    this.errorListener = listener;
  }

  /**
   * Sends `payload` (copied before this returns) to `to`. Throws NetError "no-route",
   * "message-too-long" (over 65507 bytes, or over the MTU with dontFragment) or "closed";
   * RangeError for a port that is not 1-65535. Later failures reach the error listener.
   */
  send(payload: Uint8Array, to: UdpEndpoint, options: UdpSendOptions = {}): void {
    if (this.isClosed) throw new NetError("closed", `udp: socket on port ${this.localPort} is closed`);
    this.layer.send(this, payload, to, options);
  }

  /** The next datagram, from the queue or when it arrives; rejects with NetError "closed" once closed. */
  async receive(): Promise<UdpDatagram> {
    const datagram = await this.next();
    if (datagram === undefined) throw new NetError("closed", `udp: socket on port ${this.localPort} is closed`);
    return datagram;
  }

  /** Datagrams until the socket is closed. Leaving the loop early does not close the socket. */
  async *[Symbol.asyncIterator](): AsyncGenerator<UdpDatagram, void, undefined> {
    for (;;) {
      const datagram = await this.next();
      if (datagram === undefined) return;
      yield datagram;
    }
  }

  /** Releases the port; pending `receive()` calls reject and iterations end. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.layer.release(this);
    this.queue.length = 0;
    this.queuedBytes = 0;
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  /** From the layer: returns false when the queue is full (the datagram is dropped). */
  deliver(payload: Uint8Array, from: UdpEndpoint): boolean {
    const listener = this.datagramListener;
    if (listener !== undefined) {
      listener(payload, from);
      return true;
    }
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      waiter({ payload: payload.slice(), from });
      return true;
    }
    if (this.queue.length >= this.queueLength || this.queuedBytes + payload.length > this.queueBytes) return false;
    this.queue.push({ payload: payload.slice(), from });
    this.queuedBytes += payload.length;
    return true;
  }

  /** From the layer. */
  deliverError(error: UdpSocketError): void {
    this.errorListener?.(error);
  }

  /** Whether a datagram to `dst` is for this socket. */
  accepts(dst: Ipv4Address): boolean {
    return this.acceptsAnyDestination || Ipv4Address.isUnspecified(this.localAddress) || this.localAddress === dst;
  }

  private next(): Promise<UdpDatagram | undefined> {
    const datagram = this.queue.shift();
    if (datagram !== undefined) {
      this.queuedBytes -= datagram.payload.length;
      return Promise.resolve(datagram);
    }
    if (this.isClosed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

export interface UdpLayerOptions {
  ipv4: Ipv4Layer;
  errors: Ipv4ErrorSender;
  random: RandomSource;
}

export class UdpLayer implements Ipv4ProtocolHandler {
  readonly counters: UdpCounters = {
    rxDatagrams: 0,
    delivered: 0,
    malformed: 0,
    badChecksum: 0,
    noListener: 0,
    queueFull: 0,
    txDatagrams: 0,
    errorsDelivered: 0,
  };
  private readonly sockets = new Map<number, UdpSocket>();
  private readonly ipv4: Ipv4Layer;
  private readonly errors: Ipv4ErrorSender;
  private nextEphemeral: number;
  private scratch = new Uint8Array(2048);

  constructor(options: UdpLayerOptions) {
    this.ipv4 = options.ipv4;
    this.errors = options.errors;
    // RFC 6056 §3.3.1 (simple random start): ephemeral ports are hard to guess from outside.
    const seed = new Uint8Array(2);
    options.random(seed);
    this.nextEphemeral = EPHEMERAL_PORT_FIRST + (((seed[0] << 8) | seed[1]) % (EPHEMERAL_PORT_LAST - EPHEMERAL_PORT_FIRST + 1));
  }

  /**
   * Opens a socket on `port` (or per `options`). Throws NetError "address-in-use" when the port
   * is taken (or every ephemeral one is), RangeError for a port outside 0-65535.
   */
  bind(portOrOptions: number | UdpBindOptions = 0): UdpSocket {
    const options = typeof portOrOptions === "number" ? { port: portOrOptions } : portOrOptions;
    const requested = options.port ?? 0;
    if (!Number.isInteger(requested) || requested < 0 || requested > 0xffff) throw new RangeError(`udp: port ${requested} is not 0-65535`);
    const port = requested === 0 ? this.ephemeralPort() : requested;
    if (this.sockets.has(port)) throw new NetError("address-in-use", `udp: port ${port} is already bound`);
    const socket = new UdpSocket(this, port, options);
    this.sockets.set(port, socket);
    return socket;
  }

  /** The socket bound to `port`, if any. */
  socket(port: number): UdpSocket | undefined {
    return this.sockets.get(port);
  }

  receive(datagram: Ipv4Datagram): void {
    const counters = this.counters;
    counters.rxDatagrams++;
    const packet = UdpPacket.check(datagram.payload);
    if (packet instanceof WireError) {
      counters.malformed++;
      return;
    }
    const header = datagram.header;
    if (!datagram.checksumTrusted && !packet.verifyChecksum(header.src, header.dst)) {
      counters.badChecksum++;
      return;
    }
    const socket = this.sockets.get(packet.dstPort);
    if (socket === undefined || !socket.accepts(header.dst)) {
      counters.noListener++;
      this.errors.sendError(datagram, Icmpv4Type.DestinationUnreachable, Icmpv4UnreachableCode.PortUnreachable);
      return;
    }
    if (socket.deliver(packet.payload, { address: header.src, port: packet.srcPort })) counters.delivered++;
    else counters.queueFull++;
  }

  receiveError(report: Ipv4ErrorReport): boolean {
    const quoted = report.payload;
    if (quoted.length < 4) return false;
    const socket = this.sockets.get(readU16(quoted, 0));
    if (socket === undefined || !socket.accepts(report.src)) return false;
    const remote: UdpEndpoint = { address: report.dst, port: readU16(quoted, 2) };
    const message = `udp: datagram from port ${socket.localPort} to ${Ipv4Address.format(remote.address)}:${remote.port}: ${report.code.replace(/-/g, " ")}`;
    this.counters.errorsDelivered++;
    socket.deliverError(new UdpSocketError(report.code, message, remote, report.reporter, report.icmp));
    return true;
  }

  acceptsAnyDestination(payload: Uint8Array): boolean {
    return payload.length >= UDP_HEADER_LENGTH && this.sockets.get(readU16(payload, 2))?.acceptsAnyDestination === true;
  }

  /** Closes every socket. */
  close(): void {
    for (const socket of [...this.sockets.values()]) socket.close();
  }

  /** From a socket. */
  send(socket: UdpSocket, payload: Uint8Array, to: UdpEndpoint, options: UdpSendOptions): void {
    if (!Number.isInteger(to.port) || to.port < 1 || to.port > 0xffff) throw new RangeError(`udp: destination port ${to.port} is not 1-65535`);
    if (payload.length > UDP_MAX_PAYLOAD) {
      throw new NetError("message-too-long", `udp: ${payload.length}-byte payload above the maximum of ${UDP_MAX_PAYLOAD}`);
    }
    // The checksum covers the source address (RFC 768's pseudo-header), so choose it now; with
    // no route, the IP layer refuses the datagram below and whatever we chose does not matter.
    // A socket bound to a group or broadcast address cannot send from it (RFC 1122 §3.2.1.3).
    let src = options.src ?? socket.localAddress;
    if (options.src === undefined && !Ipv4Address.isUnicast(src)) {
      const route = this.ipv4.route(to.address);
      if (route !== "no-route") src = route.src;
    }
    const length = UDP_HEADER_LENGTH + payload.length;
    if (this.scratch.length < length) this.scratch = new Uint8Array(Math.max(length, this.scratch.length * 2));
    const segment = this.scratch.subarray(0, length);
    UdpRepr.emit({ srcPort: socket.localPort, dstPort: to.port, payload }, segment, src, to.address);
    const failure = this.ipv4.send(
      { dst: to.address, src, protocol: IpProtocol.Udp, ttl: options.ttl, dscp: options.dscp, dontFragment: options.dontFragment },
      segment,
    );
    if (failure !== undefined) {
      throw new NetError(failure, `udp: cannot send to ${Ipv4Address.format(to.address)}:${to.port}: ${failure.replace(/-/g, " ")}`);
    }
    this.counters.txDatagrams++;
  }

  /** From a socket being closed. */
  release(socket: UdpSocket): void {
    if (this.sockets.get(socket.localPort) === socket) this.sockets.delete(socket.localPort);
  }

  private ephemeralPort(): number {
    const count = EPHEMERAL_PORT_LAST - EPHEMERAL_PORT_FIRST + 1;
    for (let tried = 0; tried < count; tried++) {
      const port = this.nextEphemeral;
      this.nextEphemeral = port === EPHEMERAL_PORT_LAST ? EPHEMERAL_PORT_FIRST : port + 1;
      if (!this.sockets.has(port)) return port;
    }
    throw new NetError("address-in-use", "udp: every ephemeral port is bound");
  }
}

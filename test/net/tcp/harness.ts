/**
 * Test harness for TCP: Atoll stacks with TCP attached, on one VirtualLink, driven by a
 * VirtualClock. Application code (promises) runs between batches of timer firings, so tests
 * read as ordinary async code: `await net.drive(tcp.connect(...))`.
 */
import { createHash } from "node:crypto";
import { setImmediate } from "node:timers/promises";
import { createStack, parseIpv4Config, type Stack } from "atoll/net";
import { attachTcp, type AttachTcpOptions } from "../../../src/lib/net/tcp/socket.ts";
import type { TcpLayer } from "../../../src/lib/net/tcp/layer.ts";
import type { TcpFlow } from "../../../src/lib/net/tcp/flow.ts";
import { seqAdd } from "../../../src/lib/net/tcp/seq.ts";
import { TcpFlag } from "../../../src/lib/wire/tcp.ts";
import {
  RecordingLog,
  SeededRandom,
  VirtualClock,
  VirtualLink,
  seededRandomSource,
  type Impairments,
  type VirtualPort,
} from "../../../src/lib/net/testing/virtual-link.ts";
import { EtherType, Ipv4Address, IpProtocol, Ipv4Repr, WireError } from "atoll/wire";
import { TcpRepr } from "../../../src/lib/wire/tcp.ts";
import type { NetLogFactory } from "../../../src/lib/net/ethernet.ts";

export function ip(text: string): Ipv4Address {
  const address = Ipv4Address.parse(text);
  if (address instanceof WireError) throw new Error(address.message);
  return address;
}

/** A log that drops everything (RecordingLog builds every message, which bulk tests do not need). */
export const silentLog: NetLogFactory = () => ({ error() {}, warn() {}, info() {}, debug() {} });

export interface TcpHost {
  readonly stack: Stack;
  readonly tcp: TcpLayer;
  readonly port: VirtualPort;
  readonly address: Ipv4Address;
}

export interface HostOptions {
  mtu?: number;
  /** The host's port finishes checksums and cuts segmentation-offload frames (VirtualPort's offloads). */
  offloads?: boolean;
  tcp?: Omit<AttachTcpOptions, "timers" | "random" | "log">;
  log?: NetLogFactory;
}

export class TcpNetwork {
  readonly clock: VirtualClock;
  readonly link: VirtualLink;
  readonly log = new RecordingLog();
  private seed: number;

  constructor(options: { seed?: number; impairments?: Impairments; startMs?: number } = {}) {
    this.seed = (options.seed ?? 1) * 1000;
    this.clock = new VirtualClock(options.startMs ?? 0);
    this.link = new VirtualLink({ clock: this.clock, seed: options.seed ?? 1, impairments: options.impairments });
  }

  /** The seed of the RandomSource the next host's TCP layer gets (its secrets: ISNs, cookies). */
  get nextTcpSeed(): number {
    return this.seed + 500;
  }

  /** Records every TCP segment on the link, as sent (before impairments). */
  sniff(): SniffedSegment[] {
    const segments: SniffedSegment[] = [];
    this.link.tap((frame, from) => {
      const segment = parseTcpFrame(frame);
      if (segment !== undefined) segments.push({ ...segment, time: this.clock.now(), from: from.name });
    });
    return segments;
  }

  /**
   * A host with no TCP: segments to it are recorded instead (so that crafted exchanges are not
   * disturbed by its own RSTs), and `send` emits any TCP segment from it.
   */
  rawPeer(cidr: string): RawPeer {
    const port = this.link.attach();
    const config = parseIpv4Config(cidr);
    if (typeof config === "string") throw new Error(config);
    const stack = createStack({ link: port, timers: this.clock, random: seededRandomSource(this.seed++), ipv4: config, log: silentLog });
    const received: TcpRepr[] = [];
    const address = config.cidr.address;
    stack.ipv4.registerProtocol(IpProtocol.Tcp, {
      receive(datagram) {
        const repr = TcpRepr.parse(datagram.payload, datagram.header.src, datagram.header.dst);
        if (!(repr instanceof WireError)) received.push(repr);
      },
      receiveError: () => false,
    });
    return {
      stack,
      port,
      address,
      received,
      send(to, fields) {
        const repr = tcpRepr(fields);
        const bytes = new Uint8Array(TcpRepr.bufferLength(repr));
        TcpRepr.emit(repr, bytes, address, to);
        this.sendBytes(to, bytes);
      },
      sendBytes(to, bytes) {
        const failure = stack.ipv4.send({ dst: to, protocol: IpProtocol.Tcp }, bytes);
        if (failure !== undefined) throw new Error(`raw peer: ${failure}`);
      },
    };
  }

  host(cidr: string, options: HostOptions = {}): TcpHost {
    const port = this.link.attach({ mtu: options.mtu ?? 1500, offloads: options.offloads ?? false });
    const config = parseIpv4Config(cidr);
    if (typeof config === "string") throw new Error(config);
    const seed = this.seed++;
    const stack = createStack({ link: port, timers: this.clock, random: seededRandomSource(seed), ipv4: config, log: options.log ?? silentLog });
    const tcp = attachTcp(stack, {
      ...options.tcp,
      timers: this.clock,
      random: seededRandomSource(seed + 500),
      log: options.log ?? silentLog,
      countersName: false,
    });
    return { stack, tcp, port, address: config.cidr.address };
  }

  /**
   * Fires timers in batches, letting promise continuations run between batches, until
   * `condition` holds or `limitMs` of virtual time has passed. Returns whether it holds.
   */
  async runUntil(condition: () => boolean, limitMs = 600_000, batch = 512): Promise<boolean> {
    const clock = this.clock;
    const deadline = clock.now() + limitMs;
    for (;;) {
      await settle();
      if (condition()) return true;
      // Fire the timers of the next instant (at most `batch`), then let continuations run.
      const next = clock.nextDeadline();
      if (next === undefined || next > deadline) {
        if (deadline > clock.now() && Number.isFinite(deadline)) clock.advanceTo(deadline);
        await settle();
        return condition();
      }
      let fired = 0;
      clock.runUntil(() => fired++ >= batch || (clock.nextDeadline() ?? Infinity) > next, deadline - clock.now());
    }
  }

  /** Runs the clock until `promise` settles; returns its value or throws its error (or a timeout). */
  async drive<T>(promise: Promise<T>, limitMs = 600_000): Promise<T> {
    let settled = false;
    promise.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    const done = await this.runUntil(() => settled, limitMs);
    if (!done) throw new Error(`drive: not settled within ${limitMs} ms of virtual time`);
    return promise;
  }

  /** Advances virtual time by `ms`, with continuations running between timers. */
  async advance(ms: number): Promise<void> {
    const target = this.clock.now() + ms;
    await this.runUntil(() => this.clock.now() >= target && (this.clock.nextDeadline() ?? Infinity) > target, ms);
    this.clock.advanceTo(target);
    await settle();
  }
}

export async function settle(): Promise<void> {
  await setImmediate();
}

/** Deterministic pseudo-random bytes. */
export function patternBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  new SeededRandom(seed).fill(bytes);
  return bytes;
}

export interface TransferResult {
  sentHash: string;
  receivedHash: string;
  receivedBytes: number;
  virtualMs: number;
  clientFlow: TcpFlow;
  serverFlow: TcpFlow | undefined;
}

/**
 * Client → server bulk transfer of `size` bytes through `flow.write` in 64 KiB pieces; the server
 * hashes what it reads. Both sides close at the end.
 */
export async function bulkTransfer(
  net: TcpNetwork,
  client: TcpHost,
  server: TcpHost,
  size: number,
  options: { port?: number; chunk?: number; limitMs?: number } = {},
): Promise<TransferResult> {
  const port = options.port ?? 5001;
  const chunkSize = options.chunk ?? 64 * 1024;
  const receivedHash = createHash("sha256");
  let receivedBytes = 0;
  let serverFlow: TcpFlow | undefined;
  let resolveServer!: () => void;
  let rejectServer!: (error: unknown) => void;
  const serverDone = new Promise<void>((resolve, reject) => {
    resolveServer = resolve;
    rejectServer = reject;
  });
  const listener = server.tcp.listen(port, (flow) => {
    serverFlow = flow;
    (async () => {
      for await (const chunk of flow) {
        receivedHash.update(chunk);
        receivedBytes += chunk.length;
      }
      await flow.close();
    })().then(resolveServer, rejectServer);
  });
  const start = net.clock.now();
  const clientFlow = await net.drive(client.tcp.connect(server.address, port), options.limitMs);
  const sentHash = createHash("sha256");
  const sender = (async () => {
    let seed = 1;
    for (let offset = 0; offset < size; offset += chunkSize) {
      const chunk = patternBytes(Math.min(chunkSize, size - offset), seed++);
      sentHash.update(chunk);
      await clientFlow.write(chunk);
    }
    await clientFlow.close();
  })();
  await net.drive(Promise.all([sender, serverDone]), options.limitMs);
  listener.close();
  return {
    sentHash: sentHash.digest("hex"),
    receivedHash: receivedHash.digest("hex"),
    receivedBytes,
    virtualMs: net.clock.now() - start,
    clientFlow,
    serverFlow,
  };
}

export interface SniffedSegment {
  time: number;
  /** The port that sent it ("port1", "port2", ... in attach order). */
  from: string;
  src: Ipv4Address;
  dst: Ipv4Address;
  tcp: TcpRepr;
}

/** The TCP segment in an Ethernet frame, if it holds a valid one. */
export function parseTcpFrame(frame: Uint8Array): Omit<SniffedSegment, "time" | "from"> | undefined {
  if (frame.length < 34 || ((frame[12] << 8) | frame[13]) !== EtherType.Ipv4) return undefined;
  const packet = frame.subarray(14);
  const header = Ipv4Repr.parse(packet);
  if (header instanceof WireError || header.protocol !== IpProtocol.Tcp || header.fragmentOffset !== 0 || header.moreFragments) return undefined;
  const headerLength = (packet[0] & 0xf) * 4;
  const tcp = TcpRepr.parse(packet.subarray(headerLength, headerLength + header.payloadLength), header.src, header.dst);
  if (tcp instanceof WireError) return undefined;
  return { src: header.src, dst: header.dst, tcp: { ...tcp, payload: tcp.payload.slice() } };
}

export interface RawPeer {
  readonly stack: Stack;
  readonly port: VirtualPort;
  readonly address: Ipv4Address;
  /** TCP segments that reached it. */
  readonly received: TcpRepr[];
  send(to: Ipv4Address, fields: Partial<TcpRepr>): void;
  /** Sends bytes as a TCP segment, as they are (crafted headers, bad checksums). */
  sendBytes(to: Ipv4Address, bytes: Uint8Array): void;
}

/** A TcpRepr with defaults for the fields not given. */
export function tcpRepr(fields: Partial<TcpRepr>): TcpRepr {
  return {
    srcPort: 40000,
    dstPort: 80,
    seq: 0,
    ack: 0,
    flags: 0,
    window: 65535,
    urgentPointer: 0,
    options: {},
    payload: new Uint8Array(0),
    ...fields,
  };
}

/** A raw peer's hand-made handshake with a listener: returns the server's ISN and the flow. */
export async function rawHandshake(
  net: TcpNetwork,
  peer: RawPeer,
  server: TcpHost,
  port: number,
  isn: number,
  options: TcpRepr["options"] = { mss: 1460 },
): Promise<{ serverIsn: number; flow: TcpFlow; srcPort: number }> {
  let flow: TcpFlow | undefined;
  server.tcp.listen(port, (accepted) => {
    flow = accepted;
  });
  const srcPort = 40000 + (isn % 1000);
  peer.send(server.address, { srcPort, dstPort: port, seq: isn, flags: TcpFlag.Syn, options });
  await net.runUntil(() => peer.received.some((segment) => segment.flags === (TcpFlag.Syn | TcpFlag.Ack)));
  const synAck = peer.received.find((segment) => segment.flags === (TcpFlag.Syn | TcpFlag.Ack));
  if (synAck === undefined) throw new Error("no SYN-ACK");
  if (synAck.ack !== seqAdd(isn, 1)) throw new Error("SYN-ACK acknowledges the wrong sequence number");
  const ackOptions = options.timestamps === undefined ? {} : { timestamps: { value: options.timestamps.value + 1, echo: synAck.options.timestamps?.value ?? 0 } };
  peer.send(server.address, { srcPort, dstPort: port, seq: seqAdd(isn, 1), ack: seqAdd(synAck.seq, 1), flags: TcpFlag.Ack, options: ackOptions });
  await net.runUntil(() => flow !== undefined);
  if (flow === undefined) throw new Error("not accepted");
  peer.received.length = 0;
  return { serverIsn: synAck.seq, flow, srcPort };
}


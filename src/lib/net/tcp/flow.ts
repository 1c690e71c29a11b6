/**
 * A TCP connection as the application holds it: promises over the connection's buffers, with
 * backpressure in both directions.
 *
 * - `read()` resolves with the next chunk of in-order data (a copy the caller owns), or
 *   undefined at the end of the peer's stream; reading frees receive buffer space, which the
 *   connection then offers to the peer again. `readInto(buffer)` copies into the caller's buffer
 *   instead ("bring your own buffer", as ReadableStreamBYOBReader and recv(2) do), so that a
 *   reader reusing one buffer allocates nothing per read.
 * - `write(bytes)` resolves once every byte is in the send buffer (bounded, 256 KiB by default):
 *   a writer that awaits each write never holds more than that in memory. Do not modify `bytes`
 *   until the promise resolves: what does not fit at once is copied as room frees up.
 * - `shutdown()` sends a FIN after the buffered data (half-close) and resolves once the peer has
 *   acknowledged it; reading goes on. `close()` does the same and stops reading; `abort()` resets.
 * - Once the connection fails, pending and later calls reject with its TcpError; `closed`
 *   resolves (never rejects) with that error, or undefined for a normal end.
 *
 * Web Streams (`readable`, `writable`) come from "atoll/net/tcp/streams", which installs them
 * when imported, so that an appliance that does not use them does not bundle the polyfill.
 */
import type { ReadableStream, WritableStream } from "web-streams-polyfill";
import type { Ipv4Address } from "../../wire/address.ts";
import type { ConnectionObserver, TcpConnection, TcpState } from "./connection.ts";
import type { FlowCounters } from "./counters.ts";
import { TcpError } from "./error.ts";

/** A read waiting for data: for a chunk (`read`), or into the caller's buffer (`readInto`). */
type PendingRead =
  | { readonly into: undefined; resolve(chunk: Uint8Array | undefined): void; reject(error: Error): void }
  | { readonly into: Uint8Array; resolve(count: number): void; reject(error: Error): void };

/** Settles a pending read at the end of the stream: undefined for `read`, 0 for `readInto`. */
function endRead(read: PendingRead): void {
  if (read.into === undefined) read.resolve(undefined);
  else read.resolve(0);
}

interface PendingWrite {
  readonly bytes: Uint8Array;
  offset: number;
  resolve(): void;
  reject(error: Error): void;
}

export interface FlowEndpoint {
  readonly address: Ipv4Address;
  readonly port: number;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/** Makers of Web Streams over a flow, installed by streams.ts. */
export interface StreamAdapters {
  readable(flow: TcpFlow): ReadableStream<Uint8Array>;
  writable(flow: TcpFlow): WritableStream<Uint8Array>;
}

let streamAdapters: StreamAdapters | undefined;

/** Called by streams.ts when it is imported. */
export function installStreamAdapters(adapters: StreamAdapters): void {
  streamAdapters = adapters;
}

function requireAdapters(): StreamAdapters {
  if (streamAdapters === undefined) {
    throw new Error('tcp: flow.readable and flow.writable need the Web Streams adapters: import "atoll/net/tcp/streams"');
  }
  return streamAdapters;
}

export class TcpFlow implements AsyncIterable<Uint8Array> {
  /** Resolves when the connection ends: with its error, or undefined for a normal close. Never rejects. */
  readonly closed: Promise<TcpError | undefined>;
  private resolveClosed!: (error: TcpError | undefined) => void;
  private readonly reads: PendingRead[] = [];
  private readonly writes: PendingWrite[] = [];
  private readonly finWaiters: Waiter[] = [];
  private openWaiter: Waiter | undefined;
  private shutdownRequested = false;
  private closeRequested = false;
  private finAcked = false;
  /** The connection has been told to send its FIN / that the application closed. */
  private finIssued = false;
  private closeIssued = false;
  private ended = false;
  private readableStream: ReadableStream<Uint8Array> | undefined;
  private writableStream: WritableStream<Uint8Array> | undefined;
  /** Data taken from the connection before the application had the flow (after a PROXY header): read first. */
  private unread: Uint8Array | undefined;
  /** The client a relaying proxy named (PROXY protocol), and the proxy's own endpoint. */
  private proxied: { readonly client: FlowEndpoint; readonly proxy: FlowEndpoint } | undefined;

  constructor(readonly connection: TcpConnection) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    const observer: ConnectionObserver = {
      established: () => this.onEstablished(),
      readable: () => this.onReadable(),
      writable: () => this.flushWrites(),
      finAcknowledged: () => this.onFinAcknowledged(),
      closed: (error) => this.onClosed(error),
    };
    connection.observer = observer;
  }

  get state(): TcpState {
    return this.connection.state;
  }

  get localAddress(): Ipv4Address {
    return this.connection.localAddress;
  }

  get localPort(): number {
    return this.connection.localPort;
  }

  /**
   * The peer: the connection's, or, on a connection relayed by a trusted proxy that named the
   * client in a PROXY protocol header (the user-mode gateway of `atoll run -p`), that client.
   */
  get remoteAddress(): Ipv4Address {
    return this.proxied?.client.address ?? this.connection.remoteAddress;
  }

  get remotePort(): number {
    return this.proxied?.client.port ?? this.connection.remotePort;
  }

  /** The relaying proxy's endpoint (the connection's real peer) when the remote endpoint came from a PROXY header, else undefined. */
  get proxiedBy(): FlowEndpoint | undefined {
    return this.proxied?.proxy;
  }

  /**
   * For the listener, before the application has the flow: the client named by a PROXY header,
   * and the data that followed the header in what was read (returned first by the reads).
   */
  adoptProxiedClient(client: FlowEndpoint | undefined, unread: Uint8Array): void {
    if (client !== undefined) this.proxied = { client, proxy: { address: this.connection.remoteAddress, port: this.connection.remotePort } };
    this.unread = unread.length > 0 ? unread : undefined;
  }

  /** A snapshot of the connection's counters (retransmits, RTT, window, ...). */
  get counters(): FlowCounters {
    return this.connection.snapshotCounters();
  }

  /** The error the connection failed with, if it has. */
  get error(): TcpError | undefined {
    return this.connection.error;
  }

  /** Resolves when the handshake completes (for `connect`), rejects if it fails. */
  waitEstablished(): Promise<void> {
    const state = this.connection.state;
    if (state !== "SYN-SENT" && state !== "SYN-RECEIVED" && state !== "CLOSED") return Promise.resolve();
    const error = this.connection.error;
    if (error !== undefined) return Promise.reject(error);
    return new Promise((resolve, reject) => {
      this.openWaiter = { resolve, reject };
    });
  }

  /** The next chunk of data, or undefined at the end of the stream. */
  read(): Promise<Uint8Array | undefined> {
    const connection = this.connection;
    const unread = this.unread;
    if (unread !== undefined) {
      this.unread = undefined;
      return Promise.resolve(unread);
    }
    if (this.reads.length === 0) {
      const chunk = connection.read();
      if (chunk !== undefined) return Promise.resolve(chunk);
      const error = connection.error;
      if (error !== undefined) return Promise.reject(error);
      if (this.closeRequested || connection.atEndOfStream || connection.state === "CLOSED") return Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => this.reads.push({ into: undefined, resolve, reject }));
  }

  /**
   * Copies the next in-order data into `buffer` (at most its length) and resolves with the number
   * of bytes, or with 0 at the end of the stream. Rejects with a RangeError for an empty buffer.
   */
  readInto(buffer: Uint8Array): Promise<number> {
    if (buffer.length === 0) return Promise.reject(new RangeError("tcp: readInto needs a buffer of at least one byte"));
    const connection = this.connection;
    const unread = this.unread;
    if (unread !== undefined) {
      const count = Math.min(buffer.length, unread.length);
      buffer.set(unread.subarray(0, count));
      this.unread = count < unread.length ? unread.subarray(count) : undefined;
      return Promise.resolve(count);
    }
    if (this.reads.length === 0) {
      const count = connection.readInto(buffer);
      if (count > 0) return Promise.resolve(count);
      const error = connection.error;
      if (error !== undefined) return Promise.reject(error);
      if (this.closeRequested || connection.atEndOfStream || connection.state === "CLOSED") return Promise.resolve(0);
    }
    return new Promise((resolve, reject) => this.reads.push({ into: buffer, resolve, reject }));
  }

  /** Resolves once all of `bytes` is in the send buffer; rejects with a TcpError if the connection fails first. */
  write(bytes: Uint8Array): Promise<void> {
    const error = this.connection.error;
    if (error !== undefined) return Promise.reject(error);
    if (this.shutdownRequested || !this.connection.canWrite) {
      return Promise.reject(new TcpError("closed", "tcp: write after shutdown or close"));
    }
    if (bytes.length === 0) return Promise.resolve();
    let taken = 0;
    if (this.writes.length === 0) {
      taken = this.connection.write(bytes, 0, bytes.length);
      if (taken === bytes.length) return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.writes.push({ bytes, offset: taken, resolve, reject }));
  }

  /** Half-close: FIN after what has been written; resolves when the peer has acknowledged it. */
  shutdown(): Promise<void> {
    const error = this.connection.error;
    if (error !== undefined) return Promise.reject(error);
    if (this.finAcked || this.ended) return Promise.resolve();
    this.shutdownRequested = true;
    const done = new Promise<void>((resolve, reject) => this.finWaiters.push({ resolve, reject }));
    this.flushWrites();
    return done;
  }

  /**
   * Closes both directions: FIN after what has been written, no more reading. Unread data, or
   * data that arrives later, resets the connection (RFC 1122 §4.2.2.13). Resolves when the peer
   * has acknowledged the FIN (at once after a reset).
   */
  close(): Promise<void> {
    const connection = this.connection;
    if (this.ended || connection.state === "CLOSED") return Promise.resolve();
    this.closeRequested = true;
    for (const read of this.reads.splice(0)) endRead(read);
    if (this.unread !== undefined) {
      // Unread data taken before the application had the flow: lost as the buffered kind is (a reset).
      this.unread = undefined;
      connection.abort();
      return Promise.resolve();
    }
    if (connection.readableBytes > 0) {
      connection.close();
      return Promise.resolve();
    }
    this.shutdownRequested = true;
    const done = this.finAcked ? Promise.resolve() : new Promise<void>((resolve, reject) => this.finWaiters.push({ resolve, reject }));
    this.flushWrites();
    // A failure is reported by `closed` and by the other calls; closing itself does not fail.
    return done.catch(() => undefined);
  }

  /** Resets the connection (RFC 9293 ABORT): pending calls reject. */
  abort(): void {
    this.connection.abort();
  }

  /** The data until the end of the stream. Leaving the loop early does not close the flow. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    for (;;) {
      const chunk = await this.read();
      if (chunk === undefined) return;
      yield chunk;
    }
  }

  /** A ReadableStream of the data (needs `import "atoll/net/tcp/streams"`). */
  get readable(): ReadableStream<Uint8Array> {
    return (this.readableStream ??= requireAdapters().readable(this));
  }

  /** A WritableStream into the connection; closing it half-closes (needs `import "atoll/net/tcp/streams"`). */
  get writable(): WritableStream<Uint8Array> {
    return (this.writableStream ??= requireAdapters().writable(this));
  }

  // ——— Events from the connection ———

  private onEstablished(): void {
    const waiter = this.openWaiter;
    this.openWaiter = undefined;
    waiter?.resolve();
  }

  private onReadable(): void {
    const connection = this.connection;
    const reads = this.reads;
    for (let read = reads[0]; read !== undefined; read = reads[0]) {
      if (read.into === undefined) {
        const chunk = connection.read();
        if (chunk !== undefined) {
          reads.shift();
          read.resolve(chunk);
          continue;
        }
      } else {
        const count = connection.readInto(read.into);
        if (count > 0) {
          reads.shift();
          read.resolve(count);
          continue;
        }
      }
      if (connection.atEndOfStream) {
        for (const pending of reads.splice(0)) endRead(pending);
      }
      break;
    }
  }

  private onFinAcknowledged(): void {
    this.finAcked = true;
    for (const waiter of this.finWaiters.splice(0)) waiter.resolve();
  }

  private onClosed(error: TcpError | undefined): void {
    this.ended = true;
    const openWaiter = this.openWaiter;
    this.openWaiter = undefined;
    if (error !== undefined) {
      openWaiter?.reject(error);
      for (const read of this.reads.splice(0)) read.reject(error);
      for (const write of this.writes.splice(0)) write.reject(error);
      for (const waiter of this.finWaiters.splice(0)) waiter.reject(error);
    } else {
      openWaiter?.reject(new TcpError("closed", "tcp: closed before the connection was established"));
      this.onReadable();
      for (const read of this.reads.splice(0)) endRead(read);
      for (const write of this.writes.splice(0)) write.reject(new TcpError("closed", "tcp: connection closed"));
      for (const waiter of this.finWaiters.splice(0)) waiter.resolve();
    }
    this.resolveClosed(error);
  }

  /** Moves queued writes into the send buffer as room allows; then the FIN, if asked for. */
  private flushWrites(): void {
    const connection = this.connection;
    const writes = this.writes;
    while (writes.length > 0) {
      const write = writes[0];
      if (write === undefined) break;
      write.offset += connection.write(write.bytes, write.offset, write.bytes.length);
      if (write.offset < write.bytes.length) break;
      writes.shift();
      write.resolve();
    }
    if (writes.length > 0 || !this.shutdownRequested) return;
    if (this.closeRequested && !this.closeIssued) {
      this.closeIssued = true;
      connection.close();
    } else if (!this.finIssued) {
      this.finIssued = true;
      connection.shutdown();
    }
  }
}

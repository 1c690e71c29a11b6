/**
 * Test doubles for the HTTP server's seams: an in-memory pair of connected ByteFlows, and manual
 * timers whose clock only moves when told. Pure ECMAScript, usable in tests and in images.
 */
import type { HttpTimers } from "./connection.ts";
import type { ByteFlow } from "./server.ts";

/** The reset a peer sees (as ECONNRESET). */
export class FlowResetError extends Error {
  override readonly name = "FlowResetError";
}

interface Waiter {
  resolve(chunk: Uint8Array | undefined): void;
  reject(error: Error): void;
}

/** One direction of a pipe: bytes written on one end, read on the other, at most `capacity` of them in between. */
class Direction {
  readonly chunks: Uint8Array[] = [];
  queuedBytes = 0;
  ended = false;
  reset = false;
  waiter: Waiter | undefined;
  /** Writers waiting for room, as on a socket whose send buffer is full. */
  private readonly writers: { resolve(): void; reject(error: Error): void }[] = [];

  constructor(private readonly capacity: number) {}

  push(bytes: Uint8Array): Promise<void> {
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter.resolve(bytes);
      return Promise.resolve();
    }
    this.chunks.push(bytes);
    this.queuedBytes += bytes.length;
    if (this.queuedBytes <= this.capacity) return Promise.resolve();
    return new Promise((resolve, reject) => this.writers.push({ resolve, reject }));
  }

  private take(): Uint8Array | undefined {
    const chunk = this.chunks.shift();
    if (chunk !== undefined) {
      this.queuedBytes -= chunk.length;
      while (this.queuedBytes <= this.capacity && this.writers.length > 0) this.writers.shift()?.resolve();
    }
    return chunk;
  }

  /** The reading end went away: writes waiting for room fail, and so will later ones. */
  abandon(): void {
    this.reset = true;
    this.chunks.length = 0;
    this.queuedBytes = 0;
    for (const writer of this.writers.splice(0)) writer.reject(new FlowResetError("the peer closed the connection"));
  }

  end(): void {
    this.ended = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve(undefined);
  }

  fail(): void {
    this.abandon();
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(new FlowResetError("the connection was reset"));
  }

  read(): Promise<Uint8Array | undefined> {
    if (this.reset) return Promise.reject(new FlowResetError("the connection was reset"));
    const chunk = this.take();
    if (chunk !== undefined) return Promise.resolve(chunk);
    if (this.ended) return Promise.resolve(undefined);
    if (this.waiter !== undefined) return Promise.reject(new Error("only one read may be pending"));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }
}

export interface MemoryFlow extends ByteFlow {
  /** Whether this end has shut down its sending side (shutdown or close). */
  readonly writeClosed: boolean;
  /** Whether this end closed (or aborted). */
  readonly closed: boolean;
}

class MemoryFlowEnd implements MemoryFlow {
  writeClosed = false;
  closed = false;
  constructor(
    private readonly incoming: Direction,
    private readonly outgoing: Direction,
    readonly remoteAddress: string,
    readonly remotePort: number,
  ) {}

  read(): Promise<Uint8Array | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    return this.incoming.read();
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.writeClosed) return Promise.reject(new Error("write after shutdown"));
    if (this.outgoing.reset) return Promise.reject(new FlowResetError("the connection was reset"));
    // A copy, as a socket would take: the writer may reuse its buffer afterwards.
    return this.outgoing.push(bytes.slice());
  }

  shutdown(): Promise<void> {
    if (!this.writeClosed) {
      this.writeClosed = true;
      this.outgoing.end();
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    void this.shutdown();
    if (!this.closed) {
      this.closed = true;
      // Our pending read ends; what the peer still sends fails, as writes to a closed socket do.
      this.incoming.end();
      this.incoming.abandon();
    }
    return Promise.resolve();
  }

  abort(): void {
    this.closed = true;
    this.writeClosed = true;
    this.outgoing.fail();
    this.incoming.end();
    this.incoming.abandon();
  }
}

/**
 * Two connected flows: what one writes, the other reads. A write resolves once the bytes fit in
 * the pipe's `capacity` (64 KiB by default), so a writer that outpaces its reader waits.
 */
export function createFlowPair(capacity = 64 * 1024): [client: MemoryFlow, server: MemoryFlow] {
  const toServer = new Direction(capacity);
  const toClient = new Direction(capacity);
  // Each end's remote address is the other's: the server logs the client as 198.18.0.1.
  const client = new MemoryFlowEnd(toClient, toServer, "198.18.0.2", 80);
  const server = new MemoryFlowEnd(toServer, toClient, "198.18.0.1", 40000);
  return [client, server];
}

/** Timers on a clock that moves only through advance(): timers fire in deadline order. */
export class ManualTimers implements HttpTimers {
  private current = 0;
  private sequence = 0;
  private readonly pending: { deadline: number; sequence: number; callback: () => void; cancelled: boolean }[] = [];

  now(): number {
    return this.current;
  }

  at(deadlineMs: number, callback: () => void): { cancel(): void } {
    const entry = { deadline: deadlineMs, sequence: this.sequence++, callback, cancelled: false };
    this.pending.push(entry);
    return {
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** Timers still armed. */
  get armed(): number {
    return this.pending.filter((entry) => !entry.cancelled).length;
  }

  /** Moves the clock forward by `ms`, firing every timer that comes due, in order. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      const due = this.pending
        .filter((entry) => !entry.cancelled && entry.deadline <= target)
        .sort((a, b) => a.deadline - b.deadline || a.sequence - b.sequence)[0];
      if (due === undefined) break;
      due.cancelled = true;
      this.current = Math.max(this.current, due.deadline);
      due.callback();
    }
    this.current = target;
    for (let index = this.pending.length - 1; index >= 0; index--) if (this.pending[index]?.cancelled === true) this.pending.splice(index, 1);
  }
}

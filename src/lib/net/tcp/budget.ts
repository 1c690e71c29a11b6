/**
 * The TCP layer's budget (issue #12, finding 1): what a host on the link may make the appliance
 * hold. Without it, a host that completes handshakes from spoofed sources (SYN cookies let it
 * keep no state of its own) and forgets each connection after a partial request made the
 * website under `--memory 64` run out of memory in seconds. As Linux and nginx do, the layer
 * bounds:
 *
 * - connections: in total (`maxConnections`, all states), per listener (`maxListenerConnections`:
 *   connections the application holds, as the accept queue is bounded by `backlog`), per remote
 *   address (`maxConnectionsPerSource`; the PROXY protocol relay is exempt, being many clients);
 * - memory: every connection's buffer bytes (what its rings hold allocated) plus a fixed
 *   per-connection estimate, against three marks as Linux's `tcp_mem` (low, pressure, high);
 * - orphans, connections the application has closed that still hold state (Linux
 *   `tcp_max_orphans`); they, and connections whose application has sent its FIN, retransmit
 *   less (Linux `tcp_orphan_retries`) and give up after `orphanTimeoutMs` without progress.
 *
 * A new connection that a cap or the memory pressure would refuse first takes the place of the
 * least recently active connection that can be spared (embryonic, in TIME-WAIT, or silent for
 * `evictIdleMs`), which is reset: this is how nginx reuses idle connections when its
 * `worker_connections` run out, and Linux's `tcp_max_tw_buckets`. A flood of forgotten
 * connections then displaces itself, while clients that exchange data go on being served. When
 * nothing can be spared, the SYN (or the cookie's ACK) is dropped without a RST, as Linux does
 * when its accept queue is full: a real client retransmits and gets in once there is room, and a
 * spoofed source is not sent anything (a RST per forged SYN would be a reflector).
 *
 * Every limit that bites is counted (TcpCounters) and logged at most once per `limitLogIntervalMs`
 * per limit, with the count since the last line. This module is a plain object: no I/O, time from
 * the layer's clock.
 */
import type { TcpCounters } from "./counters.ts";
import type { NetLogger } from "../ethernet.ts";

/** The limits, resolved (see TcpLayerOptions for each one's meaning and default). */
export interface BudgetLimits {
  readonly maxConnections: number;
  readonly maxListenerConnections: number;
  readonly maxConnectionsPerSource: number;
  readonly memoryLow: number;
  readonly memoryPressure: number;
  readonly memoryHigh: number;
  readonly connectionOverhead: number;
  readonly maxOrphans: number;
  readonly orphanRetransmits: number;
  readonly orphanTimeoutMs: number;
  readonly evictIdleMs: number;
  readonly limitLogIntervalMs: number;
}

/** What the budget needs to know of a connection, and how it ends one to make room. */
export interface BudgetedConnection {
  readonly entry: BudgetEntry;
  /** Embryonic (SYN-RECEIVED), in TIME-WAIT, or silent for `idleMs`: may be reset to make room. */
  spareable(now: number, idleMs: number): boolean;
  /** Resets the connection (RST to the peer) to make room; it calls `ended` as it closes. */
  evict(why: string): void;
}

/** A listener's share: connections it made that the application holds. */
export interface ListenerShare {
  heldConnections: number;
  readonly maxConnections: number;
}

/** The budget's record of one connection. */
export class BudgetEntry {
  /** Buffer bytes charged (the fixed overhead comes on top). */
  charged = 0;
  /** Counts towards its source's cap: until TIME-WAIT or CLOSED. */
  countsForSource = true;
  /** Counts towards its listener's cap: until the application closes it, TIME-WAIT or CLOSED. */
  listener: ListenerShare | undefined;
  orphan = false;
  lastActivityAt: number;

  constructor(
    readonly source: number,
    now: number,
  ) {
    this.lastActivityAt = now;
  }
}

/** The limits that bite, each with its own log line and counter. */
export type BudgetLimit = "connections" | "listener" | "source" | "memory" | "orphans" | "orphan-timeout" | "evicted" | "pruned";

export type MemoryState = "normal" | "pressure";

/**
 * After limits bit, the layer is "at rest" again (and logs it once) when its connections outside
 * TIME-WAIT are down to this fraction of maxConnections (16 of the default 1024): what a few
 * real clients hold, once what a flood left behind is gone.
 */
const RESTED_FRACTION = 64;

/** At most this many of the least recently active connections are looked at to find one to spare: the search stays bounded when the oldest are all busy. */
const MAX_EVICTION_SCAN = 256;

export class TcpBudget {
  private readonly active = new Set<BudgetedConnection>();
  private readonly perSource = new Map<number, number>();
  private connectionCount = 0;
  /** Of those, in TIME-WAIT (quiesced): a 4-tuple's guard, with no peer or application behind it. */
  private quietCount = 0;
  private orphanCount = 0;
  private memory = 0;
  private state: MemoryState = "normal";
  private readonly bitten = new Map<BudgetLimit, { count: number; loggedAt: number }>();
  /** A limit bit since the layer was last seen at rest: the next time it is, one line says so (the flood is over). */
  private strained = false;
  private bitesWhileStrained = 0;

  constructor(
    readonly limits: BudgetLimits,
    private readonly counters: TcpCounters,
    private readonly log: NetLogger,
    /** Exempt from the per-source cap: the PROXY protocol relay, which carries many clients. */
    private readonly relay: number | undefined,
    /** The layer's clock (for the log's rate limit and idleness). */
    private readonly now: () => number,
  ) {}

  /** Bytes accounted now: buffers plus the fixed overhead of each connection. */
  get memoryUsed(): number {
    return this.memory;
  }

  get memoryState(): MemoryState {
    return this.state;
  }

  /** Under pressure buffers stop growing and windows offer only what is allocated (tcp_mem's pressure mode). */
  get underPressure(): boolean {
    return this.state === "pressure";
  }

  /**
   * Over the high mark with nothing left to spare: received data that would make a ring allocate
   * more is dropped unacknowledged (the peer retransmits it), as Linux drops segments when
   * tcp_try_rmem_schedule fails over tcp_mem's hard limit (TCPRcvQDrop). Windows offered before
   * the pressure began are never taken back (RFC 9293 §3.8.6), so without this the peers of
   * connections admitted before it could still fill them all.
   */
  get overHigh(): boolean {
    return this.memory > this.limits.memoryHigh;
  }

  get connections(): number {
    return this.connectionCount;
  }

  get orphans(): number {
    return this.orphanCount;
  }

  /** Connections from `source` that count towards its cap now. */
  fromSource(source: number): number {
    return this.perSource.get(source) ?? 0;
  }

  /**
   * Whether a new connection from `source` for `listener` may be made now (at `now`), after
   * resetting spareable connections to make room if needed. Refusals are counted and logged.
   */
  admit(source: number, listener: ListenerShare | undefined, now: number): boolean {
    const limits = this.limits;
    if (source !== this.relay && this.fromSource(source) >= limits.maxConnectionsPerSource) {
      // The source's own connections are all it could displace; a flood from one address must not push out others.
      return this.refuse("source", `${limits.maxConnectionsPerSource} connections from one address (maxConnectionsPerSource)`);
    }
    while (listener !== undefined && listener.heldConnections >= listener.maxConnections) {
      // Only one of this listener's own connections can make room under its cap.
      if (!this.evictOne(now, "the listener's connection limit", listener)) {
        return this.refuse("listener", `${listener.maxConnections} connections held on one listener (maxListenerConnections)`);
      }
    }
    while (this.connectionCount >= limits.maxConnections) {
      if (!this.evictOne(now, "the connection limit")) return this.refuse("connections", `${limits.maxConnections} connections (maxConnections)`);
    }
    while (this.state === "pressure" && this.memory + limits.connectionOverhead > limits.memoryPressure) {
      if (!this.evictOne(now, "memory pressure")) return this.refuse("memory", `TCP memory ${kib(this.memory)} KiB over the pressure mark ${kib(limits.memoryPressure)} KiB (memoryPressure)`);
    }
    return true;
  }

  /** A new connection (admitted, or an active open) enters the books. */
  opened(connection: BudgetedConnection, listener: ListenerShare | undefined): void {
    const entry = connection.entry;
    this.connectionCount++;
    this.perSource.set(entry.source, this.fromSource(entry.source) + 1);
    entry.listener = listener;
    if (listener !== undefined) listener.heldConnections++;
    this.active.add(connection);
    this.charge(this.limits.connectionOverhead);
  }

  /** The connection received something: it moves to the most recently active end. */
  touch(connection: BudgetedConnection, now: number): void {
    connection.entry.lastActivityAt = now;
    // Re-inserting moves it to the end of the Set's insertion order: the least recently active stay first.
    if (this.active.delete(connection)) this.active.add(connection);
  }

  /** The connection's buffers now hold `bytes` of memory. */
  setBufferMemory(connection: BudgetedConnection, bytes: number): void {
    const entry = connection.entry;
    const delta = bytes - entry.charged;
    if (delta === 0) return;
    entry.charged = bytes;
    this.charge(delta);
    if (delta > 0 && this.memory > this.limits.memoryHigh) this.shed(this.now());
  }

  /** The application no longer holds the connection (closed it, or it reached TIME-WAIT). */
  releasedByApplication(connection: BudgetedConnection): void {
    const entry = connection.entry;
    if (entry.listener !== undefined) {
      entry.listener.heldConnections--;
      entry.listener = undefined;
    }
  }

  /** TIME-WAIT: the connection no longer counts towards its source (it is only a 4-tuple's guard). */
  quiesced(connection: BudgetedConnection): void {
    this.releasedByApplication(connection);
    this.endOrphan(connection);
    const entry = connection.entry;
    if (!entry.countsForSource) return;
    entry.countsForSource = false;
    this.quietCount++;
    const left = this.fromSource(entry.source) - 1;
    if (left > 0) this.perSource.set(entry.source, left);
    else this.perSource.delete(entry.source);
  }

  /**
   * The application closed a connection that still holds state: an orphan. Returns false when
   * there are too many already (maxOrphans): the caller resets it, as Linux's tcp_close does
   * ("too many orphaned sockets").
   */
  orphaned(connection: BudgetedConnection): boolean {
    this.releasedByApplication(connection);
    const entry = connection.entry;
    if (entry.orphan) return true;
    if (this.orphanCount >= this.limits.maxOrphans) {
      this.bite("orphans", `reset a connection its application closed: ${this.limits.maxOrphans} orphaned connections already (maxOrphans)`);
      return false;
    }
    entry.orphan = true;
    this.orphanCount++;
    this.counters.orphans = this.orphanCount;
    return true;
  }

  /** The connection reached CLOSED: everything it held goes back. */
  ended(connection: BudgetedConnection): void {
    if (!this.active.delete(connection)) return;
    this.quiesced(connection);
    this.quietCount--;
    this.connectionCount--;
    const entry = connection.entry;
    this.charge(-entry.charged - this.limits.connectionOverhead);
    entry.charged = 0;
    const live = this.connectionCount - this.quietCount;
    if (this.strained && live <= this.limits.maxConnections / RESTED_FRACTION && this.state === "normal") {
      this.strained = false;
      this.log.info(`back at rest: ${live} connections (and ${this.quietCount} in TIME-WAIT), ${kib(this.memory)} KiB accounted, after ${this.bitesWhileStrained} limit hits`);
      this.bitesWhileStrained = 0;
    }
  }

  /** A limit bit (`what` says which and how far): counted, and logged at most once per interval. */
  private refuse(limit: BudgetLimit, what: string): false {
    this.bite(limit, `new connection refused (SYN or cookie ACK dropped): at ${what}`);
    return false;
  }

  /** Counts a limit biting and logs it, rate-limited, with how often it bit since the last line. */
  bite(limit: BudgetLimit, message: string): void {
    const counters = this.counters;
    switch (limit) {
      case "connections":
        counters.connectionLimitDrops++;
        break;
      case "listener":
        counters.listenerLimitDrops++;
        break;
      case "source":
        counters.sourceLimitDrops++;
        break;
      case "memory":
        counters.memoryLimitDrops++;
        break;
      case "orphans":
        counters.orphansReset++;
        break;
      case "orphan-timeout":
        counters.orphansTimedOut++;
        break;
      case "evicted":
        counters.evicted++;
        break;
      case "pruned":
        counters.receivePruned++;
        break;
    }
    this.strained = true;
    this.bitesWhileStrained++;
    const now = this.now();
    const record = this.bitten.get(limit);
    if (record === undefined) {
      this.bitten.set(limit, { count: 0, loggedAt: now });
      this.log.warn(`${message} (${this.connectionCount} connections, ${kib(this.memory)} KiB)`);
      return;
    }
    record.count++;
    if (now - record.loggedAt < this.limits.limitLogIntervalMs) return;
    this.log.warn(`${message} (${record.count} times in ${Math.round((now - record.loggedAt) / 1000)} s; ${this.connectionCount} connections, ${kib(this.memory)} KiB)`);
    record.count = 0;
    record.loggedAt = now;
  }

  private charge(delta: number): void {
    this.memory += delta;
    const limits = this.limits;
    // Hysteresis as tcp_mem's: pressure from above the pressure mark until back under the low one.
    if (this.state === "normal" && this.memory > limits.memoryPressure) {
      this.state = "pressure";
      this.counters.memoryPressureEntered++;
    } else if (this.state === "pressure" && this.memory < limits.memoryLow) {
      this.state = "normal";
    }
    this.counters.memoryBytes = this.memory;
  }

  /** Over the high mark: reset spareable connections, least recently active first, until under the pressure mark. */
  private shed(now: number): void {
    while (this.memory > this.limits.memoryPressure) {
      if (!this.evictOne(now, "the memory high mark")) return;
    }
  }

  /** Resets the least recently active spareable connection (of `listener` only, when given); false when there is none. */
  private evictOne(now: number, why: string, listener?: ListenerShare): boolean {
    let scanned = 0;
    for (const connection of this.active) {
      if (listener !== undefined && connection.entry.listener !== listener) continue;
      if (scanned++ >= MAX_EVICTION_SCAN) break;
      if (!connection.spareable(now, this.limits.evictIdleMs)) continue;
      this.bite("evicted", `reset the least recently active spareable connection to make room (${why})`);
      connection.evict(`reset to make room (${why})`);
      // evict() ends the connection, which takes it out of the set (ended); one that did not end
      // goes to the recent end, so that it is not picked again at once.
      if (this.active.delete(connection)) this.active.add(connection);
      return true;
    }
    return false;
  }

  private endOrphan(connection: BudgetedConnection): void {
    const entry = connection.entry;
    if (!entry.orphan) return;
    entry.orphan = false;
    this.orphanCount--;
    this.counters.orphans = this.orphanCount;
  }
}

function kib(bytes: number): number {
  return Math.round(bytes / 1024);
}

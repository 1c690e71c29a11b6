/**
 * The UDP flows of a published port (`-p <host>:<guest>/udp`): each host-side client, by address
 * and port, gets a flow of its own to the guest (in the gateway: a UDP socket of its own, so that
 * the guest's replies find their way back), as Linux's conntrack tracks UDP:
 *
 * - a flow that has only carried datagrams one way expires after 30 s without traffic
 *   (nf_conntrack_udp_timeout); once the guest has answered, it is a "stream" and lasts 120 s
 *   (nf_conntrack_udp_timeout_stream);
 * - the table is bounded: a new client beyond the limit evicts the flow idle the longest.
 *
 * Pure: times come in as arguments and the table only says what to close, so tests drive it
 * without sockets or clocks; gateway.ts binds it to node:dgram and the gateway's stack.
 */

export interface UdpFlowLimits {
  /** Idle time before a flow that has seen no reply ends (ms). */
  readonly idleMs: number;
  /** Idle time before a flow that has seen replies ends (ms). */
  readonly streamIdleMs: number;
  /** Flows at most; the least recently active is evicted for a new one. */
  readonly maxFlows: number;
}

export const DEFAULT_UDP_FLOW_LIMITS: UdpFlowLimits = { idleMs: 30_000, streamIdleMs: 120_000, maxFlows: 1024 };

export type UdpFlowEnd = "idle" | "evicted" | "closed";

interface Entry<Flow> {
  readonly flow: Flow;
  lastActiveMs: number;
  replied: boolean;
}

export class UdpFlowTable<Flow> {
  /** In order of last activity, oldest first (a Map keeps insertion order; activity re-inserts). */
  readonly #entries = new Map<string, Entry<Flow>>();
  readonly counters = { created: 0, expired: 0, evicted: 0 };

  constructor(
    private readonly limits: UdpFlowLimits,
    /** Called once for each flow that ends, with why; the caller closes what the flow holds. */
    private readonly onEnd: (key: string, flow: Flow, why: UdpFlowEnd) => void,
  ) {
    if (!(limits.maxFlows >= 1 && limits.idleMs > 0 && limits.streamIdleMs > 0)) throw new RangeError("udp flows: limits must be positive");
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * The flow of a datagram from the client `key` at `nowMs`: the existing one (now the most
   * recently active), or one made by `create`, evicting the least recently active flow first
   * when the table is full.
   */
  outbound(key: string, nowMs: number, create: () => Flow): Flow {
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      this.#refresh(key, entry, nowMs);
      return entry.flow;
    }
    if (this.#entries.size >= this.limits.maxFlows) {
      const oldest = this.#entries.entries().next().value;
      if (oldest !== undefined) {
        const [oldestKey, oldestEntry] = oldest;
        this.#entries.delete(oldestKey);
        this.counters.evicted++;
        this.onEnd(oldestKey, oldestEntry.flow, "evicted");
      }
    }
    const flow = create();
    this.#entries.set(key, { flow, lastActiveMs: nowMs, replied: false });
    this.counters.created++;
    return flow;
  }

  /** A reply on the flow of `key` at `nowMs`: the flow becomes a stream. Returns whether the flow exists. */
  inbound(key: string, nowMs: number): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    entry.replied = true;
    this.#refresh(key, entry, nowMs);
    return true;
  }

  /** Ends the flows idle too long at `nowMs`; returns when the next one would expire (ms), or undefined when empty. */
  expire(nowMs: number): number | undefined {
    let next: number | undefined;
    for (const [key, entry] of this.#entries) {
      const expiresAt = entry.lastActiveMs + (entry.replied ? this.limits.streamIdleMs : this.limits.idleMs);
      if (expiresAt <= nowMs) {
        this.#entries.delete(key);
        this.counters.expired++;
        this.onEnd(key, entry.flow, "idle");
      } else if (next === undefined || expiresAt < next) {
        next = expiresAt;
      }
    }
    return next;
  }

  /** Ends every flow (the gateway is going away). */
  clear(): void {
    for (const [key, entry] of [...this.#entries]) {
      this.#entries.delete(key);
      this.onEnd(key, entry.flow, "closed");
    }
  }

  #refresh(key: string, entry: Entry<Flow>, nowMs: number): void {
    entry.lastActiveMs = nowMs;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
  }
}

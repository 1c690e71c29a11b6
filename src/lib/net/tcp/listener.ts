/**
 * A listening port: the LISTEN state of RFC 9293 (§3.10.7.2) with a bounded half-open queue and
 * SYN cookies past it (RFC 4987 §3.6), and an accept queue for applications that pull flows with
 * `accept()` or `for await` instead of passing a callback.
 *
 * A SYN makes a connection in SYN-RECEIVED (its buffers are allocated only once data flows).
 * While `backlog` such connections wait for their handshake to end, further SYNs are answered
 * with a cookie SYN-ACK and no state (or dropped, with `synCookies: "never"`), so that a SYN
 * flood cannot exhaust memory and legitimate clients still get through.
 */
import type { Ipv4Address } from "../../wire/address.ts";
import { TcpFlag } from "../../wire/tcp.ts";
import type { Timers } from "../types.ts";
import type { CookieOptions, PassiveOpenOwner, TcpConnection } from "./connection.ts";
import { COOKIE_LIFETIME_MS, checkCookie, decodeCookieTimestamp } from "./cookies.ts";
import type { ListenerShare } from "./budget.ts";
import type { TcpCounters } from "./counters.ts";
import { TcpFlow } from "./flow.ts";
import { NetError } from "../ipv4.ts";
import type { Segment } from "./segment.ts";
import { seqAdd } from "./seq.ts";
import type { ConnectionSettings, LayerSettings } from "./settings.ts";
import type { TcpSecrets } from "./isn.ts";
import type { NetLogger } from "../ethernet.ts";
import { readProxyHeader } from "./proxy-header.ts";

/** What a listener needs from the layer. */
export interface ListenerHost {
  readonly timers: Timers;
  readonly counters: TcpCounters;
  readonly secrets: TcpSecrets;
  readonly settings: LayerSettings;
  /**
   * Whether the budget takes one more connection from `source` for this listener (after
   * displacing a spareable one if need be); a refusal is counted and logged there.
   */
  admit(listener: TcpListener, source: Ipv4Address): boolean;
  /** Makes a connection in SYN-RECEIVED for `syn` and enters it in the demultiplexing table. */
  openPassive(listener: TcpListener, syn: Segment): TcpConnection;
  /** Makes an ESTABLISHED connection from a valid cookie's ACK. */
  openFromCookie(listener: TcpListener, ack: Segment, iss: number, options: CookieOptions): TcpConnection;
  /** Answers a SYN with a cookie SYN-ACK. */
  sendCookieSynAck(listener: TcpListener, syn: Segment): void;
  /** RFC 9293 §3.10.7.1/.2: the RST for a segment nobody takes. */
  sendResetFor(segment: Segment): void;
  /** The listener closed: free its port. */
  releaseListener(listener: TcpListener): void;
  /** Connections from this address start with a PROXY protocol v2 header (see proxy-header.ts). */
  readonly proxyProtocolFrom: Ipv4Address | undefined;
  readonly log: NetLogger;
}

export type FlowHandler = (flow: TcpFlow) => void;

export class TcpListener implements PassiveOpenOwner, ListenerShare, AsyncIterable<TcpFlow> {
  /** Connections made through this listener that the application holds (the budget keeps it). */
  heldConnections = 0;
  /** Connections in SYN-RECEIVED. */
  private halfOpen = 0;
  private readonly queue: TcpFlow[] = [];
  private readonly waiters: { resolve(flow: TcpFlow): void; reject(error: Error): void }[] = [];
  private readonly halfOpenConnections = new Set<TcpConnection>();
  private lastCookieAt = -Infinity;
  private isClosed = false;

  constructor(
    private readonly host: ListenerHost,
    readonly port: number,
    /** 0.0.0.0: any of our addresses. */
    readonly address: Ipv4Address,
    /** Settings for the connections it accepts. */
    readonly settings: ConnectionSettings,
    /** Half-open connections before cookies, and flows waiting for `accept` at most. */
    readonly backlog: number,
    /** Connections the application may hold at once (the budget refuses more). */
    readonly maxConnections: number,
    private readonly onFlow: FlowHandler | undefined,
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  /** Connections in SYN-RECEIVED now. */
  get halfOpenCount(): number {
    return this.halfOpen;
  }

  /** The next accepted flow (when no callback was given to `listen`). Rejects with NetError "closed" once closed. */
  accept(): Promise<TcpFlow> {
    const flow = this.queue.shift();
    if (flow !== undefined) return Promise.resolve(flow);
    if (this.isClosed) return Promise.reject(new NetError("closed", `tcp: listener on port ${this.port} is closed`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TcpFlow, void, undefined> {
    for (;;) {
      let flow: TcpFlow;
      try {
        flow = await this.accept();
      } catch (error) {
        if (error instanceof NetError && error.code === "closed") return;
        throw error;
      }
      yield flow;
    }
  }

  /** Stops listening: half-open connections are reset, queued flows aborted, `accept` rejects. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.host.releaseListener(this);
    for (const connection of [...this.halfOpenConnections]) connection.abort();
    for (const flow of this.queue.splice(0)) flow.abort();
    const error = new NetError("closed", `tcp: listener on port ${this.port} is closed`);
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  /** Whether a segment to `dst` is for this listener. */
  accepts(dst: Ipv4Address): boolean {
    return this.address === 0 || this.address === dst;
  }

  /** RFC 9293 §3.10.7.2: a segment for the LISTEN state. Never throws on any input. */
  receive(segment: Segment): void {
    const counters = this.host.counters;
    if (segment.has(TcpFlag.Rst)) {
      counters.listenDrops++;
      return;
    }
    if (segment.has(TcpFlag.Ack)) {
      if (!segment.has(TcpFlag.Syn) && this.host.timers.now() - this.lastCookieAt <= COOKIE_LIFETIME_MS) {
        if (this.completeCookie(segment)) return;
        if (segment.length > 0) {
          // Perhaps a later segment of a cookie connection whose handshake ACK and first data
          // segment were lost: its sequence number is not the client's ISN + 1 that the cookie is
          // checked against, so it cannot be told from a forged one. A reset would kill a
          // connection the client believes established (Linux resets it); dropped, the client
          // retransmits from ISN + 1 and that segment completes the cookie. Only while cookies
          // are in use: a stray segment then costs its sender a timeout instead of a reset.
          counters.synCookiesDeferred++;
          return;
        }
      }
      // "Any acknowledgment is bad if it arrives on a connection still in the LISTEN state."
      this.host.sendResetFor(segment);
      return;
    }
    if (!segment.has(TcpFlag.Syn) || segment.has(TcpFlag.Fin)) {
      // No SYN: nothing to do (RFC 9293). SYN+FIN: no stack sends it, scanners do (Linux drops it too).
      counters.listenDrops++;
      return;
    }
    if (this.onFlow === undefined && this.queue.length >= this.backlog) {
      counters.listenDrops++;
      return;
    }
    if (this.halfOpen >= this.backlog) {
      if (this.host.settings.synCookies === "never") {
        counters.listenDrops++;
        return;
      }
      this.lastCookieAt = this.host.timers.now();
      this.host.sendCookieSynAck(this, segment);
      return;
    }
    // State is made here: the budget decides (dropping the SYN, as for a full accept queue).
    if (!this.host.admit(this, segment.src)) return;
    this.halfOpen++;
    const connection = this.host.openPassive(this, segment);
    if (connection.state === "SYN-RECEIVED") this.halfOpenConnections.add(connection);
  }

  /** The ACK of a cookie SYN-ACK: checks the cookie and, if good, makes the connection. */
  private completeCookie(segment: Segment): boolean {
    const host = this.host;
    const clientIsn = seqAdd(segment.seq, -1);
    const iss = seqAdd(segment.ack, -1);
    const tuple = { local: segment.dst, localPort: segment.dstPort, remote: segment.src, remotePort: segment.srcPort };
    const mss = checkCookie(host.secrets, tuple, clientIsn, iss, host.timers.now());
    if (mss < 0) {
      host.counters.synCookiesFailed++;
      return false;
    }
    host.counters.synCookiesValidated++;
    // A valid cookie makes state: the budget decides; refused, the ACK is dropped (the client
    // retransmits it, as when Linux's accept queue is full), which the caller must not answer with a RST.
    if (!host.admit(this, segment.src)) return true;
    const options = segment.options;
    const decoded = options.timestamps ? decodeCookieTimestamp(options.tsEcho) : { windowScale: -1, sackPermitted: false };
    this.halfOpen++;
    host.openFromCookie(this, segment, iss, {
      mss,
      windowScale: decoded.windowScale,
      sackPermitted: decoded.sackPermitted,
      tsValue: options.timestamps ? options.tsValue : undefined,
    });
    return true;
  }

  handshakeEnded(connection: TcpConnection, established: boolean): void {
    this.halfOpen--;
    this.halfOpenConnections.delete(connection);
    if (!established) return;
    if (this.isClosed) {
      connection.abort();
      return;
    }
    const flow = new TcpFlow(connection);
    const relay = this.host.proxyProtocolFrom;
    if (relay !== undefined && connection.remoteAddress === relay) {
      // From the trusted relay: the application gets the flow once its PROXY header is in.
      void readProxyHeader(flow, this.host.timers).then((refused) => {
        if (refused === undefined) this.deliver(flow);
        else this.host.log.warn(`port ${this.port}: a connection from the PROXY protocol relay was reset: ${refused}`);
      });
      return;
    }
    this.deliver(flow);
  }

  /** Hands an established flow to the application: its callback, a waiting accept, or the queue. */
  private deliver(flow: TcpFlow): void {
    if (this.isClosed) {
      flow.abort();
      return;
    }
    const onFlow = this.onFlow;
    if (onFlow !== undefined) {
      // Not from inside the connection's processing: the handler runs as a microtask, and an
      // exception in it surfaces as a rejection (the scheduler ends the appliance, as for a bug).
      void Promise.resolve(flow).then(onFlow);
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter.resolve(flow);
    else this.queue.push(flow);
  }
}

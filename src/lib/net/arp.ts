/**
 * ARP (RFC 826) for IPv4 over Ethernet: a bounded cache of neighbours, resolution with retries
 * and a bounded queue of packets waiting on it, answers for our address, gratuitous ARP when an
 * address is assigned (RFC 5227 §2.3) and detection of other hosts claiming our address (RFC 5227
 * §2.4).
 *
 * The cache keeps each entry "reachable" for `reachableMs` after the last ARP packet from that
 * neighbour. An entry in use during the last `refreshWindowMs` of that time is refreshed with a
 * unicast request to the cached MAC, at most one a `requestIntervalMs` (RFC 1122 §2.3.2.1's
 * "unicast poll", which also keeps the one-request-a-second rule against flooding). Entries past
 * their time are forgotten on lookup; eviction when full takes the least recently confirmed entry,
 * which is also the one closest to expiry (Map iteration order is insertion order).
 *
 * Packets are queued per destination while a resolution runs (RFC 1122 §2.3.2.2 asks for at least
 * the latest one): when a destination's queue is full its oldest packet goes, when the total is
 * reached the new one does. A resolution that gets no answer after `requestAttempts` requests drops
 * its packets and reports each as unreachable, so that the IP layer can tell the transport.
 *
 * Negative advice (RFC 1122 §3.3.1.4 and §2.3.2.1; TCP gives it after R1 retransmissions,
 * §4.2.3.5): `adviseUnreachable` re-validates a cached neighbour that a transport suspects. The
 * entry stays in use while requests go out `requestIntervalMs` apart, at most `requestAttempts`:
 * the first unicast to the cached MAC (the "unicast poll"), the others broadcast, so that a
 * neighbour whose MAC changed answers too. Any ARP packet from the neighbour ends it; no answer
 * removes the entry, so that the next send resolves afresh and, if that fails as well, the
 * transport hears "host unreachable".
 */
import { Ipv4Address, MacAddress } from "../wire/address.ts";
import { ARP_PACKET_LENGTH, ArpRepr } from "../wire/arp.ts";
import { EtherType } from "../wire/ethernet.ts";
import { WireError } from "../wire/error.ts";
import type { EthernetInterface, LinkDestination, NetLogger } from "./ethernet.ts";
import type { TimerHandle, Timers } from "./types.ts";

export interface ArpLimits {
  /** Neighbours cached at most. */
  cacheSize: number;
  /** How long an entry stays usable after the neighbour was last heard from. */
  reachableMs: number;
  /** At the end of the reachable time, uses of an entry send a unicast refresh request. */
  refreshWindowMs: number;
  /** Between two requests for the same address (RFC 1122 §2.3.2.1: at most one a second). */
  requestIntervalMs: number;
  /** Requests sent for one resolution before it fails. */
  requestAttempts: number;
  /** Packets queued for one unresolved address. */
  queuePerDestination: number;
  /** Packets queued for all unresolved addresses together. */
  queueTotal: number;
  /** Bytes queued for all unresolved addresses together. */
  queueBytes: number;
  /** RFC 5227 §1.1: ANNOUNCE_NUM announcements, ANNOUNCE_INTERVAL apart. */
  announceCount: number;
  announceIntervalMs: number;
  /** RFC 5227 §1.1: DEFEND_INTERVAL, the least time between two defending announcements. */
  defendIntervalMs: number;
}

export const DEFAULT_ARP_LIMITS: Readonly<ArpLimits> = {
  cacheSize: 512,
  reachableMs: 60_000,
  refreshWindowMs: 10_000,
  requestIntervalMs: 1_000,
  requestAttempts: 3,
  queuePerDestination: 3,
  queueTotal: 64,
  queueBytes: 1024 * 1024,
  announceCount: 2,
  announceIntervalMs: 2_000,
  defendIntervalMs: 10_000,
};

/**
 * Each received ARP packet lands in `rxPackets` and then in exactly one of the outcomes
 * (`requestsAnswered`, `repliesReceived`, `updates`, `conflicts`) or the drops (`malformed`,
 * `unsupported`, `badSender`, `notForUs`).
 */
export type ArpCounters = {
  rxPackets: number;
  /** A request for our address, answered (RFC 5227 probes included). */
  requestsAnswered: number;
  /** A reply to us, cached. */
  repliesReceived: number;
  /** Not for us, but from a cached neighbour, whose entry was refreshed (RFC 826's merge). */
  updates: number;
  /** Another host claims our address (RFC 5227 §2.4). */
  conflicts: number;
  /** Drop: too short for its header or for Ethernet/IPv4 addresses. */
  malformed: number;
  /** Drop: not Ethernet/IPv4 ARP, or an operation other than request and reply (RARP, InARP). */
  unsupported: number;
  /** Drop: a group, zero or our own MAC as the sender, or a sender address that is not one host's. */
  badSender: number;
  /** Drop: about other hosts, or no address configured. */
  notForUs: number;
  requestsSent: number;
  repliesSent: number;
  announcementsSent: number;
  /** Resolutions that got no answer. */
  resolutionFailures: number;
  /** Outgoing packets dropped because the queue was full. */
  queueOverflow: number;
  /** Outgoing packets dropped because their resolution failed. */
  unresolvedDrops: number;
  /** Entries evicted to make room. */
  cacheEvictions: number;
  /** Re-validations started by negative advice, and entries they removed for want of an answer. */
  revalidations: number;
  revalidationFailures: number;
  /** Gauges: entries cached, resolutions running and packets queued now. */
  cacheEntries: number;
  pendingResolutions: number;
  queuedPackets: number;
};

/** What the ARP layer needs to know of a queued packet. */
export interface ArpQueuedPacket {
  readonly byteLength: number;
}

export interface ArpLayerOptions<Packet extends ArpQueuedPacket> {
  ethernet: EthernetInterface;
  timers: Timers;
  log: NetLogger;
  limits?: Partial<ArpLimits> | undefined;
  /** A queued packet's next hop was resolved: send it now. */
  transmit(packet: Packet, mac: MacAddress): void;
  /** A queued packet was dropped because its next hop did not answer (host unreachable). */
  unreachable(packet: Packet, nextHop: Ipv4Address): void;
}

interface CacheEntry {
  mac: MacAddress;
  confirmedAt: number;
  lastRefreshAt: number;
}

interface Resolution<Packet> {
  readonly packets: Packet[];
  attempts: number;
  timer: TimerHandle;
}

/** A cached neighbour being re-validated after negative advice. */
interface Revalidation {
  attempts: number;
  timer: TimerHandle;
}

/** A placeholder until the first timer of a re-validation is set. */
const NO_TIMER: TimerHandle = { cancel() {} };

export class ArpLayer<Packet extends ArpQueuedPacket> {
  readonly counters: ArpCounters = {
    rxPackets: 0,
    requestsAnswered: 0,
    repliesReceived: 0,
    updates: 0,
    conflicts: 0,
    malformed: 0,
    unsupported: 0,
    badSender: 0,
    notForUs: 0,
    requestsSent: 0,
    repliesSent: 0,
    announcementsSent: 0,
    resolutionFailures: 0,
    queueOverflow: 0,
    unresolvedDrops: 0,
    cacheEvictions: 0,
    revalidations: 0,
    revalidationFailures: 0,
    cacheEntries: 0,
    pendingResolutions: 0,
    queuedPackets: 0,
  };
  readonly limits: Readonly<ArpLimits>;
  private readonly cache = new Map<Ipv4Address, CacheEntry>();
  private readonly resolutions = new Map<Ipv4Address, Resolution<Packet>>();
  private readonly revalidations = new Map<Ipv4Address, Revalidation>();
  private queuedBytes = 0;
  private address: Ipv4Address | undefined;
  private announcementTimer: TimerHandle | undefined;
  private lastDefendedAt = -Infinity;
  private readonly ethernet: EthernetInterface;
  private readonly timers: Timers;
  private readonly log: NetLogger;
  private readonly options: ArpLayerOptions<Packet>;

  constructor(options: ArpLayerOptions<Packet>) {
    this.options = options;
    this.ethernet = options.ethernet;
    this.timers = options.timers;
    this.log = options.log;
    this.limits = { ...DEFAULT_ARP_LIMITS, ...options.limits };
  }

  /**
   * Sets (or clears) our address. A new address is announced with gratuitous ARP requests
   * (RFC 5227 §2.3); clearing it fails the resolutions in progress, which could not be answered.
   */
  setAddress(address: Ipv4Address | undefined): void {
    if (address === this.address) return;
    this.address = address;
    this.announcementTimer?.cancel();
    this.announcementTimer = undefined;
    this.lastDefendedAt = -Infinity;
    this.cancelRevalidations();
    if (address === undefined) {
      for (const nextHop of [...this.resolutions.keys()]) this.fail(nextHop);
      return;
    }
    this.announce(address, this.limits.announceCount);
  }

  /**
   * The MAC for `nextHop` if cached and still reachable. Sends a unicast refresh request when the
   * entry nears its end, so a neighbour in use is confirmed before it expires.
   */
  lookup(nextHop: Ipv4Address): MacAddress | undefined {
    const entry = this.cache.get(nextHop);
    if (entry === undefined) return undefined;
    const now = this.timers.now();
    const age = now - entry.confirmedAt;
    if (age >= this.limits.reachableMs) {
      this.cache.delete(nextHop);
      this.counters.cacheEntries = this.cache.size;
      return undefined;
    }
    const address = this.address;
    if (
      address !== undefined &&
      age >= this.limits.reachableMs - this.limits.refreshWindowMs &&
      now - entry.lastRefreshAt >= this.limits.requestIntervalMs
    ) {
      entry.lastRefreshAt = now;
      this.sendRequest(address, nextHop, entry.mac);
    }
    return entry.mac;
  }

  /**
   * Negative advice (see the module comment): packets to `nextHop` seem not to get through, so
   * re-validate its cache entry. Returns whether a re-validation started: not when nothing is
   * cached for it (the next send resolves it anyway), no address is configured, or one runs already.
   */
  adviseUnreachable(nextHop: Ipv4Address): boolean {
    const entry = this.cache.get(nextHop);
    const address = this.address;
    if (entry === undefined || address === undefined || this.revalidations.has(nextHop)) return false;
    this.counters.revalidations++;
    this.log.debug(() => `re-validating ${Ipv4Address.format(nextHop)} (negative advice)`);
    const revalidation: Revalidation = { attempts: 0, timer: NO_TIMER };
    this.revalidations.set(nextHop, revalidation);
    this.revalidate(nextHop, revalidation, entry.mac);
    return true;
  }

  /** The cached MAC for `address` without any side effect (for tests and diagnostics). */
  peek(address: Ipv4Address): MacAddress | undefined {
    return this.cache.get(address)?.mac;
  }

  /**
   * Queues `packet` (which the ARP layer now owns) until `nextHop` is resolved, starting the
   * resolution if none is running.
   */
  enqueue(nextHop: Ipv4Address, packet: Packet): void {
    const address = this.address;
    const counters = this.counters;
    if (address === undefined) {
      // Nothing could answer a request without a sender address: fail at once.
      counters.unresolvedDrops++;
      this.options.unreachable(packet, nextHop);
      return;
    }
    let resolution = this.resolutions.get(nextHop);
    if (resolution !== undefined && resolution.packets.length >= this.limits.queuePerDestination) {
      // RFC 1122 §2.3.2.2: keep the latest packet, so drop the oldest of this destination.
      const oldest = resolution.packets.shift();
      if (oldest !== undefined) this.release(oldest);
      counters.queueOverflow++;
    }
    if (counters.queuedPackets >= this.limits.queueTotal || this.queuedBytes + packet.byteLength > this.limits.queueBytes) {
      counters.queueOverflow++;
      return;
    }
    if (resolution === undefined) {
      resolution = { packets: [], attempts: 0, timer: this.scheduleRetry(nextHop) };
      this.resolutions.set(nextHop, resolution);
      counters.pendingResolutions = this.resolutions.size;
      this.request(nextHop, resolution, address);
    }
    resolution.packets.push(packet);
    counters.queuedPackets++;
    this.queuedBytes += packet.byteLength;
  }

  /** Handles one received ARP packet (the Ethernet payload, valid only during the call). */
  receive(payload: Uint8Array, _destination: LinkDestination): void {
    const counters = this.counters;
    counters.rxPackets++;
    const arp = ArpRepr.parse(payload);
    if (arp instanceof WireError) {
      if (arp.kind === "unsupported") counters.unsupported++;
      else counters.malformed++;
      return;
    }
    const own = this.address;
    if (own === undefined) {
      counters.notForUs++;
      return;
    }
    const senderMac = arp.senderHardwareAddress;
    const senderAddress = arp.senderProtocolAddress;
    if (MacAddress.isMulticast(senderMac) || senderMac === MacAddress.UNSPECIFIED || senderMac === this.ethernet.mac) {
      counters.badSender++;
      return;
    }
    if (senderAddress === own) {
      this.conflict(own, senderMac);
      return;
    }
    const forUs = arp.targetProtocolAddress === own;
    if (Ipv4Address.isUnspecified(senderAddress)) {
      // An RFC 5227 §2.1.1 probe: answer it if it is for our address (the prober then sees the
      // conflict), but cache nothing, as the sender has no address yet.
      if (forUs && arp.operation === "request") {
        counters.requestsAnswered++;
        this.sendReply(own, senderMac, senderAddress);
      } else {
        counters.notForUs++;
      }
      return;
    }
    if (!Ipv4Address.isUnicast(senderAddress)) {
      counters.badSender++;
      return;
    }
    // RFC 826, "Packet Reception": update an entry we have (merge), add one only when addressed.
    const known = this.cache.has(senderAddress);
    if (known || forUs) this.confirm(senderAddress, senderMac);
    if (!forUs) {
      if (known) counters.updates++;
      else counters.notForUs++;
      return;
    }
    if (arp.operation === "request") {
      counters.requestsAnswered++;
      this.sendReply(own, senderMac, senderAddress);
    } else {
      counters.repliesReceived++;
    }
  }

  /** Cancels every timer and forgets all state; queued packets are dropped silently. */
  close(): void {
    this.announcementTimer?.cancel();
    this.announcementTimer = undefined;
    this.cancelRevalidations();
    for (const resolution of this.resolutions.values()) resolution.timer.cancel();
    this.resolutions.clear();
    this.cache.clear();
    this.queuedBytes = 0;
    this.counters.queuedPackets = 0;
    this.counters.pendingResolutions = 0;
    this.counters.cacheEntries = 0;
  }

  /** Records `mac` for `address` as just confirmed, then sends what waited for it. */
  private confirm(address: Ipv4Address, mac: MacAddress): void {
    const now = this.timers.now();
    const cache = this.cache;
    const existing = cache.get(address);
    if (existing !== undefined) {
      // Re-inserting keeps the Map in order of confirmation, oldest first.
      cache.delete(address);
      existing.mac = mac;
      existing.confirmedAt = now;
      cache.set(address, existing);
    } else {
      if (cache.size >= this.limits.cacheSize) {
        for (const oldest of cache.keys()) {
          cache.delete(oldest);
          this.counters.cacheEvictions++;
          break;
        }
      }
      cache.set(address, { mac, confirmedAt: now, lastRefreshAt: -Infinity });
    }
    this.counters.cacheEntries = cache.size;
    const revalidation = this.revalidations.get(address);
    if (revalidation !== undefined) {
      revalidation.timer.cancel();
      this.revalidations.delete(address);
    }
    const resolution = this.resolutions.get(address);
    if (resolution === undefined) return;
    this.finish(address, resolution);
    for (const packet of resolution.packets) this.options.transmit(packet, mac);
  }

  /** One re-validation request, then its timer: another request, or the end of the entry. */
  private revalidate(nextHop: Ipv4Address, revalidation: Revalidation, cachedMac: MacAddress): void {
    const address = this.address;
    if (address === undefined) return;
    revalidation.attempts++;
    this.sendRequest(address, nextHop, revalidation.attempts === 1 ? cachedMac : MacAddress.BROADCAST);
    revalidation.timer = this.timers.at(this.timers.now() + this.limits.requestIntervalMs, () => {
      if (this.revalidations.get(nextHop) !== revalidation) return;
      if (revalidation.attempts < this.limits.requestAttempts) {
        this.revalidate(nextHop, revalidation, cachedMac);
        return;
      }
      this.revalidations.delete(nextHop);
      this.counters.revalidationFailures++;
      if (this.cache.delete(nextHop)) this.counters.cacheEntries = this.cache.size;
      this.log.debug(() => `no answer from ${Ipv4Address.format(nextHop)} to re-validation; forgotten`);
    });
  }

  private cancelRevalidations(): void {
    for (const revalidation of this.revalidations.values()) revalidation.timer.cancel();
    this.revalidations.clear();
  }

  private scheduleRetry(nextHop: Ipv4Address): TimerHandle {
    return this.timers.at(this.timers.now() + this.limits.requestIntervalMs, () => this.retry(nextHop));
  }

  private retry(nextHop: Ipv4Address): void {
    const resolution = this.resolutions.get(nextHop);
    const address = this.address;
    if (resolution === undefined || address === undefined) return;
    if (resolution.attempts >= this.limits.requestAttempts) {
      this.fail(nextHop);
      return;
    }
    resolution.timer = this.scheduleRetry(nextHop);
    this.request(nextHop, resolution, address);
  }

  private request(nextHop: Ipv4Address, resolution: Resolution<Packet>, address: Ipv4Address): void {
    resolution.attempts++;
    this.sendRequest(address, nextHop, MacAddress.BROADCAST);
  }

  private fail(nextHop: Ipv4Address): void {
    const resolution = this.resolutions.get(nextHop);
    if (resolution === undefined) return;
    this.finish(nextHop, resolution);
    this.counters.resolutionFailures++;
    this.log.debug(() => `no answer from ${Ipv4Address.format(nextHop)}; ${resolution.packets.length} packet(s) dropped`);
    for (const packet of resolution.packets) {
      this.counters.unresolvedDrops++;
      this.options.unreachable(packet, nextHop);
    }
  }

  /** Ends a resolution's bookkeeping; its packets are the caller's to send or drop. */
  private finish(nextHop: Ipv4Address, resolution: Resolution<Packet>): void {
    resolution.timer.cancel();
    this.resolutions.delete(nextHop);
    for (const packet of resolution.packets) this.release(packet);
    this.counters.pendingResolutions = this.resolutions.size;
  }

  private release(packet: Packet): void {
    this.counters.queuedPackets--;
    this.queuedBytes -= packet.byteLength;
  }

  private conflict(own: Ipv4Address, claimant: MacAddress): void {
    this.counters.conflicts++;
    const now = this.timers.now();
    // RFC 5227 §2.4 (b): defend with one announcement, unless we defended recently; then, unlike
    // (c), keep the address: an appliance has no other one to move to, so it only says so.
    if (now - this.lastDefendedAt < this.limits.defendIntervalMs) return;
    this.lastDefendedAt = now;
    this.log.warn(
      `address conflict: ${Ipv4Address.format(own)} is also claimed by ${MacAddress.format(claimant)} (we are ${MacAddress.format(this.ethernet.mac)}); defending it`,
    );
    this.announce(own, 1);
  }

  /** Sends `count` gratuitous requests for `address`, `announceIntervalMs` apart (RFC 5227 §2.3). */
  private announce(address: Ipv4Address, count: number): void {
    if (count <= 0 || address !== this.address) return;
    this.counters.announcementsSent++;
    // RFC 5227 §3: an ARP request whose sender and target addresses are both ours, broadcast.
    this.send("request", MacAddress.BROADCAST, address, address, MacAddress.UNSPECIFIED);
    if (count > 1) {
      this.announcementTimer = this.timers.at(this.timers.now() + this.limits.announceIntervalMs, () => {
        this.announcementTimer = undefined;
        this.announce(address, count - 1);
      });
    }
  }

  private sendRequest(own: Ipv4Address, target: Ipv4Address, to: MacAddress): void {
    this.counters.requestsSent++;
    this.send("request", to, own, target, MacAddress.UNSPECIFIED);
  }

  private sendReply(own: Ipv4Address, to: MacAddress, toAddress: Ipv4Address): void {
    this.counters.repliesSent++;
    this.send("reply", to, own, toAddress, to);
  }

  private send(
    operation: ArpRepr["operation"],
    to: MacAddress,
    senderAddress: Ipv4Address,
    targetAddress: Ipv4Address,
    targetMac: MacAddress,
  ): void {
    ArpRepr.emit(
      {
        operation,
        senderHardwareAddress: this.ethernet.mac,
        senderProtocolAddress: senderAddress,
        targetHardwareAddress: targetMac,
        targetProtocolAddress: targetAddress,
      },
      this.ethernet.payloadBuffer,
    );
    this.ethernet.send(to, EtherType.Arp, ARP_PACKET_LENGTH);
  }
}

/**
 * Frame fuzzer for the IPv4 stack, in process: the generator (test/fuzz/generator.ts) makes valid
 * frames and echoes of what the stack itself sent, the mutator (test/fuzz/mutator.ts) damages most
 * of them, and each frame goes into a Stack over a virtual link on a virtual clock. The stack
 * pings, sends and fragments on its own now and then, and time jumps so that ARP, reassembly and
 * ping timers fire.
 *
 * What must hold, checked as it runs by the oracle (test/fuzz/oracle.ts; a violation stops the
 * run with the seed and frame index):
 * - no exception escapes the stack, and no ping or send fails with anything but a NetError;
 * - the receive counters balance and `ethernet.rxFrames` equals the frames fed;
 * - the state stays within the configured limits (reassemblies, reassembly bytes, ARP cache and
 *   queue);
 * - every frame the stack sends is well formed;
 * - at the end, once every timer has run, nothing is left pending.
 *
 * Used by test/net/fuzz-frames.test.ts (a CI-sized run) and by `npm run fuzz` (scripts/fuzz-frames.ts,
 * long runs). Same seed, same frames, same result: a failure at frame k reproduces with
 * `npm run fuzz -- --seed S --frames k+1`.
 */
import { NetError, RECEIVE_DROP_COUNTERS, STACK_LAYERS, type NetLogFactory, type Stack, type StackCounters, type UdpSocket } from "atoll/net";
import { SeededRandom, type VirtualClock, type VirtualPort } from "../../src/lib/net/testing/virtual-link.ts";
import { EtherType, IpProtocol, Ipv4Address } from "atoll/wire";
import { FrameGenerator, type GeneratedFrame } from "./generator.ts";
import { CLOSED_PORT, CONFIG, ECHO_PORT, ip, MTU, OFF_LINK, OUR_MAC, OURS, PEERS, peerAddress, QUEUE_PORT, READ_PORT, SUBNET_BROADCAST } from "./host.ts";
import { FrameMutator, type Mutation } from "./mutator.ts";
import { counterProblem, SentFrameOracle, updatePeaks, type Peaks } from "./oracle.ts";
import { virtualStack } from "./virtual-stack.ts";

export interface FuzzOptions {
  frames: number;
  seed: number;
  /** Check the counters' balance and the bounds every this many frames (default 1000). */
  checkEvery?: number;
  /** Called every `progressEvery` frames (default 1,000,000). */
  onProgress?: (progress: FuzzProgress) => void;
  progressEvery?: number;
}

export interface FuzzProgress {
  frames: number;
  elapsedMs: number;
  framesPerSecond: number;
  counters: StackCounters;
}

export interface FuzzReport {
  seed: number;
  frames: number;
  elapsedMs: number;
  framesPerSecond: number;
  /** Virtual time the run covered. */
  virtualMs: number;
  counters: StackCounters;
  /** Frames the stack sent, all checked. */
  sentFrames: number;
  /** Fragmented datagrams the stack sent that were reassembled here and checked whole. */
  sentDatagramsReassembled: number;
  /** Frames made by each generator, and how each was mutated. */
  generated: Record<string, number>;
  mutations: Partial<Record<Mutation, number>>;
  /** Log lines the stack wrote, by level (every message built, so its code ran). */
  logLines: Record<string, number>;
  /** Largest values the gauges reached. */
  peaks: Peaks;
}

/** A violated invariant, with what is needed to reproduce it. */
export class FuzzFailure extends Error {
  override readonly name = "FuzzFailure";
  constructor(
    message: string,
    readonly seed: number,
    /** Index of the frame being processed (or the frames fed so far). */
    readonly frameIndex: number,
    readonly frameHex: string | undefined,
  ) {
    super(`${message} (seed ${seed}, frame ${frameIndex}${frameHex === undefined ? "" : `: ${frameHex}`}); reproduce with npm run fuzz -- --seed ${seed} --frames ${frameIndex + 1}`);
  }
}

/** More timers than this firing in one step of the clock is taken for a loop. */
const MAX_TIMERS_PER_STEP = 100_000;

/** One fuzzing run; resolves with the report or rejects with a FuzzFailure. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  return new Fuzzer(options).run();
}

class Fuzzer {
  private readonly random: SeededRandom;
  private readonly clock: VirtualClock;
  private readonly port: VirtualPort;
  private readonly stack: Stack;
  private readonly client: UdpSocket;
  private readonly reader: UdpSocket;
  private readonly options: Required<Omit<FuzzOptions, "onProgress">> & Pick<FuzzOptions, "onProgress">;
  /** Recent frames the stack sent (copies), for replies to them and for splices. */
  private readonly sent: Uint8Array[] = [];
  /** Recent frames fed, for splices. */
  private readonly fed: Uint8Array[] = [];
  /** Valid frames waiting to be fed, each with the chance that it is mutated. */
  private readonly pending: GeneratedFrame[] = [];
  /** Recent ARP and echo requests the stack sent: what a peer would answer. */
  private readonly solicitations: Uint8Array[] = [];
  private readonly generator: FrameGenerator;
  private readonly mutator: FrameMutator;
  private readonly oracle = new SentFrameOracle();
  private readonly logLines: Record<string, number> = { error: 0, warn: 0, info: 0, debug: 0 };
  private readonly peaks: Peaks = { reassembliesPending: 0, reassemblyBytes: 0, arpCacheEntries: 0, arpQueuedPackets: 0 };
  /** The stack's configuration now: the fuzzer takes the address away and gives it back now and then. */
  private configured = true;
  private sentFrames = 0;
  private frameIndex = 0;
  private currentFrame: Uint8Array | undefined;
  private failure: FuzzFailure | undefined;

  constructor(options: FuzzOptions) {
    this.options = { checkEvery: 1000, progressEvery: 1_000_000, ...options };
    this.random = new SeededRandom(options.seed);
    this.generator = new FrameGenerator(this.random, { sent: this.sent, solicitations: this.solicitations });
    this.mutator = new FrameMutator(this.random, this.fed);
    const levels = this.logLines;
    const log: NetLogFactory = () => {
      const record =
        (level: string) =>
        (message: string | (() => string)): void => {
          levels[level] = (levels[level] ?? 0) + 1;
          if (typeof message === "function") message();
        };
      return { error: record("error"), warn: record("warn"), info: record("info"), debug: record("debug") };
    };
    const host = virtualStack({ ipv4: CONFIG, seed: options.seed ^ 0x5eed, log, linkSeed: options.seed, mac: OUR_MAC, mtu: MTU, tap: (frame) => this.checkSent(frame) });
    this.clock = host.clock;
    this.port = host.port;
    this.stack = host.stack;
    const echo = this.stack.udp.bind(ECHO_PORT);
    echo.onDatagram((payload, from) => {
      // Source port 0 means "no reply expected" (RFC 768), and send() refuses it with a RangeError.
      // Nor does it answer our own address: the stack takes datagrams from the wire that claim it
      // as their source (a known bug, see test/net/fuzz-frames.test.ts), and an echo answering
      // one would talk to itself forever through local delivery.
      if (from.port === 0 || from.address === OURS) return;
      try {
        echo.send(payload, from);
      } catch (error) {
        this.expectNetError(error, "udp echo send");
      }
    });
    this.stack.udp.bind({ port: QUEUE_PORT, queueLength: 8 }); // a queue nobody reads: queueFull
    this.reader = this.stack.udp.bind({ port: READ_PORT, queueLength: 4 });
    this.client = this.stack.udp.bind(0);
    this.client.onError(() => {});
    // Port 68 as a DHCP client holds it: datagrams from port 67 reach it whatever their destination.
    this.stack.openDhcpPort(() => {});
    this.drain().catch(() => {}); // a failure there is recorded in this.failure
  }

  async run(): Promise<FuzzReport> {
    const { frames, checkEvery, progressEvery, onProgress } = this.options;
    const started = performance.now();
    const startedVirtual = this.clock.now();
    const random = this.random;
    for (this.frameIndex = 0; this.frameIndex < frames; this.frameIndex++) {
      if (this.pending.length === 0) this.pending.push(...this.generator.generate());
      const next = this.pending.shift() as GeneratedFrame;
      const frame = random.chance(next.mutation) ? this.mutator.mutate(next.frame) : this.mutator.keep(next.frame);
      this.currentFrame = frame;
      try {
        this.port.deliver(frame);
      } catch (error) {
        this.failWith(error, "the stack threw on a received frame");
      }
      this.remember(this.fed, frame);
      // Time: mostly still, now and then a few ms, rarely past every timeout.
      const step = random.below(64);
      try {
        if (step < 6) this.advance(random.below(40));
        else if (step === 6 && random.below(400) === 0) this.advance(35_000);
        if (random.below(1500) === 0) this.act();
      } catch (error) {
        this.failWith(error, "a timer or a send threw");
      }
      if (this.failure !== undefined) throw this.failure;
      if ((this.frameIndex + 1) % checkEvery === 0) {
        this.check(this.frameIndex + 1);
        // Let promises (pings, the reading socket) settle, as the scheduler would between wake-ups.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.failure !== undefined) throw this.failure;
      }
      if (onProgress !== undefined && (this.frameIndex + 1) % progressEvery === 0) {
        const elapsedMs = performance.now() - started;
        onProgress({ frames: this.frameIndex + 1, elapsedMs, framesPerSecond: ((this.frameIndex + 1) * 1000) / elapsedMs, counters: this.stack.counters() });
      }
    }
    this.currentFrame = undefined;
    this.check(frames);
    const elapsedMs = performance.now() - started;
    // Every timer runs out: reassemblies time out, resolutions fail, pings time out.
    try {
      this.advance(24 * 3600 * 1000);
      if (this.clock.nextDeadline() !== undefined) this.fail("timers still set a day after the last frame");
    } catch (error) {
      this.failWith(error, "a timer threw while draining");
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.failure !== undefined) throw this.failure;
    const counters = this.check(frames);
    const leftovers = {
      fragmentsPending: counters.ipv4.fragmentsPending,
      reassembliesPending: counters.ipv4.reassembliesPending,
      reassemblyBytes: counters.ipv4.reassemblyBytes,
      arpQueuedPackets: counters.arp.queuedPackets,
      arpPendingResolutions: counters.arp.pendingResolutions,
    };
    if (Object.values(leftovers).some((value) => value !== 0)) this.fail(`state left after every timer ran: ${JSON.stringify(leftovers)}`);
    return {
      seed: this.options.seed,
      frames,
      elapsedMs,
      framesPerSecond: (frames * 1000) / elapsedMs,
      virtualMs: this.clock.now() - startedVirtual,
      counters,
      sentFrames: this.sentFrames,
      sentDatagramsReassembled: this.oracle.reassembled,
      generated: this.generator.generated,
      mutations: this.mutator.mutations,
      logLines: this.logLines,
      peaks: this.peaks,
    };
  }

  /** Moves the clock `ms` ahead, firing timers one at a time; fails on a timer loop instead of hanging. */
  private advance(ms: number): void {
    let fired = 0;
    if (this.clock.runUntil(() => fired++ > MAX_TIMERS_PER_STEP, ms)) {
      this.fail(`more than ${MAX_TIMERS_PER_STEP} timers fired within ${ms} ms of virtual time: a loop (at ${this.clock.now()} ms)`);
    }
  }

  // ---- invariants (test/fuzz/oracle.ts) ------------------------------------------------------

  private check(fed: number): StackCounters {
    const counters = this.stack.counters();
    const problem = counterProblem(counters, fed);
    if (problem !== undefined) this.fail(problem, fed - 1);
    updatePeaks(this.peaks, counters);
    return counters;
  }

  /** Every frame the stack sends must be well formed. */
  private checkSent(frame: Uint8Array): void {
    this.sentFrames++;
    this.remember(this.sent, frame);
    const etherType = frame.length >= 14 ? (frame[12] << 8) | frame[13] : 0;
    if ((etherType === EtherType.Arp && frame[21] === 1) || (etherType === EtherType.Ipv4 && frame[23] === IpProtocol.Icmp && frame[34] === 8)) {
      this.remember(this.solicitations, frame);
    }
    const problem = this.oracle.problemWithSent(frame, this.configured);
    if (problem !== undefined) this.fail(`the stack sent a bad frame (${problem}): ${hex(frame)}`);
  }

  private expectNetError(error: unknown, what: string): void {
    if (!(error instanceof NetError)) this.fail(`${what} failed with ${describe(error)}`);
  }

  /** Fails with `error`: the failure already recorded if it is one (an invariant checked deeper down), else a new one. */
  private failWith(error: unknown, what: string): never {
    if (error instanceof FuzzFailure) throw this.failure ?? error;
    this.fail(`${what}: ${describe(error)}`);
  }

  private fail(message: string, frameIndex = this.frameIndex): never {
    const frame = frameIndex === this.frameIndex ? this.currentFrame : undefined;
    const failure = new FuzzFailure(message, this.options.seed, frameIndex, frame === undefined ? undefined : hex(frame));
    this.failure ??= failure;
    throw failure;
  }

  // ---- what the stack does on its own -------------------------------------------------------

  private act(): void {
    const random = this.random;
    const stack = this.stack;
    const destinations = [peerAddress(random.below(PEERS)), peerAddress(random.below(PEERS)), OFF_LINK, SUBNET_BROADCAST, Ipv4Address.BROADCAST, ip(198, 18, 0, 200 + random.below(50)), OURS];
    const dst = destinations[random.below(destinations.length)] as Ipv4Address;
    // Now and then the address goes away until the next action, as when a DHCP lease ends and a new one comes.
    if (!this.configured) {
      this.configured = true;
      stack.setIpv4(CONFIG);
      return;
    }
    if (random.below(20) === 0) {
      this.configured = false;
      stack.setIpv4(undefined);
      return;
    }
    switch (random.below(4)) {
      case 0:
        stack.ping(dst, { size: random.below(4) === 0 ? random.below(4000) : random.below(100), timeoutMs: 100 + random.below(2000) }).then(
          () => {},
          (error: unknown) => {
            try {
              this.expectNetError(error, "ping");
            } catch {
              // Recorded in this.failure.
            }
          },
        );
        return;
      case 1:
      case 2: {
        const payload = new Uint8Array(random.below(3) === 0 ? random.below(5000) : random.below(200));
        random.fill(payload);
        try {
          this.client.send(payload, { address: dst, port: 1 + random.below(0xffff) });
        } catch (error) {
          this.expectNetError(error, "udp send");
        }
        return;
      }
      default: {
        // Sockets come and go on a port the fuzzer also aims at.
        const existing = stack.udp.socket(CLOSED_PORT);
        if (existing !== undefined) existing.close();
        else stack.udp.bind(CLOSED_PORT).onDatagram(() => {});
      }
    }
  }

  /** Reads the READ_PORT socket through async iteration, as an application would. */
  private async drain(): Promise<void> {
    for await (const datagram of this.reader) {
      if (!(datagram.payload instanceof Uint8Array)) this.fail("the reading socket got a datagram without bytes");
    }
  }

  /** Keeps the last 64 frames of a list (for replies, quotes and splices). */
  private remember(list: Uint8Array[], frame: Uint8Array): void {
    list.push(frame);
    if (list.length > 64) list.shift();
  }
}

function hex(bytes: Uint8Array): string {
  const shown = bytes.subarray(0, 128);
  return `${bytes.length} bytes ${Array.from(shown, (byte) => byte.toString(16).padStart(2, "0")).join("")}${bytes.length > shown.length ? "..." : ""}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
}

/** The drop counters that moved, as "layer.reason=n". */
export function dropSummary(counters: StackCounters): string {
  const parts: string[] = [];
  for (const layer of STACK_LAYERS) {
    const values: Readonly<Record<string, number>> = counters[layer];
    for (const name of RECEIVE_DROP_COUNTERS[layer]) if ((values[name] ?? 0) > 0) parts.push(`${layer}.${name}=${values[name]}`);
  }
  return parts.join(" ");
}

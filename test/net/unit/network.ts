// Shared helpers of the network stack's unit tests: address parsing and a virtual link with stacks on it.
import { createStack, parseIpv4Config, type Ipv4Config, type Stack, type StackLimits } from "atoll/net";
import {
  RecordingLog,
  VirtualClock,
  VirtualLink,
  seededRandomSource,
  type VirtualLinkOptions,
  type VirtualPort,
} from "../../../src/lib/net/testing/virtual-link.ts";
import { Ipv4Address, WireError } from "atoll/wire";

export function ip(text: string): Ipv4Address {
  const address = Ipv4Address.parse(text);
  if (address instanceof WireError) throw new Error(address.message);
  return address;
}

export function config(text: string): Ipv4Config {
  const parsed = parseIpv4Config(text);
  if (typeof parsed === "string") throw new Error(parsed);
  return parsed;
}

export interface Host {
  stack: Stack;
  port: VirtualPort;
}

/** The link's options other than its clock (seed, impairments, mode). */
export type TestNetworkOptions = Omit<VirtualLinkOptions, "clock">;

/** A virtual link on a virtual clock; each host gets the next random seed, counting from 1. */
export class TestNetwork {
  readonly clock = new VirtualClock();
  readonly log = new RecordingLog();
  readonly link: VirtualLink;
  private seed = 1;

  constructor(options: TestNetworkOptions = {}) {
    this.link = new VirtualLink({ clock: this.clock, ...options });
  }

  /** A stack on a new port, configured with `cidr` (unconfigured when undefined). */
  host(cidr: string | undefined, options: { name?: string; limits?: StackLimits } = {}): Host {
    const port = this.link.attach({ name: options.name });
    const stack = createStack({
      link: port,
      timers: this.clock,
      random: seededRandomSource(this.seed++),
      ipv4: cidr === undefined ? undefined : config(cidr),
      log: this.log.factory,
      limits: options.limits,
    });
    return { stack, port };
  }

  /** Drives the clock until `promise` settles (or `limitMs` passes), letting continuations run. */
  async settle<T>(promise: Promise<T>, limitMs = 10_000): Promise<T> {
    await this.drive(promise, limitMs);
    return promise;
  }

  /** Drives the clock for up to `limitMs` while `promise` is pending; returns whether it settled. */
  async drive(promise: Promise<unknown>, limitMs: number): Promise<boolean> {
    let settled = false;
    promise.then(
      () => (settled = true),
      () => (settled = true),
    );
    const end = this.clock.now() + limitMs;
    while (!settled && this.clock.now() < end) {
      this.clock.advance(10);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return settled;
  }
}

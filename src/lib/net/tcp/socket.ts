/**
 * The TCP socket API for appliances:
 *
 *   const stack = await openStack(app, "service");
 *   const tcp = attachTcp(stack);
 *   tcp.listen(7, async (flow) => { for await (const chunk of flow) await flow.write(chunk); await flow.close(); });
 *   const flow = await tcp.connect(address, 80, { noDelay: true });
 *
 * `attachTcp` registers protocol 6 on the stack's IP layer (which also routes ICMP errors about
 * our segments to it) and registers the layer's counters for the exit report.
 */
import { scheduler } from "../../runtime/boot.ts";
import { registerCounters } from "../../runtime/counters.ts";
import * as logs from "../../logs/index.ts";
import { baseRandom, timersFromScheduler } from "../adapters.ts";
import type { NetLogFactory } from "../ethernet.ts";
import type { Stack } from "../stack.ts";
import type { RandomSource, Timers } from "../types.ts";
import { TcpLayer } from "./layer.ts";
import type { TcpLayerOptions } from "./settings.ts";

export interface AttachTcpOptions extends TcpLayerOptions {
  /**
   * The stack's clock and entropy. In an image they default to the running scheduler's timers
   * and the base's entropy (what openStack gives the stack); tests pass their virtual clock.
   */
  timers?: Timers;
  random?: RandomSource;
  /** Logger factory (default: the logs library's; the source is "tcp"). */
  log?: NetLogFactory;
  /** Name under which the counters are registered for the exit report (default "net.tcp"); false: none. */
  countersName?: string | false;
}

/** Attaches TCP to a stack (see the module comment). Throws RangeError for a bad option. */
export function attachTcp(stack: Stack, options: AttachTcpOptions = {}): TcpLayer {
  const timers = options.timers ?? timersFromScheduler(scheduler());
  const random = options.random ?? baseRandom();
  const log = (options.log ?? logs.source)("tcp");
  const layer = new TcpLayer({ ipv4: stack.ipv4, timers, random, log }, options);
  const name = options.countersName ?? "net.tcp";
  if (name !== false) registerCounters(name, () => layer.snapshotCounters());
  return layer;
}

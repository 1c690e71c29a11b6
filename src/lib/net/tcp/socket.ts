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
import { registerCounters } from "../../runtime/counters.ts";
import type { NetLogFactory } from "../ethernet.ts";
import type { Stack } from "../stack.ts";
import type { RandomSource, Timers } from "../types.ts";
import { TcpLayer } from "./layer.ts";
import type { TcpLayerOptions } from "./settings.ts";

export interface AttachTcpOptions extends TcpLayerOptions {
  /**
   * Clock and entropy; default the stack's own (`stack.timers`, `stack.random`: in an image, the
   * scheduler's timers and the base's entropy, as openStack gives them; in tests, whatever the
   * test built the stack with). Pass them only to give TCP a different source.
   */
  timers?: Timers;
  random?: RandomSource;
  /** Logger factory (default: the stack's, `stack.log`); the source is "tcp". */
  log?: NetLogFactory;
  /** Name under which the counters are registered for the exit report (default "net.tcp"); false: none. */
  countersName?: string | false;
}

/** Attaches TCP to a stack (see the module comment). Throws RangeError for a bad option. */
export function attachTcp(stack: Stack, options: AttachTcpOptions = {}): TcpLayer {
  const timers = options.timers ?? stack.timers;
  const random = options.random ?? stack.random;
  const log = (options.log ?? stack.log)("tcp");
  const layer = new TcpLayer({ ipv4: stack.ipv4, timers, random, log }, { ...options, proxyProtocolFrom: options.proxyProtocolFrom ?? stack.proxyProtocolFrom });
  const name = options.countersName ?? "net.tcp";
  if (name !== false) registerCounters(name, () => layer.snapshotCounters());
  return layer;
}

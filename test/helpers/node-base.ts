/**
 * The node tender's base over given devices and assets, for tests of the base itself: no
 * process-level effects (exit and abort throw, nothing is polled, warnings are dropped).
 */
import type { Base } from "../../src/abi/base.ts";
import type { HostBlock, HostNet } from "../../src/tenders/common/devices.ts";
import { createNodeBase } from "../../src/tenders/node/base.ts";

export function testNodeBase(options: { nets?: readonly HostNet[]; blocks?: readonly HostBlock[]; assets?: Uint8Array | undefined } = {}): Base {
  return createNodeBase({
    cmdline: { args: [], params: {} },
    nets: options.nets ?? [],
    blocks: options.blocks ?? [],
    maxWaitNs: 0,
    poll: () => 0,
    onExit: () => {
      throw new Error("exit");
    },
    onAbort: () => {
      throw new Error("abort");
    },
    warn: () => undefined,
    assets: options.assets,
  });
}

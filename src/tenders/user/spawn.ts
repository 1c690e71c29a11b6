/**
 * Tender glue for the user-mode link: make the socketpair, start the gateway process on one end
 * (`node build/atoll.cjs __gateway <config>`, the end as its fd 3, a pipe as its stdin whose end
 * of file tells it the tender is gone), wait for its READY line, and keep the other end.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../../host/package-root.ts";
import type { PortMapping } from "../common/attachments.ts";
import { TenderError } from "../common/errors.ts";
import type { NativeAddon } from "../common/native.ts";
import { CONTROL_ERROR, CONTROL_READY, type GatewayConfig } from "./gateway.ts";

/** Node's boot plus the bundle's load; generous for a loaded machine. */
const READY_TIMEOUT_NS = 15_000_000_000;

export interface StartedGateway {
  /** The tender's end of the link: non-blocking, close-on-exec. */
  readonly fd: number;
  readonly pid: number;
}

/** Starts the gateway of net device `device`; throws a one-line TenderError if it cannot. */
export function startGateway(native: NativeAddon, device: string, publish: readonly PortMapping[]): StartedGateway {
  const bundle = join(packageRoot(), "build", "atoll.cjs");
  if (!existsSync(bundle)) throw new TenderError(`the user-mode network gateway needs the CLI bundle (${bundle} is missing): run \`npm run build\``);
  const [tenderEnd, gatewayEnd] = native.socketpair("seqpacket");
  const config: GatewayConfig = {
    device,
    publish: publish.map(({ hostPort, guestPort, protocol, spec }) => ({ hostPort, guestPort, protocol, spec })),
    verbose: process.env.ATOLL_GATEWAY_DEBUG === "1",
  };
  let child;
  try {
    child = spawn(process.execPath, [bundle, "__gateway", JSON.stringify(config)], {
      stdio: ["pipe", "ignore", "inherit", gatewayEnd],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
  } finally {
    native.close(gatewayEnd);
  }
  // A failed spawn shows as end of file on the link below; its late 'error' event must not crash us.
  child.on("error", () => undefined);
  // Neither the child nor its stdin pipe may keep the tender alive; the pipe closes when we exit.
  child.unref();
  child.stdin?.on("error", () => undefined);
  (child.stdin as { unref?: () => void } | null)?.unref?.();

  const fail = (reason: string): never => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    native.close(tenderEnd);
    throw new TenderError(reason);
  };
  const fds = new Int32Array([tenderEnd]);
  const deadline = performance.now() + READY_TIMEOUT_NS / 1e6;
  const buffer = new Uint8Array(2048);
  for (;;) {
    const left = (deadline - performance.now()) * 1e6;
    if (left <= 0) return fail(`net device '${device}': the user-mode network gateway did not start within ${READY_TIMEOUT_NS / 1e9} s`);
    native.poll(fds, left);
    const n = native.read(tenderEnd, buffer);
    if (n === -11) continue;
    if (n <= 0) return fail(`net device '${device}': the user-mode network gateway exited before it was ready (see the messages above)`);
    const line = new TextDecoder().decode(buffer.subarray(0, n));
    if (line === CONTROL_READY) break;
    if (line.startsWith(CONTROL_ERROR)) return fail(line.slice(CONTROL_ERROR.length));
    return fail(`net device '${device}': the user-mode network gateway said something unexpected: ${JSON.stringify(line.slice(0, 80))}`);
  }
  return { fd: tenderEnd, pid: child.pid ?? -1 };
}

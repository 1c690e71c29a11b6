/**
 * examples/echo under the sealed tender, against Linux over a TAP in a private namespace: the same
 * image as on `node`, so the base ABI is the only seam. UDP echo of the edge sizes (0 bytes to the
 * 65,507-byte maximum, fragmented both ways), TCP echo of 4 MiB and TCP discard, checked by SHA-256.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { exampleImage } from "../../helpers/cli.ts";
import { Netns } from "../../helpers/netns.ts";
import { APPLIANCE_ADDRESS, APPLIANCE_CIDR, HOST_CIDR, python, skipReason, startAppliance, waitForPing, type RunningAppliance } from "../../net/linux/fixtures/lab.ts";

const skip = skipReason("python3", "ping");
const CLIENT = join(import.meta.dirname, "..", "..", "net", "tcp", "fixtures", "linux-client.mjs");

let ns: Netns | undefined;
let appliance: RunningAppliance | undefined;

before(async () => {
  if (skip !== false) return;
  ns = new Netns(`atoll-sptecho-${process.pid}`);
  ns.addTap("tap0", HOST_CIDR);
  appliance = startAppliance(ns, exampleImage("echo"), { ipv4: APPLIANCE_CIDR, tender: "spt" });
  await waitForPing(ns, APPLIANCE_ADDRESS, appliance);
});

after(async () => {
  await appliance?.stop();
  ns?.destroy();
});

test("UDP echo of the edge sizes under spt", { skip }, () => {
  assert.ok(ns !== undefined);
  const echo = python<{ received: number; failed_sizes: number[] }>(ns, "udp-echo-client.py", [APPLIANCE_ADDRESS, "7", "--sizes", "0,1,1472,1473,8000,65507", "--timeout", "2"]);
  assert.deepEqual({ received: echo.received, failed: echo.failed_sizes }, { received: 6, failed: [] });
});

test("TCP echo and discard under spt, checked by SHA-256", { skip }, () => {
  assert.ok(ns !== undefined);
  const run = (mode: string, port: string, bytes: number): Record<string, unknown> => {
    const output = ns?.exec([process.execPath, CLIENT, APPLIANCE_ADDRESS, mode, port, String(bytes)], { timeoutMs: 60_000 }) ?? "";
    const parsed: unknown = JSON.parse(output.trim().split("\n").pop() ?? "{}");
    assert.ok(typeof parsed === "object" && parsed !== null);
    return { ...parsed };
  };
  const echo = run("tcp", "7", 4 << 20);
  assert.equal(echo.match, true, JSON.stringify(echo));
  // Discard reads everything and answers nothing: the client sees a clean close with no data.
  const discard = run("discard", "9", 1 << 20);
  assert.deepEqual({ match: discard.match, error: discard.error }, { match: true, error: undefined }, JSON.stringify(discard));
});

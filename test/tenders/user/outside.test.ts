/**
 * The user-mode network routes nothing beyond its gateway, and says so at once: an appliance's
 * connect to any other address fails in a round trip with ICMP's "communication administratively
 * prohibited" (refuseRouting in the gateway's stack), on both tenders, instead of hanging for two
 * minutes of SYN retries. The SYN never leaves the gateway's in-process stack.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { atoll, ROOT } from "../../helpers/cli.ts";

const sptAddon = join(ROOT, "build", "Release", "atoll_spt.node");

function dialerImage(): string {
  const built = atoll(["build", join(import.meta.dirname, "fixtures", "dialer")]);
  assert.equal(built.status, 0, built.stderr);
  return join(ROOT, built.stdout.trim());
}

describe("connects beyond the user-mode gateway", () => {
  const image = dialerImage();
  for (const tender of ["node", "spt"] as const) {
    test(`fail at once as prohibited (${tender} tender)`, { skip: tender === "spt" && !existsSync(sptAddon) ? "needs the atoll_spt addon" : false }, () => {
      const started = Date.now();
      // 192.0.2.1 is TEST-NET-1 (RFC 5737): documentation only, routed nowhere.
      const run = atoll(["run", image, "--tender", tender, "--", "192.0.2.1", "80"], { timeout: 30_000 });
      const elapsed = Date.now() - started;
      assert.equal(run.status, 1, run.stdout + run.stderr);
      assert.match(run.stdout, /connect failed: reason unreachable, code prohibited: tcp 192\.0\.2\.1:80: connection failed: prohibited/);
      assert.ok(elapsed < 15_000, `took ${elapsed} ms`);
    });
  }
  test("the gateway itself still answers (a refused port is a RST, not prohibited)", () => {
    const run = atoll(["run", image, "--", "10.0.2.2", "80"], { timeout: 30_000 });
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /connect failed: reason refused/);
  });
});

/**
 * No silent waits on a real TAP (a private network namespace): an appliance without a DHCP
 * server on its link warns after 5 s, naming --ipv4; a TCP connect to an on-link address that
 * never answers ARP fails after ARP's three requests (~3 s) with a clear error and a log line, as
 * Linux's EHOSTUNREACH does. (The two-minute SYN timeout is proven on the virtual clock, in
 * test/net/tcp/connect-timeout.test.ts.) Needs root; skipped otherwise.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ATOLL, exampleImage, ROOT } from "../helpers/cli.ts";
import { canUseNamespaces, Netns, waitFor } from "../helpers/netns.ts";
import { buildImage } from "./tcp-linux/fixtures/lab.ts";

const skip = canUseNamespaces();

describe("silent waits on a TAP", { skip }, () => {
  let ns: Netns | undefined;
  let outDir = "";
  let client = "";

  before(() => {
    outDir = mkdtempSync(join(tmpdir(), "atoll-silent-"));
    client = buildImage(join(ROOT, "test", "net", "tcp-linux", "fixtures", "tcp-client"), outDir);
    ns = new Netns(`atoll-silent-${process.pid}`);
    ns.addTap("tap0", "198.18.0.1/24");
  });

  after(() => {
    ns?.destroy();
    rmSync(outDir, { recursive: true, force: true });
  });

  test("no DHCP server: a warning naming --ipv4 after 5 s, and DISCOVERs go on", async () => {
    assert.ok(ns !== undefined);
    const run = ns.spawn([process.execPath, ATOLL, "run", exampleImage("echo"), "--net", "service=tap:tap0"]);
    try {
      await waitFor("the DHCP warning", () => /no DHCP lease after 5 s/.test(run.output()), 15_000);
      const line = run.output().split("\n").find((text) => text.includes("no DHCP lease after 5 s")) ?? "";
      assert.match(line, /WARN +net: service: no DHCP lease after 5 s \(\d+ DISCOVERs sent; still trying\): on a link without a DHCP server, give the address statically with --ipv4 service=<addr>\/<len>\[@<gateway>\]/);
      assert.equal(run.exitCode, null, "still running, still asking");
    } finally {
      run.kill("SIGTERM");
      await run.exited;
    }
  });

  test("a connect to an on-link address without an ARP reply fails in about 3 s: host unreachable, logged", async () => {
    assert.ok(ns !== undefined);
    const started = Date.now();
    const run = ns.spawn([process.execPath, ATOLL, "run", client, "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2/24", "--", "198.18.0.9", "80", "100"]);
    const status = await run.exited;
    const elapsed = Date.now() - started;
    assert.equal(status, 2, run.output());
    assert.match(run.output(), /INFO  tcp: connect to 198\.18\.0\.9:80 host unreachable \(no ARP reply\)/);
    assert.match(run.output(), /connect to 198\.18\.0\.9:80 failed: NetError: tcp: connect to 198\.18\.0\.9:80 host unreachable \(no ARP reply\)/);
    assert.ok(elapsed >= 2_900 && elapsed < 15_000, `${elapsed} ms`);
  });
});

/**
 * The real client address through `-p`: the gateway sends a PROXY protocol v2 header first on each
 * published TCP connection, and the appliance's TCP (told the gateway's address by the boot
 * parameter net.<dev>.proxy-protocol) consumes it. Checked as a user would, on both tenders: a
 * handler sees curl's 127.0.0.1 and the port it was told to use, the website's access log shows
 * 127.0.0.1; a client sending a header of its own names nobody; TCP echo stays byte-exact (user-net.test.ts moves 1 MiB).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";

import { ProxyHeaderRepr, type ProxyHeaderRepr as Header } from "../../../src/lib/wire/proxy-protocol.ts";
import { Ipv4Address } from "atoll/wire/address";
import { ATOLL, atoll, exampleImage, ROOT } from "../../helpers/cli.ts";
import { freePort } from "../../helpers/published.ts";
import { halfCloseExchange } from "../../helpers/serve.ts";

interface Run {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

async function start(image: string, args: readonly string[], ready: RegExp): Promise<Run> {
  const child = spawn(process.execPath, [ATOLL, "run", image, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  while (!ready.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`atoll run did not come up:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, output: () => output, exited };
}

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function spoofedHeader(): Uint8Array {
  const spoofed = Ipv4Address.fromOctets(203, 0, 113, 66);
  const repr: Header = {
    command: "proxy",
    family: "inet",
    transport: "stream",
    source: { address: spoofed, port: 6666 },
    destination: { address: spoofed, port: 80 },
    tlvs: new Uint8Array(0),
  };
  const bytes = new Uint8Array(ProxyHeaderRepr.bufferLength(repr));
  ProxyHeaderRepr.emit(repr, bytes);
  return bytes;
}

const sptAddon = join(ROOT, "build", "Release", "atoll_spt.node");

/** Builds a fixture of this folder once per process (test/tenders/user/fixtures/<name>). */
const fixtures = new Map<string, string>();
function fixtureImage(name: string): string {
  let image = fixtures.get(name);
  if (image === undefined) {
    const built = atoll(["build", join(import.meta.dirname, "fixtures", name)]);
    assert.equal(built.status, 0, built.stderr);
    image = join(ROOT, built.stdout.trim());
    fixtures.set(name, image);
  }
  return image;
}

for (const tender of ["node", "spt"] as const) {
  describe(`client addresses through -p (${tender} tender)`, { skip: tender === "spt" && !existsSync(sptAddon) ? "needs the atoll_spt addon" : false }, () => {
    test("handlers see curl's 127.0.0.1 and its --local-port, the access log its address; a client's own PROXY header names nobody", async () => {
      const whoamiPort = await freePort();
      const whoami = await start(fixtureImage("whoami"), ["--tender", tender, "-p", `${whoamiPort}:80`], /serving http:/);
      try {
        for (const localPort of [await freePort(), await freePort()]) {
          const curl = spawnSync("curl", ["-sS", "--local-port", String(localPort), `http://127.0.0.1:${whoamiPort}/`], { encoding: "utf8", timeout: 20_000 });
          assert.equal(curl.stdout, `127.0.0.1:${localPort}\n`, curl.stderr);
        }
      } finally {
        whoami.child.kill("SIGTERM");
        assert.equal(await whoami.exited, 143);
      }
      const port = await freePort();
      const run = await start(exampleImage("website"), ["--tender", tender, "-p", `${port}:80`], /serving \d+ files/);
      try {
        const curl = spawnSync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${port}/`], { encoding: "utf8", timeout: 20_000 });
        assert.equal(curl.stdout, "200", curl.stderr);
        await waitFor("the access line", () => run.output().includes("INFO  http.access: 127.0.0.1 - - ["));
        assert.match(run.output(), /http\.access: 127\.0\.0\.1 - - \[[^\]]+\] "GET \/ HTTP\/1\.1" 200 \d+/);
        assert.doesNotMatch(run.output(), /http\.access: 10\.0\.2\.2/);
        // A header from the client is data after the gateway's: HTTP sees garbage, the log sees the real client.
        const reply = await halfCloseExchange(port, Buffer.concat([spoofedHeader(), Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]));
        assert.match(reply.toString("latin1"), /^HTTP\/1\.1 400 /);
        assert.doesNotMatch(run.output(), /203\.0\.113\.66/);
        assert.doesNotMatch(run.output(), /PROXY protocol relay was reset/);
      } finally {
        run.child.kill("SIGTERM");
        assert.equal(await run.exited, 143);
      }
    });
  });
}

describe("TCP echo through -p with the header consumed", () => {
  test("bytes unchanged, a spoofed header included", async () => {
    const port = await freePort();
    const run = await start(exampleImage("echo"), ["-p", `${port}:7`], /echo on UDP and TCP port 7/);
    try {
      const data = Buffer.concat([spoofedHeader(), Buffer.from("and then some data\n")]);
      assert.deepEqual(await halfCloseExchange(port, data), data);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
    }
  });
});

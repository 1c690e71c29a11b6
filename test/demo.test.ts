/**
 * The README's first command's demo (scripts/demo.sh) as a newcomer meets it: on a machine with
 * nothing beyond Node.js it must still succeed, skipping what needs a missing tool with a
 * one-line reason; with the tools it must show every part. (CI also runs `npm ci && npm run demo`
 * on its clean clone, first without these tools on PATH: see .ci/run.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ROOT } from "./helpers/cli.ts";
import { canUseNamespaces } from "./helpers/netns.ts";
import { freePort } from "./helpers/published.ts";

const DEMO = join(ROOT, "scripts", "demo.sh");
const OPTIONAL_TOOLS = ["curl", "ping", "ip"];

/** A PATH with every command of this one but `tools` (scripts/path-without.sh). */
function pathWithout(tools: readonly string[]): string {
  const made = spawnSync("bash", [join(ROOT, "scripts", "path-without.sh"), ...tools], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  return made.stdout.trim();
}

interface Outcome {
  status: number | null;
  output: string;
}

function runDemo(env: NodeJS.ProcessEnv): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [DEMO], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

function assertWebsiteAndHello(output: string): void {
  assert.match(output, /^HTTP\/1\.1 200 OK$/m, output);
  assert.match(output, /<title>Atoll: a website in a unikernel<\/title>/, output);
  assert.match(output, /^HTTP\/1\.1 404 Not Found$/m, output);
  assert.match(output, /^Hello, demo! \(from an Atoll appliance\)$/m, output);
}

test("the demo succeeds without curl, ping and ip on PATH, saying what it skipped", async (t) => {
  const path = pathWithout(OPTIONAL_TOOLS);
  t.after(() => rmSync(path, { recursive: true, force: true }));
  const { status, output } = await runDemo({ ...process.env, PATH: path, ATOLL_DEMO_PORT: String(await freePort()) });
  assert.equal(status, 0, output);
  assertWebsiteAndHello(output);
  assert.match(output, /curl is not installed: fetched with Node/);
  const skipped = output.split("\n").filter((line) => line.startsWith("(skipping the ping-over-TAP demo: "));
  assert.equal(skipped.length, 1, output);
  if (canUseNamespaces() === false) assert.match(skipped[0] ?? "", /no 'ip' command .*apt-get install iproute2/);
});

test("the demo without ping alone skips only the ping part, naming the package", { skip: canUseNamespaces() }, async (t) => {
  const path = pathWithout(["ping"]);
  t.after(() => rmSync(path, { recursive: true, force: true }));
  const { status, output } = await runDemo({ ...process.env, PATH: path, ATOLL_DEMO_PORT: String(await freePort()) });
  assert.equal(status, 0, output);
  assertWebsiteAndHello(output);
  assert.match(output, /^\(skipping the ping-over-TAP demo: no 'ping' command .*apt-get install iputils-ping\)\)$/m);
});

test("the demo with every tool shows all three parts", { skip: canUseNamespaces() }, async () => {
  const { status, output } = await runDemo({ ...process.env, ATOLL_DEMO_PORT: String(await freePort()) });
  assert.equal(status, 0, output);
  assertWebsiteAndHello(output);
  assert.doesNotMatch(output, /skipping/);
  assert.match(output, /^3 packets transmitted, 3 received, 0% packet loss/m, output);
});

test("a taken ATOLL_DEMO_PORT is refused in one line, before anything runs", async (t) => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  t.after(() => busy.close());
  const address = busy.address();
  assert.ok(address !== null && typeof address === "object");
  const { status, output } = await runDemo({ ...process.env, ATOLL_DEMO_PORT: String(address.port) });
  assert.equal(status, 1);
  assert.equal(output, `demo: 127.0.0.1:${address.port} (ATOLL_DEMO_PORT) is already in use: choose a free port\n`);
});

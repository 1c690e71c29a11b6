/**
 * docs/api.md's examples are whole appliances: each ```ts block starts with a line naming its
 * atoll.config.ts (`// atoll.config.ts: { name: "...", net: ["service"] }`). Every one must build
 * with `atoll build` (type check included); those without a net device must run and exit 0, and
 * the servers among the others must answer through the user-mode network (NETWORK_PROBES).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vm from "node:vm";
import { ATOLL, atoll, ROOT } from "../helpers/cli.ts";
import { eventually, exchange, freePort, whileRunning } from "../helpers/serve.ts";

/**
 * How the network examples are run: `-p <free port>:<guest>` and a check against that port, or,
 * with no guest port, a run that must exit 0 (api-net pings the user-mode network's gateway).
 * api-udp (UDP is not published) and api-tcp-client (it needs a server) are built only.
 */
const NETWORK_PROBES: Record<string, { guestPort?: number; check?: (port: number) => Promise<void> }> = {
  "api-net": {},
  "api-tcp": { guestPort: 7, check: echoes },
  "api-streams": { guestPort: 7, check: echoes },
  "api-http": {
    guestPort: 80,
    check: async (port) => {
      const base = `http://127.0.0.1:${port}/items`;
      const put = await fetch(`${base}/42`, { method: "PUT", body: JSON.stringify({ colour: "blue" }), headers: { "content-type": "application/json" } });
      assert.equal(put.status, 201);
      const stored: unknown = await put.json();
      assert.ok(typeof stored === "object" && stored !== null);
      assert.equal(Reflect.get(stored, "stored"), "42");
      const get = await fetch(`${base}/42`);
      assert.deepEqual(await get.json(), { colour: "blue" });
      assert.equal((await fetch(`${base}/7`)).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${port}/elsewhere`)).status, 404);
      assert.equal((await fetch(`${base}/42`, { method: "DELETE" })).status, 405);
    },
  },
  "api-serve": {
    guestPort: 80,
    check: async (port) => {
      const answer = await fetch(`http://127.0.0.1:${port}/some/where`);
      assert.deepEqual(await answer.json(), { path: "/some/where", client: "127.0.0.1" });
    },
  },
  "api-fetch-app": {
    guestPort: 80,
    check: async (port) => {
      const answer = await fetch(`http://127.0.0.1:${port}/hello`, { method: "POST", body: "x" });
      assert.equal(answer.headers.get("content-type"), "text/plain");
      assert.equal(await answer.text(), "POST /hello\n");
    },
  },
};

async function echoes(port: number): Promise<void> {
  assert.equal(await exchange(port, "docs example\n", (received) => received.includes("\n")), "docs example\n");
}

interface Example {
  readonly line: number;
  readonly configText: string;
  readonly name: string;
  readonly net: readonly string[];
  readonly block: readonly string[];
  readonly assets: string | undefined;
  readonly code: string;
}

const MARKER = /^\/\/ atoll\.config\.ts: (\{.*\})$/;

function stringList(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  assert.ok(Array.isArray(value) && value.every((item) => typeof item === "string"), `${what} must be a list of names`);
  return value.map(String);
}

function examples(): Example[] {
  const text = readFileSync(join(ROOT, "docs", "api.md"), "utf8");
  const found: Example[] = [];
  const fence = /^```ts\n([\s\S]*?)^```$/gm;
  for (const match of text.matchAll(fence)) {
    const body = match[1] ?? "";
    const line = text.slice(0, match.index).split("\n").length;
    const [first = "", ...rest] = body.split("\n");
    const marker = MARKER.exec(first);
    assert.ok(marker !== null, `docs/api.md:${line}: a ts example must start with // atoll.config.ts: { name: ... } (use \`\`\`text for fragments)`);
    const configText = marker[1] ?? "{}";
    const config: unknown = vm.runInNewContext(`(${configText})`);
    assert.ok(typeof config === "object" && config !== null, `docs/api.md:${line}: the config is not an object`);
    const name = Reflect.get(config, "name");
    assert.equal(typeof name, "string", `docs/api.md:${line}: the config has no name`);
    const assets = Reflect.get(config, "assets");
    found.push({
      line,
      configText,
      name: String(name),
      net: stringList(Reflect.get(config, "net"), "net"),
      block: stringList(Reflect.get(config, "block"), "block"),
      assets: typeof assets === "string" ? assets : undefined,
      code: rest.join("\n"),
    });
  }
  return found;
}

test("docs/api.md has an example for every module it documents, each named once", () => {
  const all = examples();
  for (const name of Object.keys(NETWORK_PROBES)) assert.ok(all.some((example) => example.name === name), `a probe for ${name}, which docs/api.md no longer has`);
  const names = all.map((example) => example.name);
  assert.equal(new Set(names).size, names.length, `example names repeat: ${names.join(", ")}`);
  const imported = new Set(all.flatMap((example) => [...example.code.matchAll(/from "(atoll[^"]*)"|^import "(atoll[^"]*)"/gm)].map((match) => match[1] ?? match[2])));
  for (const module of ["atoll", "atoll/logs", "atoll/net", "atoll/net/tcp", "atoll/net/tcp/streams", "atoll/http", "atoll/web", "atoll/assets"]) {
    assert.ok(imported.has(module), `no example imports ${module}`);
  }
  const text = readFileSync(join(ROOT, "docs", "api.md"), "utf8");
  for (const topic of ["app.block(", "stack.udp", "serve(", "export default { fetch }", "serveHttp", "serveStatic", "openStack", "attachTcp", "readInto", "imageAssets", "installWebGlobals"]) {
    assert.ok(text.includes(topic), `docs/api.md does not mention ${topic}`);
  }
});

test("every docs/api.md example builds (type-checked); those without a network run and exit 0; the servers answer", { timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), "atoll-api-docs-"));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  for (const example of examples()) {
    const where = `docs/api.md:${example.line} (${example.name})`;
    const dir = join(work, example.name);
    mkdirSync(join(dir, "src"), { recursive: true });
    writeFileSync(join(dir, "atoll.config.ts"), `export default ${example.configText};\n`);
    writeFileSync(join(dir, "src", "main.ts"), example.code);
    if (example.assets !== undefined) {
      mkdirSync(join(dir, example.assets, "css"), { recursive: true });
      writeFileSync(join(dir, example.assets, "index.html"), `<!doctype html><title>x</title><link rel="stylesheet" href="/css/site.css">${"<p>text</p>".repeat(50)}\n`);
      writeFileSync(join(dir, example.assets, "css", "site.css"), `body { margin: 0 }\n${"p { color: black }\n".repeat(50)}`);
    }
    const build = atoll(["build", dir]);
    assert.equal(build.status, 0, `${where} does not build:\n${build.stderr}`);
    const image = join(dir, "dist", `${example.name}.atoll`);
    if (example.net.length > 0) {
      const probe = NETWORK_PROBES[example.name];
      if (probe === undefined) continue;
      const { guestPort, check } = probe;
      if (guestPort === undefined || check === undefined) {
        const run = atoll(["run", image], { timeout: 30_000 });
        assert.equal(run.status, 0, `${where} exits with ${run.status}:\n${run.stdout}${run.stderr}`);
        continue;
      }
      const port = await freePort();
      await whileRunning(process.execPath, [ATOLL, "run", image, "-p", `${port}:${guestPort}`], { cwd: dir }, () =>
        eventually(`${where} answering on port ${port}`, async () => {
          await check(port);
          return true;
        }),
      );
      continue;
    }
    const blocks = example.block.flatMap((device) => {
      const file = join(dir, `${device}.img`);
      writeFileSync(file, Buffer.alloc(64 * 1024));
      return ["--block", `${device}=${file}`];
    });
    const run = atoll(["run", image, ...blocks, "--", "docs"]);
    assert.equal(run.status, 0, `${where} exits with ${run.status}:\n${run.stdout}${run.stderr}`);
    if (example.block.length > 0) {
      // The block example counts its runs on the disk: a second run sees the first.
      const again = atoll(["run", image, ...blocks]);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /run 2 on a 65536-byte disk/);
    }
  }
});

/**
 * The common case in one call: serve(handler, { port }) from atoll/http, and the Workers/Bun/Deno
 * appliance shape `export default { fetch(request), port }`, each run as a user would (atoll run
 * -p, fetched with curl); the build and boot refusing what cannot start, with what to write instead.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { defaultExportOf } from "../../src/build/build.ts";
import { checkPort, chooseDevice } from "../../src/lib/http/serve.ts";
import { atoll } from "../helpers/cli.ts";
import { curl, runPublished } from "../helpers/published.ts";

let scratch = "";
before(() => {
  scratch = mkdtempSync(join(tmpdir(), "atoll-serve-"));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes an appliance under scratch/<name>; returns its directory. */
function appliance(name: string, main: string, net: readonly string[] = ["service"]): string {
  const dir = join(scratch, name);
  mkdirSync(join(dir, "src"), { recursive: true });
  writeFileSync(join(dir, "atoll.config.ts"), `import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: ${JSON.stringify(name)}, net: ${JSON.stringify(net)} });\n`);
  writeFileSync(join(dir, "src", "main.ts"), main);
  return dir;
}

function build(dir: string, name: string, options: readonly string[] = []): string {
  const result = atoll(["build", dir, ...options]);
  assert.equal(result.status, 0, result.stderr);
  return join(dir, "dist", `${name}.atoll`);
}

describe("serve(handler, { port })", () => {
  test("opens the stack, TCP and HTTP in one call, logs its URL, and close() stops it", { timeout: 60_000 }, async () => {
    const image = build(
      appliance(
        "one-call",
        `import { serve, type ServedHttp } from "atoll/http";
import { Response } from "atoll/web";

let server: ServedHttp | undefined;
export default async function main(): Promise<void> {
  server = await serve((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/close") {
      setTimeout(() => void server?.close(), 10);
      return new Response("closing\\n");
    }
    return new Response(\`hello from \${path} on \${server?.device}:\${server?.port}\\n\`);
  }, { port: 8080 });
}
`,
      ),
      "one-call",
    );
    const running = await runPublished(image, { guestPort: 8080, ready: /INFO {2}http: serving http:\/\/10\.0\.2\.15:8080\/\n/ });
    try {
      assert.deepEqual(curl(`${running.origin}/a/b`), { status: 200, body: "hello from /a/b on service:8080\n" });
      assert.deepEqual(curl(`${running.origin}/close`), { status: 200, body: "closing\n" });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const after = spawnSync("curl", ["-sS", "--max-time", "5", `${running.origin}/again`], { encoding: "utf8" });
      assert.notEqual(after.status, 0, `a closed server still answered: ${after.stdout}`);
    } finally {
      await running.stop();
    }
  });

  test("picks the only net device, or says which to name", () => {
    assert.equal(chooseDevice(["service"], undefined), "service");
    assert.equal(chooseDevice(["a", "b"], "b"), "b");
    assert.deepEqual(chooseDevice(["a", "b"], undefined), {
      problem: 'the appliance declares several net devices (a, b): name one, as in serve(handler, { device: "a" })',
    });
    assert.deepEqual(chooseDevice(["a"], "c"), { problem: "net device 'c' is not declared in atoll.config.ts (declared: a)" });
    assert.deepEqual(chooseDevice([], undefined), {
      problem: 'serving HTTP needs a net device, and this appliance declares none: declare one in atoll.config.ts: defineConfig({ name: ..., net: ["service"] })',
    });
    assert.equal(checkPort(undefined), 80);
    assert.equal(checkPort(8080), 8080);
    for (const bad of [0, 65536, 1.5, "80", Number.NaN]) assert.ok(typeof checkPort(bad) === "object", String(bad));
  });
});

describe("export default { fetch(request) }", () => {
  for (const tender of ["node", "spt"] as const) {
    test(`an object with fetch and port is served, the web classes named as globals (${tender})`, { timeout: 60_000 }, async () => {
      const image = build(
        appliance(
          `fetch-app-${tender}`,
          `export default {
  port: 8081,
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const body = request.method === "POST" ? await request.text() : url.searchParams.get("q") ?? "";
    return new Response(JSON.stringify({ method: request.method, path: url.pathname, body }), {
      headers: new Headers({ "content-type": "application/json" }),
    });
  },
};
`,
        ),
        `fetch-app-${tender}`,
      );
      const running = await runPublished(image, { guestPort: 8081, tender, ready: /serving http:\/\/10\.0\.2\.15:8081\// });
      try {
        const got = curl(`${running.origin}/x?q=1`);
        assert.equal(got.status, 200);
        assert.deepEqual(JSON.parse(got.body), { method: "GET", path: "/x", body: "1" });
        const posted = curl(`${running.origin}/y`, ["--data", "sent"]);
        assert.deepEqual(JSON.parse(posted.body), { method: "POST", path: "/y", body: "sent" });
      } finally {
        await running.stop();
      }
    });
  }

  test("without a declared net device it aborts at start naming net: [\"service\"]", () => {
    const image = build(appliance("fetch-no-net", `export default { fetch: () => new Response("x") };\n`, []), "fetch-no-net");
    for (const tender of ["node", "spt"]) {
      const result = atoll(["run", image, "--tender", tender]);
      assert.equal(result.status, 255, result.stderr);
      assert.equal(
        result.stderr,
        `atoll: appliance 'fetch-no-net' aborted: src/main.ts: a fetch app needs a net device, and this appliance declares none: declare one in atoll.config.ts: defineConfig({ name: ..., net: ["service"] })\n`,
      );
    }
  });

  test("a default export that is not a fetch app fails the type check, and without it aborts in one line", () => {
    const dir = appliance("not-fetch", `const settings = { handler: () => 0 };\nexport default settings;\n`, []);
    const checked = atoll(["build", dir]);
    assert.equal(checked.status, 1);
    assert.match(checked.stderr, /src\/main\.ts:2:1: error: the default export \(\{ handler: \(\) => number; \}\) is not an appliance: /);
    // The source shows no literal, so only the check knows: without it, boot says so at start.
    const image = build(dir, "not-fetch", ["--no-check"]);
    const result = atoll(["run", image]);
    assert.equal(result.status, 255);
    assert.equal(
      result.stderr,
      "atoll: appliance 'not-fetch' aborted: src/main.ts must default-export a main function (export default function main(app) { ... }) or a fetch app (export default { fetch(request) { ... } }); its default export is an object without a fetch method\n",
    );
  });
});

describe("the build refuses entries that cannot start", () => {
  const cases: readonly [string, string, RegExp][] = [
    ["no-default", `export const x = 1;\n`, /^atoll build: src\/main\.ts: has no default export: an appliance's entry exports export default function main\(app\) \{ \.\.\. \} or export default \{ fetch\(request\) \{ \.\.\. \} \}$/],
    ["number", `// a comment\nconst x = 1;\nexport default 42;\n`, /^atoll build: src\/main\.ts:3: the default export is 42; an appliance's entry exports /],
    ["string", `\nexport default "main";\n`, /^atoll build: src\/main\.ts:2: the default export is "main"; /],
    ["class", `export default class App {\n  fetch() {}\n}\n`, /^atoll build: src\/main\.ts:1: the default export is a class; .*\(an instance with fetch works: export default new App\(\)\)$/],
  ];
  for (const [name, main, expected] of cases) {
    test(`${name}: a build error with file:line`, () => {
      const result = atoll(["build", appliance(`refused-${name}`, main, [])]);
      assert.equal(result.status, 1, result.stdout);
      assert.match(result.stderr.trimEnd(), expected);
    });
  }

  test("what the entry's source shows: function, fetch app or unknown (then boot checks)", async () => {
    const kinds: readonly [string, string][] = [
      ["export default function main() { return 0; }\n", "function"],
      ["export default async function () {}\n", "function"],
      ["export default async (app: unknown) => 0;\n", "function"],
      ["const main = () => 0;\nexport default main;\n", "unknown"],
      ["export default { fetch() { return 0; } };\n", "fetch-app"],
      ["import { app } from './app.ts';\nexport default app;\n", "unknown"],
      ["export { app as default } from './app.ts';\n", "unknown"],
    ];
    for (const [index, [main, kind]] of kinds.entries()) {
      const dir = join(scratch, `kind-${index}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "main.ts"), main);
      assert.equal(await defaultExportOf(join(dir, "main.ts"), "src/main.ts"), kind, main);
    }
  });
});

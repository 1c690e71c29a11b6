/**
 * `atoll build` type-checks the appliance against what an image has at run time: host globals
 * (process, Buffer, require, fetch) are build errors with file:line:col, not a crash at run time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atoll } from "../helpers/cli.ts";

/** An appliance directory with the given src/main.ts (and any other files), removed after the test. */
function appliance(t: { after: (fn: () => void) => void }, main: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "atoll-check-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "atoll.config.ts"), `import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: "checked" });\n`);
  writeFileSync(join(dir, "src", "main.ts"), main);
  for (const [path, text] of Object.entries(files)) writeFileSync(join(dir, path), text);
  return dir;
}

const HOST_GLOBALS = `import type { Appliance } from "atoll";
export default function main(app: Appliance): number {
  const argv: string[] = process.argv;
  const bytes = Buffer.from("x");
  void fetch("http://127.0.0.1/");
  const fs: unknown = require("./helper.ts");
  app.log.info(\`\${argv.length} \${bytes.length} \${String(fs)}\`);
  return 0;
}
`;

test("process, Buffer, fetch and require fail the build with file:line:col, exit status 1", (t) => {
  const dir = appliance(t, HOST_GLOBALS, { "src/helper.ts": "export const helper = 1;\n" });
  const build = atoll(["build"], { cwd: dir });
  assert.equal(build.status, 1, build.stderr);
  assert.equal(build.stdout, "");
  assert.equal(
    build.stderr,
    [
      "atoll build: type check failed: 4 errors (fix them, or build with --no-check to skip the check)",
      "src/main.ts:3:26: error TS2591: Cannot find name 'process'. (an image has no Node or browser globals: it reaches the world through the atoll/... modules)",
      "src/main.ts:4:17: error TS2591: Cannot find name 'Buffer'. (an image has no Node or browser globals: it reaches the world through the atoll/... modules)",
      "src/main.ts:5:8: error TS2304: Cannot find name 'fetch'. (an image has no Node or browser globals: it reaches the world through the atoll/... modules)",
      "src/main.ts:6:23: error TS2591: Cannot find name 'require'. (an image has no Node or browser globals: it reaches the world through the atoll/... modules)",
      "",
    ].join("\n"),
  );
  assert.ok(!existsSync(join(dir, "dist", "checked.atoll")), "no image from a failed check");
  // `atoll run <appdir>` builds the same way, and fails as a run that could not start.
  const run = atoll(["run", dir]);
  assert.equal(run.status, 125);
  assert.match(run.stderr, /^atoll run: type check failed: 4 errors/);
});

test("errors in imported files count; at most five are shown, then how many more", (t) => {
  const lines = Array.from({ length: 8 }, (_, index) => `export const value${index}: number = "${index}";`).join("\n");
  const dir = appliance(t, `import { value0 } from "./values.ts";\nexport default function main(): number { return value0; }\n`, { "src/values.ts": `${lines}\n` });
  const build = atoll(["build", dir]);
  assert.equal(build.status, 1);
  const output = build.stderr.trimEnd().split("\n");
  assert.equal(output[0], "atoll build: type check failed: 8 errors (fix them, or build with --no-check to skip the check)");
  assert.equal(output.length, 7);
  assert.match(output[1] ?? "", /values\.ts:1:14: error TS2322: Type 'string' is not assignable to type 'number'\.$/);
  assert.match(output[5] ?? "", /values\.ts:5:14: error TS2322/);
  assert.equal(output[6], "... and 3 more");
});

test("--no-check builds what the check refuses (and the image then fails at run time)", (t) => {
  const dir = appliance(t, `export default function main(): number { return process.argv.length; }\n`);
  const build = atoll(["build", dir, "--no-check"]);
  assert.equal(build.status, 0, build.stderr);
  const run = atoll(["run", join(dir, "dist", "checked.atoll")]);
  assert.equal(run.status, 255);
  assert.match(run.stderr, /ReferenceError: process is not defined/);
  assert.equal(atoll(["run", dir, "--no-check"]).status, 255);
});

test("a correct appliance passes; the cache skips an unchanged check and never hides an edit", (t) => {
  const good = `import { sleep, type Appliance } from "atoll";\nexport default async function main(app: Appliance): Promise<number> { await sleep(1); app.log.info("ok"); return 0; }\n`;
  const dir = appliance(t, good);
  const first = atoll(["build", dir]);
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stderr, "");
  const cache = join(dir, "node_modules", ".cache", "atoll", "typecheck.json");
  assert.ok(existsSync(cache), "a passing check is remembered");
  assert.equal(atoll(["build", dir]).status, 0);
  writeFileSync(join(dir, "src", "main.ts"), good.replace("return 0;", "return Buffer.length;"));
  const edited = atoll(["build", dir]);
  assert.equal(edited.status, 1, "an edited file is checked again");
  assert.match(edited.stderr, /src\/main\.ts:2:\d+: error TS2591: Cannot find name 'Buffer'/);
  writeFileSync(join(dir, "src", "main.ts"), good);
  assert.equal(atoll(["build", dir]).status, 0);
  // The library is one of the cached inputs too: a changed tsconfig.json (a steering file) counts.
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, noUnusedLocals: true } }));
  writeFileSync(join(dir, "src", "main.ts"), `${good}const unused = 1;\n`);
  const unused = atoll(["build", dir]);
  assert.equal(unused.status, 1);
  assert.match(unused.stderr, /error TS6133: 'unused' is declared but its value is never read/);
});

test("the appliance's tsconfig.json sets the strictness, never the globals; a broken one is one line", (t) => {
  const tsconfig = JSON.stringify({ compilerOptions: { strict: false, types: ["node"], lib: ["ES2022", "DOM"] } });
  const loose = appliance(t, `export default function main(x) { return x === undefined ? 0 : 1; }\n`, { "tsconfig.json": tsconfig });
  assert.equal(atoll(["build", loose]).status, 0, "strict: false allows an implicit any");
  writeFileSync(join(loose, "src", "main.ts"), `export default function main(): number { return process.argv.length + document.title.length; }\n`);
  const hosted = atoll(["build", loose]);
  assert.equal(hosted.status, 1, "types: [\"node\"] does not bring Node's globals into an image");
  assert.match(hosted.stderr, /Cannot find name 'process'/);
  writeFileSync(join(loose, "tsconfig.json"), JSON.stringify({ compilerOptions: { moduleResolution: "Sideways" } }));
  const badOption = atoll(["build", loose]);
  assert.equal(badOption.status, 1);
  assert.equal(badOption.stderr.trimEnd().split("\n").length, 1, badOption.stderr);
  assert.match(badOption.stderr, /^atoll build: .*tsconfig\.json: Argument for '--moduleResolution' option must be: /);
  writeFileSync(join(loose, "tsconfig.json"), `{ "compilerOptions": { "strict": tru } }`);
  const broken = atoll(["build", loose]);
  assert.equal(broken.status, 1);
  assert.equal(broken.stderr.trimEnd().split("\n").length, 1, broken.stderr);
  assert.match(broken.stderr, /^atoll build: .*tsconfig\.json:1:\d+: /);
});

test("a JavaScript appliance builds, and is checked where it asks to be (// @ts-check)", (t) => {
  const dir = appliance(t, "");
  rmSync(join(dir, "src", "main.ts"));
  writeFileSync(join(dir, "atoll.config.ts"), `export default { name: "checked", entry: "src/main.js" };\n`);
  writeFileSync(join(dir, "src", "main.js"), `export default function main(app) { app.log.info("plain js"); return 0; }\n`);
  const plain = atoll(["build", dir]);
  assert.equal(plain.status, 0, plain.stderr);
  writeFileSync(join(dir, "src", "main.js"), `// @ts-check\nexport default function main() { return process.argv.length; }\n`);
  const checked = atoll(["build", dir]);
  assert.equal(checked.status, 1);
  assert.match(checked.stderr, /src\/main\.js:2:\d+: error TS\d+: Cannot find name 'process'/);
});

test("a default export that is neither a main function nor a fetch app is a type error at the export", (t) => {
  const refused: Record<string, string> = {
    "a misspelt fetch app": `export default { fech(request: Request) { return new Response(request.url); } };\n`,
    "a fetch that is not a function": `export default { fetch: 1 };\n`,
    "a main that takes a string": `export default function main(name: string): number { return name.length; }\n`,
    "a main that returns a string": `export default function main(): string { return "done"; }\n`,
  };
  for (const [what, main] of Object.entries(refused)) {
    const build = atoll(["build", appliance(t, main)]);
    assert.equal(build.status, 1, `${what}: ${build.stderr}`);
    const lines = build.stderr.trimEnd().split("\n");
    assert.equal(lines[0], "atoll build: type check failed: 1 error (fix them, or build with --no-check to skip the check)", what);
    assert.match(lines[1] ?? "", /(^|\/)src\/main\.ts:1:1: error: the default export \(.+\) is not an appliance: export a main function, .* or a fetch app, /, what);
  }
  const accepted: Record<string, string> = {
    "a main function": `import type { Appliance } from "atoll";\nexport default async function main(app: Appliance): Promise<void> { app.log.info("hi"); }\n`,
    "a fetch app in a variable": `const app = { port: 8080, fetch: (request: Request) => new Response(request.method) };\nexport default app;\n`,
    "a fetch app with an async fetch": `export default { async fetch(request: Request): Promise<Response> { return Response.json({ url: request.url }); } };\n`,
  };
  for (const [what, main] of Object.entries(accepted)) {
    const build = atoll(["build", appliance(t, main)]);
    assert.equal(build.status, 0, `${what}: ${build.stderr}`);
  }
});

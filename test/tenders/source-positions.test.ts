/**
 * Stack traces point at the source: the rewriter (src/tenders/common/source-positions.ts) on its own,
 * then what a user sees on each tender: an abort from src/main.ts, a logged error.stack, and the
 * HTTP server's log of a handler that threw, all with src/main.ts:<line>.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { transformSync } from "esbuild";
import { SourcePositions } from "../../src/tenders/common/source-positions.ts";
import { atoll } from "../helpers/cli.ts";
import { curl, runPublished } from "../helpers/published.ts";

/** A map for a generated file in which line 3 (1-based) calls fail at column 3, from src/main.ts. */
function exampleMap(): { code: string; map: string } {
  const source = ["function fail() {", "  throw new Error(\"x\");", "}", "export function main() {", "  fail();", "}", ""].join("\n");
  const result = transformSync(source, { loader: "ts", sourcemap: "external", sourcefile: "main.ts", minifyWhitespace: true });
  const map: unknown = JSON.parse(result.map);
  assert.ok(typeof map === "object" && map !== null);
  Reflect.set(map, "sources", ["atoll://app/src/main.ts"]);
  return { code: result.code, map: JSON.stringify(map) };
}

/** The 1-based line and column of the last `needle` in generated code. */
function positionOf(code: string, needle: string): { line: number; column: number } {
  const index = code.lastIndexOf(needle);
  assert.ok(index >= 0, needle);
  const before = code.slice(0, index).split("\n");
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

describe("SourcePositions", () => {
  const { code, map } = exampleMap();
  const throwAt = positionOf(code, "throw");
  const callAt = positionOf(code, "fail()");
  const frame = (at: { line: number; column: number }): string => `atoll://app/image.js:${at.line}:${at.column}`;

  test("maps several frames in one write, and leaves other text alone", () => {
    const positions = new SourcePositions("app", map);
    const text = `Error: x\n    at fail (${frame(throwAt)})\n    at main (${frame(callAt)})\n    at other (atoll://else/image.js:1:1)\n`;
    assert.equal(positions.rewrite(text), "Error: x\n    at fail (src/main.ts:2:3)\n    at main (src/main.ts:5:3)\n    at other (atoll://else/image.js:1:1)\n");
    const bytes = new TextEncoder().encode(text);
    assert.equal(new TextDecoder().decode(positions.rewriteBytes(bytes)), positions.rewrite(text));
  });

  test("without a map, or with one that does not parse, nothing changes", () => {
    const text = `at fail (${frame(throwAt)})`;
    assert.equal(new SourcePositions("app", undefined).rewrite(text), text);
    assert.equal(new SourcePositions("app", "{not json").rewrite(text), text);
  });

  test("positions the map does not cover stay as they were", () => {
    const positions = new SourcePositions("app", map);
    // A line past the end, and a column before the first mapping of its line (findEntry would answer from an earlier line).
    for (const at of ["atoll://app/image.js:999:1", "atoll://app/image.js:0:0", `atoll://app/image.js:${callAt.line + 1}:1`]) {
      assert.equal(positions.rewrite(`at x (${at})`), `at x (${at})`);
    }
  });

  test("console bytes without an image position are handed back as they are (the fast path)", () => {
    const positions = new SourcePositions("app", map);
    const bytes = new TextEncoder().encode("[    0.000001] INFO  app: a log line\n");
    assert.equal(positions.rewriteBytes(bytes), bytes);
    assert.equal(positions.mentionsImage(bytes), false);
  });

  test("a position split across two writes stays unmapped: each write is rewritten on its own", () => {
    const positions = new SourcePositions("app", map);
    const text = `at fail (${frame(throwAt)})\n`;
    const cut = text.indexOf("image.js") + 3;
    const first = new TextEncoder().encode(text.slice(0, cut));
    const second = new TextEncoder().encode(text.slice(cut));
    assert.equal(positions.rewriteBytes(first), first);
    assert.equal(positions.rewriteBytes(second), second);
  });
});

describe("what a user sees, on each tender", () => {
  let scratch = "";
  let thrower = "";
  let server = "";
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), "atoll-positions-"));
    const write = (name: string, config: string, main: string): string => {
      const dir = join(scratch, name);
      mkdirSync(join(dir, "src"), { recursive: true });
      writeFileSync(join(dir, "atoll.config.ts"), config);
      writeFileSync(join(dir, "src", "main.ts"), main);
      const result = atoll(["build", dir]);
      assert.equal(result.status, 0, result.stderr);
      return join(dir, "dist", `${name}.atoll`);
    };
    thrower = write(
      "thrower",
      `import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: "thrower" });\n`,
      [
        "function fail(): never {",
        '  throw new Error("from main.ts");',
        "}",
        "export default function main(): number {",
        "  try {",
        "    fail();",
        "  } catch (error) {",
        "    console.log(error instanceof Error ? error.stack : error);",
        "  }",
        "  fail();",
        "}",
        "",
      ].join("\n"),
    );
    server = write(
      "throwing-server",
      `import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: "throwing-server", net: ["service"] });\n`,
      ["import { serve } from \"atoll/http\";", "export default async function main(): Promise<void> {", "  await serve(() => {", '    throw new TypeError("handler broke");', "  });", "}", ""].join("\n"),
    );
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  for (const tender of ["node", "spt"] as const) {
    test(`an abort and a logged error.stack name src/main.ts lines (${tender})`, () => {
      const result = atoll(["run", thrower, "--tender", tender]);
      assert.equal(result.status, 255, result.stderr);
      assert.match(result.stdout, /^Error: from main\.ts\n\s+at fail \(src\/main\.ts:2:9\)\n\s+at main \(src\/main\.ts:6:5\)\n/);
      assert.match(result.stderr, /^atoll: appliance 'thrower' aborted: Error: from main\.ts\n\s+at fail \(src\/main\.ts:2:9\)\n\s+at main \(src\/main\.ts:10:3\)\n\s+at atoll\/lib\/boot\/index\.ts:\d+:\d+/);
      assert.doesNotMatch(result.stdout + result.stderr, /image\.js/);
    });

    test(`a 500 from a throwing handler logs a mapped stack (${tender})`, { timeout: 60_000 }, async () => {
      const running = await runPublished(server, { tender, ready: /serving http:/ });
      try {
        const response = curl(`${running.origin}/`);
        assert.equal(response.status, 500);
        const deadline = Date.now() + 5_000;
        while (!/handler broke/.test(running.stdout()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
        assert.match(running.stdout(), /ERROR http: handler failed for GET http:\/\/[^ ]+\/: TypeError: handler broke\n\s+at (?:[^\n]*\()?src\/main\.ts:4:11\)?\n\s+at answer \(atoll\/lib\/http\/server\.ts:\d+:\d+\)/);
        assert.doesNotMatch(running.stdout(), /image\.js/);
      } finally {
        await running.stop();
      }
    });
  }
});

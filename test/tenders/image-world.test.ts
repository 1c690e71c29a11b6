/**
 * What an image's code finds at run time, on both tenders: the globals boot installs exist at
 * module top level (boot evaluates the appliance's modules after installing them) and in main,
 * and every global src/lib/types/image-globals.d.ts declares is there, read from the d.ts itself
 * so that the types and the run time cannot drift apart.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { atoll, ROOT } from "../helpers/cli.ts";

const TENDERS = ["node", "spt"] as const;
const GLOBALS_DTS = join(ROOT, "src", "lib", "types", "image-globals.d.ts");

let scratch = "";

/** Writes an appliance (atoll.config.ts and src/main.ts) under scratch/<name> and builds it. */
function buildAppliance(name: string, main: string): string {
  const dir = join(scratch, name);
  mkdirSync(join(dir, "src"), { recursive: true });
  writeFileSync(join(dir, "atoll.config.ts"), `import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: ${JSON.stringify(name)} });\n`);
  writeFileSync(join(dir, "src", "main.ts"), main);
  const result = atoll(["build", dir]);
  assert.equal(result.status, 0, result.stderr);
  return join(dir, "dist", `${name}.atoll`);
}

/** The names image-globals.d.ts declares as values (declare var/const/function). */
export function declaredGlobals(dts: string): string[] {
  const names = [...dts.matchAll(/^declare\s+(?:var|let|const|function)\s+([A-Za-z_$][\w$]*)/gm)].map((match) => match[1] ?? "");
  return [...new Set(names)].sort();
}

before(() => {
  scratch = mkdtempSync(join(tmpdir(), "atoll-world-"));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const TOP_LEVEL = `
console.log("top: console.log works");
const bytes = new TextEncoder().encode("h\\u00e9llo");
console.log("top: TextEncoder", bytes.length, "TextDecoder", new TextDecoder().decode(bytes));
const random = crypto.getRandomValues(new Uint8Array(16));
console.log("top: getRandomValues", random.length, random.some((byte) => byte !== 0));
let fired = 0;
setTimeout((step: unknown) => { fired = Number(step); }, 1, 7);
queueMicrotask(() => console.log("top: microtask ran"));

export default async function main(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 20));
  console.log("main: the top-level timer fired with", fired);
  return fired === 7 ? 0 : 1;
}
`;

describe("module top level has the library OS's globals", () => {
  for (const tender of TENDERS) {
    test(`console, TextEncoder/TextDecoder, crypto, setTimeout and queueMicrotask at top level (${tender})`, () => {
      const image = buildAppliance(`top-${tender}`, TOP_LEVEL);
      const result = atoll(["run", image, "--tender", tender]);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(
        result.stdout,
        [
          "top: console.log works",
          "top: TextEncoder 6 TextDecoder h\u00e9llo",
          "top: getRandomValues 16 true",
          "top: microtask ran",
          "main: the top-level timer fired with 7",
          "",
        ].join("\n"),
      );
    });
  }

  test("a module that throws while it evaluates aborts the appliance with its stack", () => {
    const image = buildAppliance("throws-at-load", `
function explode(): never {
  throw new RangeError("no config at top level");
}
explode();
export default function main(): number {
  return 0;
}
`);
    for (const tender of TENDERS) {
      const result = atoll(["run", image, "--tender", tender]);
      assert.equal(result.status, 255, `${tender}: ${result.stderr}`);
      assert.match(result.stderr, /^atoll: appliance 'throws-at-load' aborted: src\/main\.ts failed while its modules were evaluated: RangeError: no config at top level\n\s+at explode/, tender);
    }
  });
});

describe("image-globals.d.ts says what exists", () => {
  test("it declares the globals boot installs and the web classes", () => {
    const names = declaredGlobals(readFileSync(GLOBALS_DTS, "utf8"));
    for (const name of ["console", "setTimeout", "clearTimeout", "setInterval", "clearInterval", "queueMicrotask", "crypto", "TextEncoder", "TextDecoder", "Request", "Response", "Headers", "URL", "URLSearchParams"]) {
      assert.ok(names.includes(name), `${name} is not declared: ${names.join(", ")}`);
    }
  });

  for (const tender of TENDERS) {
    test(`every declared global is present at module top level and in main (${tender})`, () => {
      const names = declaredGlobals(readFileSync(GLOBALS_DTS, "utf8"));
      // Free references, as appliance code writes them (the build injects the web classes where used).
      const probe = (label: string): string => `{ ${names.map((name) => `${JSON.stringify(name)}: typeof ${name}`).join(", ")} } /* ${label} */`;
      const image = buildAppliance(`declared-${tender}`, `
const atTopLevel: Record<string, string> = ${probe("top level")};
export default function main(): number {
  const inMain: Record<string, string> = ${probe("main")};
  console.log(JSON.stringify({ atTopLevel, inMain }));
  return 0;
}
`);
      const result = atoll(["run", image, "--tender", tender]);
      assert.equal(result.status, 0, result.stderr);
      const seen: { atTopLevel: Record<string, string>; inMain: Record<string, string> } = JSON.parse(result.stdout);
      for (const [where, types] of Object.entries(seen)) {
        const missing = names.filter((name) => types[name] === "undefined");
        assert.deepEqual(missing, [], `${where}: declared in image-globals.d.ts but missing at run time`);
      }
    });
  }
});

describe("console streams", () => {
  for (const tender of TENDERS) {
    test(`console.error, console.warn and console.trace go to stderr; log, info and debug to stdout (${tender})`, () => {
      const image = buildAppliance(`streams-${tender}`, `
console.error("top: error");
export default function main(): number {
  console.log("log");
  console.info("info");
  console.debug("debug");
  console.warn("warn", 1, { two: 2 });
  console.error(new Error("boom"));
  console.trace("here");
  return 0;
}
`);
      const result = atoll(["run", image, "--tender", tender]);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, "log\ninfo\ndebug\n");
      const lines = result.stderr.split("\n");
      assert.equal(lines[0], "top: error");
      assert.equal(lines[1], 'warn 1 {"two":2}');
      assert.equal(lines[2], "Error: boom");
      assert.match(lines[3] ?? "", /^\s+at main \(/);
      const trace = lines.indexOf("Trace: here");
      assert.ok(trace > 2, result.stderr);
      assert.match(lines[trace + 1] ?? "", /^\s+at main \(/);
    });
  }
});

/**
 * The library's public API is a deliberate list: package.json's "exports" (what Node resolves),
 * the table in docs/api.md, the `paths` of the repository's tsconfigs and what `atoll build` binds
 * (src/build/public-api.ts) must name the same entry points; every example, template, test fixture
 * and docs example must import only those; and the build must refuse any other "atoll/..." module
 * with one line naming the public ones.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { entryPointsFromManifest, publicEntryPoints } from "../src/build/public-api.ts";
import { typeCheckAppliance } from "../src/build/typecheck.ts";
import { atoll, ROOT } from "./helpers/cli.ts";

const manifest: unknown = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const exported = entryPointsFromManifest(manifest);

/** The specifiers in docs/api.md's table of imports (its rows start with | `atoll...`). */
function documentedEntryPoints(): string[] {
  const text = readFileSync(join(ROOT, "docs", "api.md"), "utf8");
  return [...text.matchAll(/^\|\s*`(atoll(?:\/[a-z/]+)?)`\s*\|/gm)].map((match) => match[1] ?? "");
}

/** Every "atoll" or "atoll/..." module specifier a source text imports (static, dynamic or re-export). */
function libraryImports(source: string): string[] {
  return [...source.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](atoll(?:\/[^"']*)?)["']/g)].map((match) => match[1] ?? "");
}

function filesUnder(dir: string, accept: (path: string) => boolean): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...filesUnder(path, accept));
    else if (accept(path)) found.push(path);
  }
  return found;
}

/** A property of a parsed JSON value, or undefined. */
function field(value: unknown, name: string): unknown {
  return typeof value === "object" && value !== null ? Reflect.get(value, name) : undefined;
}

test("package.json exports exactly the entry points docs/api.md documents, without wildcards", () => {
  const exportsField = field(manifest, "exports");
  assert.ok(typeof exportsField === "object" && exportsField !== null);
  assert.deepEqual(Object.keys(exportsField).filter((subpath) => subpath.includes("*")), []);
  assert.deepEqual([...exported.keys()].sort(), documentedEntryPoints().sort());
  assert.deepEqual(publicEntryPoints(ROOT), exported);
});

test("the repository's tsconfigs map exactly the public entry points, to the same files", () => {
  const expected = Object.fromEntries([...exported].map(([specifier, file]) => [specifier, [file]]));
  for (const tsconfig of ["tsconfig.json", join("src", "lib", "tsconfig.json")]) {
    const parsed: unknown = JSON.parse(readFileSync(join(ROOT, tsconfig), "utf8"));
    const paths = field(field(parsed, "compilerOptions"), "paths");
    assert.deepEqual(paths, expected, `${tsconfig} "paths"`);
  }
});

test("Node resolves the public entry points and refuses internal modules", () => {
  const require = createRequire(join(ROOT, "package.json"));
  for (const [specifier, file] of exported) {
    const packageSpecifier = specifier.replace(/^atoll/, "atoll-unikernel");
    assert.equal(require.resolve(packageSpecifier), join(ROOT, file));
  }
  for (const internal of ["atoll-unikernel/runtime/base", "atoll-unikernel/net/tcp/connection", "atoll-unikernel/wire/tcp"]) {
    assert.throws(() => require.resolve(internal), (error: unknown) => field(error, "code") === "ERR_PACKAGE_PATH_NOT_EXPORTED", internal);
  }
});

test("examples, templates, test fixtures and docs examples import only public entry points", () => {
  const sources = [
    ...filesUnder(join(ROOT, "examples"), (path) => /\.[cm]?[jt]sx?$/.test(path)),
    ...filesUnder(join(ROOT, "test"), (path) => path.split(sep).includes("fixtures") && /\.[cm]?[jt]sx?$/.test(path)),
  ];
  const docs = filesUnder(join(ROOT, "docs"), (path) => path.endsWith(".md")).concat(join(ROOT, "README.md"));
  const seen = new Set<string>();
  const offenders: string[] = [];
  const check = (where: string, text: string): void => {
    for (const specifier of libraryImports(text)) {
      seen.add(specifier);
      if (!exported.has(specifier)) offenders.push(`${where}: ${specifier}`);
    }
  };
  for (const path of sources) check(relative(ROOT, path), readFileSync(path, "utf8"));
  for (const path of docs) {
    // Only the code blocks: prose may name an internal module (docs/image-format.md's shim does).
    const blocks = [...readFileSync(path, "utf8").matchAll(/```(?:ts|js|typescript)\n([\s\S]*?)```/g)].map((match) => match[1] ?? "");
    blocks.forEach((block, index) => check(`${relative(ROOT, path)} block ${index + 1}`, block));
  }
  assert.deepEqual(offenders, []);
  // The scan found the imports it is about (a broken pattern would pass vacuously).
  for (const specifier of ["atoll", "atoll/config", "atoll/net", "atoll/net/tcp", "atoll/http", "atoll/wire/address"]) assert.ok(seen.has(specifier), specifier);
});

function appliance(main: string): string {
  const dir = mkdtempSync(join(tmpdir(), "atoll-public-api-"));
  writeFileSync(join(dir, "atoll.config.ts"), `import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: "public-api" });\n`);
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src", "main.ts"), main);
  return dir;
}

test("atoll build refuses an internal atoll/... module with one line naming the public entry points", () => {
  for (const internal of ["atoll/runtime/base", "atoll/net/tcp/connection", "atoll/wire/tcp", "atoll/nothing"]) {
    const dir = appliance(`import * as internal from "${internal}";\nexport default function main(): number {\n  return Object.keys(internal).length > 0 ? 0 : 1;\n}\n`);
    try {
      const result = atoll(["build", dir]);
      assert.equal(result.status, 1, result.stderr);
      const lines = result.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0] ?? "", new RegExp(`src/main\\.ts:1:\\d+: '${internal}' is not a public entry point of atoll: import one of atoll, atoll/config, `));
      for (const specifier of exported.keys()) assert.ok(lines[0]?.includes(specifier), `${specifier} named in: ${lines[0]}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("atoll build binds every public entry point, type check included", () => {
  const specifiers = [...exported.keys()];
  const imports = specifiers.map((specifier, index) => `import * as entry${index} from "${specifier}";`).join("\n");
  const used = specifiers.map((_, index) => `Object.keys(entry${index}).length`).join(" + ");
  const dir = appliance(`${imports}\nexport default function main(): number {\n  return ${used} > 0 ? 0 : 1;\n}\n`);
  try {
    const build = atoll(["build", dir]);
    assert.equal(build.status, 0, build.stderr);
    const run = atoll(["run", join(dir, "dist", "public-api.atoll")]);
    assert.equal(run.status, 0, run.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the build's type check resolves the public entry points and not the internal modules", () => {
  const dir = appliance(`import { base } from "atoll/runtime/base";\nimport { Ipv4Address } from "atoll/wire/address";\nexport default function main(): number {\n  return typeof base === "function" && Ipv4Address.format(Ipv4Address.UNSPECIFIED) === "0.0.0.0" ? 0 : 1;\n}\n`);
  try {
    const errors = typeCheckAppliance({ appDir: dir, entry: join(dir, "src", "main.ts"), packageRoot: ROOT });
    assert.deepEqual(
      errors.map((error) => `${error.line}: ${error.message}`),
      ["1: Cannot find module 'atoll/runtime/base' or its corresponding type declarations."],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("entry points come only from an explicit exports map", () => {
  assert.throws(() => entryPointsFromManifest({ exports: { ".": "./src/lib/index.ts", "./net/*": "./src/lib/net/*.ts" } }), /wildcard \.\/net\/\*: list each public entry point/);
  assert.throws(() => entryPointsFromManifest({ name: "x" }), /no "exports" map/);
  assert.throws(() => entryPointsFromManifest({ exports: { "./net": { import: "./src/lib/net/index.ts" } } }), /expected a "\.\/src\/lib\/\.\.\." file/);
  assert.deepEqual([...entryPointsFromManifest({ exports: { ".": "./src/lib/index.ts", "./package.json": "./package.json", "./net": "./src/lib/net/index.ts" } })], [
    ["atoll", "src/lib/index.ts"],
    ["atoll/net", "src/lib/net/index.ts"],
  ]);
});

// The layering of src/ as a checked property: every import and export-from of every src/**/*.ts
// file must go to its own layer or to a layer of lower rank, as the layer table in
// docs/architecture.md says (the test parses that table, so the doc and the check cannot drift).
// Node's modules and npm packages are allowed only to the layers whose row names them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const TABLE_HEADER = ["Rank", "Layer", "Paths", "Node", "Packages"];

interface Layer {
  readonly rank: number;
  readonly name: string;
  /** Repository-relative folders or files, without a trailing slash. */
  readonly paths: readonly string[];
  readonly node: boolean;
  readonly packages: readonly string[];
}

function cells(line: string): string[] {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((cell) => cell.trim());
}

/** `a`, `b` → [a, b]; "—" or empty → []. */
function codeList(cell: string): string[] {
  if (cell === "" || cell === "—") return [];
  return cell.split(",").map((item) => {
    const match = /^`([^`]+)`$/.exec(item.trim());
    if (match?.[1] === undefined) throw new Error(`layer table: ${JSON.stringify(item.trim())} should be a name in backquotes`);
    return match[1].replace(/\/$/, "");
  });
}

/** Parses the first Markdown table of `markdown` whose header row is TABLE_HEADER. */
function parseLayerTable(markdown: string): Layer[] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((line) => line.trim().startsWith("|") && cells(line).join("|") === TABLE_HEADER.join("|"));
  if (start < 0) throw new Error(`layer table: no table with the columns ${TABLE_HEADER.join(", ")} in docs/architecture.md`);
  const layers: Layer[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.trim().startsWith("|")) break;
    const [rank = "", name = "", paths = "", node = "", packages = ""] = cells(line);
    if (!/^\d+$/.test(rank)) throw new Error(`layer table: rank ${JSON.stringify(rank)} of ${name} is not a whole number`);
    if (node !== "yes" && node !== "no") throw new Error(`layer table: the Node column of ${name} must be yes or no, not ${JSON.stringify(node)}`);
    const layerPaths = codeList(paths);
    if (layerPaths.length === 0) throw new Error(`layer table: ${name} lists no paths`);
    layers.push({ rank: Number(rank), name, paths: layerPaths, node: node === "yes", packages: codeList(packages) });
  }
  return layers;
}

function layerOf(layers: readonly Layer[], file: string): Layer | undefined {
  let best: { layer: Layer; length: number } | undefined;
  for (const layer of layers) {
    for (const path of layer.paths) {
      if ((file === path || file.startsWith(`${path}/`)) && (best === undefined || path.length > best.length)) best = { layer, length: path.length };
    }
  }
  return best?.layer;
}

const NODE_MODULES = new Set(builtinModules);

function isNodeModule(specifier: string): boolean {
  return specifier.startsWith("node:") || NODE_MODULES.has(specifier) || NODE_MODULES.has(specifier.split("/")[0] ?? "");
}

/** "@scope/name/sub" → "@scope/name"; "name/sub" → "name". */
function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

/**
 * Where a specifier inside src/ leads: a repository-relative path for relative ones and for the
 * library's own name (`atoll`, `atoll/...`, mapped as the tsconfigs' `paths` map them), undefined
 * when no file is there.
 */
function resolveLocal(from: string, specifier: string, exists: (path: string) => boolean): string | undefined {
  let base: string;
  if (specifier === "atoll") base = "src/lib/index.ts";
  else if (specifier.startsWith("atoll/")) base = `src/lib/${specifier.slice("atoll/".length)}`;
  else base = posix.normalize(posix.join(posix.dirname(from), specifier));
  return [base, `${base}.ts`, `${base}/index.ts`].find(exists);
}

function isLocal(specifier: string): boolean {
  return specifier.startsWith(".") || specifier === "atoll" || specifier.startsWith("atoll/");
}

/**
 * Every way `files` (repository-relative path → source text) break the layer table, one line
 * each: a file in no layer, an import that leads nowhere or out of src/, an edge to a higher layer
 * or a peer (`from → to (web may not import http)`), a Node module or a package the layer's row
 * does not allow.
 */
function layerViolations(layers: readonly Layer[], files: ReadonlyMap<string, string>): string[] {
  const violations: string[] = [];
  const exists = (path: string): boolean => files.has(path);
  for (const [file, text] of files) {
    const layer = layerOf(layers, file);
    if (layer === undefined) {
      violations.push(`${file} is in no layer: add its folder to a row of the layer table in docs/architecture.md`);
      continue;
    }
    const specifiers = new Set(ts.preProcessFile(text, true, true).importedFiles.map((imported) => imported.fileName));
    for (const specifier of specifiers) {
      if (isLocal(specifier)) {
        const target = resolveLocal(file, specifier, exists);
        if (target === undefined) {
          violations.push(`${file} → ${specifier} (no such file under src/)`);
          continue;
        }
        const targetLayer = layerOf(layers, target);
        if (targetLayer === undefined || targetLayer === layer) continue; // the target's own entry reports a file in no layer
        if (targetLayer.rank >= layer.rank) violations.push(`${file} → ${target} (${layer.name} may not import ${targetLayer.name})`);
      } else if (isNodeModule(specifier)) {
        if (!layer.node) violations.push(`${file} → ${specifier} (${layer.name} may not import Node's modules)`);
      } else if (!layer.packages.includes(packageName(specifier))) {
        violations.push(`${file} → ${specifier} (${layer.name} may not import the package ${packageName(specifier)}: name it in its row of the layer table)`);
      }
    }
  }
  return violations;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

function readLayers(): Layer[] {
  return parseLayerTable(readFileSync(join(ROOT, "docs", "architecture.md"), "utf8"));
}

/** A table shaped as the doc's, for the checker's own tests. */
const SAMPLE_TABLE = `
| Rank | Layer | Paths | Node | Packages |
|------|-------|-------|------|----------|
| 0 | abi | \`src/abi\` | no | — |
| 1 | runtime | \`src/lib/runtime\` | no | — |
| 2 | logs | \`src/lib/logs\` | no | — |
| 3 | net | \`src/lib/net\` | no | \`web-streams-polyfill\` |
| 3 | web | \`src/lib/web\` | no | — |
| 4 | http | \`src/lib/http\` | no | — |
| 5 | entries | \`src/lib/index.ts\` | no | — |
| 6 | tenders | \`src/tenders\` | yes | — |
`;

test("src/ keeps to the layer table of docs/architecture.md", () => {
  const layers = readLayers();
  const files = new Map(sourceFiles("src").map((file) => [file, readFileSync(join(ROOT, file), "utf8")] as const));
  assert.ok(files.size > 100, `found only ${files.size} files under src/`);
  const violations = layerViolations(layers, files);
  assert.deepEqual(violations, [], `backward or unplaced edges:\n${violations.join("\n")}`);
});

test("the layer table names only paths that exist, each once, with src/lib and src/abi free of Node", () => {
  const layers = readLayers();
  const seen = new Set<string>();
  for (const layer of layers) {
    for (const path of layer.paths) {
      assert.ok(existsSync(join(ROOT, ...path.split("/"))), `layer table: ${path} (layer ${layer.name}) does not exist`);
      assert.ok(!seen.has(path), `layer table: ${path} is listed twice`);
      seen.add(path);
      if (path.startsWith("src/lib") || path.startsWith("src/abi")) assert.equal(layer.node, false, `layer table: ${layer.name} is in src/lib or src/abi and may not be allowed Node's modules`);
    }
  }
  assert.deepEqual(new Set(layers.map((layer) => layer.name)).size, layers.length, "layer table: a layer name appears twice");
  // src/abi is below everything; everything in src/lib is below every host layer.
  const abi = layers.find((layer) => layer.paths.includes("src/abi"));
  assert.ok(abi !== undefined && layers.every((layer) => layer === abi || layer.rank > abi.rank), "layer table: src/abi must be alone at the lowest rank");
  const libRanks = layers.filter((layer) => layer.paths.every((path) => path.startsWith("src/lib"))).map((layer) => layer.rank);
  const hostRanks = layers.filter((layer) => layer.node).map((layer) => layer.rank);
  assert.ok(Math.max(...libRanks) < Math.min(...hostRanks), "layer table: every src/lib layer must rank below every host layer");
});

test("a backward edge is named with both files and the rule it breaks", () => {
  const layers = parseLayerTable(SAMPLE_TABLE);
  const files = new Map([
    ["src/lib/web/headers.ts", 'import { isToken } from "../http/syntax.ts";\n'],
    ["src/lib/http/syntax.ts", "export function isToken(text: string): boolean { return text !== ''; }\n"],
    // The cycle this issue removed: boot in runtime imported logs, which imports runtime.
    ["src/lib/runtime/boot.ts", 'import * as logs from "../logs/index.ts";\nexport { logs };\n'],
    ["src/lib/logs/index.ts", 'import { base } from "../runtime/base.ts";\nexport { base };\n'],
    ["src/lib/runtime/base.ts", "export const base = 1;\n"],
  ]);
  assert.deepEqual(layerViolations(layers, files), [
    "src/lib/web/headers.ts → src/lib/http/syntax.ts (web may not import http)",
    "src/lib/runtime/boot.ts → src/lib/logs/index.ts (runtime may not import logs)",
  ]);
});

test("layers that share a rank may not import each other; lower ranks, their own layer and atoll/... may", () => {
  const layers = parseLayerTable(SAMPLE_TABLE);
  const files = new Map([
    ["src/lib/net/flow.ts", 'import { ReadableStream } from "../web/streams.ts";\nimport { WritableStream } from "web-streams-polyfill";\nexport { ReadableStream, WritableStream };\n'],
    ["src/lib/web/streams.ts", "export class ReadableStream {}\n"],
    ["src/lib/http/server.ts", 'import type { ReadableStream } from "atoll/web/streams";\nimport { logs } from "../logs/index.ts";\nexport { logs, type ReadableStream };\n'],
    ["src/lib/logs/index.ts", "export const logs = 1;\n"],
    ["src/lib/index.ts", 'export * from "./http/server.ts";\n'],
  ]);
  assert.deepEqual(layerViolations(layers, files), ["src/lib/net/flow.ts → src/lib/web/streams.ts (net may not import web)"]);
});

test("Node's modules and unlisted packages are refused where the table does not allow them; so are files in no layer and imports of nothing", () => {
  const layers = parseLayerTable(SAMPLE_TABLE);
  const files = new Map([
    ["src/lib/net/clock.ts", 'import { performance } from "node:perf_hooks";\nimport { EventEmitter } from "events";\nexport const clock = () => import("hono");\nexport { performance, EventEmitter };\n'],
    ["src/tenders/node/tap.ts", 'import { openSync } from "node:fs";\nimport type { Base } from "../../abi/base.ts";\nimport { missing } from "./missing.ts";\nexport { openSync, missing, type Base };\n'],
    ["src/abi/base.ts", "export interface Base {}\n"],
    ["src/lib/dns/resolver.ts", 'import { isToken } from "../http/syntax.ts";\n'],
  ]);
  assert.deepEqual(layerViolations(layers, files), [
    "src/lib/net/clock.ts → node:perf_hooks (net may not import Node's modules)",
    "src/lib/net/clock.ts → events (net may not import Node's modules)",
    "src/lib/net/clock.ts → hono (net may not import the package hono: name it in its row of the layer table)",
    "src/tenders/node/tap.ts → ./missing.ts (no such file under src/)",
    "src/lib/dns/resolver.ts is in no layer: add its folder to a row of the layer table in docs/architecture.md",
  ]);
});

test("a malformed layer table is refused with what is wrong", () => {
  assert.throws(() => parseLayerTable("# Architecture\n\nno table here\n"), /no table with the columns Rank, Layer, Paths, Node, Packages/);
  const header = "| Rank | Layer | Paths | Node | Packages |\n|---|---|---|---|---|\n";
  assert.throws(() => parseLayerTable(`${header}| one | wire | \`src/lib/wire\` | no | — |\n`), /rank "one" of wire is not a whole number/);
  assert.throws(() => parseLayerTable(`${header}| 1 | wire | \`src/lib/wire\` | maybe | — |\n`), /Node column of wire must be yes or no/);
  assert.throws(() => parseLayerTable(`${header}| 1 | wire | src/lib/wire | no | — |\n`), /"src\/lib\/wire" should be a name in backquotes/);
  assert.throws(() => parseLayerTable(`${header}| 1 | wire | — | no | — |\n`), /wire lists no paths/);
});

/**
 * `atoll build`: turns an appliance directory into a sealed image.
 *
 * esbuild bundles the appliance's main module with exactly the library-OS modules it imports
 * (imports of "atoll" and its public "atoll/..." entry points resolve to this package's src/lib;
 * its own shim imports the boot and fetch-runner modules by path) into one script whose
 * completion value is the image entry. Host modules (node:*, fs, net, ...) are refused at build
 * time: an appliance reaches the world only through the base ABI.
 */
import { builtinModules } from "node:module";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import * as vm from "node:vm";
import type { Message, Plugin } from "esbuild";
import { ABI_VERSION } from "../abi/base.ts";
import { atollVersion, packageRoot } from "../host/package-root.ts";
import { encodeImage, IMAGE_EXTENSION } from "../image/format.ts";
import { validateDeviceNames, validateName, ManifestError, type Manifest } from "../image/manifest.ts";
import { AssetBuildError, packAssets } from "./assets.ts";
import { applianceRoot, ConfinementError, confinedRealPath, settingPath, type ApplianceRoot } from "./confine.ts";
import { notPublicMessage, publicEntryPoints } from "./public-api.ts";
import { describeTypeCheckErrors, TypeCheckConfigError, typeCheckAppliance } from "./typecheck.ts";

export class BuildError extends Error {
  override readonly name = "BuildError";
}

export const CONFIG_FILES = ["atoll.config.ts", "atoll.config.js", "atoll.config.mjs"];
const CONFIG_KEYS = ["name", "entry", "net", "block", "assets"];
const IMAGE_GLOBAL = "__atollImage";

/**
 * `entry` names one file and `assets` one directory: nothing expands glob patterns, so a missing
 * path that looks like one (`public/**`, `{a,b}`) says so.
 */
function globHint(what: "entry" | "assets", setting: string): string {
  if (!/[*?[\]{}]/.test(setting)) return "";
  return ` ('${what}' names ${what === "entry" ? "one file" : "one directory"}: glob patterns are not expanded)`;
}

/**
 * ECMAScript built-ins the image's code reads all the time. In a node:vm context every read of a
 * global goes through Node's interceptor on the context's global object (about 90 ns, against
 * ~1 ns for a script-scope binding), which measured at a quarter of the tender's CPU under bulk
 * TCP. Binding them once as script-scope constants makes each read a plain variable access. Only
 * what the engine provides at creation is listed: globals the library installs later (console,
 * setTimeout, the web classes) must stay live lookups.
 */
const HOT_BUILTINS = [
  "Object", "Array", "Math", "Number", "String", "Boolean", "Symbol", "BigInt", "JSON", "Reflect", "Promise",
  "Error", "TypeError", "RangeError", "Map", "Set", "WeakMap", "WeakSet", "Date", "RegExp",
  "ArrayBuffer", "DataView", "Uint8Array", "Uint16Array", "Uint32Array", "Int8Array", "Int16Array", "Int32Array",
  "Float32Array", "Float64Array", "BigUint64Array", "BigInt64Array",
];

export interface ApplianceConfig {
  readonly name: string;
  /** The appliance directory: everything the image embeds by name lies inside it (src/build/confine.ts). */
  readonly root: ApplianceRoot;
  /** Absolute path of the main module. */
  readonly entry: string;
  readonly net: readonly string[];
  readonly block: readonly string[];
  /** Absolute path of the assets directory (inside `root`, links included), when the config names one. */
  readonly assets?: string | undefined;
}

export interface BuildResult {
  readonly imagePath: string;
  readonly manifest: Manifest;
  readonly size: number;
}

export function findConfig(appDir: string): string | undefined {
  for (const file of CONFIG_FILES) {
    const path = join(appDir, file);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/**
 * Binds "atoll" and "atoll/..." to the library's public entry points (src/build/public-api.ts),
 * whatever the appliance's node_modules hold, and refuses any other "atoll/..." module with a
 * line naming the public ones: the library's internals are not an appliance's API.
 */
const publicLibrary: Plugin = {
  name: "atoll-public-api",
  setup(build) {
    const entryPoints = publicEntryPoints();
    const root = packageRoot();
    build.onResolve({ filter: /^atoll(\/|$)/ }, (args) => {
      const file = entryPoints.get(args.path);
      if (file === undefined) return { errors: [{ text: notPublicMessage(args.path, entryPoints) }] };
      return { path: join(root, file) };
    });
  },
};

/** A library module the build's own shim imports: by path, since it is not a public entry point. */
function internalModule(...pathUnderLib: string[]): string {
  return JSON.stringify(join(packageRoot(), "src", "lib", ...pathUnderLib));
}

function formatMessages(messages: readonly Message[]): string {
  return messages
    .slice(0, 3)
    .map((message) => {
      const at = message.location === null ? "" : `${message.location.file}:${message.location.line}:${message.location.column}: `;
      return `${at}${message.text}`;
    })
    .join("; ");
}

function isEsbuildFailure(error: unknown): error is { errors: Message[] } {
  return typeof error === "object" && error !== null && Array.isArray(Reflect.get(error, "errors"));
}

/** Refuses host modules with a message that says why, instead of esbuild's "could not resolve". */
const noHostModules: Plugin = {
  name: "atoll-no-host-modules",
  setup(build) {
    const hostModules = new Set(builtinModules);
    build.onResolve({ filter: /^[a-z0-9_:/]+$/ }, (args) => {
      const prefixed = args.path.startsWith("node:");
      if (!prefixed && !hostModules.has(args.path)) return undefined;
      return {
        errors: [
          {
            text: `'${args.path}' is a host module: an appliance reaches the world only through the base ABI (use the atoll/... library modules)`,
          },
        ],
      };
    });
  },
};

/**
 * The injected web classes (src/lib/web/inject.ts) are dropped from an image whose code never
 * names them only if esbuild may treat their modules as free of side effects, which they are
 * (they define classes and tables; installWebGlobals() is a function): esbuild adds the inject
 * file's import to every module, and would otherwise keep its whole graph in every image.
 */
const webClassesAreSideEffectFree: Plugin = {
  name: "atoll-web-side-effect-free",
  setup(build) {
    const webDir = join(packageRoot(), "src", "lib", "web") + sep;
    const again = Symbol("atoll-web-side-effect-free");
    build.onResolve({ filter: /\.ts$/ }, async (args) => {
      if (args.pluginData === again) return undefined;
      const resolved = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: again });
      if (resolved.errors.length > 0 || !resolved.path.startsWith(webDir)) return undefined;
      return { path: resolved.path, sideEffects: false };
    });
  },
};

/** Loads and validates atoll.config.ts. Throws BuildError with a one-line reason. */
export async function loadConfig(appDir: string): Promise<ApplianceConfig> {
  const configPath = findConfig(appDir);
  if (configPath === undefined) {
    throw new BuildError(`no atoll.config.ts in ${appDir}: create one (\`atoll new <dir>\` scaffolds an appliance)`);
  }
  const esbuild = await import("esbuild");
  let code: string;
  try {
    const result = await esbuild.build({
      entryPoints: [configPath],
      bundle: true,
      write: false,
      platform: "node",
      format: "cjs",
      target: "node20",
      logLevel: "silent",
      plugins: [publicLibrary],
    });
    code = result.outputFiles[0]?.text ?? "";
  } catch (error) {
    if (isEsbuildFailure(error)) throw new BuildError(`${relative(process.cwd(), configPath)}: ${formatMessages(error.errors)}`);
    throw error;
  }
  const module: { exports: unknown } = { exports: {} };
  const factory: unknown = vm.runInThisContext(`(function (module, exports) {${code}\n})`, { filename: configPath });
  if (typeof factory !== "function") throw new BuildError(`${configPath}: could not be evaluated`);
  try {
    factory(module, module.exports);
  } catch (error) {
    throw new BuildError(`${configPath}: threw while loading: ${error instanceof Error ? error.message : String(error)}`);
  }
  const exported: unknown = typeof module.exports === "object" && module.exports !== null ? Reflect.get(module.exports, "default") : undefined;
  return validateConfig(exported, appDir, configPath);
}

export function validateConfig(value: unknown, appDir: string, configPath: string): ApplianceConfig {
  const where = relative(process.cwd(), configPath) || configPath;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BuildError(`${where}: the default export must be defineConfig({ name: ..., net: [...] })`);
  }
  for (const key of Object.keys(value)) {
    if (!CONFIG_KEYS.includes(key)) throw new BuildError(`${where}: unknown setting '${key}' (known: ${CONFIG_KEYS.join(", ")})`);
  }
  try {
    const name = validateName(Reflect.get(value, "name"));
    const net = validateDeviceNames("net", Reflect.get(value, "net"));
    const block = validateDeviceNames("block", Reflect.get(value, "block"));
    for (const device of net) if (block.includes(device)) throw new ManifestError(`device '${device}' is declared both as net and as block`);
    const root = applianceRoot(appDir);
    const entrySetting: unknown = Reflect.get(value, "entry") ?? "src/main.ts";
    if (typeof entrySetting !== "string" || entrySetting === "") throw new ManifestError("'entry' must be a path such as \"src/main.ts\"");
    const entry = settingPath(root, "entry", entrySetting);
    if (!existsSync(entry)) throw new ManifestError(`entry ${entrySetting} does not exist${globHint("entry", entrySetting)}`);
    // esbuild reads the entry through its links: its real path must stay inside too.
    confinedRealPath(root, `entry ${JSON.stringify(entrySetting)}`, entry);
    const assetsSetting: unknown = Reflect.get(value, "assets");
    if (assetsSetting === undefined) return { name, root, entry, net, block };
    if (typeof assetsSetting !== "string" || assetsSetting === "") throw new ManifestError("'assets' must be a directory such as \"public\"");
    const assets = settingPath(root, "assets", assetsSetting);
    if (!existsSync(assets) || !statSync(assets).isDirectory()) throw new ManifestError(`assets directory ${assetsSetting} does not exist${globHint("assets", assetsSetting)}`);
    confinedRealPath(root, `assets ${JSON.stringify(assetsSetting)}`, assets);
    return { name, root, entry, net, block, assets };
  } catch (error) {
    if (error instanceof ManifestError || error instanceof ConfinementError) throw new BuildError(`${where}: ${error.message}`);
    throw error;
  }
}

function buildTime(): string {
  // SOURCE_DATE_EPOCH makes builds reproducible (reproducible-builds.org); otherwise: now.
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch === undefined || epoch === "") return new Date().toISOString();
  if (!/^\d{1,12}$/.test(epoch)) throw new BuildError(`SOURCE_DATE_EPOCH=${epoch} is not a number of seconds since 1970: unset it or give e.g. $(git log -1 --format=%ct)`);
  return new Date(Number(epoch) * 1000).toISOString();
}

export interface BuildOptions {
  /** Where to write the image; default <appDir>/dist. */
  readonly outDir?: string | undefined;
  readonly minify?: boolean | undefined;
  /** Type-check the appliance against the image's globals (src/build/typecheck.ts); default true. */
  readonly check?: boolean | undefined;
}

/** Bundles and seals an appliance. Throws BuildError with a one-line reason. */
export async function buildAppliance(appDirInput: string, options: BuildOptions = {}): Promise<BuildResult> {
  const appDir = resolve(appDirInput);
  if (!existsSync(appDir)) throw new BuildError(`${appDirInput} does not exist`);
  const config = await loadConfig(appDir);
  const esbuild = await import("esbuild");
  const outDir = resolve(options.outDir ?? join(appDir, "dist"));
  const outfile = join(outDir, `${config.name}.js`);
  const entryName = relative(appDir, config.entry).split("\\").join("/");
  const exported = await defaultExportOf(config.entry, entryName);
  // The entry is imported lazily (esbuild turns import() in a bundle without splitting into a
  // module initializer called on demand): its modules evaluate when boot asks, after it has
  // installed the globals, so their top level sees a whole world.
  const module = [
    `load: () => import(${JSON.stringify(config.entry)})`,
    `entryName: ${JSON.stringify(entryName)}`,
    `declared: ${JSON.stringify({ net: config.net, block: config.block })}`,
    // The fetch-app runner (stack, TCP, HTTP) goes into the image only when the default export may be a fetch app.
    ...(exported === "function" ? [] : [`loadFetchRunner: () => import(${internalModule("http", "serve.ts")}).then((serve) => serve.runFetchApp)`]),
  ];
  const shim = [
    `import { bootModule } from ${internalModule("boot", "index.ts")};`,
    `export function start(base) { bootModule(base, { ${module.join(", ")} }); }`,
  ].join("\n");
  let code: string;
  let sourceMap: string;
  try {
    const result = await esbuild.build({
      stdin: { contents: shim, resolveDir: appDir, sourcefile: "atoll-entry.js", loader: "js" },
      bundle: true,
      write: false,
      outfile,
      format: "iife",
      globalName: IMAGE_GLOBAL,
      // The script's completion value is the entry, so a tender needs no global to find it.
      footer: { js: `${IMAGE_GLOBAL};` },
      banner: { js: `const { ${HOT_BUILTINS.join(", ")} } = globalThis;` },
      platform: "neutral",
      mainFields: ["module", "main"],
      target: "es2022",
      sourcemap: "external",
      minify: options.minify ?? false,
      legalComments: "none",
      logLevel: "silent",
      // Paths in comments and the source map are then relative to the appliance, not to where atoll ran.
      absWorkingDir: appDir,
      // Packages atoll itself carries (web-streams-polyfill, hono for its template) resolve for
      // every appliance, after the appliance's own node_modules.
      nodePaths: [join(packageRoot(), "node_modules")],
      // Free references to the web classes bind to atoll/web's (see src/lib/web/inject.ts).
      inject: [join(packageRoot(), "src", "lib", "web", "inject.ts")],
      plugins: [publicLibrary, noHostModules, webClassesAreSideEffectFree],
    });
    const js = result.outputFiles.find((file) => file.path.endsWith(".js"));
    const map = result.outputFiles.find((file) => file.path.endsWith(".js.map"));
    if (js === undefined || map === undefined) throw new BuildError("esbuild produced no output");
    code = js.text.replace(/\n\/\/# sourceMappingURL=.*\n?$/, "\n");
    sourceMap = applianceRelativeSources(map.text, outDir, appDir, config.name);
  } catch (error) {
    if (isEsbuildFailure(error)) throw new BuildError(`build failed: ${formatMessages(error.errors)}`);
    throw error;
  }
  // After bundling, whose errors (syntax, host modules, unresolved imports) say more.
  if (options.check ?? true) checkTypes(appDir, config.entry);
  const manifest: Manifest = {
    name: config.name,
    net: config.net,
    block: config.block,
    builtBy: `atoll ${atollVersion()}`,
    buildTime: buildTime(),
    abiVersion: ABI_VERSION,
  };
  let assets: Uint8Array | undefined;
  try {
    assets = config.assets === undefined ? undefined : packAssets(config.assets, config.root);
  } catch (error) {
    if (error instanceof AssetBuildError) throw new BuildError(error.message);
    throw error;
  }
  const image = encodeImage({ manifest, code, sourceMap, assets });
  mkdirSync(outDir, { recursive: true });
  const imagePath = join(outDir, `${config.name}${IMAGE_EXTENSION}`);
  // Write then rename, so a tender never sees half an image.
  const temporary = `${imagePath}.${process.pid}.tmp`;
  writeFileSync(temporary, image);
  renameSync(temporary, imagePath);
  return { imagePath, manifest, size: image.length };
}

function checkTypes(appDir: string, entry: string): void {
  try {
    const cacheFile = join(appDir, "node_modules", ".cache", "atoll", "typecheck.json");
    const errors = typeCheckAppliance({ appDir, entry, packageRoot: packageRoot(), cacheFile });
    if (errors.length > 0) throw new BuildError(describeTypeCheckErrors(errors));
  } catch (error) {
    if (error instanceof TypeCheckConfigError) throw new BuildError(error.message);
    throw error;
  }
}

/** What the entry's default export is, as far as its source shows without running it. */
export type DefaultExportKind = "function" | "fetch-app" | "unknown";

/**
 * Reads the entry's default export from its source (after esbuild strips the types), so that an
 * entry that cannot start is a build error with file:line rather than an image that aborts: no
 * default export, a class, or a literal that is neither a function nor an object. An object
 * literal or any other expression (an identifier such as a Hono app) may be a fetch app: the
 * image then carries the fetch-app runner, and boot checks the value when it starts.
 */
export async function defaultExportOf(entryPath: string, entryName: string): Promise<DefaultExportKind> {
  const esbuild = await import("esbuild");
  const source = readFileSync(entryPath, "utf8");
  const lineOf = (pattern: RegExp): number => {
    const index = source.search(pattern);
    return index < 0 ? 1 : source.slice(0, index).split("\n").length;
  };
  const where = `${entryName}:${lineOf(/\bexport\s+(default\b|\{[^}]*\bas\s+default\b)/)}`;
  const loader = /\.tsx$/.test(entryPath) ? "tsx" : /\.jsx$/.test(entryPath) ? "jsx" : /\.[cm]?ts$/.test(entryPath) ? "ts" : "js";
  let code: string;
  try {
    code = (await esbuild.transform(source, { loader, format: "esm", sourcefile: entryName, logLevel: "silent" })).code;
  } catch (error) {
    if (isEsbuildFailure(error)) throw new BuildError(`build failed: ${formatMessages(error.errors)}`);
    throw error;
  }
  const exportedName = /\b([\w$]+) as default\b/.exec(code)?.[1];
  const shapes = "export default function main(app) { ... } or export default { fetch(request) { ... } }";
  if (exportedName === undefined) {
    if (/\bexport\s*\*\s*from\b/.test(code)) return "unknown";
    throw new BuildError(`${entryName}: has no default export: an appliance's entry exports ${shapes}`);
  }
  const escaped = exportedName.replace(/\$/g, "\\$");
  if (new RegExp(`^(async )?function\\*? ${escaped}\\(`, "m").test(code)) return "function";
  if (new RegExp(`^class ${escaped}\\b`, "m").test(code)) {
    throw new BuildError(`${where}: the default export is a class; an appliance's entry exports ${shapes} (an instance with fetch works: export default new App())`);
  }
  const value = new RegExp(`^var ${escaped} = (.)(.*)`, "m").exec(code);
  if (value === null) return "unknown";
  const [, first = "", rest = ""] = value;
  const expression = first + rest;
  if (/^(async\s*)?((\([^()]*\)|[\w$]+)\s*=>|function\b)/.test(expression)) return "function";
  if (first === "{") return "fetch-app";
  if (/^(-?\d|["'`[]|null\b|true\b|false\b|void\b|undefined\b)/.test(expression)) {
    throw new BuildError(`${where}: the default export is ${expression.replace(/;$/, "").slice(0, 40)}; an appliance's entry exports ${shapes}`);
  }
  return "unknown";
}

/**
 * Source map paths name files as `atoll://<name>/<path inside the appliance>` (atoll's own files as
 * `atoll://<name>/atoll/<path under src/>`): stable wherever the appliance and atoll are checked out, so that
 * builds are reproducible, and readable in DevTools, which shows the embedded sourcesContent.
 */
function applianceRelativeSources(mapText: string, outDir: string, appDir: string, name: string): string {
  const map: unknown = JSON.parse(mapText);
  if (typeof map !== "object" || map === null) return mapText;
  const sources: unknown = Reflect.get(map, "sources");
  const atollSources = join(packageRoot(), "src");
  if (Array.isArray(sources)) {
    Reflect.set(
      map,
      "sources",
      sources.map((source: unknown) => {
        if (typeof source !== "string" || source.startsWith("<")) return source;
        const absolute = resolve(outDir, source);
        const inAtoll = relative(atollSources, absolute);
        const path = inAtoll.startsWith("..") ? relative(appDir, absolute) : `atoll/${inAtoll}`;
        return `atoll://${name}/${path.split("\\").join("/")}`;
      }),
    );
  }
  return JSON.stringify(map);
}

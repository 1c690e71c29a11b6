/**
 * The type check of `atoll build`: the appliance's code against what an image has at run time.
 *
 * An image has ECMAScript, the globals the library OS installs (src/lib/types/image-globals.d.ts)
 * and the atoll/... modules; no `process`, `Buffer`, `require` or `fetch`. Code that uses them
 * bundles fine and then dies at run time, so the build checks it with the TypeScript compiler:
 * `types: []` (no @types/node, whatever the appliance's tsconfig says) plus the image's globals,
 * and "atoll" and its public "atoll/..." entry points resolved to the package's src/lib exactly as
 * the bundler binds them.
 *
 * Only the appliance's own files are checked (the entry and what it imports, outside atoll's src/
 * and any node_modules): the library is checked by Atoll's own CI, and asking for its diagnostics
 * would be most of the cost. A cache under the appliance's node_modules/.cache/atoll/
 * skips the check when no file it read has changed since it last passed (see CheckCache).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative } from "node:path";
import { createRequire } from "node:module";
import type * as ts from "typescript";
import { currentFile } from "../host/package-root.ts";
import { publicEntryPoints } from "./public-api.ts";

/** What to check: the appliance's directory and its entry, and the atoll package providing the library. */
export interface TypeCheckInput {
  readonly appDir: string;
  /** Absolute path of the main module. */
  readonly entry: string;
  /** The atoll package root: its src/lib is "atoll", its node_modules the bundler's fallback. */
  readonly packageRoot: string;
  /** The check's cache file (see CheckCache); undefined: no cache. */
  readonly cacheFile?: string | undefined;
}

/** One error, ready to print. */
export interface TypeCheckError {
  /** Path relative to the current directory (absolute outside it), or undefined for a global error. */
  readonly file: string | undefined;
  /** 1-based. */
  readonly line: number;
  readonly column: number;
  /** TypeScript's error number; undefined for the build's own checks (the default export's shape). */
  readonly code: number | undefined;
  readonly message: string;
}

/** Errors printed in full; the rest are counted ("... and N more"). */
export const SHOWN_ERRORS = 5;

/** The options when the appliance has no tsconfig.json: those of a scaffold (src/cli/new.ts). */
const DEFAULT_OPTIONS = {
  target: "ES2022",
  lib: ["ES2022"],
  module: "ESNext",
  moduleResolution: "Bundler",
  strict: true,
  allowImportingTsExtensions: true,
  skipLibCheck: true,
} as const;

/**
 * TS2580/TS2591/TS2592 say "Cannot find name 'process'. Do you need to install type definitions
 * for node? Try `npm i --save-dev @types/node`...": the wrong advice for an image, where the
 * name does not exist at run time either.
 */
const INSTALL_TYPES_ADVICE = new Set([2580, 2591, 2592]);

/** Host globals newcomers reach for, which TypeScript reports without that advice. */
const HOST_GLOBALS = new Set(["fetch", "window", "document", "XMLHttpRequest", "WebSocket", "setImmediate", "global", "__dirname", "__filename"]);

export function formatTypeCheckError(error: TypeCheckError): string {
  const where = error.file === undefined ? "" : `${error.file}:${error.line}:${error.column}: `;
  return `${where}error${error.code === undefined ? "" : ` TS${error.code}`}: ${error.message}`;
}

/**
 * The build error's text: a summary line, then at most SHOWN_ERRORS errors as
 * `src/main.ts:3:7: error TS2304: Cannot find name 'fetch'.`, then "... and N more".
 */
export function describeTypeCheckErrors(errors: readonly TypeCheckError[]): string {
  const lines = [`type check failed: ${errors.length} error${errors.length === 1 ? "" : "s"} (fix them, or build with --no-check to skip the check)`];
  lines.push(...errors.slice(0, SHOWN_ERRORS).map(formatTypeCheckError));
  if (errors.length > SHOWN_ERRORS) lines.push(`... and ${errors.length - SHOWN_ERRORS} more`);
  return lines.join("\n");
}

/** Checks the appliance; returns its errors, in file order (empty: it type-checks). */
export function typeCheckAppliance(input: TypeCheckInput): TypeCheckError[] {
  const load = createRequire(currentFile());
  const key = cacheKey(load, input);
  if (input.cacheFile !== undefined && cachedSuccess(input.cacheFile, key)) return [];
  // Loaded only when a build checks, and by require: an ESM import of the 9 MB CommonJS compiler
  // scans it for named exports first, which triples the quarter second that loading it takes.
  const typescript: typeof ts = load("typescript");
  const options = compilerOptions(typescript, input);
  const host = typescript.createCompilerHost(options);
  // The bundler resolves bare imports from the appliance first, then from atoll's node_modules
  // (hono, web-streams-polyfill): the check must find the same files.
  const fallbackContainingFile = join(input.packageRoot, "package.json");
  host.resolveModuleNameLiterals = (literals, containingFile, redirectedReference, resolutionOptions) =>
    literals.map((literal) => {
      const name = literal.text;
      const first = typescript.resolveModuleName(name, containingFile, resolutionOptions, host, undefined, redirectedReference);
      if (first.resolvedModule !== undefined || name.startsWith(".") || isAbsolute(name)) return first;
      const fallback = typescript.resolveModuleName(name, fallbackContainingFile, resolutionOptions, host, undefined, redirectedReference);
      return fallback.resolvedModule !== undefined ? fallback : first;
    });
  const globals = join(input.packageRoot, "src", "lib", "types", "image-globals.d.ts");
  const exportTypes = join(input.packageRoot, "src", "lib", "http", "serve.ts");
  const program = typescript.createProgram({ rootNames: [input.entry, globals, exportTypes], options, host });
  const diagnostics: ts.Diagnostic[] = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  for (const file of program.getSourceFiles()) {
    if (isApplianceFile(file.fileName, input)) diagnostics.push(...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file));
  }
  const errors = diagnostics
    .filter((diagnostic) => diagnostic.category === typescript.DiagnosticCategory.Error)
    .map((diagnostic) => toTypeCheckError(typescript, diagnostic));
  // Only once the code itself checks: a broken entry's export type says little.
  if (errors.length === 0) errors.push(...defaultExportErrors(typescript, program, input.entry, exportTypes));
  // Only a success is remembered: a failure may be about a file that does not exist yet.
  if (errors.length === 0 && input.cacheFile !== undefined) {
    rememberSuccess(input.cacheFile, key, program.getSourceFiles().map((file) => file.fileName), input.appDir);
  }
  return errors;
}

/**
 * The check's cache: after a success, the SHA-256 of every file the program read (the library's
 * and the packages' included) and of the files that steer module resolution (the appliance's
 * package.json, tsconfig.json and npm's node_modules/.package-lock.json). A build whose files all
 * hash the same, with the same compiler and options, skips the check: hashing ~150 files takes
 * milliseconds, a check one to three seconds.
 */
interface CheckCache {
  readonly key: string;
  readonly files: Record<string, string | null>;
}

/** What decides the check besides the files: the compiler, the entry, the library, and the options (the tsconfig is a steering file). */
function cacheKey(load: NodeJS.Require, input: TypeCheckInput): string {
  const compiler = readFileSync(load.resolve("typescript/package.json"), "utf8");
  return createHash("sha256").update(JSON.stringify([compiler, input.entry, input.packageRoot, DEFAULT_OPTIONS, CACHE_FORMAT])).digest("hex");
}

/** Bumped when what is cached, or how the check is made, changes. */
const CACHE_FORMAT = 2;

function fileHash(path: string): string | null {
  try {
    return createHash("sha256").update(readFileSync(path)).digest("hex");
  } catch {
    return null; // absent (or unreadable): recorded, so that its appearing invalidates the cache
  }
}

function steeringFiles(appDir: string): string[] {
  return [join(appDir, "package.json"), join(appDir, "tsconfig.json"), join(appDir, "node_modules", ".package-lock.json")];
}

function cachedSuccess(cacheFile: string, key: string): boolean {
  let cache: unknown;
  try {
    cache = JSON.parse(readFileSync(cacheFile, "utf8"));
  } catch {
    return false; // none yet, or unreadable: check
  }
  if (typeof cache !== "object" || cache === null || Reflect.get(cache, "key") !== key) return false;
  const files: unknown = Reflect.get(cache, "files");
  if (typeof files !== "object" || files === null) return false;
  const entries = Object.entries(files);
  return entries.length > 0 && entries.every(([path, hash]) => fileHash(path) === hash);
}

function rememberSuccess(cacheFile: string, key: string, read: readonly string[], appDir: string): void {
  const cache: CheckCache = { key, files: Object.fromEntries([...read, ...steeringFiles(appDir)].map((path) => [path, fileHash(path)])) };
  try {
    mkdirSync(dirname(cacheFile), { recursive: true });
    // Builds of one appliance may run at once (tests do): a reader must never see half a cache.
    const temporary = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(cache));
    renameSync(temporary, cacheFile);
  } catch {
    // A cache that cannot be written only makes the next build check again.
  }
}

/** The appliance's own code: not the library (the package's src/), not a package, not a declaration file. */
function isApplianceFile(fileName: string, input: TypeCheckInput): boolean {
  if (fileName.endsWith(".d.ts")) return false;
  const inLibrary = relative(join(input.packageRoot, "src"), fileName);
  if (!inLibrary.startsWith("..") && !isAbsolute(inLibrary)) return false;
  return !fileName.split(/[\\/]/).includes("node_modules");
}

function compilerOptions(typescript: typeof ts, input: TypeCheckInput): ts.CompilerOptions {
  const tsconfigPath = join(input.appDir, "tsconfig.json");
  let base: ts.CompilerOptions;
  if (existsSync(tsconfigPath)) {
    const read = typescript.readConfigFile(tsconfigPath, (path) => typescript.sys.readFile(path));
    if (read.error !== undefined) throw new TypeCheckConfigError(`${tsconfigPath}: ${typescript.flattenDiagnosticMessageText(read.error.messageText, " ")}`);
    const parsed = typescript.parseJsonConfigFileContent(read.config, typescript.sys, input.appDir, undefined, tsconfigPath);
    const optionErrors = parsed.errors.filter((error) => error.code !== 18003); // 18003: no inputs in "include": we name the files
    const first = optionErrors[0];
    if (first !== undefined) throw new TypeCheckConfigError(`${tsconfigPath}: ${typescript.flattenDiagnosticMessageText(first.messageText, " ")}`);
    base = parsed.options;
  } else {
    base = typescript.convertCompilerOptionsFromJson(DEFAULT_OPTIONS, input.appDir).options;
  }
  return {
    ...base,
    // What exists in an image, whatever the tsconfig says for editors: ECMAScript without the
    // DOM (which TypeScript's default libraries include) and no @types packages.
    lib: imageLibraries(typescript, base),
    types: [],
    // A JavaScript appliance builds too; it is checked only where it asks (checkJs, // @ts-check).
    allowJs: true,
    noEmit: true,
    // The public entry points only, as the bundler binds them (src/build/public-api.ts).
    paths: Object.fromEntries([...publicEntryPoints(input.packageRoot)].map(([specifier, file]) => [specifier, [join(input.packageRoot, file)]])),
    incremental: false,
    composite: false,
    declaration: false,
  };
}

/** The tsconfig's libraries (by default its target's) without the browser's and the script host's. */
function imageLibraries(typescript: typeof ts, options: ts.CompilerOptions): string[] {
  const libraries = options.lib ?? [typescript.getDefaultLibFileName(options).replace(/\.full\.d\.ts$/, ".d.ts")];
  return libraries.filter((library) => !/^lib\.(dom|webworker|scripthost)\b/i.test(library));
}

/**
 * The entry's default export must be an `ApplianceExport` (src/lib/http/serve.ts): a main
 * function or a fetch app. Anything else bundles into an image that aborts at start, so it is a
 * type error here, at the export. (An entry without a default export is refused before this, by
 * the build itself.)
 */
function defaultExportErrors(typescript: typeof ts, program: ts.Program, entry: string, exportTypes: string): TypeCheckError[] {
  const checker = program.getTypeChecker();
  const exportsOf = (fileName: string): ts.Symbol[] => {
    const file = program.getSourceFile(fileName);
    const module = file === undefined ? undefined : checker.getSymbolAtLocation(file);
    return module === undefined ? [] : checker.getExportsOfModule(module);
  };
  const exported = exportsOf(entry).find((symbol) => symbol.name === "default");
  const expected = exportsOf(exportTypes).find((symbol) => symbol.name === "ApplianceExport");
  if (exported === undefined || expected === undefined) return [];
  const value = exported.flags & typescript.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
  const type = checker.getTypeOfSymbol(value);
  if (checker.isTypeAssignableTo(type, checker.getDeclaredTypeOfSymbol(expected))) return [];
  const message =
    `the default export (${checker.typeToString(type)}) is not an appliance: export a main function, ` +
    "(app: Appliance) => number | void or a promise of one, or a fetch app, { fetch(request: Request): Response | Promise<Response>, port?: number }";
  const declaration = exported.declarations?.[0];
  const file = declaration?.getSourceFile();
  if (declaration === undefined || file === undefined) return [{ file: undefined, line: 0, column: 0, code: undefined, message }];
  const at = toTypeCheckError(typescript, { category: typescript.DiagnosticCategory.Error, code: 0, file, start: declaration.getStart(), length: declaration.getWidth(), messageText: message });
  return [{ ...at, code: undefined }];
}

function toTypeCheckError(typescript: typeof ts, diagnostic: ts.Diagnostic): TypeCheckError {
  const code = diagnostic.code;
  let message = typescript.flattenDiagnosticMessageText(diagnostic.messageText, " ");
  const unknownName = /^Cannot find name '([^']+)'\./.exec(message);
  if (unknownName !== null && (INSTALL_TYPES_ADVICE.has(diagnostic.code) || HOST_GLOBALS.has(unknownName[1] ?? ""))) {
    message = `${unknownName[0]} (an image has no Node or browser globals: it reaches the world through the atoll/... modules)`;
  }
  if (diagnostic.file === undefined || diagnostic.start === undefined) return { file: undefined, line: 0, column: 0, code, message };
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  const fromHere = relative(process.cwd(), diagnostic.file.fileName);
  const file = fromHere.startsWith("..") || isAbsolute(fromHere) ? diagnostic.file.fileName : fromHere;
  return { file, line: line + 1, column: character + 1, code, message };
}

/** The appliance's tsconfig.json cannot be read or has bad options. */
export class TypeCheckConfigError extends Error {
  override readonly name = "TypeCheckConfigError";
}

/** `atoll new`: scaffold an appliance from one of the examples, ready to build and run as is. */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { packageRoot } from "../host/package-root.ts";
import { flag, parseCommandLine, stringValue } from "./args.ts";
import { CommandError, UsageError } from "./errors.ts";

export function templates(): string[] {
  const examples = join(packageRoot(), "examples");
  return readdirSync(examples, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(examples, entry.name, "atoll.config.ts")))
    .map((entry) => entry.name)
    .sort();
}

export function newHelp(): string {
  return `Usage: atoll new <dir> [--template <name>] [--name <name>]

Creates an appliance in <dir> (which must not exist or be empty) that builds and runs as is:
  cd <dir> && npx atoll build && npx atoll run dist/<name>.atoll

Options:
  --template <name>   what to start from: ${templates().join(", ")} (default: hello)
  --name <name>       appliance name (default: from <dir>)
  -h, --help          show this help
`;
}

/** Turns a directory name into a valid appliance name: "My App" → "my-app". */
export function applianceNameFrom(dir: string): string {
  const name = basename(resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+$/, "")
    .slice(0, 63);
  return name === "" ? "appliance" : name;
}

export function newCommand(argv: readonly string[]): void {
  const parsed = parseCommandLine(
    "new",
    argv,
    { template: { type: "string" }, name: { type: "string" }, help: { type: "boolean", short: "h" } },
    1,
  );
  if (flag(parsed, "help")) {
    process.stdout.write(newHelp());
    return;
  }
  const dir = parsed.positionals[0];
  if (dir === undefined) throw new UsageError("atoll new: where? e.g. `atoll new my-appliance` (see `atoll new --help`)");
  const template = stringValue(parsed, "template") ?? "hello";
  const available = templates();
  if (!available.includes(template)) throw new UsageError(`atoll new: unknown template '${template}' (available: ${available.join(", ")})`);
  const name = stringValue(parsed, "name") ?? applianceNameFrom(dir);
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) {
    throw new UsageError(`atoll new: name '${name}' is invalid: use lower-case letters, digits and '-', starting with a letter`);
  }
  const target = resolve(dir);
  if (existsSync(target) && !statSync(target).isDirectory()) throw new CommandError(`atoll new: ${dir} exists and is not a directory: choose a new directory`);
  if (existsSync(target) && readdirSync(target).length > 0) throw new CommandError(`atoll new: ${dir} exists and is not empty: choose a new directory`);

  const root = packageRoot();
  const source = join(root, "examples", template);
  mkdirSync(target, { recursive: true });
  cpSync(source, target, {
    recursive: true,
    filter: (path) => !/[/\\](dist|node_modules)([/\\]|$)/.test(path.slice(source.length)),
  });
  const configPath = join(target, "atoll.config.ts");
  const config = readFileSync(configPath, "utf8");
  const renamed = config.replace(/name:\s*"[^"]*"/, `name: ${JSON.stringify(name)}`);
  if (renamed === config && !config.includes(`name: ${JSON.stringify(name)}`)) {
    throw new CommandError(`atoll new: template '${template}' has no name setting to rename`);
  }
  writeFileSync(configPath, renamed);

  const carried = carriedDependencies(root, target);
  const packageJson = {
    name,
    private: true,
    type: "module",
    scripts: { build: "atoll build", start: `atoll run dist/${name}.atoll`, typecheck: "tsc --noEmit" },
    // Keyed "atoll", the name appliances import; the package itself is PACKAGE_NAME.
    devDependencies: { atoll: `file:${root}`, ...Object.fromEntries(carried.map((dependency) => [dependency.name, dependency.version])) },
  };
  writeFileSync(join(target, "package.json"), `${JSON.stringify(packageJson, null, 2)}\n`);
  if (!existsSync(join(target, "tsconfig.json"))) {
    const tsconfig = {
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2022"],
        module: "ESNext",
        moduleResolution: "Bundler",
        types: [],
        strict: true,
        noEmit: true,
        allowImportingTsExtensions: true,
        skipLibCheck: true,
        // node_modules/atoll is a symlink; without this, files reached through it and through
        // its real path are two copies of each module, and Atoll's Request is not Atoll's Request.
        preserveSymlinks: true,
      },
      include: ["src", "atoll.config.ts", "node_modules/atoll/src/lib/types/image-globals.d.ts"],
    };
    writeFileSync(join(target, "tsconfig.json"), `${JSON.stringify(tsconfig, null, 2)}\n`);
  }
  // Link this atoll and the packages it carries in, as `npm install` would make them, but
  // offline and at once (a later `npm install` replaces them with the same versions).
  mkdirSync(join(target, "node_modules", ".bin"), { recursive: true });
  symlinkSync(root, join(target, "node_modules", "atoll"), "dir");
  symlinkSync(join(root, "bin", "atoll.cjs"), join(target, "node_modules", ".bin", "atoll"));
  for (const dependency of carried) {
    symlinkSync(dependency.directory, join(target, "node_modules", dependency.name), "dir");
    for (const [command, file] of dependency.bins) symlinkSync(join(dependency.directory, file), join(target, "node_modules", ".bin", command));
  }

  const quoted = /^[\w./-]+$/.test(dir) ? dir : `'${dir.replace(/'/g, "'\\''")}'`;
  // Net devices default to user-mode networking; a published port makes a server reachable.
  const publish: Record<string, string> = { website: " -p 8080:80", hono: " -p 8080:80", echo: " -p 8007:7" };
  const devices = publish[template] ?? (readFileSync(configPath, "utf8").includes("net:") ? "   (see atoll run --help for -p and --net)" : "");
  process.stdout.write(`Created ${dir} from template '${template}'. Next:\n  cd ${quoted}\n  npx atoll build\n  npx atoll run dist/${name}.atoll${devices}\n`);
}

/** A package Atoll itself depends on, that a scaffold needs too, at the version Atoll has. */
interface CarriedDependency {
  readonly name: string;
  readonly version: string;
  /** Where it is installed, for the offline link. */
  readonly directory: string;
  /** Its commands: name → file inside the package. */
  readonly bins: readonly (readonly [string, string])[];
}

/**
 * What a scaffold needs beyond atoll: typescript (its `typecheck` script) and every package of
 * Atoll's own dependencies that the template's code imports (hono for the hono template), each at
 * exactly the version Atoll is installed with, so that the app is checked and bundled against what
 * Atoll was tested with.
 */
function carriedDependencies(root: string, appDir: string): CarriedDependency[] {
  const manifest = readJson(join(root, "package.json"));
  const atollDependencies = Object.keys(objectField(manifest, "dependencies"));
  const imported = importedPackages(join(appDir, "src"));
  const wanted = ["typescript", ...atollDependencies.filter((dependency) => dependency !== "typescript" && imported.has(dependency))];
  return wanted.map((dependency) => {
    const directory = installedPackage(root, dependency);
    const installed = readJson(join(directory, "package.json"));
    const version = Reflect.get(installed, "version");
    if (typeof version !== "string") throw new CommandError(`atoll new: ${join(directory, "package.json")} has no version: reinstall atoll`);
    return { name: dependency, version, directory, bins: Object.entries(binField(installed, dependency)) };
  });
}

/** The bare package names imported by the .ts files under dir ("hono/utils" → "hono"). */
function importedPackages(dir: string): Set<string> {
  const names = new Set<string>();
  const visit = (path: string): void => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) visit(child);
      else if (entry.name.endsWith(".ts")) {
        for (const match of readFileSync(child, "utf8").matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["']([^"'.][^"']*)["']/g)) {
          const specifier = match[1] ?? "";
          const parts = specifier.split("/");
          names.add(specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier));
        }
      }
    }
  };
  if (existsSync(dir)) visit(dir);
  return names;
}

/** Node's lookup from the atoll package: <root>/node_modules/<name>, then each parent's. */
function installedPackage(root: string, name: string): string {
  for (let dir = root; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new CommandError(`atoll new: atoll's dependency '${name}' is not installed (looked in node_modules above ${relative(process.cwd(), root) || root}): reinstall atoll`);
}

function readJson(path: string): object {
  const parsed: unknown = JSON.parse(readFileSync(path, "utf8"));
  if (typeof parsed !== "object" || parsed === null) throw new CommandError(`atoll new: ${path} is not a JSON object: reinstall atoll`);
  return parsed;
}

function objectField(value: object, key: string): Record<string, unknown> {
  const field: unknown = Reflect.get(value, key);
  return typeof field === "object" && field !== null ? Object.fromEntries(Object.entries(field)) : {};
}

/** package.json's "bin": a string names one command called like the package. */
function binField(manifest: object, name: string): Record<string, string> {
  const bin: unknown = Reflect.get(manifest, "bin");
  if (typeof bin === "string") return { [name.replace(/^@[^/]+\//, "")]: bin };
  return Object.fromEntries(Object.entries(objectField(manifest, "bin")).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
}

/** `atoll new`: scaffold an appliance from one of the examples, ready to build and run as is. */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
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

  const packageJson = {
    name,
    private: true,
    type: "module",
    scripts: { build: "atoll build", start: `atoll run dist/${name}.atoll` },
    devDependencies: { atoll: `file:${root}` },
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
      },
      include: ["src", "atoll.config.ts", "node_modules/atoll/src/lib/types/image-globals.d.ts"],
    };
    writeFileSync(join(target, "tsconfig.json"), `${JSON.stringify(tsconfig, null, 2)}\n`);
  }
  // Link this atoll in, as `npm install` of the file: dependency would, but offline and at once.
  mkdirSync(join(target, "node_modules", ".bin"), { recursive: true });
  symlinkSync(root, join(target, "node_modules", "atoll"), "dir");
  symlinkSync(join(root, "bin", "atoll.cjs"), join(target, "node_modules", ".bin", "atoll"));

  const quoted = /^[\w./-]+$/.test(dir) ? dir : `'${dir.replace(/'/g, "'\\''")}'`;
  // Net devices default to user-mode networking; a published port makes a server reachable.
  const publish: Record<string, string> = { website: " -p 8080:80", echo: " -p 8007:7" };
  const devices = publish[template] ?? (readFileSync(configPath, "utf8").includes("net:") ? "   (see atoll run --help for -p and --net)" : "");
  process.stdout.write(`Created ${dir} from template '${template}'. Next:\n  cd ${quoted}\n  npx atoll build\n  npx atoll run dist/${name}.atoll${devices}\n`);
}

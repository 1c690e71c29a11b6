/**
 * Atoll outside its repository, as a newcomer gets it: `npm pack` here, `npm install -g` of the
 * tarball (into a private --prefix), then `atoll new` in a directory that has nothing to do with
 * the repository, and the scaffold's own scripts: install, typecheck, build, start.
 *
 * Needs the npm registry for Atoll's dependencies (esbuild, hono, typescript, web-streams-polyfill)
 * and for the scaffold's `npm install` (npm's cache makes repeated runs quick). Packs with
 * --ignore-scripts: `prepare` would rebuild build/ under the other tests' feet; the tarball takes
 * what `npm run build` made, as the test suite requires anyway.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/cli.ts";
import { eventually, exchange, freePort, whileRunning } from "../helpers/serve.ts";

interface Installed {
  /** The installed package's directory, <prefix>/lib/node_modules/atoll-unikernel. */
  readonly packageDir: string;
  /** PATH with the prefix's bin/ first, so `atoll` is the installed command. */
  readonly env: NodeJS.ProcessEnv;
  /** A directory outside the repository for scaffolds. */
  readonly outside: string;
}

let installed: Installed | undefined;

/** The environment of a user's shell: without the npm_* variables `npm test` sets for its children. */
function userEnv(prefix: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key) && key !== "INIT_CWD") env[key] = value;
  env.PATH = `${join(prefix, "bin")}:${process.env.PATH ?? ""}`;
  return env;
}

function run(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv, timeout = 180_000): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, env, encoding: "utf8", timeout });
  assert.equal(result.status, 0, `${command} ${args.join(" ")} in ${cwd} failed (${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

before(() => {
  const work = realpathSync(mkdtempSync(join(tmpdir(), "atoll-install-")));
  process.on("exit", () => rmSync(work, { recursive: true, force: true }));
  const prefix = join(work, "prefix");
  const env = userEnv(prefix);
  const packed = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], ROOT, env);
  const report: unknown = JSON.parse(packed.stdout);
  const filename: unknown = Array.isArray(report) ? Reflect.get(report[0] ?? {}, "filename") : undefined;
  assert.equal(typeof filename, "string");
  const tarball = join(work, String(filename));
  assert.match(tarball, /atoll-unikernel-\d+\.\d+\.\d+\.tgz$/);
  run("npm", ["install", "--global", "--prefix", prefix, "--no-audit", "--no-fund", tarball], work, env);
  const outside = join(work, "projects");
  mkdirSync(outside);
  installed = { packageDir: join(prefix, "lib", "node_modules", "atoll-unikernel"), env, outside };
});

function setup(): Installed {
  assert.ok(installed !== undefined, "the install in before() failed");
  return installed;
}

test("the tarball installs a working `atoll` with its prebuilt addons, CLI bundle, library and templates", () => {
  const { packageDir, env, outside } = setup();
  for (const file of ["build/atoll.cjs", "build/Release/atoll_native.node", "build/Release/atoll_spt.node", "src/lib/index.ts", "src/lib/types/image-globals.d.ts", "examples/hono/src/main.ts", "native/atoll_native.c", "binding.gyp"]) {
    assert.ok(existsSync(join(packageDir, file)), `installed package lacks ${file}`);
  }
  // Only what an installed Atoll needs: no tests, no host sources (the CLI bundle has them), no build byproducts.
  for (const absent of ["test", "src/cli", "bench", "build/Release/obj.target", "examples/hello/dist"]) {
    assert.ok(!existsSync(join(packageDir, absent)), `installed package should not hold ${absent}`);
  }
  const manifest: unknown = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
  assert.ok(typeof manifest === "object" && manifest !== null);
  assert.equal(Reflect.get(manifest, "name"), "atoll-unikernel");
  const version = run("atoll", ["--version"], outside, env);
  assert.match(version.stdout, /^atoll \d+\.\d+\.\d+\n$/);
});

test("atoll new outside the repository → npm install → npm run build → npm start", () => {
  const { packageDir, env, outside } = setup();
  run("atoll", ["new", "my-app"], outside, env);
  const app = join(outside, "my-app");
  const manifest: unknown = JSON.parse(readFileSync(join(app, "package.json"), "utf8"));
  assert.ok(typeof manifest === "object" && manifest !== null);
  // The scaffold depends on the Atoll it was made by, under the name its code imports.
  assert.equal(Reflect.get(Reflect.get(manifest, "devDependencies"), "atoll"), `file:${packageDir}`);
  run("npm", ["install", "--no-audit", "--no-fund"], app, env);
  const build = run("npm", ["run", "--silent", "build"], app, env);
  assert.equal(build.stdout.trim(), join("dist", "my-app.atoll"));
  const start = run("npm", ["start", "--silent", "--", "--", "newcomer"], app, env, 30_000);
  assert.match(start.stdout, /Hello, newcomer!/);
  run("npm", ["run", "--silent", "typecheck"], app, env);
});

/** Every template: scaffolded outside the repository, type-checked, built, started, and answering. */
const TEMPLATE_CHECKS: Record<string, (app: string, env: NodeJS.ProcessEnv) => Promise<void>> = {
  hello: async (app, env) => {
    const start = run("npm", ["start", "--silent", "--", "--", "template"], app, env, 30_000);
    assert.match(start.stdout, /Hello, template!/);
    // The typecheck is against the image's globals: Node's are an error, as they are at run time.
    writeFileSync(join(app, "src", "host.ts"), "export const argv: string[] = process.argv;\n");
    const typecheck = spawnSync("npm", ["run", "--silent", "typecheck"], { cwd: app, env, encoding: "utf8" });
    assert.notEqual(typecheck.status, 0);
    assert.match(typecheck.stdout, /src\/host\.ts\(1,31\): error TS\d+: Cannot find name 'process'/);
    rmSync(join(app, "src", "host.ts"));
  },
  ping: async (app, env) => {
    // Ping answers ICMP, which -p does not carry: it starts, takes its DHCP lease and says so.
    await whileRunning("npm", ["start", "--silent", "--"], { cwd: app, env }, async (output) => eventually("ping's ready line", async () => /answering ARP and ping/.test(output())));
  },
  echo: async (app, env) => {
    const port = await freePort();
    await whileRunning("npm", ["start", "--silent", "--", "-p", `${port}:7`], { cwd: app, env }, async () =>
      eventually("a TCP echo", async () => (await exchange(port, "ping over tcp\n", (received) => received.includes("\n"))) === "ping over tcp\n"),
    );
  },
  website: async (app, env) => {
    const port = await freePort();
    await whileRunning("npm", ["start", "--silent", "--", "-p", `${port}:80`], { cwd: app, env }, async () =>
      eventually("GET / from the website", async () => {
        const response = await fetch(`http://127.0.0.1:${port}/`);
        return response.status === 200 && (await response.text()).includes("<html");
      }),
    );
  },
  hono: async (app, env) => {
    const port = await freePort();
    await whileRunning("npm", ["start", "--silent", "--", "-p", `${port}:80`], { cwd: app, env }, async () =>
      eventually("GET /api/info from the hono app", async () => {
        const response = await fetch(`http://127.0.0.1:${port}/api/info`);
        const body: unknown = await response.json();
        assert.deepEqual(body, { framework: "hono", runtime: "atoll", ok: true });
        return true;
      }),
    );
  },
};

test("every template, scaffolded outside the repository, type-checks, builds and starts", async () => {
  const { env, outside } = setup();
  const listed = run("atoll", ["new", "--help"], outside, env).stdout.match(/--template <name> +what to start from: ([a-z, -]+) \(default/);
  const templates = (listed?.[1] ?? "").split(", ");
  assert.deepEqual([...templates].sort(), Object.keys(TEMPLATE_CHECKS).sort(), "a template without a check here, or a check without a template");
  for (const template of templates) {
    const app = join(outside, `t-${template}`);
    run("atoll", ["new", app, "--template", template], outside, env);
    const manifest: unknown = JSON.parse(readFileSync(join(app, "package.json"), "utf8"));
    assert.ok(typeof manifest === "object" && manifest !== null);
    const devDependencies: unknown = Reflect.get(manifest, "devDependencies");
    assert.ok(typeof devDependencies === "object" && devDependencies !== null);
    assert.match(String(Reflect.get(devDependencies, "typescript")), /^\d+\.\d+\.\d+$/, `${template}: typescript at Atoll's version`);
    if (template === "hono") assert.match(String(Reflect.get(devDependencies, "hono")), /^\d+\.\d+\.\d+$/, "hono at Atoll's version");
    // Offline: atoll new linked what the scripts need; no npm install.
    run("npm", ["run", "--silent", "typecheck"], app, env);
    run("npm", ["run", "--silent", "build"], app, env);
    const check = TEMPLATE_CHECKS[template];
    assert.ok(check !== undefined);
    await check(app, env);
  }
});

test("an installed addon that does not load is rebuilt from the shipped sources by the install script", () => {
  const { packageDir, env } = setup();
  const addon = join(packageDir, "build", "Release", "atoll_native.node");
  writeFileSync(addon, "not an ELF object");
  // What npm runs after unpacking the tarball (when its policy allows install scripts).
  const install = run("npm", ["run", "install"], packageDir, env);
  assert.match(install.stderr, /atoll-unikernel: the prebuilt native addons do not load here \(atoll_native: .*\); rebuilding them with node-gyp/);
  assert.doesNotMatch(install.stderr, /warning/);
  const loads = spawnSync(process.execPath, ["-e", `process.dlopen({ exports: {} }, ${JSON.stringify(addon)})`], { encoding: "utf8" });
  assert.equal(loads.status, 0, loads.stderr);
  assert.ok(existsSync(join(packageDir, "build", "atoll.cjs")), "the rebuild must leave the CLI bundle alone");
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atoll, exampleImage, ROOT } from "../helpers/cli.ts";

function oneLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${text}`);
  return lines[0] ?? "";
}

function temporaryDirectory(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "atoll-cli-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("help for atoll and every command", () => {
  const top = atoll(["--help"]);
  assert.equal(top.status, 0);
  assert.match(top.stdout, /Usage: atoll <command>/);
  for (const command of ["new", "build", "inspect", "run"]) {
    const result = atoll([command, "--help"]);
    assert.equal(result.status, 0, command);
    assert.match(result.stdout, new RegExp(`Usage: atoll ${command}`));
  }
  assert.equal(atoll([]).status, 2);
});

test("unknown commands and flags: one line, non-zero", () => {
  const unknown = atoll(["frobnicate"]);
  assert.equal(unknown.status, 2);
  assert.match(oneLine(unknown.stderr), /unknown command 'frobnicate'/);
  const badFlag = atoll(["build", "--frob"]);
  assert.equal(badFlag.status, 2);
  assert.match(oneLine(badFlag.stderr), /atoll build: unknown option '--frob'/);
  const runFlag = atoll(["run", "x.atoll", "--nett", "a=b"]);
  assert.equal(runFlag.status, 125);
  assert.match(oneLine(runFlag.stderr), /atoll run: unknown option '--nett'/);
  const missingValue = atoll(["run", "x.atoll", "--net"]);
  assert.equal(missingValue.status, 125);
  assert.match(oneLine(missingValue.stderr), /option '--net' needs a value/);
});

test("hello: builds, inspects, runs, and its exit status is the command's", () => {
  const image = exampleImage("hello");
  const inspect = atoll(["inspect", image, "--json"]);
  assert.equal(inspect.status, 0);
  const info: unknown = JSON.parse(inspect.stdout);
  assert.ok(typeof info === "object" && info !== null);
  assert.equal(Reflect.get(info, "name"), "hello");
  assert.match(String(Reflect.get(info, "sha256")), /^[0-9a-f]{64}$/);
  assert.equal(Reflect.get(info, "formatVersion"), 1);
  assert.deepEqual(Reflect.get(info, "devices"), { net: [], block: [] });
  assert.equal(Reflect.get(info, "size"), readFileSync(image).length);
  assert.ok(!Number.isNaN(Date.parse(String(Reflect.get(info, "buildTime")))));
  const text = atoll(["inspect", image]);
  assert.match(text.stdout, /^name: +hello$/m);
  assert.match(text.stdout, /^sha256: +[0-9a-f]{64}$/m);

  const run = atoll(["run", image, "--", "tester", "--exit", "7"]);
  assert.equal(run.status, 7, run.stderr);
  assert.match(run.stdout, /Hello, tester!/);
  assert.match(run.stdout, /INFO  app: exiting with status 7/);
  const quiet = atoll(["run", image, "--log", "quiet"]);
  assert.equal(quiet.status, 0);
  assert.doesNotMatch(quiet.stdout, /INFO/);
});

test("run refuses bad images with one line and status 125", (t) => {
  const dir = temporaryDirectory(t);
  const image = readFileSync(exampleImage("hello"));
  const corrupt = join(dir, "corrupt.atoll");
  const flipped = Buffer.from(image);
  flipped[Math.floor(flipped.length / 2)] ^= 0xff;
  writeFileSync(corrupt, flipped);
  const truncated = join(dir, "truncated.atoll");
  writeFileSync(truncated, image.subarray(0, image.length - 100));
  const versioned = join(dir, "v9.atoll");
  const v9 = Buffer.from(image);
  v9.writeUInt32LE(9, 8);
  writeFileSync(versioned, v9);
  const cases: [string, RegExp][] = [
    [corrupt, /image is corrupt: SHA-256 does not match/],
    [truncated, /image is corrupt.*truncated/],
    [versioned, /image is corrupt/],
    [join(dir, "missing.atoll"), /does not exist: build one with `atoll build/],
    [join(ROOT, "package.json"), /not an Atoll image/],
  ];
  for (const [path, pattern] of cases) {
    for (const command of ["run", "inspect"]) {
      const result = atoll([command, path]);
      assert.equal(result.status, command === "run" ? 125 : 1, `${command} ${path}: ${result.stderr}`);
      assert.match(oneLine(result.stderr), pattern);
    }
  }
});

test("run checks devices and flags against the image", () => {
  const ping = exampleImage("ping");
  const hello = exampleImage("hello");
  const cases: [string[], RegExp][] = [
    [[ping, "-p", "0:80"], /host port '0' is not a port number from 1 to 65535/],
    [[hello, "--net", "service=tap:tap0"], /--net service=\.\.\.: image 'hello' declares no net device 'service' \(its net devices: none\)/],
    [[ping, "--net", "service=eth0"], /unknown attachment; use tap:<iface>/],
    [[ping, "--net", "service"], /is not <device>=<value>/],
    [[ping, "--net", "service=tap:a", "--net", "service=tap:b"], /--net given twice for device 'service'/],
    [[ping, "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2"], /no "\/prefix"/],
    [[ping, "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.0/24"], /network address/],
    [[ping, "--net", "service=tap:tap0", "--ipv4", "service=198.18.0.2/24@10.0.0.1"], /gateway 10\.0\.0\.1 is not on 198\.18\.0\.0\/24/],
    [[ping, "--net", "service=tap:tap0", "--ipv4", "other=198.18.0.2/24"], /declares no net device 'other'/],
    [[ping, "--net", "service=tap:tap0", "--log", "loud"], /unknown log level 'loud'/],
    [[ping, "--net", "service=tap:tap0", "--block", "disk=x.img"], /declares no block device 'disk'/],
    [[ping, "--tender", "qemu"], /unknown tender 'qemu'/],
    [[ping, "--net", "service=tap:tap0", "--offload", "service=fast"], /--offload service=fast: unknown mode; use all, checksum or none/],
    [[ping, "--offload", "service=none"], /--offload service=none: offloads are a TAP's; attach the device with --net service=tap:<iface>/],
    [[ping, "--tender", "spt", "--net", "service=tap:tap0", "--offload", "service=all"], /the spt tender moves plain frames only/],
    [[ping, "--net", "service=tap:atoll-none0"], /tap device 'atoll-none0' does not exist: create it with `ip tuntap add dev atoll-none0 mode tap`/],
    [[ping, "--net", "service=tap:waytoolonginterfacename"], /too long/],
    [[ping, "--net", "service=tap:tap0", "--pcap", "service=s.pcap,max=10"], /--pcap service=s\.pcap,max=10: max=10: not a size of at least 1024 bytes; use e\.g\. max=64K/],
    [[ping, "--net", "service=tap:tap0", "--pcap", "service=s.pcap,files=0"], /--pcap service=s\.pcap,files=0: files=0: not a file count from 1 to 1000/],
    [[ping, "--tender", "spt", "--net", "service=tap:tap0", "--pcap", "service=s.pcap,files=17"], /--pcap service=s\.pcap,files=17: the spt tender rotates through at most 16 files; use files=16 or fewer/],
    [[ping, "--net", "service=tap:tap0", "--pcap", "service=s.pcap,rotate"], /--pcap service=s\.pcap,rotate: unknown option 'rotate'/],
  ];
  for (const [args, pattern] of cases) {
    const result = atoll(["run", ...args]);
    assert.equal(result.status, 125, `${args.join(" ")}: ${result.stderr}`);
    assert.match(oneLine(result.stderr), pattern, args.join(" "));
  }
});

test("block devices: missing file and bad size are one-line errors", (t) => {
  const dir = temporaryDirectory(t);
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "atoll.config.ts"), `import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: "disk", block: ["storage"] });\n`);
  writeFileSync(
    join(dir, "src", "main.ts"),
    `import type { Appliance } from "atoll";
export default function main(app: Appliance): number {
  const disk = app.block("storage");
  const data = new Uint8Array(1024).fill(7);
  disk.write(512, data);
  const back = disk.read(512, 1024);
  if (!back.every((b) => b === 7)) return 3;
  try { disk.write(100, data); return 4; } catch (error) { if (!String(error).includes("EINVAL")) return 5; }
  try { disk.read(disk.capacity, 512); return 6; } catch { /* out of range, as expected */ }
  return disk.capacity === 4096 ? 0 : 7;
}
`,
  );
  const build = atoll(["build", dir]);
  assert.equal(build.status, 0, build.stderr);
  const image = join(dir, "dist", "disk.atoll");
  const missing = atoll(["run", image, "--block", `storage=${join(dir, "nope.img")}`]);
  assert.equal(missing.status, 125);
  assert.match(oneLine(missing.stderr), /does not exist: create it, e.g. `truncate -s 64M/);
  const odd = join(dir, "odd.img");
  writeFileSync(odd, Buffer.alloc(1000));
  assert.match(oneLine(atoll(["run", image, "--block", `storage=${odd}`]).stderr), /not a positive multiple of 512/);
  const disk = join(dir, "disk.img");
  writeFileSync(disk, Buffer.alloc(4096));
  const run = atoll(["run", image, "--block", `storage=${disk}`]);
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const stored = readFileSync(disk);
  assert.equal(stored[511], 0);
  assert.equal(stored[512], 7);
  assert.equal(stored[1535], 7);
  assert.equal(stored[1536], 0);
  truncateSync(disk, 0);
});

test("build errors are one line: no config, bad name, host modules, syntax", (t) => {
  const dir = temporaryDirectory(t);
  const none = atoll(["build", dir]);
  assert.equal(none.status, 1);
  assert.match(oneLine(none.stderr), /no atoll\.config\.ts in .*: create one/);
  mkdirSync(join(dir, "src"));
  const config = (body: string): void => writeFileSync(join(dir, "atoll.config.ts"), `import { defineConfig } from "atoll/config";\nexport default defineConfig(${body});\n`);
  writeFileSync(join(dir, "src", "main.ts"), `export default function main(): number { return 0; }\n`);
  config(`{ name: "Bad Name" }`);
  assert.match(oneLine(atoll(["build", dir]).stderr), /appliance name "Bad Name" is invalid/);
  config(`{ name: "ok", net: ["a", "a"] }`);
  assert.match(oneLine(atoll(["build", dir]).stderr), /declares device 'a' twice/);
  writeFileSync(join(dir, "atoll.config.ts"), `export default { name: "ok", nett: [] };\n`);
  assert.match(oneLine(atoll(["build", dir]).stderr), /unknown setting 'nett'/);
  config(`{ name: "ok" }`);
  writeFileSync(join(dir, "src", "main.ts"), `import { readFileSync } from "node:fs";\nexport default function main(): number { return readFileSync("/etc/passwd").length; }\n`);
  assert.match(oneLine(atoll(["build", dir]).stderr), /'node:fs' is a host module: an appliance reaches the world only through the base ABI/);
  writeFileSync(join(dir, "src", "main.ts"), `import { getHeapStatistics } from "v8";\nexport default function main(): number { return getHeapStatistics().total_heap_size > 0 ? 0 : 1; }\n`);
  assert.match(oneLine(atoll(["build", dir]).stderr), /'v8' is a host module/);
  writeFileSync(join(dir, "src", "main.ts"), `export default function main( { return 0; }\n`);
  const syntax = atoll(["build", dir]);
  assert.equal(syntax.status, 1);
  assert.match(oneLine(syntax.stderr), /build failed: .*main\.ts:1:\d+/);
  config(`{ name: "ok", entry: "src/nope.ts" }`);
  assert.match(oneLine(atoll(["build", dir]).stderr), /entry src\/nope\.ts does not exist/);
});

test("an appliance that throws aborts with status 255 and says why", (t) => {
  const dir = temporaryDirectory(t);
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "atoll.config.ts"), `export default { name: "crash" };\n`);
  writeFileSync(join(dir, "src", "main.ts"), `export default async function main(): Promise<number> { await Promise.resolve(); throw new Error("kaboom"); }\n`);
  assert.equal(atoll(["build", dir]).status, 0);
  const run = atoll(["run", join(dir, "dist", "crash.atoll")]);
  assert.equal(run.status, 255);
  assert.match(run.stderr, /atoll: appliance 'crash' aborted: Error: kaboom/);
});

test("an appliance whose modules throw while they evaluate aborts with 255 and the error, after boot", (t) => {
  const dir = temporaryDirectory(t);
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "atoll.config.ts"), `export default { name: "broken" };\n`);
  writeFileSync(join(dir, "src", "main.ts"), `const value: number = (globalThis as unknown as { missing: { x: number } }).missing.x;\nexport default function main(): number { return value; }\n`);
  assert.equal(atoll(["build", dir]).status, 0);
  const run = atoll(["run", join(dir, "dist", "broken.atoll")]);
  // The modules evaluate inside start, once boot has installed the globals: a throw there is the appliance's failure.
  assert.equal(run.status, 255);
  assert.match(run.stderr, /^atoll: appliance 'broken' aborted: src\/main\.ts failed while its modules were evaluated: TypeError: Cannot read properties of undefined \(reading 'x'\)\n\s+at /);
});

test("SOURCE_DATE_EPOCH makes builds reproducible wherever they run", (t) => {
  const dir = temporaryDirectory(t);
  const env = { ...process.env, SOURCE_DATE_EPOCH: "1700000000" };
  const first = atoll(["build", join(ROOT, "examples", "hello"), "--outdir", join(dir, "a")], { env });
  const second = atoll(["build", ".", "--outdir", join(dir, "b")], { env, cwd: join(ROOT, "examples", "hello") });
  assert.equal(first.status, 0, first.stderr);
  assert.equal(second.status, 0, second.stderr);
  assert.deepEqual(readFileSync(join(dir, "a", "hello.atoll")), readFileSync(join(dir, "b", "hello.atoll")));
  const bad = atoll(["build", join(ROOT, "examples", "hello"), "--outdir", join(dir, "c")], { env: { ...process.env, SOURCE_DATE_EPOCH: "yesterday" } });
  assert.match(oneLine(bad.stderr), /SOURCE_DATE_EPOCH=yesterday is not a number/);
});

test("atoll new → atoll build → atoll run in a fresh directory, through npx", (t) => {
  const dir = temporaryDirectory(t);
  const app = join(dir, "My App");
  const created = atoll(["new", app, "--template", "hello"], { cwd: dir });
  assert.equal(created.status, 0, created.stderr);
  assert.match(readFileSync(join(app, "atoll.config.ts"), "utf8"), /name: "my-app"/);
  const npx = (args: string[]): { status: number | null; stdout: string; stderr: string } => {
    const result = spawnSync("npx", ["--no-install", "atoll", ...args], { cwd: app, encoding: "utf8", timeout: 60_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const build = npx(["build"]);
  assert.equal(build.status, 0, build.stderr);
  assert.equal(build.stdout.trim(), join("dist", "my-app.atoll"));
  const run = npx(["run", "dist/my-app.atoll", "--", "scaffold"]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /Hello, scaffold!/);
  // The scaffolded app type-checks against the library as a user's editor would see it.
  const tsc = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", app], { encoding: "utf8" });
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  // A directory argument builds first.
  const direct = atoll(["run", app, "--log", "quiet"]);
  assert.equal(direct.status, 0, direct.stderr);

  const again = atoll(["new", app]);
  assert.equal(again.status, 1);
  assert.match(oneLine(again.stderr), /exists and is not empty/);
  assert.match(oneLine(atoll(["new", join(dir, "x"), "--template", "nope"]).stderr), /unknown template 'nope' \(available: .*hello.*ping/);
  const ping = atoll(["new", join(dir, "p"), "--template", "ping"]);
  assert.equal(ping.status, 0);
  assert.equal(atoll(["build", join(dir, "p")]).status, 0);
  assert.ok(existsSync(join(dir, "p", "dist", "p.atoll")));
});

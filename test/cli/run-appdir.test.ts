/**
 * `atoll run <appdir>` on a sealed tender (issue #12, finding 4): building runs the appliance's
 * atoll.config.ts on the host, unsandboxed, so `--tender spt` refuses an appliance directory
 * before loading its config unless `--build` opts in, and then says on stderr that the build runs
 * on the host. The node tender, the developer loop, builds a directory as before.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atoll, ROOT } from "../helpers/cli.ts";

const sptAddon = join(ROOT, "build", "Release", "atoll_spt.node");

interface Appliance {
  readonly dir: string;
  /** The file the config writes when it is evaluated: proof that it ran on the host. */
  readonly marker: string;
}

/** An appliance whose config leaves a marker file when it runs, and whose main exits with 3. */
function appliance(t: { after: (fn: () => void) => void }): Appliance {
  const top = mkdtempSync(join(tmpdir(), "atoll-run-appdir-"));
  t.after(() => rmSync(top, { recursive: true, force: true }));
  const dir = join(top, "app");
  const marker = join(top, "config-ran");
  mkdirSync(join(dir, "src"), { recursive: true });
  writeFileSync(
    join(dir, "atoll.config.ts"),
    [
      'import { defineConfig } from "atoll/config";',
      // The config is evaluated without `require`, but with the host's `process`: all of Node.
      `process.mainModule.require("node:fs").writeFileSync(${JSON.stringify(marker)}, "the config ran on the host\\n");`,
      'export default defineConfig({ name: "quick" });',
      "",
    ].join("\n"),
  );
  writeFileSync(join(dir, "src", "main.ts"), 'export default function main(): number {\n  console.log("quick appliance ran");\n  return 3;\n}\n');
  return { dir, marker };
}

function oneLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${text}`);
  return lines[0] ?? "";
}

test("run <appdir> --tender spt without --build is refused before the config runs: one line, 125, no dist/", (t) => {
  const { dir, marker } = appliance(t);
  const result = atoll(["run", dir, "--tender", "spt"]);
  assert.equal(result.status, 125, result.stderr);
  assert.equal(result.stdout, "");
  assert.equal(
    oneLine(result.stderr),
    `atoll run: building ${dir} would run its atoll.config.ts on this host as you, outside the spt sandbox: build it first (atoll build ${dir}, then atoll run ${join(dir, "dist", "<name>.atoll")} --tender spt) or add --build`,
  );
  assert.equal(existsSync(marker), false, "the config was not evaluated");
  assert.equal(existsSync(join(dir, "dist")), false, "nothing was built");
});

test("run <appdir> --tender spt --build says the build runs on the host, builds, and runs the image sealed", { skip: existsSync(sptAddon) ? false : "needs the atoll_spt addon (npm run build)" }, (t) => {
  const { dir, marker } = appliance(t);
  const result = atoll(["run", dir, "--tender", "spt", "--build", "--no-check"], { timeout: 60_000 });
  assert.equal(result.status, 3, result.stderr);
  assert.match(result.stdout, /^quick appliance ran$/m);
  assert.equal(result.stderr.split("\n")[0], `atoll: building ${dir} on the host (runs its atoll.config.ts as you, unsandboxed); then the image runs sealed on spt`);
  assert.equal(readFileSync(marker, "utf8"), "the config ran on the host\n", "the opt-in is what let the config run");
  assert.ok(existsSync(join(dir, "dist", "quick.atoll")));
});

test("run <appdir> on the node tender builds as before, with no extra output (and --build only adds its step line)", (t) => {
  const { dir, marker } = appliance(t);
  const result = atoll(["run", dir, "--no-check"]);
  assert.equal(result.status, 3, result.stderr);
  assert.equal(result.stderr, "");
  assert.match(result.stdout, /^quick appliance ran$/m);
  assert.ok(existsSync(marker));
  const announced = atoll(["run", dir, "--no-check", "--build"]);
  assert.equal(announced.status, 3, announced.stderr);
  assert.equal(oneLine(announced.stderr), `atoll: building ${dir} on the host (runs its atoll.config.ts as you, unsandboxed)`, "--build is accepted on node too, and says what it does");
});

test("--build names a directory: with an image it is a usage error, and a directory without a config says so first", (t) => {
  const { dir } = appliance(t);
  const image = atoll(["run", join(dir, "dist", "quick.atoll"), "--build"]);
  assert.equal(image.status, 125);
  assert.match(oneLine(image.stderr), /^atoll run: --build builds an appliance directory, and .*quick\.atoll is not one: give the directory, or leave --build out to run an image$/);
  const bare = atoll(["run", join(dir, "src"), "--tender", "spt"]);
  assert.equal(bare.status, 125);
  assert.match(oneLine(bare.stderr), /is a directory without atoll\.config\.ts: give an \.atoll image or an appliance directory$/);
});

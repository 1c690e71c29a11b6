#!/usr/bin/env node
// npm's `install` script for the packed package (`npm pack`, then `npm install [-g] <tarball>`).
//
// The tarball carries the native addons prebuilt (build/Release/*.node, made by `prepare` when
// it was packed), so that a fresh machine needs no compiler: npm may skip this script (recent
// npm runs dependencies' install scripts only when allowed) and Atoll still works wherever the
// prebuilt addons load. When they do not (another CPU architecture, or another Node major
// version for atoll_spt, which uses V8's C++ API), this script rebuilds them from the shipped
// sources (binding.gyp, native/) with node-gyp, in a temporary directory so that a failed build
// cannot remove the CLI bundle that shares build/. If that fails too, it says what will not work
// and how to fix it, and lets the install succeed: `atoll new` and `atoll build` need no addon.
//
// In a checkout (no CLI bundle yet), it does nothing: `prepare` builds everything right after.
"use strict";
const { spawnSync } = require("node:child_process");
const { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } = require("node:fs");
const { tmpdir } = require("node:os");
const { join } = require("node:path");

const root = join(__dirname, "..");
const ADDONS = ["atoll_native", "atoll_spt"];

/** Why the addon does not load here, or undefined when it loads. */
function loadFailure(path) {
  if (!existsSync(path)) return "missing";
  try {
    process.dlopen({ exports: {} }, path);
    return undefined;
  } catch (error) {
    return String(error instanceof Error ? error.message : error).split("\n")[0];
  }
}

/** node-gyp as npm ships it (npm names it in npm_config_node_gyp for lifecycle scripts), else from PATH. */
function nodeGypCommand() {
  const bundled = process.env.npm_config_node_gyp;
  if (bundled !== undefined && bundled !== "" && existsSync(bundled)) return [process.execPath, bundled];
  return ["node-gyp"];
}

function rebuild(names) {
  const work = mkdtempSync(join(tmpdir(), "atoll-native-"));
  try {
    copyFileSync(join(root, "binding.gyp"), join(work, "binding.gyp"));
    cpSync(join(root, "native"), join(work, "native"), { recursive: true });
    const [command, ...prefix] = nodeGypCommand();
    // Node's own headers when it ships them (as build:native uses), else node-gyp downloads them.
    const nodeDir = join(process.execPath, "..", "..");
    const headers = existsSync(join(nodeDir, "include", "node", "node.h")) ? [`--nodedir=${nodeDir}`] : [];
    const built = spawnSync(command, [...prefix, "configure", "build", "--loglevel=error", ...headers], { cwd: work, encoding: "utf8" });
    if (built.status !== 0) {
      const output = `${built.stderr ?? ""}${built.stdout ?? ""}`.trim().split("\n");
      return built.error !== undefined ? built.error.message : (output.find((line) => /error/i.test(line)) ?? output.at(-1) ?? "node-gyp failed");
    }
    mkdirSync(join(root, "build", "Release"), { recursive: true });
    for (const name of names) copyFileSync(join(work, "build", "Release", `${name}.node`), join(root, "build", "Release", `${name}.node`));
    return undefined;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function main() {
  if (!existsSync(join(root, "build", "atoll.cjs"))) return; // a checkout: `prepare` builds next
  const failing = ADDONS.filter((name) => loadFailure(join(root, "build", "Release", `${name}.node`)) !== undefined);
  if (failing.length === 0) return;
  const reasons = failing.map((name) => `${name}: ${loadFailure(join(root, "build", "Release", `${name}.node`))}`).join("; ");
  process.stderr.write(`atoll-unikernel: the prebuilt native addons do not load here (${reasons}); rebuilding them with node-gyp\n`);
  const failure = rebuild(failing);
  if (failure === undefined) {
    const still = failing.filter((name) => loadFailure(join(root, "build", "Release", `${name}.node`)) !== undefined);
    if (still.length === 0) return;
    process.stderr.write(`atoll-unikernel: warning: rebuilt ${still.join(", ")} but it still does not load: \`atoll run\` will fail until it does\n`);
    return;
  }
  process.stderr.write(
    `atoll-unikernel: warning: could not rebuild the native addons (${failure}): \`atoll run\` needs them; install python3, make, g++ and libseccomp-dev, then run \`npm run build:native\` in ${root}\n`,
  );
}

main();

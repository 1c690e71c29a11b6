#!/usr/bin/env node
// The `atoll` command. The CLI is prebuilt into build/atoll.cjs (by `npm install` or `npm run build`)
// so that `atoll run` starts a tender without compiling TypeScript first.
"use strict";
const { existsSync } = require("node:fs");
const { join } = require("node:path");
const bundle = join(__dirname, "..", "build", "atoll.cjs");
if (!existsSync(bundle)) {
  process.stderr.write(`atoll: not built (${bundle} is missing): run \`npm install\` or \`npm run build\` in ${join(__dirname, "..")}\n`);
  process.exit(70);
}
require(bundle);

/**
 * The templates `atoll new` offers are the examples/ directories with an atoll.config.ts; its
 * --help lists them, and docs/cli.md (the help text and the table) and README.md (the first-app
 * command and the Examples list) must name exactly the same ones.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { atoll, ROOT } from "../helpers/cli.ts";

function sorted(names: Iterable<string>): string[] {
  return [...names].sort();
}

/** "echo, hello, hono, ping or website" → the names. */
function listed(text: string): string[] {
  return sorted(text.split(/, | or /).map((name) => name.trim()).filter((name) => name !== ""));
}

function section(text: string, heading: string): string {
  const start = text.indexOf(heading);
  assert.notEqual(start, -1, `no section ${heading}`);
  const next = text.indexOf("\n## ", start + heading.length);
  return text.slice(start, next === -1 ? undefined : next);
}

test("atoll new --help, the examples directory, docs/cli.md and README.md list the same templates", () => {
  const examplesDir = join(ROOT, "examples");
  const examples = sorted(
    readdirSync(examplesDir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && existsSync(join(examplesDir, entry.name, "atoll.config.ts")))
      .map((entry) => entry.name),
  );
  assert.ok(examples.length >= 5, `examples: ${examples.join(", ")}`);

  const help = atoll(["new", "--help"]);
  assert.equal(help.status, 0);
  const helpLine = /^ {2}--template <name> +what to start from: (.+) \(default: hello\)$/m.exec(help.stdout);
  assert.ok(helpLine !== null, help.stdout);
  assert.deepEqual(listed(helpLine[1] ?? ""), examples, "atoll new --help");

  const cli = section(readFileSync(join(ROOT, "docs", "cli.md"), "utf8"), "## `atoll new`");
  // The help text as docs/cli.md quotes it, line for line.
  const quotedHelp = /^```\n(Usage: atoll new [\s\S]*?)```$/m.exec(cli);
  assert.ok(quotedHelp !== null, "docs/cli.md quotes atoll new --help");
  assert.equal(quotedHelp[1], help.stdout, "docs/cli.md's copy of atoll new --help");
  const table = sorted([...cli.matchAll(/^ *\| `([a-z][a-z0-9-]*)` +\|/gm)].map((match) => match[1] ?? ""));
  assert.deepEqual(table, examples, "docs/cli.md's template table");

  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const command = /npx atoll new my-app +# from the hello template; --template (.+)$/m.exec(readme);
  assert.ok(command !== null, "README.md's first-app command names the templates");
  assert.deepEqual(listed(command[1] ?? ""), examples, "README.md's atoll new line");
  const bullet = /^- \*\*Examples\*\*[\s\S]*?(?=\n\n|\n- )/m.exec(readme);
  assert.ok(bullet !== null, "README.md has an Examples bullet");
  assert.deepEqual(sorted(new Set([...bullet[0].matchAll(/`examples\/([a-z][a-z0-9-]*)`/g)].map((match) => match[1] ?? ""))), examples, "README.md's Examples list");
});

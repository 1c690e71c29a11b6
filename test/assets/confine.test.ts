/**
 * What a config names for the image stays inside the appliance's directory (issue #12, finding
 * 4): `assets` and `entry` settings that leave it (`..`, absolute paths elsewhere, glob-looking
 * values) and symbolic links, to files or directories, whose real path leaves it are one-line
 * build errors naming the setting or the link, and no image is written; links that stay inside
 * are followed.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeImage } from "../../src/image/format.ts";
import { decodeAssets } from "../../src/lib/assets/format.ts";
import { applianceRoot, ConfinementError, confinedRealPath, isInside, settingPath } from "../../src/build/confine.ts";
import { AssetBuildError, listAssetFiles } from "../../src/build/assets.ts";
import { atoll } from "../helpers/cli.ts";

const SECRET = "host secret: must never reach an image\n";

interface Scratch {
  /** The appliance directory, inside `top`. */
  readonly app: string;
  /** A directory beside it, outside the appliance, holding secret.txt. */
  readonly outside: string;
}

function scratch(t: { after: (fn: () => void) => void }): Scratch {
  const top = mkdtempSync(join(tmpdir(), "atoll-confine-"));
  t.after(() => rmSync(top, { recursive: true, force: true }));
  const app = join(top, "app");
  const outside = join(top, "outside");
  mkdirSync(join(app, "src"), { recursive: true });
  mkdirSync(join(app, "public"));
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.txt"), SECRET);
  writeFileSync(join(outside, "main.ts"), "export default function main() { return 0; }\n");
  writeFileSync(join(app, "src", "main.ts"), "export default function main() { return 0; }\n");
  writeFileSync(join(app, "public", "index.html"), "<p>hello</p>\n");
  return { app, outside };
}

function configure(app: string, settings: string): void {
  writeFileSync(join(app, "atoll.config.ts"), `import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: "confined", ${settings} });\n`);
}

/** Builds and expects a one-line refusal matching `pattern`, and no image. */
function refused(app: string, pattern: RegExp): string {
  const result = atoll(["build", app, "--no-check"]);
  assert.equal(result.status, 1, `expected a refusal, got status ${String(result.status)}: ${result.stdout}${result.stderr}`);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] ?? "", pattern);
  assert.equal(existsSync(join(app, "dist")), false, "no image is written");
  return lines[0] ?? "";
}

describe("isInside and settingPath (src/build/confine.ts)", () => {
  test("a path is inside its root, or below it, and nowhere else", () => {
    assert.equal(isInside("/a/app", "/a/app"), true);
    assert.equal(isInside("/a/app", "/a/app/public/x"), true);
    assert.equal(isInside("/a/app", "/a/app/..x"), true, "a name starting with two dots is still inside");
    assert.equal(isInside("/a/app", "/a"), false);
    assert.equal(isInside("/a/app", "/a/app2/x"), false, "a sibling sharing the prefix is outside");
    assert.equal(isInside("/a/app", "/etc/ssh"), false);
  });

  test("settings that leave the directory lexically are refused, naming the setting and where it leads", (t) => {
    const { app } = scratch(t);
    const root = applianceRoot(app);
    for (const setting of ["../**", "/etc/ssh/*", "..", "public/../../outside", "/etc/ssh"]) {
      assert.throws(() => settingPath(root, "assets", setting), (error: unknown) => {
        assert.ok(error instanceof ConfinementError);
        assert.match(error.message, new RegExp(`^assets ${JSON.stringify(setting).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} is outside the appliance directory \\(`));
        return true;
      });
    }
    assert.equal(settingPath(root, "assets", "public"), join(app, "public"));
    assert.equal(settingPath(root, "assets", join(app, "public")), join(app, "public"), "an absolute path inside is fine");
    assert.equal(settingPath(root, "assets", "{..,.}/x"), join(app, "{..,.}", "x"), "nothing expands braces: a literal name inside");
  });

  test("the real path is what counts: a link out is refused, a link that stays inside is followed", (t) => {
    const { app, outside } = scratch(t);
    const root = applianceRoot(app);
    symlinkSync(outside, join(app, "out"));
    symlinkSync(join(app, "public"), join(app, "in"));
    assert.throws(() => confinedRealPath(root, "assets \"out\"", join(app, "out")), /^ConfinementError: assets "out" resolves through a symbolic link to .*\/outside, outside the appliance directory .*\/app: copy what the image needs into it$/);
    assert.equal(confinedRealPath(root, "assets \"in\"", join(app, "in")), join(root.real, "public"));
  });

  test("the walk refuses a link out, whether to a file or a directory, and names it", (t) => {
    const { app, outside } = scratch(t);
    const root = applianceRoot(app);
    symlinkSync(join(outside, "secret.txt"), join(app, "public", "key"));
    assert.throws(() => listAssetFiles(join(app, "public"), root), (error: unknown) => error instanceof AssetBuildError && /^assets: public\/key resolves through a symbolic link to .*\/outside\/secret\.txt, outside/.test(error.message));
    rmSync(join(app, "public", "key"));
    mkdirSync(join(app, "public", "deep"));
    symlinkSync(outside, join(app, "public", "deep", "ssh"));
    assert.throws(() => listAssetFiles(join(app, "public"), root), (error: unknown) => error instanceof AssetBuildError && /^assets: public\/deep\/ssh resolves through a symbolic link to .*\/outside, outside/.test(error.message));
  });
});

describe("atoll build keeps assets and the entry inside the appliance directory", () => {
  for (const setting of ["../**", "/etc/ssh/*", "../outside", "/etc/ssh"]) {
    test(`assets: ${JSON.stringify(setting)} is refused`, (t) => {
      const { app } = scratch(t);
      configure(app, `assets: ${JSON.stringify(setting)}`);
      refused(app, new RegExp(`^atoll build: .*atoll\\.config\\.ts: assets ".*" is outside the appliance directory \\(/.*\\): an image embeds only files inside /.*app$`));
    });
  }

  test('assets: "{..,.}/x" is not expanded: a missing directory, said to be no glob', (t) => {
    const { app } = scratch(t);
    configure(app, 'assets: "{..,.}/x"');
    refused(app, /assets directory \{\.\.,\.\}\/x does not exist \('assets' names one directory: glob patterns are not expanded\)$/);
  });

  test("an assets directory that is a link out is refused before anything is bundled", (t) => {
    const { app, outside } = scratch(t);
    symlinkSync(outside, join(app, "linked"));
    configure(app, 'assets: "linked"');
    refused(app, /atoll\.config\.ts: assets "linked" resolves through a symbolic link to \/.*\/outside, outside the appliance directory/);
  });

  test("a link out inside the assets directory (public/ssh -> a host directory) is refused", (t) => {
    const { app, outside } = scratch(t);
    symlinkSync(outside, join(app, "public", "ssh"));
    configure(app, 'assets: "public"');
    refused(app, /^atoll build: assets: public\/ssh resolves through a symbolic link to \/.*\/outside, outside the appliance directory \/.*\/app: copy what the image needs into it$/);
  });

  test("a file link out (public/key -> a host file) is refused", (t) => {
    const { app, outside } = scratch(t);
    symlinkSync(join(outside, "secret.txt"), join(app, "public", "key"));
    configure(app, 'assets: "public"');
    refused(app, /^atoll build: assets: public\/key resolves through a symbolic link to \/.*\/outside\/secret\.txt, outside/);
  });

  test("a link through a link that stays inside, then leaves, is refused by its real path", (t) => {
    const { app, outside } = scratch(t);
    symlinkSync(outside, join(app, "hop"));
    symlinkSync("../hop", join(app, "public", "via"));
    configure(app, 'assets: "public"');
    refused(app, /^atoll build: assets: public\/via resolves through a symbolic link to \/.*\/outside, outside/);
  });

  test("links that stay inside the appliance directory are followed and baked", (t) => {
    const { app } = scratch(t);
    mkdirSync(join(app, "shared"));
    writeFileSync(join(app, "shared", "logo.svg"), "<svg/>\n");
    symlinkSync("../shared", join(app, "public", "shared"));
    symlinkSync("index.html", join(app, "public", "home.html"));
    configure(app, 'assets: "public"');
    const result = atoll(["build", app, "--no-check"]);
    assert.equal(result.status, 0, result.stderr);
    const image = decodeImage(readFileSync(join(app, "dist", "confined.atoll")));
    assert.ok(image.assets !== undefined);
    const store = decodeAssets(image.assets);
    assert.deepEqual(store.paths(), ["/home.html", "/index.html", "/shared/logo.svg"]);
    assert.equal(Buffer.from(store.lookup("/shared/logo.svg")?.body ?? []).toString(), "<svg/>\n");
  });

  for (const [label, setting] of [
    ["a relative entry outside", '"../outside/main.ts"'],
    ["an absolute entry outside", "OUTSIDE"],
  ] as const) {
    test(`${label} is refused`, (t) => {
      const { app, outside } = scratch(t);
      configure(app, `entry: ${setting === "OUTSIDE" ? JSON.stringify(join(outside, "main.ts")) : setting}`);
      refused(app, /atoll\.config\.ts: entry ".*main\.ts" is outside the appliance directory/);
    });
  }

  test("an entry that is a link out is refused", (t) => {
    const { app, outside } = scratch(t);
    rmSync(join(app, "src", "main.ts"));
    symlinkSync(join(outside, "main.ts"), join(app, "src", "main.ts"));
    configure(app, "");
    refused(app, /atoll\.config\.ts: entry "src\/main\.ts" resolves through a symbolic link to \/.*\/outside\/main\.ts, outside/);
  });
});

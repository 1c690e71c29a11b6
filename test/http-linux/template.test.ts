/**
 * examples/website as the `atoll new --template website` template: the new appliance (outside
 * the repository) type-checks, builds with its public/ directory resolved against its own config,
 * and carries the site's files (with their compressed variants) in the image's assets section.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeImage } from "../../src/image/format.ts";
import { decodeAssets } from "../../src/lib/assets/format.ts";
import { ROOT, atoll } from "../helpers/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "atoll-http-template-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("atoll new --template website: a site that type-checks, builds and bakes public/ into the image", { timeout: 120_000 }, () => {
  const app = join(dir, "my-site");
  const created = atoll(["new", app, "--template", "website"], { cwd: dir });
  assert.equal(created.status, 0, created.stderr);
  assert.ok(existsSync(join(app, "public", "docs", "index.html")));
  assert.ok(!existsSync(join(app, "dist")), "no build output copied from the example");
  assert.match(readFileSync(join(app, "atoll.config.ts"), "utf8"), /name: "my-site"[\s\S]*assets: "public"/);

  const typecheck = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(app, "tsconfig.json")], { encoding: "utf8", timeout: 60_000 });
  assert.equal(typecheck.status, 0, typecheck.stdout + typecheck.stderr);

  // Built from another directory: the assets directory is relative to the config, not to the cwd.
  const built = atoll(["build", app], { cwd: dir });
  assert.equal(built.status, 0, built.stderr);
  const imagePath = join(dir, built.stdout.trim());
  assert.ok(imagePath.endsWith(join("my-site", "dist", "my-site.atoll")), imagePath);
  const image = decodeImage(new Uint8Array(readFileSync(imagePath)));
  assert.ok(image.assets !== undefined, "an assets section");
  const store = decodeAssets(image.assets);
  assert.deepEqual(store.paths(), ["/404.html", "/css/site.css", "/docs/index.html", "/images/atoll.svg", "/index.html"]);
  const css = store.lookup("/css/site.css");
  assert.equal(css?.contentType, "text/css; charset=utf-8");
  assert.ok(css?.variants.gzip !== undefined && css.variants.br !== undefined, "gzip and br variants");
  assert.deepEqual(Buffer.from(store.lookup("/index.html")?.body ?? []), readFileSync(join(app, "public", "index.html")));
  assert.deepEqual(readdirSync(join(app, "dist")), ["my-site.atoll"]);
});

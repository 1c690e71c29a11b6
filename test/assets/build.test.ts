/**
 * Baked assets end to end: `atoll build` of an appliance with `assets: "public"`, the section
 * decoded from the image on the host, `atoll inspect` reporting it, and `atoll run` reading it in
 * the image through the base's assets() call and serving it with serveStatic.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { decodeImage } from "../../src/image/format.ts";
import { testNodeBase } from "../helpers/node-base.ts";
import { decodeAssets } from "../../src/lib/assets/format.ts";
import { atoll } from "../helpers/cli.ts";

const INDEX = `<!doctype html>\n<title>Atoll</title>\n${"<p>A static site baked into a unikernel image.</p>\n".repeat(50)}`;
const PNG = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 131 + 7) % 256));

const MAIN = `
import type { Appliance } from "atoll";
import { imageAssets } from "atoll/assets";
import { createFlowPair, serveHttpConnection, serveStatic } from "atoll/http";
import { installWebGlobals, TextDecoder, TextEncoder } from "atoll/web";

export default async function main(app: Appliance) {
  const store = imageAssets();
  const index = store.lookup("/index.html");
  console.log("assets " + JSON.stringify({
    count: store.count,
    paths: store.paths(),
    type: index?.contentType,
    etag: index?.etag,
    gzip: index?.variants.gzip !== undefined,
    br: index?.variants.br !== undefined,
    isImageRealmBytes: index?.body instanceof Uint8Array,
  }));
  const installed = installWebGlobals();
  console.log("globals " + installed.includes("Response") + " " + typeof Reflect.get(globalThis, "Response"));

  const [client, server] = createFlowPair();
  const done = serveHttpConnection(server, serveStatic(store), { lingerMs: 0 });
  await client.write(new TextEncoder().encode("GET / HTTP/1.1\\r\\nHost: site\\r\\nAccept-Encoding: gzip\\r\\nConnection: close\\r\\n\\r\\n"));
  const decoder = new TextDecoder();
  let bytes = 0;
  let head = "";
  for (let chunk = await client.read(); chunk !== undefined; chunk = await client.read()) {
    if (head === "") head = decoder.decode(chunk).split("\\r\\n\\r\\n")[0] ?? "";
    bytes += chunk.length;
  }
  await client.close();
  await done;
  console.log("http " + head.split("\\r\\n")[0] + " " + /content-encoding: gzip/i.test(head) + " " + (bytes > 0));
  return 0;
}
`;

function makeAppliance(): string {
  const dir = mkdtempSync(join(tmpdir(), "atoll-assets-"));
  writeFileSync(join(dir, "atoll.config.ts"), 'import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: "site", assets: "public" });\n');
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src", "main.ts"), MAIN);
  const publicDir = join(dir, "public");
  mkdirSync(join(publicDir, "css"), { recursive: true });
  mkdirSync(join(publicDir, ".well-known"));
  mkdirSync(join(publicDir, ".git"));
  writeFileSync(join(publicDir, "index.html"), INDEX);
  writeFileSync(join(publicDir, "css", "site.css"), `body { margin: 0 }\n${"/* rule */\n".repeat(30)}`);
  writeFileSync(join(publicDir, "logo.png"), PNG);
  writeFileSync(join(publicDir, "tiny.txt"), "x");
  writeFileSync(join(publicDir, ".DS_Store"), "junk");
  writeFileSync(join(publicDir, ".git", "HEAD"), "ref");
  writeFileSync(join(publicDir, ".well-known", "security.txt"), "Contact: mailto:security@example.com\n");
  symlinkSync(join(publicDir, "tiny.txt"), join(publicDir, "link.txt"));
  return dir;
}

test("atoll build bakes the assets directory into the image's assets section", (t) => {
  const dir = makeAppliance();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const built = atoll(["build", dir], { env: { ...process.env, SOURCE_DATE_EPOCH: "1700000000" } });
  assert.equal(built.status, 0, built.stderr);
  const imagePath = join(dir, "dist", "site.atoll");
  const image = decodeImage(readFileSync(imagePath));
  assert.ok(image.assets !== undefined);
  const store = decodeAssets(image.assets);
  assert.deepEqual(store.paths(), ["/.well-known/security.txt", "/css/site.css", "/index.html", "/link.txt", "/logo.png", "/tiny.txt"]);

  const index = store.lookup("/index.html");
  assert.ok(index !== undefined);
  assert.equal(Buffer.from(index.body).toString(), INDEX);
  assert.equal(index.contentType, "text/html; charset=utf-8");
  assert.equal(index.etag, `"${createHash("sha256").update(INDEX).digest("base64url")}"`);
  assert.ok(index.variants.gzip !== undefined && index.variants.br !== undefined);
  assert.equal(gunzipSync(index.variants.gzip.body).toString(), INDEX);
  assert.equal(brotliDecompressSync(index.variants.br.body).toString(), INDEX);
  assert.ok(index.variants.br.body.length < index.variants.gzip.body.length);

  const logo = store.lookup("/logo.png");
  assert.deepEqual([logo?.contentType, logo?.variants.gzip, logo?.variants.br], ["image/png", undefined, undefined], "PNGs are not recompressed");
  assert.deepEqual(Buffer.from(logo?.body ?? []), PNG);
  const tiny = store.lookup("/tiny.txt");
  assert.deepEqual([tiny?.variants.gzip, tiny?.variants.br], [undefined, undefined], "a variant is kept only when smaller");
  assert.equal(Buffer.from(store.lookup("/link.txt")?.body ?? []).toString(), "x");

  const inspect = atoll(["inspect", imagePath, "--json"]);
  assert.equal(inspect.status, 0);
  const summary: unknown = JSON.parse(inspect.stdout);
  assert.ok(typeof summary === "object" && summary !== null);
  assert.equal(Reflect.get(summary, "assetsBytes"), image.assets.length);
  assert.match(atoll(["inspect", imagePath]).stdout, new RegExp(`assets ${image.assets.length}\\)`));

  const again = atoll(["build", dir, "--outdir", join(dir, "again")], { env: { ...process.env, SOURCE_DATE_EPOCH: "1700000000" } });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(readFileSync(join(dir, "again", "site.atoll")), readFileSync(imagePath), "reproducible, assets included");
});

test("the image reads its assets through base.assets() and serves them with serveStatic", (t) => {
  const dir = makeAppliance();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const built = atoll(["build", dir]);
  assert.equal(built.status, 0, built.stderr);
  const run = atoll(["run", join(dir, "dist", "site.atoll")]);
  assert.equal(run.status, 0, run.stderr);
  const line = (prefix: string): string => run.stdout.split("\n").find((text) => text.startsWith(`${prefix} `))?.slice(prefix.length + 1) ?? "";
  assert.deepEqual(JSON.parse(line("assets")), {
    count: 6,
    paths: ["/.well-known/security.txt", "/css/site.css", "/index.html", "/link.txt", "/logo.png", "/tiny.txt"],
    type: "text/html; charset=utf-8",
    etag: `"${createHash("sha256").update(INDEX).digest("base64url")}"`,
    gzip: true,
    br: true,
    isImageRealmBytes: true,
  });
  assert.equal(line("globals"), "true function");
  assert.equal(line("http"), "HTTP/1.1 200 OK true true");
  assert.match(run.stdout, /INFO  http\.access: 198\.18\.0\.1 - - \[[^\]]+\] "GET \/ HTTP\/1\.1" 200 \d+/);
});

test("an image without assets has an empty store", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "atoll-noassets-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "atoll.config.ts"), 'import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: "bare" });\n');
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src", "main.ts"), 'import { imageAssets } from "atoll/assets";\nexport default function main() { console.log("count " + imageAssets().count); return 0; }\n');
  assert.equal(atoll(["build", dir]).status, 0);
  const image = decodeImage(readFileSync(join(dir, "dist", "bare.atoll")));
  assert.equal(image.assets, undefined);
  const run = atoll(["run", join(dir, "dist", "bare.atoll")]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^count 0$/m);
});

test("assets settings that cannot work are build errors, in one line", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "atoll-badassets-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src", "main.ts"), "export default function main() { return 0; }\n");
  const config = (assets: string): void =>
    writeFileSync(join(dir, "atoll.config.ts"), `import { defineConfig } from "atoll/config";\nexport default defineConfig({ name: "bad", assets: ${assets} });\n`);
  config('"missing"');
  const missing = atoll(["build", dir]);
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /assets directory missing does not exist/);
  config("42");
  assert.match(atoll(["build", dir]).stderr, /'assets' must be a directory/);
  mkdirSync(join(dir, "public"));
  writeFileSync(join(dir, "public", "back\\slash.txt"), "x");
  config('"public"');
  const backslash = atoll(["build", dir]);
  assert.notEqual(backslash.status, 0);
  assert.match(backslash.stderr, /back\\slash\.txt cannot be served: it contains '\\'/);
  assert.equal(backslash.stderr.trim().split("\n").length, 1);
});


test("the node tender lends the section without a copy, except out of Node's shared buffer pool", () => {
  const baseWith = (assets: Uint8Array | undefined) => testNodeBase({ assets });
  const file = Buffer.alloc(100_000, 7);
  const section = file.subarray(1000, 5000);
  assert.equal(baseWith(section).assets?.(), section, "a file of its own: lent as is");
  const pooled = Buffer.from("a small image, read into the pool");
  assert.ok(pooled.buffer.byteLength > pooled.length, "this Buffer shares Node's pool");
  const lent = baseWith(pooled.subarray(2, 7)).assets?.();
  assert.equal(lent?.buffer.byteLength, 5, "copied: the pool's other bytes are the host's");
  assert.equal(Buffer.from(lent ?? []).toString(), "small");
  assert.equal(baseWith(undefined).assets?.(), undefined);
});

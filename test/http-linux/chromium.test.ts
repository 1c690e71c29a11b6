/**
 * examples/website in a real browser: headless Chromium (Debian's `chromium` package, driven by
 * playwright-core, which downloads no browser) loads the site through user-mode networking
 * (`atoll run -p <free port>:80`, 127.0.0.1 only, no root): the title, the stylesheet and the SVG
 * image load and apply, /docs/ and the 404 page render, and a screenshot is a PNG.
 *
 * Needs /usr/bin/chromium (`apt-get install -y --no-install-recommends chromium`); skipped without.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { ATOLL, exampleImage, ROOT } from "../helpers/cli.ts";
import { freePort } from "../helpers/published.ts";

const CHROMIUM = "/usr/bin/chromium";
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install -y --no-install-recommends chromium)`;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let appliance: ChildProcess | undefined;
let applianceOutput = "";
let browser: Browser | undefined;
let dir = "";
let base = "";

/** Starts the website with `-p <port>:80` and resolves once it serves. */
async function startWebsite(port: number): Promise<void> {
  const child = spawn(process.execPath, [ATOLL, "run", exampleImage("website"), "-p", `${port}:80`, "--log", "http.access:quiet"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  appliance = child;
  child.stdout?.on("data", (chunk: Buffer) => (applianceOutput += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (applianceOutput += chunk.toString()));
  const deadline = Date.now() + 20_000;
  while (!/serving \d+ files on/.test(applianceOutput)) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      throw new Error(`atoll run did not come up:\n${applianceOutput}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stopWebsite(): Promise<void> {
  const child = appliance;
  appliance = undefined;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

before(async () => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-http-chromium-"));
  try {
    const port = await freePort();
    await startWebsite(port);
    base = `http://127.0.0.1:${port}`;
    const { chromium } = await import("playwright-core");
    // Playwright gives each launch() a fresh, temporary user-data-dir, and removes it on close().
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      timeout: 30_000,
    });
  } catch (error) {
    await browser?.close().catch(() => {});
    browser = undefined;
    await stopWebsite();
    throw error;
  }
}, { timeout: 60_000 });

after(async () => {
  await browser?.close().catch(() => {});
  browser = undefined;
  await stopWebsite();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

async function newPage(): Promise<Page> {
  assert.ok(browser !== undefined, "the browser is running");
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  return page;
}

test("the home page renders with its stylesheet and SVG image; /docs/ and the 404 page; a screenshot", { skip, timeout: 45_000 }, async () => {
  const page = await newPage();
  try {
    const statuses = new Map<string, number>();
    page.on("response", (response) => statuses.set(new URL(response.url()).pathname, response.status()));

    const home = await page.goto(`${base}/`, { waitUntil: "load" });
    assert.equal(home?.status(), 200);
    assert.equal(await page.title(), "Atoll: a website in a unikernel");
    assert.equal(statuses.get("/css/site.css"), 200, `responses: ${JSON.stringify([...statuses])}`);
    assert.equal(statuses.get("/images/atoll.svg"), 200, `responses: ${JSON.stringify([...statuses])}`);

    // The stylesheet applies: body's background is --sand and its margin 0 (defaults: transparent,
    // 8px); the header has its gradient. (Element callbacks run in the page; the host tsconfig has
    // no DOM types, so they reach getComputedStyle through the element.)
    const body = await page.locator("body").evaluate((element) => {
      const style = element.ownerDocument.defaultView.getComputedStyle(element);
      return { background: String(style.backgroundColor), margin: String(style.marginTop) };
    });
    assert.deepEqual(body, { background: "rgb(246, 239, 224)", margin: "0px" });
    const headerImage = await page.locator("header").evaluate((element) => String(element.ownerDocument.defaultView.getComputedStyle(element).backgroundImage));
    assert.match(headerImage, /^linear-gradient\(/);
    // The SVG decoded: a complete image with intrinsic size.
    const image = await page.locator("header img").evaluate((img) => ({
      complete: Boolean(img.complete),
      naturalWidth: Number(img.naturalWidth),
      naturalHeight: Number(img.naturalHeight),
    }));
    assert.equal(image.complete, true);
    assert.ok(image.naturalWidth > 0 && image.naturalHeight > 0, `the SVG has a size: ${JSON.stringify(image)}`);

    const png = join(dir, "home.png");
    await page.screenshot({ path: png, fullPage: true });
    const bytes = readFileSync(png);
    assert.ok(bytes.length > PNG_SIGNATURE.length + 25, `a screenshot of ${bytes.length} bytes`);
    assert.ok(bytes.subarray(0, 8).equals(PNG_SIGNATURE), "PNG signature");
    assert.equal(bytes.subarray(12, 16).toString("latin1"), "IHDR", "the first chunk is IHDR");
    assert.ok(bytes.readUInt32BE(16) > 0 && bytes.readUInt32BE(20) > 0, "nonzero width and height");
    // ATOLL_SCREENSHOT=<file> keeps a copy to look at (the temporary directory is removed).
    const keep = process.env.ATOLL_SCREENSHOT;
    if (keep !== undefined && keep !== "") copyFileSync(png, keep);

    // Following the page's own link to the documentation.
    await Promise.all([page.waitForURL(`${base}/docs/`, { waitUntil: "load" }), page.click('a[href="/docs/"]')]);
    assert.equal(await page.title(), "Documentation · Atoll");
    assert.equal(await page.textContent("h1"), "Documentation");

    const missing = await page.goto(`${base}/no-such-page`, { waitUntil: "load" });
    assert.equal(missing?.status(), 404);
    assert.equal(await page.title(), "Not found · Atoll");
    assert.equal(await page.textContent("h1"), "404");
  } finally {
    await page.context().close();
  }
});

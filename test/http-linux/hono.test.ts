/**
 * examples/hono: a Hono app (the npm package, unchanged) default-exported as on Workers
 * (`export default app`) and served by boot's fetch-app runner in an image, run as a user would, with user-mode networking (`atoll run -p <free port>:80`, 127.0.0.1 only, no root),
 * and fetched from the test: text, JSON, a path parameter, a query string, a JSON body and Hono's
 * notFound handler.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { after, before, test } from "node:test";
import { ATOLL, exampleImage, ROOT } from "../helpers/cli.ts";
import { curl, freePort } from "../helpers/published.ts";

let appliance: ChildProcess | undefined;
let output = "";
let base = "";

async function stop(): Promise<void> {
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
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [ATOLL, "run", exampleImage("hono"), "-p", `${port}:80`], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  appliance = child;
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 20_000;
  while (!/INFO  http: serving http:/.test(output)) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`atoll run did not come up:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}, { timeout: 60_000 });

after(stop);

async function get(path: string, init?: RequestInit): Promise<{ status: number; type: string | null; body: string }> {
  const response = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
  return { status: response.status, type: response.headers.get("content-type"), body: await response.text() };
}

test("text and JSON routes, a path parameter and a query string", { timeout: 30_000 }, async () => {
  // c.text() with no headers is `new Response(text)`: the Fetch Standard's default content type.
  assert.deepEqual(await get("/"), { status: 200, type: "text/plain;charset=UTF-8", body: "Hello from Hono on Atoll!\n" });
  const info = await get("/api/info");
  assert.equal(info.status, 200);
  assert.equal(info.type, "application/json");
  assert.deepEqual(JSON.parse(info.body), { framework: "hono", runtime: "atoll", ok: true });
  for (const id of ["42", "ada", "x%20y"]) {
    const user = await get(`/users/${id}`);
    assert.equal(user.status, 200, id);
    assert.deepEqual(JSON.parse(user.body), { id: decodeURIComponent(id), name: `user ${decodeURIComponent(id)}` });
  }
  assert.equal((await get("/greet?name=Ada")).body, "Hello, Ada!\n");
  assert.equal((await get("/greet")).body, "Hello, world!\n");
});

test("a JSON request body is parsed and echoed with 201", { timeout: 30_000 }, async () => {
  const sent = { list: [1, 2, 3], text: "héllo", nested: { ok: true } };
  const result = await get("/api/echo", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(sent) });
  assert.equal(result.status, 201);
  assert.deepEqual(JSON.parse(result.body), { received: sent });
});

test("unknown paths and methods go to Hono's notFound handler", { timeout: 30_000 }, async () => {
  const missing = await get("/nope");
  assert.equal(missing.status, 404);
  assert.deepEqual(JSON.parse(missing.body), { error: "not found", path: "/nope" });
  assert.equal((await get("/api/info", { method: "DELETE" })).status, 404);
  assert.match(output, /"GET \/nope HTTP\/1\.1" 404/, "the access log saw it");
});

test("curl gets the app through -p, as a user would", { timeout: 30_000 }, () => {
  const root = curl(`${base}/`);
  assert.deepEqual(root, { status: 200, body: "Hello from Hono on Atoll!\n" });
  const user = curl(`${base}/users/7`);
  assert.equal(user.status, 200);
  assert.deepEqual(JSON.parse(user.body), { id: "7", name: "user 7" });
  const echo = curl(`${base}/api/echo`, ["-H", "content-type: application/json", "--data", '{"a":1}']);
  assert.equal(echo.status, 201);
  assert.deepEqual(JSON.parse(echo.body), { received: { a: 1 } });
});

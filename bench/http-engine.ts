/**
 * `npm run bench:http-engine [-- --requests N] [--runs R]`: the HTTP server's own cost per
 * request, in process and without a network: serveHttpConnection over an in-memory ByteFlow pair
 * (atoll/http testing.ts), one keep-alive connection, N requests one after the other (the client
 * sends the next request when it has read the whole previous response, as each of wrk's
 * connections does). Prints microseconds per request, the median of R runs, for each scenario:
 *
 * - website, wrk's request: the website appliance's handler (withEcho over serveStatic, with
 *   `Cache-Control: public, max-age=60`) on a store holding bench:http's 612-byte page, for
 *   `GET / HTTP/1.1` with only Host (what wrk sends);
 * - website, a browser's request: the same, with the fields a browser sends (User-Agent, Accept,
 *   Accept-Encoding, Accept-Language, Connection, ...) and gzip/br variants in the store;
 * - website, revalidation: If-None-Match with the current ETag → 304;
 * - hello: a handler returning `new Response("hello")`: the engine and the web objects alone;
 * - baseline: no HTTP server at all, the flow pair and the client alone (a loop that answers each
 *   request's bytes with a fixed response): subtract it from the others for the server's own cost.
 *
 * The access log is set as the appliance runs under bench:http (`--log warn`: "http.access" is
 * below its level, so no access line is even formatted). The client's own parsing is included in
 * the figures (the baseline shows how much); compare runs of this script, not its figures with
 * bench:http's. The script first bundles itself with esbuild, as `atoll build` bundles an image,
 * and runs the bundle: under tsx, esbuild's keepNames adds a call per closure made, a cost an
 * image does not have.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { encodeAssets, decodeAssets, type AssetEntry } from "../src/lib/assets/format.ts";
import { serveHttpConnection, type FetchHandler } from "../src/lib/http/server.ts";
import { serveStatic } from "../src/lib/http/static.ts";
import { createFlowPair, type MemoryFlow } from "../src/lib/http/testing.ts";
import type { HttpTimers } from "../src/lib/http/connection.ts";
import * as logs from "atoll/logs";
import { Request } from "../src/lib/web/request.ts";
import { Response } from "../src/lib/web/response.ts";
import { withEcho } from "../examples/website/src/main.ts";
import { fail as failWith, markdownTable, median, parseNumericOptions } from "./common.ts";

const USAGE = `Usage: npm run bench:http-engine [-- [--requests N] [--runs R]]

  --requests N   requests per run, on one keep-alive connection (default 20000)
  --runs R       runs per scenario; the table shows the median (default 7)
`;

interface Options {
  requests: number;
  runs: number;
}

const options = parseNumericOptions<keyof Options>("bench:http-engine", process.argv.slice(2), { requests: 20_000, runs: 7 }, { requests: [100, 10_000_000], runs: [1, 100] }, USAGE);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Pseudo-random but fixed bytes, so that compressed variants have a realistic size. */
function fixedBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    out[i] = 0x61 + ((state >>> 16) % 26);
  }
  return out;
}

function store(withVariants: boolean): ReturnType<typeof decodeAssets> {
  const page = encoder.encode(`<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body>${"<p>bench</p>\n".repeat(40)}</body></html>\n`.slice(0, 612).padEnd(612, " "));
  const entries: AssetEntry[] = [
    {
      path: "/index.html",
      contentType: "text/html; charset=utf-8",
      sha256: fixedBytes(32, 1),
      body: page,
      ...(withVariants ? { gzip: fixedBytes(300, 2), br: fixedBytes(250, 3) } : {}),
    },
    { path: "/404.html", contentType: "text/html; charset=utf-8", sha256: fixedBytes(32, 4), body: encoder.encode("<h1>Not found</h1>\n") },
  ];
  return decodeAssets(encodeAssets(entries));
}

/** Timers as cheap as the scheduler's: a handle per call, nothing ever fires during a run. */
const timers: HttpTimers = {
  now: () => performance.now(),
  at: () => ({ cancel: () => undefined }),
};

const CRLF_CRLF = [13, 10, 13, 10];

function headEnd(bytes: Uint8Array, length: number): number {
  outer: for (let at = 0; at + 4 <= length; at++) {
    for (let k = 0; k < 4; k++) if (bytes[at + k] !== CRLF_CRLF[k]) continue outer;
    return at + 4;
  }
  return -1;
}

/** Reads one response (Content-Length framed, or none for 304/HEAD) and returns its status. */
async function readResponse(client: MemoryFlow, carry: { bytes: Uint8Array; length: number }, noBody: boolean): Promise<number> {
  for (;;) {
    const end = headEnd(carry.bytes, carry.length);
    if (end >= 0) {
      const head = decoder.decode(carry.bytes.subarray(0, end));
      const status = Number(head.slice(9, 12));
      const match = /\r\ncontent-length: (\d+)\r\n/i.exec(head);
      const bodyLength = noBody || status === 304 || match === null ? 0 : Number(match[1]);
      if (carry.length >= end + bodyLength) {
        carry.bytes.copyWithin(0, end + bodyLength, carry.length);
        carry.length -= end + bodyLength;
        return status;
      }
    }
    const chunk = await client.read();
    if (chunk === undefined) throw new Error("the server closed the connection");
    if (carry.length + chunk.length > carry.bytes.length) {
      const grown = new Uint8Array((carry.length + chunk.length) * 2);
      grown.set(carry.bytes.subarray(0, carry.length));
      carry.bytes = grown;
    }
    carry.bytes.set(chunk, carry.length);
    carry.length += chunk.length;
  }
}

interface Scenario {
  readonly name: string;
  /** The handler; undefined for the baseline, which answers without an HTTP server. */
  readonly handler: FetchHandler | undefined;
  readonly request: string;
  readonly expectStatus: number;
}

const FIXED_RESPONSE = encoder.encode(`HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 612\r\n\r\n${"x".repeat(612)}`);

/** The baseline's server: each chunk read (one request) is answered with the same bytes. */
async function answerFixed(server: MemoryFlow): Promise<void> {
  for (let chunk = await server.read(); chunk !== undefined; chunk = await server.read()) await server.write(FIXED_RESPONSE);
  await server.close();
}

async function run(scenario: Scenario, requests: number): Promise<number> {
  const [client, server] = createFlowPair();
  const served = scenario.handler === undefined ? answerFixed(server) : serveHttpConnection(server, scenario.handler, { timers, wallClock: () => Date.now() });
  const request = encoder.encode(scenario.request);
  const carry = { bytes: new Uint8Array(4096), length: 0 };
  const started = performance.now();
  for (let i = 0; i < requests; i++) {
    await client.write(request);
    const status = await readResponse(client, carry, scenario.request.startsWith("HEAD "));
    if (status !== scenario.expectStatus) throw new Error(`${scenario.name}: status ${status}, expected ${scenario.expectStatus}`);
  }
  const elapsed = performance.now() - started;
  await client.close();
  await served;
  return (elapsed * 1000) / requests;
}

async function main(): Promise<void> {
  // As the website runs under bench:http (`--log warn`): access lines are below the level.
  logs.setLevels("warn");
  const plain = withEcho(serveStatic(store(false), { cacheControl: "public, max-age=60" }));
  const compressed = withEcho(serveStatic(store(true), { cacheControl: "public, max-age=60" }));
  // The ETag the browser's request gets (the br variant's), for the revalidation scenario.
  const etag = (await compressed(new Request("http://bench/", { headers: { "accept-encoding": "gzip, deflate, br" } }), { remoteAddress: undefined, remotePort: undefined })).headers.get("etag") ?? "";
  const browser =
    "GET / HTTP/1.1\r\nHost: 198.18.0.2\r\nConnection: keep-alive\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-GB,en;q=0.9\r\nUpgrade-Insecure-Requests: 1\r\n";
  const scenarios: Scenario[] = [
    { name: "website, wrk's request (GET /, Host only)", handler: plain, request: "GET / HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n", expectStatus: 200 },
    { name: "website, a browser's request (br variant)", handler: compressed, request: `${browser}\r\n`, expectStatus: 200 },
    { name: "website, revalidation (If-None-Match → 304)", handler: compressed, request: `${browser}If-None-Match: ${etag}\r\n\r\n`, expectStatus: 304 },
    { name: "hello (new Response(\"hello\"))", handler: () => new Response("hello"), request: "GET /hello HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n", expectStatus: 200 },
    { name: "baseline: flow pair and client, no server", handler: undefined, request: "GET / HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n", expectStatus: 200 },
  ];
  process.stdout.write(`bench:http-engine: ${options.runs} runs of ${options.requests} keep-alive requests per scenario; node ${process.version}, ${cpus()[0]?.model.trim() ?? "cpu"}\n\n`);
  const rows: string[][] = [];
  for (const scenario of scenarios) {
    await run(scenario, Math.min(2000, options.requests)); // warm-up: JIT
    const samples: number[] = [];
    for (let r = 0; r < options.runs; r++) samples.push(await run(scenario, options.requests));
    const middle = median(samples);
    rows.push([scenario.name, middle.toFixed(2), Math.round(1e6 / middle).toLocaleString("en"), `${Math.min(...samples).toFixed(2)}–${Math.max(...samples).toFixed(2)}`]);
    process.stdout.write(`${scenario.name}: ${middle.toFixed(2)} µs/request\n`);
  }
  process.stdout.write(`\nmedians over ${options.runs} runs\n`);
  process.stdout.write(markdownTable(["scenario", "µs/request", "requests/s (one core)", "range µs"], rows));
}

/** Set in the bundle's environment, so that it runs the benchmark instead of bundling again. */
const BUNDLED = "ATOLL_BENCH_HTTP_ENGINE_BUNDLED";

/** Bundles this script as an image is bundled (no keepNames) and runs the bundle with the same arguments. */
async function runBundled(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "atoll-bench-http-engine-"));
  try {
    const outfile = join(dir, "bench.mjs");
    // Loaded here only, and left out of the bundle, which never bundles again.
    const { build } = await import("esbuild");
    await build({ entryPoints: [import.meta.filename], bundle: true, platform: "node", format: "esm", target: "es2022", outfile, external: ["esbuild"], logLevel: "warning" });
    const child = spawnSync(process.execPath, [outfile, ...process.argv.slice(2)], { stdio: "inherit", env: { ...process.env, [BUNDLED]: "1" } });
    return child.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const describeError = (error: unknown): string => (error instanceof Error ? (error.stack ?? error.message) : String(error));
if (process.env[BUNDLED] === "1") main().catch((error: unknown) => failWith("bench:http-engine", describeError(error)));
else runBundled().then((status) => process.exit(status), (error: unknown) => failWith("bench:http-engine", describeError(error)));

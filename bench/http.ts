/**
 * `npm run bench:http [-- --seconds S] [--reps N] [--connections C]`: requests per second and p99
 * latency of a 612-byte page over keep-alive connections, Atoll's HTTP server beside nginx and
 * Node's `http`, in the same run, each server pinned to one core.
 *
 * - Atoll: examples/website copied into a temporary directory with public/ holding only the
 *   612-byte index.html, built, and run on the node tender (`--log warn`: no access log) under
 *   `taskset -c 1`, in a private namespace (atoll-bench-http-a-<pid>) on tap0: Linux at
 *   198.18.0.1/24, the appliance at 198.18.0.2:80.
 * - The peers: two namespaces (atoll-bench-http-lc-<pid>, atoll-bench-http-ls-<pid>) joined by a
 *   veth pair, 198.18.1.1/24 and 198.18.1.2/24. In the server namespace, under `taskset -c 1`:
 *   Debian's nginx with a minimal nginx.conf written into the temporary directory (`daemon off;
 *   worker_processes 1;`, access log off, the same file as its root's index.html) on port 80, and
 *   a Node `http` server answering every GET with the same bytes on port 8080.
 * - The client: `taskset -c 0 wrk -t 1 -c C -d S --latency` from the namespace on Linux's side of
 *   each link (keep-alive, as wrk always does). Each server gets a short warm-up first.
 *
 * Each repetition measures the three one after the other, rotating which goes first; the table
 * shows medians over the repetitions (ratios are of the medians' requests per second).
 *
 * `--profile` then loads a second Atoll appliance (on tap1, 198.18.2.2) with wrk for S seconds
 * under `node --cpu-prof` and prints the tender's functions with the most self time, and loads
 * the first one under `strace -c -f` and prints its system calls with the requests served, so
 * that the cost per request can be split between HTTP, TCP and the tender. Needs root,
 * /dev/net/tun, wrk, nginx, curl and taskset (and strace for --profile). The namespaces and every process in them go away at
 * the end, on errors and on Ctrl-C. Timings are what this machine did on this run: report them,
 * do not assert them.
 */
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { SourceMap, type SourceMapPayload } from "node:module";
import { join } from "node:path";
import { decodeImage } from "../src/image/format.ts";
import { ATOLL, ROOT } from "../test/helpers/cli.ts";
import { Netns } from "../test/helpers/netns.ts";
import { parseWrk, type WrkResult } from "../test/http-linux/fixtures/site.ts";
import { APPLIANCE_ADDRESS, APPLIANCE_CIDR, HOST_CIDR, buildAppliance, skipReason, tryExec, waitFor, waitForPing } from "../test/net/linux/fixtures/lab.ts";
import { cleanupOnSignals, fail as failWith, markdownTable, median, parseNumericOptions, runBench, vethPair } from "./common.ts";

const USAGE = `Usage: npm run bench:http [-- [--seconds S] [--reps N] [--connections C] [--profile]]

  --seconds S       seconds of each wrk run (default 5)
  --reps N          repetitions; the table shows medians (default 3)
  --connections C   wrk connections, all keep-alive, one wrk thread (default 50)
  --profile         also profile the Atoll tender under wrk (node --cpu-prof, strace -c -f)
`;

interface NumericOptions {
  seconds: number;
  reps: number;
  connections: number;
}

interface Options extends NumericOptions {
  profile: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const defaults: NumericOptions = { seconds: 5, reps: 3, connections: 50 };
  const limits: Record<keyof NumericOptions, [number, number]> = { seconds: [1, 600], reps: [1, 100], connections: [1, 10_000] };
  let profile = false;
  const numbers = parseNumericOptions("bench:http", argv, defaults, limits, USAGE, { flags: { "--profile": () => (profile = true) } });
  return { ...numbers, profile };
}

function fail(message: string): never {
  return failWith("bench:http", message);
}

// ---- the page -------------------------------------------------------------------------------------------

const PAGE_BYTES = 612;

/** A 612-byte HTML page (the size of nginx's welcome page), padded with a comment to the byte. */
function page(): Buffer {
  const head = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome</title>\n<style>\n  body { width: 35em; margin: 0 auto; font-family: Tahoma, Verdana, Arial, sans-serif; }\n</style>\n</head>\n<body>\n<h1>Welcome</h1>\n<p>If you see this page, the web server is working. This page is the same bytes for every server in bench:http.</p>\n";
  const tail = "</body>\n</html>\n";
  const padding = PAGE_BYTES - Buffer.byteLength(head) - Buffer.byteLength(tail) - "<!--  -->\n".length;
  if (padding < 0) throw new Error("the page's text is longer than 612 bytes");
  const bytes = Buffer.from(`${head}<!-- ${"x".repeat(padding)} -->\n${tail}`);
  if (bytes.length !== PAGE_BYTES) throw new Error(`the page is ${bytes.length} bytes`);
  return bytes;
}

// ---- the setups ------------------------------------------------------------------------------------------

const LINUX_CLIENT = "198.18.1.1";
const LINUX_SERVER = "198.18.1.2";
const NODE_PORT = 8080;
const SERVER_CORE = "1";
const CLIENT_CORE = "0";

const namespaces: Netns[] = [];
const servers: ReturnType<Netns["spawn"]>[] = [];
let workDir = "";

function cleanup(): void {
  for (const server of servers.splice(0)) {
    try {
      if (server.pid !== undefined) process.kill(server.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  // Netns.destroy kills whatever still runs in each namespace (nginx's worker, the tender) by PID.
  for (const ns of namespaces.splice(0)) ns.destroy();
  if (workDir !== "") rmSync(workDir, { recursive: true, force: true });
  workDir = "";
}

cleanupOnSignals("bench:http", cleanup);

interface Server {
  readonly name: string;
  /** The appliance's tender (Atoll only). */
  readonly tender?: ReturnType<Netns["spawn"]>;
  /** The appliance's image (Atoll only). */
  readonly image?: string;
  /** Where wrk and curl run. */
  readonly client: Netns;
  readonly url: string;
}

function started(ns: Netns, args: readonly string[]): ReturnType<Netns["spawn"]> {
  const child = ns.spawn(args);
  servers.push(child);
  return child;
}

async function setUpAtoll(body: Buffer): Promise<Server> {
  const appDir = join(workDir, "website");
  cpSync(join(ROOT, "examples", "website"), appDir, { recursive: true, filter: (path) => !/[/\\](dist|node_modules)([/\\]|$)/.test(path) });
  rmSync(join(appDir, "public"), { recursive: true, force: true });
  mkdirSync(join(appDir, "public"));
  writeFileSync(join(appDir, "public", "index.html"), body);
  const image = buildAppliance(appDir, join(workDir, "dist"));
  const ns = new Netns(`atoll-bench-http-a-${process.pid}`);
  namespaces.push(ns);
  ns.addTap("tap0", HOST_CIDR);
  const appliance = started(ns, ["taskset", "-c", SERVER_CORE, process.execPath, ATOLL, "run", image, "--net", "service=tap:tap0", "--ipv4", `service=${APPLIANCE_CIDR}`, "--log", "warn"]);
  await waitForPing(ns, APPLIANCE_ADDRESS);
  if (appliance.exitCode !== null) throw new Error(`the appliance exited: ${appliance.output()}`);
  return { name: "Atoll (node tender, TAP)", client: ns, url: `http://${APPLIANCE_ADDRESS}/`, tender: appliance, image };
}

async function setUpPeers(body: Buffer): Promise<Server[]> {
  const client = new Netns(`atoll-bench-http-lc-${process.pid}`);
  namespaces.push(client);
  const server = new Netns(`atoll-bench-http-ls-${process.pid}`);
  namespaces.push(server);
  vethPair(client, server, "veth0", "veth1", LINUX_CLIENT, LINUX_SERVER);

  // nginx: one worker, the page as its root's index.html, no access log.
  const nginxDir = join(workDir, "nginx");
  mkdirSync(join(nginxDir, "root"), { recursive: true });
  mkdirSync(join(nginxDir, "temp"), { recursive: true });
  writeFileSync(join(nginxDir, "root", "index.html"), body);
  writeFileSync(
    join(nginxDir, "nginx.conf"),
    `daemon off;
worker_processes 1;
pid ${nginxDir}/nginx.pid;
error_log ${nginxDir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/html;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path ${nginxDir}/temp;
  server {
    listen ${LINUX_SERVER}:80;
    root ${nginxDir}/root;
    index index.html;
  }
}
`,
  );
  // nginx's worker runs as nobody: it must be able to read the page.
  for (const dir of [workDir, nginxDir, join(nginxDir, "root")]) chmodSync(dir, 0o755);
  const nginx = started(server, ["taskset", "-c", SERVER_CORE, "nginx", "-c", join(nginxDir, "nginx.conf"), "-p", nginxDir, "-e", join(nginxDir, "error.log")]);

  // Node's http: the same bytes for every GET, keep-alive (Node's default).
  const nodeServer = join(workDir, "node-server.mjs");
  writeFileSync(
    nodeServer,
    `import { createServer } from "node:http";
import { readFileSync } from "node:fs";
const body = readFileSync(${JSON.stringify(join(nginxDir, "root", "index.html"))});
createServer((request, response) => {
  response.writeHead(200, { "content-type": "text/html", "content-length": body.length });
  response.end(request.method === "HEAD" ? undefined : body);
}).listen(${NODE_PORT}, ${JSON.stringify(LINUX_SERVER)}, () => console.log("ready"));
`,
  );
  const node = started(server, ["taskset", "-c", SERVER_CORE, process.execPath, nodeServer]);
  await waitFor("the Node server", () => node.output().includes("ready") || node.exitCode !== null, 10_000);
  if (node.exitCode !== null) throw new Error(`the Node server exited: ${node.output()}`);
  await waitForPing(client, LINUX_SERVER);
  await waitFor("nginx", () => tryExec(client, ["curl", "-s", "-o", "/dev/null", `http://${LINUX_SERVER}/`], 5000).status === 0 || nginx.exitCode !== null, 10_000);
  if (nginx.exitCode !== null) throw new Error(`nginx exited: ${nginx.output()}`);
  return [
    { name: "nginx 1 worker (veth)", client, url: `http://${LINUX_SERVER}/` },
    { name: "Node http (veth)", client, url: `http://${LINUX_SERVER}:${NODE_PORT}/` },
  ];
}

// ---- measurements ------------------------------------------------------------------------------------------

function checkPage(server: Server, body: Buffer): void {
  const { status, output } = tryExec(server.client, ["curl", "-sS", "--max-time", "5", "-w", "\\n%{http_code}", server.url], 10_000);
  const expected = `${body.toString()}\n200`;
  if (status !== 0 || output !== expected) throw new Error(`${server.name} did not answer the page (curl exit ${status}):\n${output.slice(0, 300)}`);
}

function wrk(server: Server, seconds: number, connections: number): WrkResult {
  const { status, output } = tryExec(
    server.client,
    ["taskset", "-c", CLIENT_CORE, "wrk", "-t", "1", "-c", String(connections), "-d", `${seconds}s`, "--latency", server.url],
    (seconds + 60) * 1000,
  );
  if (status !== 0) throw new Error(`${server.name}: wrk failed (${status}):\n${output}`);
  return parseWrk(output);
}

// ---- profile --------------------------------------------------------------------------------------------

const PROFILE_HOST_CIDR = "198.18.2.1/24";
const PROFILE_APPLIANCE = "198.18.2.2";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}

/**
 * Self time from a .cpuprofile, by function and by source file: the image's frames are mapped to
 * the library's sources through the image's source map (src/lib/http/connection.ts:412), the
 * tender's (whose native calls, the system calls among them, count as their JavaScript callers')
 * stay as build/atoll.cjs. Shares of all samples, the largest first.
 */
function selfTime(file: string, image: string): { functions: [string, number][]; files: [string, number][] } {
  const profile = JSON.parse(readFileSync(file, "utf8")) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const sourceMap = decodeImage(readFileSync(image)).sourceMap;
  let map: SourceMap | undefined;
  if (sourceMap !== undefined) {
    const payload: SourceMapPayload = JSON.parse(sourceMap);
    map = new SourceMap(payload);
  }
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  const add = (table: Map<string, number>, key: string, time: number): void => {
    table.set(key, (table.get(key) ?? 0) + time);
  };
  profile.samples.forEach((id, index) => {
    const node = byId.get(id);
    const time = profile.timeDeltas[index] ?? 0;
    if (node === undefined) return;
    const frame = node.callFrame;
    const name = frame.functionName === "" ? "(anonymous)" : frame.functionName;
    let where = frame.url === "" ? "" : `${frame.url.split("/").slice(-2).join("/")}:${frame.lineNumber + 1}`;
    let source = frame.url === "" ? name : frame.url.split("/").slice(-2).join("/");
    if (map !== undefined && frame.url.endsWith("/image.js")) {
      const entry = map.findEntry(frame.lineNumber, frame.columnNumber);
      if ("originalSource" in entry) {
        // "atoll://website/atoll/lib/http/connection.ts" → "src/lib/http/connection.ts" (the build aliases atoll to src/lib).
        const original = entry.originalSource;
        source = original.includes("node_modules/") ? original.slice(original.indexOf("node_modules/")) : original.replace(/^.*?\/lib\//, "src/lib/");
        where = `${source}:${entry.originalLine + 1}`;
      }
    }
    add(functions, `${name}${where === "" ? "" : ` ${where}`}`, time);
    add(files, source, time);
    total += time;
  });
  const shares = (table: Map<string, number>): [string, number][] => [...table].sort((a, b) => b[1] - a[1]).map(([key, time]) => [key, total === 0 ? 0 : time / total]);
  return { functions: shares(functions), files: shares(files) };
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** User and system CPU time of a process so far, in clock ticks. */
function cpuTicks(pid: number): { user: number; system: number } {
  // Fields after the command name (which may hold spaces, so split after its closing parenthesis).
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return { user: Number(fields[11] ?? 0), system: Number(fields[12] ?? 0) };
}

async function profileAtoll(atoll: Server, options: Options): Promise<void> {
  if (atoll.image === undefined || atoll.tender?.pid === undefined) throw new Error("no Atoll appliance to profile");
  const dir = join(workDir, "profile");
  mkdirSync(dir, { recursive: true });
  atoll.client.addTap("tap1", PROFILE_HOST_CIDR);
  const profiled = started(atoll.client, [
    "taskset", "-c", SERVER_CORE, process.execPath, "--cpu-prof", `--cpu-prof-dir=${dir}`, ATOLL, "run", atoll.image,
    "--net", "service=tap:tap1", "--ipv4", `service=${PROFILE_APPLIANCE}/24`, "--log", "warn",
  ]);
  await waitForPing(atoll.client, PROFILE_APPLIANCE);
  const target: Server = { name: "Atoll under --cpu-prof", client: atoll.client, url: `http://${PROFILE_APPLIANCE}/` };
  wrk(target, 2, options.connections);
  const loaded = wrk(target, options.seconds, options.connections);
  process.kill(profiled.pid ?? 0, "SIGINT");
  await profiled.exited;
  const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"));
  process.stdout.write(`\nProfile: Atoll at ${Math.round(loaded.requestsPerSecond).toLocaleString("en")} req/s under --cpu-prof (tender self time)\n`);
  if (file === undefined) {
    process.stdout.write("  (no profile written)\n");
  } else {
    const { functions, files } = selfTime(join(dir, file), atoll.image);
    process.stdout.write("by function, top 30:\n");
    for (const [name, share] of functions.slice(0, 30)) process.stdout.write(`  ${(share * 100).toFixed(1).padStart(5)}%  ${name}\n`);
    process.stdout.write("by source file, top 20:\n");
    for (const [name, share] of files.slice(0, 20)) process.stdout.write(`  ${(share * 100).toFixed(1).padStart(5)}%  ${name}\n`);
  }

  // How busy the tender is under load: a tender below 100% of its core is not what limits the rate.
  const before = cpuTicks(atoll.tender.pid);
  const startedAt = performance.now();
  const plain = wrk(atoll, options.seconds, options.connections);
  const elapsed = (performance.now() - startedAt) / 1000;
  const after = cpuTicks(atoll.tender.pid);
  const share = (ticks: number): string => `${((ticks / TICKS_PER_SECOND / elapsed) * 100).toFixed(0)}%`;
  process.stdout.write(
    `\nTender CPU under wrk (${Math.round(plain.requestsPerSecond).toLocaleString("en")} req/s): ${share(after.user + after.system - before.user - before.system)} of a core ` +
      `(user ${share(after.user - before.user)}, system ${share(after.system - before.system)}); ` +
      `${((((after.user + after.system - before.user - before.system) / TICKS_PER_SECOND) * 1e6) / (plain.requestsPerSecond * elapsed)).toFixed(1)} µs of tender CPU per request\n`,
  );

  if (spawnSync("sh", ["-c", "command -v strace"]).status !== 0) {
    process.stdout.write("\n(strace not installed: no system call counts)\n");
    return;
  }
  const seconds = options.seconds;
  const strace = spawn("timeout", ["-s", "INT", String(seconds + 1), "strace", "-c", "-f", "-p", String(atoll.tender.pid)], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  strace.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  strace.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => strace.on("exit", () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const traced = wrk(atoll, seconds, options.connections);
  await exited;
  const requests = Math.round(traced.requestsPerSecond * seconds);
  process.stdout.write(`\nSystem calls: the Atoll tender under strace -c -f, ${traced.requestsPerSecond.toFixed(0)} req/s for ${seconds} s (about ${requests.toLocaleString("en")} requests)\n`);
  const lines = output.split("\n").filter((line) => /^\s*[\d.]+\s+[\d.]+\s+\d+/.test(line) || /^% time|^-----|total/.test(line));
  for (const line of lines.slice(0, 16)) process.stdout.write(`  ${line}\n`);
}

// ---- main ----------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const missing = skipReason("wrk", "nginx", "curl", "taskset", "ping");
  if (missing !== false) fail(`cannot run: ${missing}`);
  if (cpus().length < 2) fail("needs two cores (the server on core 1, wrk on core 0)");
  workDir = mkdtempSync(join(tmpdir(), "atoll-bench-http-"));
  const body = page();
  const nginxVersion = spawnSync("nginx", ["-v"], { encoding: "utf8" }).stderr.trim();
  process.stdout.write(
    `bench:http: ${options.reps} repetitions of wrk -t 1 -c ${options.connections} -d ${options.seconds}s (keep-alive) per server, GET of a ${PAGE_BYTES}-byte page\n` +
      `machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? "cpu"}, Linux ${release()}, node ${process.version}, ${nginxVersion}, load average ${loadavg().map((load) => load.toFixed(2)).join(" ")}\n` +
      `servers on core ${SERVER_CORE} (taskset), wrk on core ${CLIENT_CORE}; Atoll over a TAP, the peers over a veth pair\n\n`,
  );
  const atoll = await setUpAtoll(body);
  const [nginx, node] = await setUpPeers(body);
  if (nginx === undefined || node === undefined) throw new Error("peers missing");
  const all = [atoll, nginx, node];
  for (const server of all) {
    checkPage(server, body);
    wrk(server, 2, options.connections); // warm-up: JIT, caches, ARP
  }

  const samples = new Map<Server, WrkResult[]>(all.map((server) => [server, []]));
  for (let rep = 0; rep < options.reps; rep++) {
    const order = all.map((_, index) => all[(index + rep) % all.length] as Server);
    for (const server of order) {
      const result = wrk(server, options.seconds, options.connections);
      const errors = Object.values(result.socketErrors).reduce((sum, count) => sum + count, 0);
      if (errors > 0 || result.non2xx > 0) process.stdout.write(`  warning: ${server.name}: ${errors} socket errors, ${result.non2xx} non-2xx answers\n`);
      samples.get(server)?.push(result);
    }
    process.stdout.write(`rep ${rep + 1}/${options.reps}: ${all.map((server) => `${server.name} ${Math.round(samples.get(server)?.at(-1)?.requestsPerSecond ?? 0)} req/s`).join(", ")}\n`);
  }

  const rps = (server: Server): number => median((samples.get(server) ?? []).map((result) => result.requestsPerSecond));
  const p99 = (server: Server): number => median((samples.get(server) ?? []).map((result) => result.p99Ms ?? NaN));
  const table: string[][] = [];
  for (const server of all) {
    table.push([server.name, Math.round(rps(server)).toLocaleString("en"), p99(server).toFixed(2), `${(rps(server) / rps(nginx)).toFixed(2)}×`, `${(rps(server) / rps(node)).toFixed(2)}×`]);
  }
  process.stdout.write(`\nmedians over ${options.reps} repetitions of ${options.seconds} s (ratios: requests per second)\n`);
  process.stdout.write(markdownTable(["server", "req/s", "p99 ms", "ratio to nginx", "ratio to node"], table));
  if (options.profile) await profileAtoll(atoll, options);
}

runBench("bench:http", main, cleanup);

/**
 * `atoll run --inspect-brk` against a real inspector client: the image's script reaches DevTools
 * with its source map, the map leads back to the appliance's TypeScript, and the appliance runs to
 * completion once the debugger lets it go.
 *
 * The tender opens the inspector with `inspector.open(undefined, "127.0.0.1")`, which takes its
 * port from Node's own options; the child is started as `node --inspect-port=0 bin/atoll.cjs ...`
 * so that the kernel picks a free port (no clash with a debugger on 9229 or a parallel test).
 * Node 20 has no WebSocket client, so a minimal one (RFC 6455: handshake, masked text frames out,
 * text/continuation/close/ping frames in) lives below.
 *
 * While it waits for a debugger the tender blocks its event loop, so SIGTERM cannot reach its
 * handler: every path ends with SIGKILL if the child is still there.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";

import { ATOLL, exampleImage, ROOT } from "../helpers/cli.ts";

const TEST_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 20_000;
const IMAGE_SCRIPT_URL = "atoll://hello/image.js";
const MAIN_TS = join(ROOT, "examples", "hello", "src", "main.ts");

// ---------------------------------------------------------------------------------------------
// A minimal WebSocket client, enough for the V8 inspector protocol.

class WebSocketClient {
  private buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private closed = false;
  private readonly listeners = new Set<(message: string) => void>();
  private readonly closeListeners = new Set<(error: Error) => void>();

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.parse();
    });
    const onClose = (error?: Error): void => {
      if (this.closed) return;
      this.closed = true;
      for (const listener of this.closeListeners) listener(error ?? new Error("the inspector closed the connection"));
    };
    socket.on("error", onClose);
    socket.on("close", () => onClose());
  }

  static connect(url: string): Promise<WebSocketClient> {
    return new Promise((resolve, reject) => {
      const key = randomBytes(16).toString("base64");
      const req = request(url.replace(/^ws:/, "http:"), {
        headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13" },
      });
      req.on("upgrade", (_response, socket, head) => {
        const client = new WebSocketClient(socket);
        if (head.length > 0) socket.unshift(head);
        resolve(client);
      });
      req.on("response", (response) => reject(new Error(`the inspector refused the WebSocket upgrade: HTTP ${response.statusCode}`)));
      req.on("error", reject);
      req.end();
    });
  }

  onMessage(listener: (message: string) => void): void {
    this.listeners.add(listener);
  }

  onClose(listener: (error: Error) => void): void {
    this.closeListeners.add(listener);
  }

  send(text: string): void {
    this.frame(0x1, Buffer.from(text, "utf8"));
  }

  close(): void {
    if (!this.closed) this.frame(0x8, Buffer.alloc(0));
    this.socket.destroy();
  }

  private frame(opcode: number, payload: Buffer): void {
    const length = payload.length;
    const header = length < 126 ? Buffer.alloc(2) : length < 65_536 ? Buffer.alloc(4) : Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    if (length < 126) {
      header[1] = 0x80 | length;
    } else if (length < 65_536) {
      header[1] = 0x80 | 126;
      header.writeUInt16BE(length, 2);
    } else {
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(length), 2);
    }
    // Client frames must be masked (RFC 6455 §5.3).
    const mask = randomBytes(4);
    const masked = Buffer.alloc(length);
    for (let index = 0; index < length; index++) masked[index] = (payload[index] ?? 0) ^ (mask[index % 4] ?? 0);
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  private parse(): void {
    for (;;) {
      if (this.buffer.length < 2) return;
      const first = this.buffer[0] ?? 0;
      const second = this.buffer[1] ?? 0;
      let offset = 2;
      let length = second & 0x7f;
      if (length === 126) {
        if (this.buffer.length < 4) return;
        length = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.buffer.length < 10) return;
        length = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = (second & 0x80) !== 0;
      const maskOffset = offset;
      if (masked) offset += 4;
      if (this.buffer.length < offset + length) return;
      const payload = Buffer.from(this.buffer.subarray(offset, offset + length));
      if (masked) for (let index = 0; index < length; index++) payload[index] = (payload[index] ?? 0) ^ (this.buffer[maskOffset + (index % 4)] ?? 0);
      this.buffer = this.buffer.subarray(offset + length);

      const fin = (first & 0x80) !== 0;
      const opcode = first & 0x0f;
      if (opcode === 0x8) {
        this.socket.end();
        return;
      }
      if (opcode === 0x9) {
        this.frame(0xa, payload);
        continue;
      }
      if (opcode === 0x1 || opcode === 0x0) {
        this.fragments.push(payload);
        if (fin) {
          const message = Buffer.concat(this.fragments).toString("utf8");
          this.fragments = [];
          for (const listener of this.listeners) listener(message);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The Chrome DevTools Protocol over it.

interface Event {
  method: string;
  params: Record<string, unknown>;
}

class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();
  private readonly events: Event[] = [];
  private readonly eventWaiters = new Set<{ match: (event: Event) => boolean; resolve: (event: Event) => void }>();
  private failure: Error | undefined;

  constructor(private readonly socket: WebSocketClient) {
    socket.onMessage((text) => {
      const message: unknown = JSON.parse(text);
      assert.ok(typeof message === "object" && message !== null);
      const id: unknown = Reflect.get(message, "id");
      if (typeof id === "number") {
        const pending = this.pending.get(id);
        this.pending.delete(id);
        const error: unknown = Reflect.get(message, "error");
        if (error !== undefined) pending?.reject(new Error(`inspector: ${JSON.stringify(error)}`));
        else pending?.resolve(Reflect.get(message, "result"));
        return;
      }
      const method: unknown = Reflect.get(message, "method");
      const params: unknown = Reflect.get(message, "params");
      if (typeof method !== "string") return;
      const event: Event = { method, params: typeof params === "object" && params !== null ? (params as Record<string, unknown>) : {} };
      this.events.push(event);
      for (const waiter of this.eventWaiters) {
        if (waiter.match(event)) {
          this.eventWaiters.delete(waiter);
          waiter.resolve(event);
        }
      }
    });
    socket.onClose((error) => {
      this.failure = error;
      for (const pending of this.pending.values()) pending.reject(error);
      this.pending.clear();
    });
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /** The first event (already received or still to come) that matches. */
  event(description: string, match: (event: Event) => boolean): Promise<Event> {
    const seen = this.events.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return withTimeout(
      description,
      new Promise((resolve) => this.eventWaiters.add({ match, resolve })),
    );
  }
}

function withTimeout<T>(description: string, promise: Promise<T>, timeoutMs = STEP_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${description}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------

let child: ChildProcess | undefined;
let socket: WebSocketClient | undefined;

after(() => {
  socket?.close();
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

test("--inspect-brk exposes the image with a source map back to its TypeScript, then runs it", { timeout: TEST_TIMEOUT_MS }, async () => {
  const image = exampleImage("hello");
  const spawned = spawn(process.execPath, ["--inspect-port=0", ATOLL, "run", image, "--inspect-brk"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  child = spawned;
  let stdout = "";
  let stderr = "";
  spawned.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => spawned.on("exit", (code, signal) => resolve({ code, signal })));
  const url = await withTimeout(
    "the debugger URL on stderr",
    new Promise<string>((resolve, reject) => {
      spawned.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /^atoll: debugger listening on (ws:\/\/\S+)/m.exec(stderr);
        if (match?.[1] !== undefined) resolve(match[1]);
      });
      void exit.then(({ code, signal }) => reject(new Error(`atoll exited (${code ?? signal}) before printing a debugger URL; stderr: ${stderr}`)));
    }),
  );
  assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+\//, "the inspector listens on loopback only");

  socket = await withTimeout("the WebSocket connection", WebSocketClient.connect(url));
  const inspector = new Inspector(socket);
  await withTimeout("Debugger.enable", inspector.call("Debugger.enable"));
  await withTimeout("Runtime.runIfWaitingForDebugger", inspector.call("Runtime.runIfWaitingForDebugger"));

  // The image's code is compiled once the debugger lets the tender go on.
  const parsed = await inspector.event(`Debugger.scriptParsed for ${IMAGE_SCRIPT_URL}`, (event) => event.method === "Debugger.scriptParsed" && event.params.url === IMAGE_SCRIPT_URL);
  const sourceMapURL = parsed.params.sourceMapURL;
  assert.equal(typeof sourceMapURL, "string", "the image's script carries a sourceMappingURL");
  const dataUrl = /^data:application\/json(?:;charset=[^;,]+)?;base64,(.*)$/s.exec(String(sourceMapURL));
  assert.ok(dataUrl?.[1] !== undefined, `the source map is inline as a base64 data: URL, not ${String(sourceMapURL).slice(0, 80)}`);
  const map: unknown = JSON.parse(Buffer.from(dataUrl[1], "base64").toString("utf8"));
  assert.ok(typeof map === "object" && map !== null);
  assert.equal(Reflect.get(map, "version"), 3);
  const sources: unknown = Reflect.get(map, "sources");
  assert.ok(Array.isArray(sources), "the source map lists its sources");

  // The build names appliance files atoll://<name>/<path in the appliance> (reproducible wherever
  // the tree lives; DevTools shows the embedded sourcesContent). A file:// URL of the same file
  // would do as well: DevTools can then read it from disk.
  const fileUrl = pathToFileURL(MAIN_TS).href;
  const index = sources.findIndex((source: unknown) => source === fileUrl || source === "atoll://hello/src/main.ts");
  assert.ok(index !== -1, `examples/hello/src/main.ts is among the map's sources (as ${fileUrl} or atoll://hello/src/main.ts): ${JSON.stringify(sources)}`);
  if (sources[index] !== fileUrl) {
    const contents: unknown = Reflect.get(map, "sourcesContent");
    assert.ok(Array.isArray(contents), "a map whose sources are not files embeds their contents");
    assert.equal(contents[index], readFileSync(MAIN_TS, "utf8"), "the embedded main.ts is the one on disk");
  }

  // With --inspect-brk the tender stops at a `debugger;` statement just before calling start.
  const paused = await inspector.event("Debugger.paused before start", (event) => event.method === "Debugger.paused");
  const frames = paused.params.callFrames;
  const pausedScriptId: unknown = Array.isArray(frames) ? Reflect.get(Reflect.get(frames[0] ?? {}, "location") ?? {}, "scriptId") : undefined;
  const pausedIn = await inspector.event(`Debugger.scriptParsed for script ${String(pausedScriptId)}`, (event) => event.method === "Debugger.scriptParsed" && event.params.scriptId === pausedScriptId);
  assert.equal(pausedIn.params.url, "atoll://break-before-start.js", "paused at the tender's break before start");
  assert.equal(stdout, "", "nothing ran before the debugger let the appliance start");

  // Resumed with the session still attached, the appliance runs (Node then waits for the debugger
  // to disconnect before the process exits, so the client hangs up once the greeting is out).
  await withTimeout("Debugger.resume", inspector.call("Debugger.resume"));
  await withTimeout(
    "the greeting on stdout",
    new Promise<void>((resolve) => {
      const check = (): void => {
        if (stdout.includes("Hello, world!")) resolve();
      };
      spawned.stdout?.on("data", check);
      check();
    }),
  );
  socket.close();
  socket = undefined;

  const { code, signal } = await withTimeout("atoll to exit", exit);
  assert.equal(signal, null, `atoll was killed by ${signal}; stderr: ${stderr}`);
  assert.equal(code, 0, `atoll exited ${code}; stderr: ${stderr}`);
  assert.match(stdout, /Hello, world!/);
});

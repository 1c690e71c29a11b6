import { test } from "node:test";
import assert from "node:assert/strict";
import { installBase } from "../../src/lib/runtime/base.ts";
import { readCounters } from "../../src/lib/runtime/counters.ts";
import { serveHttp, serveHttpConnection, type FetchHandler, type HttpLogger, type ServeOptions } from "../../src/lib/http/server.ts";
import { HttpStats } from "../../src/lib/http/stats.ts";
import { latin1Decode, latin1Encode } from "../../src/lib/http/syntax.ts";
import { createFlowPair, ManualTimers, type MemoryFlow } from "../../src/lib/http/testing.ts";
import { Headers } from "../../src/lib/web/headers.ts";
import { Request } from "../../src/lib/web/request.ts";
import { Response } from "../../src/lib/web/response.ts";
import { ReadableStream } from "../../src/lib/web/streams.ts";
import { TextEncoder } from "../../src/lib/web/encoding.ts";
import { FakeBase } from "../helpers/fake-base.ts";

interface ParsedResponse {
  status: number;
  headers: Map<string, string[]>;
  body: string;
}

/** Parses as many complete responses as `text` holds; HEAD responses have no body. */
function parseResponses(text: string, methods: readonly string[], ended: boolean): ParsedResponse[] {
  const responses: ParsedResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = text.indexOf("\r\n\r\n", at);
    if (headEnd < 0) return responses;
    const [statusLine = "", ...lines] = text.slice(at, headEnd).split("\r\n");
    const status = Number(statusLine.split(" ")[1]);
    const headers = new Map<string, string[]>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
    }
    let bodyStart = headEnd + 4;
    if (status < 200) {
      at = bodyStart;
      continue;
    }
    const method = methods[responses.length] ?? "GET";
    let body = "";
    if (method === "HEAD" || status === 204 || status === 304) {
      // No content.
    } else if (headers.has("content-length")) {
      const length = Number(headers.get("content-length")?.[0]);
      if (text.length < bodyStart + length) return responses;
      body = text.slice(bodyStart, bodyStart + length);
      bodyStart += length;
    } else if (headers.get("transfer-encoding")?.[0] === "chunked") {
      for (;;) {
        const lineEnd = text.indexOf("\r\n", bodyStart);
        if (lineEnd < 0) return responses;
        const size = parseInt(text.slice(bodyStart, lineEnd), 16);
        if (text.length < lineEnd + 2 + size + 2) return responses;
        body += text.slice(lineEnd + 2, lineEnd + 2 + size);
        bodyStart = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
    } else {
      if (!ended) return responses;
      body = text.slice(bodyStart);
      bodyStart = text.length;
    }
    responses.push({ status, headers, body });
    at = bodyStart;
  }
}

class Client {
  text = "";
  ended = false;
  private reading: Promise<void>;

  constructor(readonly flow: MemoryFlow) {
    this.reading = (async () => {
      for (;;) {
        let chunk: Uint8Array | undefined;
        try {
          chunk = await flow.read();
        } catch {
          chunk = undefined;
        }
        if (chunk === undefined) break;
        this.text += latin1Decode(chunk);
        // Read at the pace of the event loop, as a real peer would: a server writing an endless
        // body must not turn the test into an endless chain of microtasks.
        await settle();
      }
      this.ended = true;
    })();
  }

  send(text: string | Uint8Array): Promise<void> {
    return this.flow.write(typeof text === "string" ? latin1Encode(text) : text);
  }

  /** Waits until `count` responses arrived (or the server closed). */
  async responses(count: number, methods: readonly string[] = []): Promise<ParsedResponse[]> {
    for (let turn = 0; turn < 10_000; turn++) {
      const parsed = parseResponses(this.text, methods, this.ended);
      if (parsed.length >= count || this.ended) return parsed;
      await settle();
    }
    throw new Error(`timed out waiting for ${count} responses; got: ${JSON.stringify(this.text.slice(0, 400))}`);
  }

  async end(): Promise<void> {
    await this.reading;
  }
}

function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

interface Setup {
  client: Client;
  done: Promise<void>;
  timers: ManualTimers;
  log: { access: string[]; errors: string[]; debug: string[] };
  stats: HttpStats;
}

function serve(handler: FetchHandler, options: Partial<ServeOptions> = {}): Setup {
  const [clientFlow, serverFlow] = createFlowPair();
  const timers = new ManualTimers();
  const log: Setup["log"] = { access: [], errors: [], debug: [] };
  const logger: HttpLogger = {
    access: (line) => log.access.push(line),
    error: (message) => log.errors.push(message),
    debug: (message) => log.debug.push(message),
  };
  const stats = new HttpStats();
  const done = serveHttpConnection(serverFlow, handler, { timers, wallClock: () => 1_700_000_000_000, logger, stats, lingerMs: 100, ...options });
  return { client: new Client(clientFlow), done, timers, log, stats };
}

const encoder = new TextEncoder();

test("GET: a Response goes out with Content-Length and Date; the access log and counters see it", async () => {
  const { client, log, stats } = serve((request) => new Response(`hello ${new URL(request.url).pathname}`));
  await client.send("GET /world?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\n\r\n");
  const [response] = await client.responses(1);
  assert.equal(response?.status, 200);
  assert.equal(response?.body, "hello /world");
  assert.deepEqual(response?.headers.get("content-type"), ["text/plain;charset=UTF-8"]);
  assert.deepEqual(response?.headers.get("date"), ["Tue, 14 Nov 2023 22:13:20 GMT"]);
  assert.deepEqual(log.access, ['198.18.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET /world?x=1 HTTP/1.1" 200 12']);
  const snapshot = stats.snapshot();
  assert.equal(snapshot.requests, 1);
  assert.equal(snapshot.responses2xx, 1);
  assert.ok((snapshot.bytesIn ?? 0) > 40 && (snapshot.bytesOut ?? 0) > 60);
});

test("the Request a handler sees: URL from Host and target, headers, method, remote address", async () => {
  const seen: string[] = [];
  const { client } = serve((request, connection) => {
    seen.push(`${request.method} ${request.url} ${request.headers.get("x-a")} ${connection.remoteAddress}`);
    return new Response(null, { status: 204 });
  });
  await client.send("GET /p?q HTTP/1.1\r\nHost: Example.com:8080\r\nX-A: 1\r\n\r\n");
  await client.send("GET http://other.example/abs HTTP/1.1\r\nHost: ignored\r\n\r\n");
  await client.send("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  await client.send("DELETE /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const responses = await client.responses(4);
  assert.deepEqual(
    responses.map((response) => response.status),
    [204, 204, 204, 204],
  );
  assert.deepEqual(seen, [
    "GET http://example.com:8080/p?q 1 198.18.0.1",
    "GET http://other.example/abs null 198.18.0.1",
    "OPTIONS http://h/* null 198.18.0.1",
    "DELETE http://localhost/old null 198.18.0.1",
  ]);
});

test("request bodies stream to the handler; a streamed response echoes them back (chunked), with backpressure both ways", async () => {
  const { client } = serve((request) => new Response(request.body), { limits: { maxBodyBytes: 1 << 22, bodyBufferBytes: 4096, outputHighWaterBytes: 4096 } });
  const size = 300_000;
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i++) payload[i] = 97 + (i % 26);
  await client.send(`POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: ${size}\r\n\r\n`);
  for (let at = 0; at < size; at += 10_000) await client.send(payload.subarray(at, at + 10_000));
  const [response] = await client.responses(1);
  assert.equal(response?.status, 200);
  assert.deepEqual(response?.headers.get("transfer-encoding"), ["chunked"]);
  assert.equal(response?.body, latin1Decode(payload));
});

test("chunked request bodies, read with text()", async () => {
  const { client } = serve(async (request) => new Response(`got ${(await request.text()).toUpperCase()}`));
  await client.send("PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n");
  const [response] = await client.responses(1);
  assert.equal(response?.body, "got WIKIPEDIA");
});

test("Expect: 100-continue: the client gets 100 when the handler reads, then the answer", async () => {
  const { client } = serve(async (request) => Response.json({ length: (await request.bytes()).length }));
  await client.send("POST /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  for (let turn = 0; turn < 100 && !client.text.includes("100 Continue"); turn++) await settle();
  assert.equal(client.text, "HTTP/1.1 100 Continue\r\n\r\n");
  await client.send("data");
  const [response] = await client.responses(1);
  assert.equal(response?.body, '{"length":4}');
});

test("a handler that answers without reading a 100-continue body closes the connection after it", async () => {
  const { client, done } = serve(() => new Response("too big", { status: 413 }));
  await client.send("POST /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4000000\r\n\r\n");
  const [response] = await client.responses(1);
  assert.equal(response?.status, 413);
  assert.deepEqual(response?.headers.get("connection"), ["close"]);
  await client.flow.close();
  await done;
});

test("HEAD: Content-Length of the body GET would send, and no body", async () => {
  const { client } = serve(() => new Response("0123456789"));
  await client.send("HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  const [head, get] = await client.responses(2, ["HEAD", "GET"]);
  assert.deepEqual(head?.headers.get("content-length"), ["10"]);
  assert.equal(head?.body, "");
  assert.equal(get?.body, "0123456789");
  assert.ok(client.text.indexOf("0123456789") === client.text.lastIndexOf("0123456789"));
});

test("pipelined requests with slow and fast handlers are answered in request order", async () => {
  const timers = new ManualTimers();
  const delays: Record<string, number> = { "/slow": 300, "/medium": 100, "/fast": 0 };
  const handler: FetchHandler = async (request) => {
    const path = new URL(request.url).pathname;
    await new Promise<void>((resolve) => timers.at(timers.now() + (delays[path] ?? 0), resolve));
    return new Response(path);
  };
  const { client } = serve(handler, { timers });
  await client.send(["/slow", "/medium", "/fast"].map((path) => `GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`).join(""));
  await settle();
  timers.advance(100);
  await settle();
  assert.equal(client.text, "", "the slow first response holds the others back");
  timers.advance(200);
  const responses = await client.responses(3);
  assert.deepEqual(
    responses.map((response) => response.body),
    ["/slow", "/medium", "/fast"],
  );
});

test("handler failures: 500 (logged and counted), and the connection goes on", async () => {
  let calls = 0;
  const { client, log, stats } = serve((request) => {
    calls++;
    if (request.url.endsWith("/throw")) throw new Error("boom");
    // What an untyped (JavaScript) handler can do; the cast is the test's point.
    if (request.url.endsWith("/wrong")) return "not a response" as unknown as Response;
    return new Response("fine");
  });
  await client.send("GET /throw HTTP/1.1\r\nHost: h\r\n\r\nGET /wrong HTTP/1.1\r\nHost: h\r\n\r\nGET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
  const responses = await client.responses(3);
  assert.deepEqual(
    responses.map((response) => response.status),
    [500, 500, 200],
  );
  assert.equal(calls, 3);
  assert.equal(stats.handlerErrors, 2);
  assert.match(log.errors[0] ?? "", /boom/);
  assert.match(log.errors[1] ?? "", /did not return a Response/);
});

test("onError shapes the error response", async () => {
  const { client } = serve(
    () => {
      throw new Error("private detail");
    },
    { onError: () => Response.json({ error: "sorry" }, { status: 503 }) },
  );
  await client.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  const [response] = await client.responses(1);
  assert.deepEqual([response?.status, response?.body], [503, '{"error":"sorry"}']);
});

test("a response stream that fails mid-way: the message is cut short and the connection closed", async () => {
  const { client, done, stats } = serve(
    () =>
      new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(encoder.encode("partial"));
            setImmediate(() => controller.error(new Error("disk on fire")));
          },
        }),
      ),
  );
  await client.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  await client.end();
  assert.match(client.text, /^HTTP\/1\.1 200 OK[\s\S]*\r\n7\r\npartial\r\n$/, "no last chunk: the client sees the truncation");
  await client.flow.close();
  await done;
  assert.equal(stats.abortedResponses, 1);
  assert.equal(stats.handlerErrors, 1);
});

test("Response.error() is answered with 500 and a close", async () => {
  const { client } = serve(() => Response.error());
  await client.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  const [response] = await client.responses(1);
  assert.equal(response?.status, 500);
  assert.deepEqual(response?.headers.get("connection"), ["close"]);
});

test("a GET with a body: the handler sees no body, the body is skipped, the next request is served", async () => {
  const { client } = serve((request) => new Response(`${request.body === null} ${new URL(request.url).pathname}`));
  await client.send("GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzGET /b HTTP/1.1\r\nHost: h\r\n\r\n");
  const responses = await client.responses(2);
  assert.deepEqual(
    responses.map((response) => response.body),
    ["true /a", "true /b"],
  );
});

test("a smuggling attempt gets 400, then the server half-closes, lingers, and closes", async () => {
  const { client, done, stats, log } = serve(() => new Response("should not run"));
  await client.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n");
  const [response] = await client.responses(1);
  assert.equal(response?.status, 400);
  await client.end();
  assert.equal(client.flow.writeClosed, false, "the client's side is still open; the server closed its own");
  await client.flow.close();
  await done;
  assert.equal(stats.parseErrors, 1);
  assert.equal(stats.snapshot()["parseErrors.lengthAndTransferEncoding"], 1);
  assert.equal(stats.requests, 0);
  assert.match(log.access[0] ?? "", /"POST \/ HTTP\/1\.1" 400 \d+$/);
  assert.match(log.debug[0] ?? "", /400 lengthAndTransferEncoding/);
});

test("idle timeout: 408, FIN, and after the linger the connection closes even if the peer never does", async () => {
  const { client, done, timers, stats } = serve(() => new Response("x"), { timeouts: { idleTimeoutMs: 1000 } });
  await client.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  await client.responses(1);
  timers.advance(1000);
  const responses = await client.responses(2);
  assert.equal(responses[1]?.status, 408);
  let finished = false;
  void done.then(() => (finished = true));
  await settle();
  assert.equal(finished, false, "lingering: still reading after the FIN");
  timers.advance(100);
  await done;
  assert.equal(stats.idleTimeouts, 1);
  assert.equal(stats.activeConnections, 0);
});

test("a peer reset cancels the response stream and counts a reset", async () => {
  let cancelled = false;
  const { client, done, stats } = serve(
    () =>
      new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            controller.enqueue(new Uint8Array(1024));
          },
          cancel() {
            cancelled = true;
          },
        }),
      ),
    { limits: { outputHighWaterBytes: 2048 } },
  );
  await client.send("GET /endless HTTP/1.1\r\nHost: h\r\n\r\n");
  for (let turn = 0; turn < 50 && client.text.length < 10_000; turn++) await settle();
  client.flow.abort();
  await done;
  assert.equal(cancelled, true);
  assert.equal(stats.resets, 1);
});

test("serveHttp: connections from a listener, counters registered, graceful close", async () => {
  let accept: ((flow: MemoryFlow) => void) | undefined;
  const timers = new ManualTimers();
  const logger: HttpLogger = { access: () => undefined, error: () => undefined, debug: () => undefined };
  let release: (() => void) | undefined;
  const server = serveHttp(
    (onFlow) => {
      accept = onFlow;
    },
    async (request) => {
      if (request.url.endsWith("/wait")) await new Promise<void>((resolve) => (release = resolve));
      return new Response("ok");
    },
    { timers, logger, wallClock: () => 0, lingerMs: 10, countersName: "http.test" },
  );
  const clients: Client[] = [];
  for (let i = 0; i < 3; i++) {
    const [clientFlow, serverFlow] = createFlowPair();
    accept?.(serverFlow);
    clients.push(new Client(clientFlow));
  }
  const [first, second, third] = clients;
  assert.ok(first !== undefined && second !== undefined && third !== undefined);
  await first.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
  await second.send("GET /wait HTTP/1.1\r\nHost: h\r\n\r\n");
  await first.responses(1);
  await settle();
  const closing = server.close();
  // The idle connections close at once; the busy one finishes its response, marked close.
  await first.end();
  await third.end();
  release?.();
  const [answer] = await second.responses(1);
  assert.deepEqual([answer?.body, answer?.headers.get("connection")], ["ok", ["close"]]);
  timers.advance(10);
  await closing;
  const counters = readCounters()["http.test"];
  assert.equal(counters?.connections, 3);
  assert.equal(counters?.requests, 2);
  assert.equal(counters?.activeConnections, 0);
  // A connection that arrives after close is closed straight away.
  const [lateClient, lateServer] = createFlowPair();
  accept?.(lateServer);
  const late = new Client(lateClient);
  await late.end();
  assert.equal(late.text, "");
});

test("defaults in an image: the scheduler's timers, the base's wall clock, atoll/logs sources http.access and http", async () => {
  const fake = new FakeBase();
  installBase(fake);
  const [clientFlow, serverFlow] = createFlowPair();
  const timers = new ManualTimers();
  const done = serveHttpConnection(serverFlow, () => new Response("logged"), { timers, lingerMs: 0 });
  const client = new Client(clientFlow);
  await client.send("GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  const [response] = await client.responses(1);
  assert.equal(response?.body, "logged");
  // FakeBase's wall clock is 1.7e18 ns + its monotonic clock.
  assert.deepEqual(response?.headers.get("date"), [new Date(1.7e12).toUTCString()]);
  await client.end();
  await client.flow.close();
  await done;
  assert.ok(fake.console.some((line) => /INFO  http\.access: 198\.18\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:[\d:]+ \+0000\] "GET \/x HTTP\/1\.1" 200 6/.test(line)), fake.console.join(""));
});

test("the Request passed to handlers is atoll/web's", async () => {
  let isOurs = false;
  const { client } = serve((request) => {
    isOurs = request instanceof Request;
    return new Response("");
  });
  await client.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  await client.responses(1);
  assert.equal(isOurs, true);
});

test("a bytes response leaves in one flow write per response, head and body together; pipelined ones are merged", async () => {
  const [client, server] = createFlowPair();
  const writes: number[] = [];
  const counting: MemoryFlow = Object.assign(Object.create(server) as MemoryFlow, {
    write: (bytes: Uint8Array): Promise<void> => {
      writes.push(bytes.length);
      return server.write(bytes);
    },
  });
  const page = new Uint8Array(612).fill(0x61);
  const served = serveHttpConnection(counting, () => new Response(page, { headers: { "content-type": "text/html" } }), { timers: new ManualTimers(), wallClock: () => 0, accessLog: false });
  let received = "";
  const readUntil = async (count: number): Promise<void> => {
    while ((received.match(/HTTP\/1\.1 200/g) ?? []).length < count || !received.endsWith("a")) {
      const chunk = await client.read();
      if (chunk === undefined) break;
      received += latin1Decode(chunk);
    }
  };
  await client.write(latin1Encode("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  await readUntil(1);
  assert.equal(writes.length, 1);
  await client.write(latin1Encode("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"));
  await readUntil(3);
  const responses = parseResponses(received, ["GET", "GET", "GET"], false);
  assert.equal(responses.length, 3);
  assert.ok(responses.every((response) => response.status === 200 && response.body.length === 612));
  assert.ok(writes.length <= 3, `${writes.length} writes`);
  await client.close();
  await served;
});

test("a malformed request body is answered 400 by the engine even when the handler answers at once", async () => {
  const handlers: [string, FetchHandler][] = [
    ["bytes", () => new Response("ok")],
    ["stream", (request) => new Response(request.body)],
    ["bodiless GET", () => new Response("ok")],
  ];
  for (const [name, handler] of handlers) {
    const { client, done } = serve(handler);
    const method = name === "bodiless GET" ? "GET" : "POST";
    await client.send(`${method} /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbad\r\n0\r\n\r\n`);
    const [response] = await client.responses(1);
    assert.equal(response?.status, 400, name);
    assert.deepEqual(response?.headers.get("connection"), ["close"], name);
    await client.flow.close();
    await done;
  }
});

test("responses copied from one Headers reuse its serialized fields, and see its changes", async () => {
  const template = new Headers({ "content-type": "text/plain", "x-version": "1" });
  const { client, done } = serve(() => new Response("ok", { headers: template }));
  await client.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  const [first, second] = await client.responses(2);
  assert.deepEqual([first?.headers.get("x-version"), second?.headers.get("x-version")], [["1"], ["1"]]);
  assert.deepEqual(second?.headers.get("content-length"), ["2"]);
  template.set("x-version", "2");
  template.append("x-more", "yes");
  await client.send("GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  const third = (await client.responses(3))[2];
  assert.deepEqual([third?.headers.get("x-version"), third?.headers.get("x-more"), third?.headers.get("connection")], [["2"], ["yes"], ["close"]]);
  await client.flow.close();
  await done;
});

test("request URLs on one connection follow each request's target and host, repeated or not", async () => {
  const urls: string[] = [];
  const { client, done } = serve((request) => {
    urls.push(request.url);
    return new Response("ok");
  });
  await client.send(
    "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b?q HTTP/1.1\r\nHost: h\r\n\r\nGET /b?q HTTP/1.1\r\nHost: other:8080\r\n\r\n" +
      "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\nGET http://abs.example/x HTTP/1.1\r\nHost: h\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
  );
  await client.responses(7);
  assert.deepEqual(urls, ["http://h/a", "http://h/a", "http://h/b?q", "http://other:8080/b?q", "http://h/*", "http://abs.example/x", "http://h/a"]);
  await client.flow.close();
  await done;
});

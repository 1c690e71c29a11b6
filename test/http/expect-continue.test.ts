/**
 * Regression: a handler that streams the request body into its response (an echo, a transform)
 * returns its Response before reading the body. serveHttp sent that response's head at once, so
 * the 100 Continue a client with `Expect: 100-continue` waits for could never be sent (RFC 9110
 * §10.1.1: not after a final status), and the client stalled until its own timeout (curl: 1 s)
 * before sending the body. serveHttp now takes such a stream's first chunk before the head.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { serveHttpConnection, type HttpLogger, type ServeOptions } from "../../src/lib/http/server.ts";
import type { Request } from "../../src/lib/web/request.ts";
import { latin1Decode, latin1Encode } from "../../src/lib/http/syntax.ts";
import { createFlowPair, ManualTimers, type MemoryFlow } from "../../src/lib/http/testing.ts";
import { Response } from "../../src/lib/web/response.ts";
import { ReadableStream } from "../../src/lib/web/streams.ts";

function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Reads what arrives until `done(text)` or the flow ends; at most `turns` event-loop turns. */
async function readUntil(flow: MemoryFlow, text: { value: string }, done: (text: string) => boolean, turns = 200): Promise<void> {
  let ended = false;
  const pump = (async () => {
    for (;;) {
      const chunk = await flow.read().catch(() => undefined);
      if (chunk === undefined) {
        ended = true;
        return;
      }
      text.value += latin1Decode(chunk);
    }
  })();
  void pump;
  for (let turn = 0; turn < turns && !done(text.value) && !ended; turn++) await settle();
}

function serve(handler: (request: Request) => Response | Promise<Response>, options: Partial<ServeOptions> = {}): { client: MemoryFlow; done: Promise<void>; errors: string[] } {
  const [client, server] = createFlowPair();
  const errors: string[] = [];
  const logger: HttpLogger = { access: () => undefined, error: (message) => errors.push(message), debug: () => undefined };
  const done = serveHttpConnection(server, handler, { timers: new ManualTimers(), wallClock: () => 1_700_000_000_000, logger, lingerMs: 0, ...options });
  return { client, done, errors };
}

test("Expect: 100-continue to a handler that echoes the body as a stream: 100 Continue comes first, then the echo", async () => {
  const { client, done } = serve((request) => new Response(request.body, { headers: { "content-type": "application/octet-stream" } }));
  const received = { value: "" };
  const reading = readUntil(client, received, (text) => text.includes("\r\n\r\n"));
  await client.write(latin1Encode("POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"));
  await reading;
  // Like curl, the client sends nothing more until it reads a 100 (or gives up).
  assert.match(received.value, /^HTTP\/1\.1 100 Continue\r\n\r\n$/, `before the body, the server sent: ${JSON.stringify(received.value)}`);
  await client.write(latin1Encode("hello"));
  await readUntil(client, received, () => false, 2000);
  assert.match(received.value, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  assert.ok(received.value.endsWith("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), JSON.stringify(received.value));
  await client.close();
  await done;
});

test("Expect: 100-continue to a handler that answers without reading the body: no 100, the answer at once", async () => {
  const { client, done } = serve(
    () =>
      new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(latin1Encode("no thanks"));
            controller.close();
          },
        }),
        { status: 403 },
      ),
  );
  const received = { value: "" };
  await client.write(latin1Encode("POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  await readUntil(client, received, (text) => text.includes("no thanks"));
  assert.match(received.value, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(received.value, /\r\nConnection: close\r\n/, "the client may or may not send its body: the server closes");
  assert.ok(!received.value.includes("100 Continue"));
  await client.close();
  await done;
});

test("Expect: 100-continue, an echo, and a body over the limit: the engine's 413, not a 500", async () => {
  const { client, done, errors } = serve((request) => new Response(request.body), { limits: { maxBodyBytes: 8 } });
  const received = { value: "" };
  const reading = readUntil(client, received, (text) => text.includes("100 Continue\r\n\r\n"));
  await client.write(latin1Encode("POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"));
  await reading;
  assert.match(received.value, /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  await client.write(latin1Encode("10\r\n0123456789abcdef\r\n0\r\n\r\n"));
  await readUntil(client, received, () => false, 2000);
  assert.match(received.value, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 413 Content Too Large\r\n/, JSON.stringify(received.value));
  assert.equal(received.value.match(/HTTP\/1\.1 /g)?.length, 2, "one final response");
  assert.deepEqual(errors, []);
  await client.close();
  await done;
});

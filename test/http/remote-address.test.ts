/**
 * Regression: a TCP flow's remoteAddress is an Ipv4Address, a branded 32-bit number. serveHttp
 * used String() on it, so the access log and ConnectionInfo showed 198.18.0.1 as "3323068417".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { serveHttpConnection, type ByteFlow, type HttpLogger } from "../../src/lib/http/server.ts";
import { latin1Decode, latin1Encode } from "../../src/lib/http/syntax.ts";
import { createFlowPair, ManualTimers } from "../../src/lib/http/testing.ts";
import { Response } from "../../src/lib/web/response.ts";
import { Ipv4Address } from "atoll/wire/address";

test("a numeric (Ipv4Address) remote address is logged and handed to handlers as a dotted quad", async () => {
  const [client, server] = createFlowPair();
  // What a TcpFlow from atoll/net/tcp gives: the address as an Ipv4Address number.
  const tcpLike: ByteFlow = {
    read: () => server.read(),
    write: (bytes) => server.write(bytes),
    shutdown: () => server.shutdown(),
    close: () => server.close(),
    abort: () => server.abort(),
    remoteAddress: Ipv4Address.fromOctets(198, 18, 0, 1),
    remotePort: 40000,
  };
  const access: string[] = [];
  const logger: HttpLogger = { access: (line) => access.push(line), error: () => undefined, debug: () => undefined };
  const seen: (string | undefined)[] = [];
  const done = serveHttpConnection(tcpLike, (_request, connection) => {
    seen.push(connection.remoteAddress);
    return new Response("ok");
  }, { timers: new ManualTimers(), wallClock: () => 1_700_000_000_000, logger, lingerMs: 0 });
  await client.write(latin1Encode("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
  let text = "";
  for (;;) {
    const chunk = await client.read();
    if (chunk === undefined) break;
    text += latin1Decode(chunk);
  }
  await client.close();
  await done;
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.deepEqual(seen, ["198.18.0.1"]);
  assert.deepEqual(access, ['198.18.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET / HTTP/1.1" 200 2']);
});

/**
 * A Hono app (https://hono.dev) on Atoll: Hono's fetch handler, `(request) => Response`, plugged
 * straight into serveHttp from atoll/http, on TCP port 80 of net device "service" (address from
 * --ipv4, else DHCP).
 *
 *   atoll run dist/hono.atoll -p 8080:80
 *   curl http://127.0.0.1:8080/users/42
 */
import "./globals.ts"; // first: installs the web globals before Hono's modules evaluate
import type { Appliance } from "atoll";
import { serveHttp, type FetchHandler } from "atoll/http";
import { openStack } from "atoll/net";
import { attachTcp } from "atoll/net/tcp";
import { Ipv4Address } from "atoll/wire/address";
import { app } from "./app.ts";

export const HTTP_PORT = 80;

/**
 * Hono's fetch, typed as a handler for Atoll's Request and Response. Hono is typed against the
 * global Request and Response, which in the image are Atoll's (installed by ./globals.ts, and so
 * typed by the image's type-check); the host type-check sees Node's instead, hence the cast.
 * Only the request is passed: Hono's second argument is its Env bindings, not serveHttp's connection.
 */
const honoFetch = app.fetch as unknown as (request: Parameters<FetchHandler>[0]) => ReturnType<FetchHandler>;

export default async function main(atoll: Appliance): Promise<void> {
  const stack = await openStack(atoll, "service", { hostname: "atoll-hono" });
  const tcp = attachTcp(stack, { countersName: "net.service.tcp" });
  serveHttp((accept) => tcp.listen(HTTP_PORT, accept, { noDelay: true }), (request) => honoFetch(request), { countersName: "http" });
  const address = stack.ipv4.address;
  atoll.log.info(`hono app on http://${address === undefined ? "?" : Ipv4Address.format(address)}:${HTTP_PORT}/`);
}

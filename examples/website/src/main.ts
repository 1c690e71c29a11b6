/**
 * A static website on net device "service" (address from --ipv4, else DHCP), HTTP/1.1 on TCP
 * port 80:
 * - every file under public/ (baked into the image by `atoll build`), with precompressed gzip and
 *   br variants, ETags, ranges and conditional requests (serveStatic from atoll/http);
 * - `POST /echo`: the request body streamed straight back (chunked uploads work too), with the
 *   request's Content-Type.
 *
 *   atoll run dist/website.atoll --net service=tap:tap0 --ipv4 service=198.18.0.2/24
 *   curl http://198.18.0.2/
 *   curl -H 'Transfer-Encoding: chunked' --data-binary @file http://198.18.0.2/echo
 *
 * The access log goes to the "http.access" log source (info): `--log http.access:quiet` turns it off.
 */
import type { Appliance } from "atoll";
import { imageAssets } from "atoll/assets";
import { serveHttp, serveStatic, type FetchHandler } from "atoll/http";
import { openStack } from "atoll/net";
import { attachTcp } from "atoll/net/tcp";
import { Response, URL } from "atoll/web";
import { Ipv4Address } from "atoll/wire/address";

export const HTTP_PORT = 80;
export const ECHO_PATH = "/echo";

/** `POST /echo` answers with the request's own body, as it arrives; everything else goes to `next`. */
export function withEcho(next: FetchHandler): FetchHandler {
  return (request, connection) => {
    const path = new URL(request.url).pathname;
    if (path !== ECHO_PATH) return next(request, connection);
    if (request.method !== "POST") {
      return new Response("Method Not Allowed: POST a body to /echo\n", {
        status: 405,
        headers: { allow: "POST", "content-type": "text/plain; charset=utf-8" },
      });
    }
    const contentType = request.headers.get("content-type") ?? "application/octet-stream";
    return new Response(request.body, { headers: { "content-type": contentType, "cache-control": "no-store" } });
  };
}

export default async function main(app: Appliance): Promise<void> {
  const stack = await openStack(app, "service", { hostname: "atoll-website" });
  const tcp = attachTcp(stack, { countersName: "net.service.tcp" });
  const assets = imageAssets();
  const address = stack.ipv4.address;
  const site = serveStatic(assets, { cacheControl: "public, max-age=60" });
  // noDelay: the server writes each response (head and body) in one piece, so Nagle's algorithm
  // would only hold back the last, partial segment of a response until the client's (delayed)
  // ACK: 40 ms per response on Linux clients, as with nginx's tcp_nodelay off.
  serveHttp((accept) => tcp.listen(HTTP_PORT, accept, { noDelay: true }), withEcho(site), { countersName: "http" });
  app.log.info(`serving ${assets.count} files on http://${address === undefined ? "?" : Ipv4Address.format(address)}:${HTTP_PORT}/ (POST ${ECHO_PATH} echoes)`);
}

/**
 * A Hono app (https://hono.dev) on Atoll, exported as on Workers, Bun and Deno: the entry's
 * default export is the app, an object with `fetch(request)`. Boot serves it over HTTP/1.1 on TCP
 * port 80 (`port` on the export would change that) of the appliance's only net device,
 * "service" (address from --ipv4, else DHCP), and logs the URL.
 *
 *   atoll run dist/hono.atoll -p 8080:80
 *   curl http://127.0.0.1:8080/users/42
 *
 * Hono names Request, Response, Headers and URL as globals; `atoll build` binds them to
 * atoll/web's classes, so no setup is needed before Hono's modules evaluate.
 */
import { app } from "./app.ts";

export default app;

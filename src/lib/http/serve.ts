/**
 * The common case in one call: `serve(handler, { port })` opens the stack on the appliance's net
 * device, attaches TCP, serves HTTP/1.1 on the port and logs the URL. `runFetchApp` runs an
 * appliance whose entry default-exports the Workers/Bun/Deno shape `{ fetch(request), port? }`
 * (so a Hono app is `export default app`); boot loads it only for such images.
 */
import type { Appliance, Main } from "../boot/index.ts";
import { appliance as runningAppliance } from "../boot/index.ts";
import * as logs from "../logs/index.ts";
import { openStack, type Stack } from "../net/index.ts";
import { attachTcp, type TcpLayer } from "../net/tcp/index.ts";
import type { Request } from "../web/request.ts";
import type { Response } from "../web/response.ts";
import { Ipv4Address } from "../wire/address.ts";
import { serveHttp, type FetchHandler, type HttpServer, type ServeOptions } from "./server.ts";

/** The port a fetch app and serve() use when none is given (the templates publish it with -p 8080:80). */
export const DEFAULT_HTTP_PORT = 80;

/** The Workers/Bun/Deno appliance shape: `export default { fetch(request) { ... }, port: 8000 }`. */
export interface FetchApp {
  fetch(request: Request, ...rest: never[]): Response | Promise<Response>;
  /** TCP port to serve on (default 80). */
  readonly port?: number | undefined;
}

/** What an appliance's entry may default-export: a main function or a fetch app. */
export type ApplianceExport = Main | FetchApp;

export interface ServeShortcutOptions extends ServeOptions {
  /** TCP port (default 80). */
  readonly port?: number | undefined;
  /** The net device to serve on; default: the appliance's only one. */
  readonly device?: string | undefined;
  /** Sent to the DHCP server when the address comes from DHCP. */
  readonly hostname?: string | undefined;
  /** Counters name for the HTTP server (default "http"). */
  readonly countersName?: string | undefined;
}

/** A running server from serve(): close() stops listening and lets open requests finish. */
export interface ServedHttp extends HttpServer {
  readonly port: number;
  readonly device: string;
  /** The URL it serves, as logged: http://<address>:<port>/. */
  readonly url: string;
  readonly stack: Stack;
}

/** One stack and TCP layer per device, shared by every serve() on it. */
const layers = new Map<string, Promise<{ stack: Stack; tcp: TcpLayer }>>();

const NET_HINT = 'declare one in atoll.config.ts: defineConfig({ name: ..., net: ["service"] })';

/** The device to serve on, or a one-line reason why there is none. */
export function chooseDevice(declared: readonly string[], requested: string | undefined): string | { problem: string } {
  if (requested !== undefined) {
    if (declared.length > 0 && !declared.includes(requested)) {
      return { problem: `net device '${requested}' is not declared in atoll.config.ts (declared: ${declared.join(", ")})` };
    }
    return requested;
  }
  if (declared.length === 0) return { problem: `serving HTTP needs a net device, and this appliance declares none: ${NET_HINT}` };
  const [only] = declared;
  if (declared.length > 1 || only === undefined) {
    return { problem: `the appliance declares several net devices (${declared.join(", ")}): name one, as in serve(handler, { device: "${declared[0] ?? ""}" })` };
  }
  return only;
}

/** The port, or a one-line reason why it is not one. */
export function checkPort(port: unknown): number | { problem: string } {
  if (port === undefined) return DEFAULT_HTTP_PORT;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 0xffff) {
    return { problem: `port ${JSON.stringify(port) ?? String(port)} is not a TCP port: give an integer from 1 to 65535` };
  }
  return port;
}

function layersFor(app: Appliance, device: string, hostname: string | undefined): Promise<{ stack: Stack; tcp: TcpLayer }> {
  let entry = layers.get(device);
  if (entry === undefined) {
    entry = openStack(app, device, hostname === undefined ? {} : { hostname }).then((stack) => ({
      stack,
      tcp: attachTcp(stack, { countersName: `net.${device}.tcp` }),
    }));
    // A failed open may be retried (for instance after fixing a boot parameter in a test).
    entry.catch(() => layers.delete(device));
    layers.set(device, entry);
  }
  return entry;
}

async function serveOn(app: Appliance, handler: FetchHandler, options: ServeShortcutOptions): Promise<ServedHttp> {
  const device = chooseDevice(app.declared.net, options.device);
  if (typeof device !== "string") throw new Error(device.problem);
  const port = checkPort(options.port);
  if (typeof port !== "number") throw new Error(port.problem);
  const { stack, tcp } = await layersFor(app, device, options.hostname);
  let stopListening: () => void = () => {};
  const server = serveHttp(
    (accept) => {
      // noDelay: the server writes each response in one piece, so Nagle would only delay its tail.
      const listener = tcp.listen(port, accept, { noDelay: true });
      stopListening = () => listener.close();
    },
    handler,
    options,
  );
  const address = stack.ipv4.address;
  const url = `http://${address === undefined ? "?" : Ipv4Address.format(address)}:${port}/`;
  logs.source("http").info(`serving ${url}`);
  return {
    stats: server.stats,
    port,
    device,
    url,
    stack,
    async close() {
      stopListening();
      await server.close();
    },
  };
}

/**
 * Serves `handler` over HTTP/1.1 on TCP `port` (default 80) of the appliance's net device (its
 * only one, or `device`), opening the stack (address from --ipv4, else DHCP) and TCP on first
 * use, and logs the URL. Resolves once it listens; throws, with a message naming the fix, when
 * the appliance has no such device or the port is not one. Several serve() calls on one device
 * share its stack (`served.stack`); do not also openStack() that device yourself, since a device
 * carries one stack.
 *
 *   export default async function main() {
 *     await serve((request) => new Response("hello\n"), { port: 80 });
 *   }
 */
export function serve(handler: FetchHandler, options: ServeShortcutOptions = {}): Promise<ServedHttp> {
  return serveOn(runningAppliance(), handler, options);
}

/** A fetch method is all that can be checked; what it returns, the HTTP server checks per request. */
function isFetchApp(value: object): value is FetchApp {
  return typeof Reflect.get(value, "fetch") === "function";
}

/** Boot's runner for a fetch-app default export (see FetchAppRunner in src/lib/boot/index.ts). */
export async function runFetchApp(exported: object, app: Appliance): Promise<string | undefined> {
  if (!isFetchApp(exported)) return "the default export has no fetch method";
  const port = checkPort(Reflect.get(exported, "port"));
  if (typeof port !== "number") return `the fetch app's ${port.problem}`;
  const device = chooseDevice(app.declared.net, undefined);
  if (typeof device !== "string") return `a fetch app ${device.problem.replace(/^serving HTTP /, "")}`;
  // Only the request: the second argument of Workers-style fetch is its env bindings (Hono's
  // Env), which an appliance has none of, not serveHttp's connection.
  // The server checks that what it returns is a Response.
  const handler: FetchHandler = (request) => exported.fetch(request);
  await serveOn(app, handler, { port, device });
  return undefined;
}

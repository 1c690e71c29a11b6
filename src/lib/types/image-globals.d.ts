/**
 * Globals an image has at run time beyond ECMAScript (installed by src/lib/runtime/globals.ts from
 * the base ABI), for type-checking code that runs inside an image. Host code gets these from
 * @types/node instead, which is why the root tsconfig leaves this file out.
 */
interface AtollConsole {
  log(...values: unknown[]): void;
  info(...values: unknown[]): void;
  warn(...values: unknown[]): void;
  error(...values: unknown[]): void;
  debug(...values: unknown[]): void;
  trace(...values: unknown[]): void;
}
declare var console: AtollConsole;
declare function setTimeout(callback: (...args: unknown[]) => void, delayMs?: number, ...args: unknown[]): number;
declare function setInterval(callback: (...args: unknown[]) => void, delayMs?: number, ...args: unknown[]): number;
declare function clearTimeout(id: number | undefined): void;
declare function clearInterval(id: number | undefined): void;
declare function queueMicrotask(callback: () => void): void;
declare var crypto: { getRandomValues<T extends ArrayBufferView>(array: T): T };

// Web-standard classes, present once an appliance calls installWebGlobals() from "atoll/web"
// (serveHttp does), so that Workers/Deno-style handler code type-checks without imports.
declare var Headers: typeof import("../web/headers.ts").Headers;
declare var Request: typeof import("../web/request.ts").Request;
declare var Response: typeof import("../web/response.ts").Response;
declare var URL: typeof import("../web/url.ts").URL;
declare var URLSearchParams: typeof import("../web/url.ts").URLSearchParams;
declare var TextEncoder: typeof import("../web/encoding.ts").TextEncoder;
declare var TextDecoder: typeof import("../web/encoding.ts").TextDecoder;
type Headers = import("../web/headers.ts").Headers;
type Request = import("../web/request.ts").Request;
type Response = import("../web/response.ts").Response;
type URL = import("../web/url.ts").URL;
type URLSearchParams = import("../web/url.ts").URLSearchParams;

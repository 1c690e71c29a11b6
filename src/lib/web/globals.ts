/**
 * Installs the web API shims as globals, each only where the realm lacks it, so that handler
 * code written for Workers- or Deno-style runtimes (`new Response("hi")`, `new URL(request.url)`)
 * runs unchanged in an image. Call it once, early in main:
 *
 *   import { installWebGlobals } from "atoll/web";
 *   installWebGlobals();
 *
 * Installed as Web IDL installs interfaces: writable, configurable, not enumerable.
 */
import { Headers } from "./headers.ts";
import { Request } from "./request.ts";
import { Response } from "./response.ts";
import { TextDecoder, TextEncoder } from "./encoding.ts";
import { URL, URLSearchParams } from "./url.ts";
import * as streams from "./streams.ts";

const WEB_GLOBALS: Readonly<Record<string, unknown>> = {
  Headers,
  Request,
  Response,
  URL,
  URLSearchParams,
  TextEncoder,
  TextDecoder,
  // Every Streams class streams.ts exports, so that the list is written once.
  ...streams,
};

/** Installs each missing web global; returns the names it installed. */
export function installWebGlobals(target: object = globalThis): string[] {
  const installed: string[] = [];
  for (const [name, value] of Object.entries(WEB_GLOBALS)) {
    if (Reflect.get(target, name) !== undefined) continue;
    Object.defineProperty(target, name, { value, writable: true, configurable: true, enumerable: false });
    installed.push(name);
  }
  return installed;
}

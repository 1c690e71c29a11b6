/**
 * Globals an image has at run time beyond ECMAScript, for type-checking code that runs inside an
 * image, at module top level as in main: boot installs console, the timers, queueMicrotask,
 * crypto.getRandomValues, TextEncoder and TextDecoder (src/lib/runtime/globals.ts) before the
 * appliance's modules evaluate. Host code gets these from @types/node instead, which is why the
 * root tsconfig leaves this file out. test/tenders/image-world.test.ts checks every name declared
 * here in a running image on each tender.
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

declare var TextEncoder: typeof import("../runtime/encoding.ts").TextEncoder;
declare var TextDecoder: typeof import("../runtime/encoding.ts").TextDecoder;

// Web-standard classes (Fetch, URL, Streams), so that Workers/Deno-style handler code (and packages such as Hono) works
// without imports: `atoll build` binds every free reference to these names to atoll/web's classes
// (esbuild's inject, src/lib/web/inject.ts), and images that never name them do not carry them.
// They are bindings, not properties of globalThis (`const`, not `var`), until installWebGlobals()
// from "atoll/web" makes them properties too.
declare const Headers: typeof import("../web/headers.ts").Headers;
declare const Request: typeof import("../web/request.ts").Request;
declare const Response: typeof import("../web/response.ts").Response;
declare const URL: typeof import("../web/url.ts").URL;
declare const URLSearchParams: typeof import("../web/url.ts").URLSearchParams;
declare const ByteLengthQueuingStrategy: typeof import("../web/streams.ts").ByteLengthQueuingStrategy;
declare const CountQueuingStrategy: typeof import("../web/streams.ts").CountQueuingStrategy;
declare const ReadableByteStreamController: typeof import("../web/streams.ts").ReadableByteStreamController;
declare const ReadableStream: typeof import("../web/streams.ts").ReadableStream;
declare const ReadableStreamBYOBReader: typeof import("../web/streams.ts").ReadableStreamBYOBReader;
declare const ReadableStreamBYOBRequest: typeof import("../web/streams.ts").ReadableStreamBYOBRequest;
declare const ReadableStreamDefaultController: typeof import("../web/streams.ts").ReadableStreamDefaultController;
declare const ReadableStreamDefaultReader: typeof import("../web/streams.ts").ReadableStreamDefaultReader;
declare const TransformStream: typeof import("../web/streams.ts").TransformStream;
declare const TransformStreamDefaultController: typeof import("../web/streams.ts").TransformStreamDefaultController;
declare const WritableStream: typeof import("../web/streams.ts").WritableStream;
declare const WritableStreamDefaultController: typeof import("../web/streams.ts").WritableStreamDefaultController;
declare const WritableStreamDefaultWriter: typeof import("../web/streams.ts").WritableStreamDefaultWriter;
type Headers = import("../web/headers.ts").Headers;
type Request = import("../web/request.ts").Request;
type Response = import("../web/response.ts").Response;
type URL = import("../web/url.ts").URL;
type URLSearchParams = import("../web/url.ts").URLSearchParams;
type TextEncoder = import("../runtime/encoding.ts").TextEncoder;
type TextDecoder = import("../runtime/encoding.ts").TextDecoder;
type ReadableStream<R = unknown> = import("../web/streams.ts").ReadableStream<R>;
type WritableStream<W = unknown> = import("../web/streams.ts").WritableStream<W>;
type TransformStream<I = unknown, O = unknown> = import("../web/streams.ts").TransformStream<I, O>;

/**
 * The web classes image-globals.d.ts declares, for esbuild's `inject` (src/build/build.ts): where
 * an appliance's code (or a package it bundles, such as Hono) refers to `Request`, `Response`,
 * `Headers`, `URL`, `URLSearchParams` or a Web Streams class as a free global, the build binds it to these classes, so
 * they exist wherever they are named, module top level included, and images that never name them
 * do not carry them. They are not properties of globalThis (installWebGlobals() makes them so).
 */
export { Headers } from "./headers.ts";
export { Request } from "./request.ts";
export { Response } from "./response.ts";
export { URL, URLSearchParams } from "./url.ts";
// Named one by one: with `export *`, esbuild keeps every stream class in every image that injects.
export {
  ByteLengthQueuingStrategy,
  CountQueuingStrategy,
  ReadableByteStreamController,
  ReadableStream,
  ReadableStreamBYOBReader,
  ReadableStreamBYOBRequest,
  ReadableStreamDefaultController,
  ReadableStreamDefaultReader,
  TransformStream,
  TransformStreamDefaultController,
  WritableStream,
  WritableStreamDefaultController,
  WritableStreamDefaultWriter,
} from "./streams.ts";

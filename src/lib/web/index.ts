/**
 * "atoll/web": the web platform classes an HTTP handler relies on, for the image realm, which has
 * only ECMAScript built-ins. Import them, or call installWebGlobals() to make them globals.
 *
 *   Headers, Request, Response        Fetch Standard (src/lib/web/{headers,request,response}.ts)
 *   URL, URLSearchParams               URL Standard (src/lib/web/url.ts)
 *   TextEncoder, TextDecoder           Encoding Standard, UTF-8 (src/lib/web/encoding.ts)
 *   ReadableStream, WritableStream...  Streams Standard, from web-streams-polyfill (src/lib/web/streams.ts)
 */
export { Headers, type HeadersInit } from "./headers.ts";
export { Request, type RequestInit, type RequestRedirect } from "./request.ts";
export { Response, responseBody, type ResponseInit, type ResponseType } from "./response.ts";
export { type BodyInit } from "./body.ts";
export { URL, URLSearchParams, type URLSearchParamsInit } from "./url.ts";
export { TextDecoder, TextEncoder, type TextDecoderOptions, type TextDecodeOptions, type TextEncoderEncodeIntoResult } from "./encoding.ts";
export * from "./streams.ts";
export { installWebGlobals } from "./globals.ts";

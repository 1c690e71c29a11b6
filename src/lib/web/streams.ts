/**
 * Web Streams for the image realm, from the web-streams-polyfill ponyfill (a faithful port of the
 * WHATWG reference implementation, pure ECMAScript, ~60 KB minified). The TCP flows
 * (atoll/net/tcp/streams) use the same classes, so their streams and these interoperate.
 */
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
} from "web-streams-polyfill";

/**
 * Web Streams over TCP flows, from the web-streams-polyfill ponyfill (an image has no
 * ReadableStream global). Importing this module installs `flow.readable` and `flow.writable`;
 * appliances that never import it do not bundle the polyfill.
 *
 *   import "atoll/net/tcp/streams";
 *   await flow.readable.pipeTo(flow.writable);   // an echo server
 *
 * The readable side pulls one chunk per `read()` (no read-ahead beyond the receive buffer, which
 * already is the buffer the window advertises); cancelling it closes the flow. The writable side
 * resolves each write when the bytes are in the send buffer; closing it half-closes (FIN),
 * aborting it resets the connection.
 */
import { ReadableStream, WritableStream } from "web-streams-polyfill";
import { installStreamAdapters, type TcpFlow } from "./flow.ts";

export function readableOf(flow: TcpFlow): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const chunk = await flow.read();
        if (chunk === undefined) controller.close();
        else controller.enqueue(chunk);
      },
      async cancel() {
        await flow.close();
      },
    },
    { highWaterMark: 0 },
  );
}

export function writableOf(flow: TcpFlow): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write(chunk) {
      return flow.write(chunk);
    },
    close() {
      return flow.shutdown();
    },
    abort() {
      flow.abort();
    },
  });
}

installStreamAdapters({ readable: readableOf, writable: writableOf });

export { ReadableStream, WritableStream };

/**
 * Consuming the PROXY protocol v2 header (wire/proxy-protocol.ts) that a trusted relay sends at
 * the start of each connection it carries: Atoll's user-mode gateway (`atoll run -p`), whose
 * address the tender passes to the image as the boot parameter `net.<dev>.proxy-protocol`.
 *
 * On a connection from that address (and only there: anyone else's bytes are left alone, so a
 * client cannot spoof an address by sending a header of its own; through the gateway its header
 * is plain data after the gateway's), the listener holds the flow back from the application
 * until the header is in, then hands it over with `remoteAddress`/`remotePort` set to the client
 * the header names and the bytes after the header as the first data read. A connection whose
 * first bytes are not a valid header, or that sends none within PROXY_HEADER_TIMEOUT_MS, is
 * reset: from the relay, that is a bug, not a client to serve under the relay's address.
 *
 * `ProxyHeaderReader` is the state machine (bytes in, an outcome out); `readProxyHeader` drives it
 * from a flow's reads.
 */
import { ProxyHeaderRepr, type ProxyHeaderRepr as Header } from "../../wire/proxy-protocol.ts";
import { WireError } from "../../wire/error.ts";
import type { Timers } from "../types.ts";
import type { FlowEndpoint, TcpFlow } from "./flow.ts";

/** How long a relayed connection may take to send its header. */
export const PROXY_HEADER_TIMEOUT_MS = 10_000;
/** The largest header taken: the gateway's are 28 bytes; TLVs may add some, not kilobytes. */
export const PROXY_HEADER_MAX_LENGTH = 1024;

export type ProxyHeaderOutcome =
  | { readonly kind: "more" }
  | { readonly kind: "header"; readonly header: Header; readonly rest: Uint8Array }
  | { readonly kind: "refused"; readonly reason: string };

/** Accumulates a stream's first bytes until they hold a whole header (or cannot). */
export class ProxyHeaderReader {
  #buffer = new Uint8Array(0);

  /** Takes the next chunk of the stream. After "header" or "refused", the reader is done. */
  push(chunk: Uint8Array): ProxyHeaderOutcome {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    this.#buffer = joined;
    const parsed = ProxyHeaderRepr.parse(joined, PROXY_HEADER_MAX_LENGTH);
    if (parsed instanceof WireError) return { kind: "refused", reason: parsed.message };
    if (parsed.incomplete) return { kind: "more" };
    return { kind: "header", header: parsed.header, rest: joined.slice(parsed.length) };
  }

  /** The stream ended (or timed out) before a whole header. */
  end(): ProxyHeaderOutcome {
    return { kind: "refused", reason: this.#buffer.length === 0 ? "no PROXY header: the stream ended" : `an incomplete PROXY header (${this.#buffer.length} bytes)` };
  }
}

/**
 * The client a header names: its INET source for a PROXY command over TCP; undefined for LOCAL
 * (the relay's own connection) and for what Atoll's IPv4 stack cannot name (other families),
 * where the connection's own endpoints stand, as the spec says.
 */
export function headerClient(header: Header): FlowEndpoint | undefined {
  if (header.command !== "proxy" || header.family !== "inet" || header.transport !== "stream") return undefined;
  return header.source;
}

/**
 * Reads the header from `flow`'s first bytes and applies it (`adoptProxiedClient`). Resolves
 * with undefined when done, or with why the flow was refused (it is then aborted).
 */
export async function readProxyHeader(flow: TcpFlow, timers: Timers): Promise<string | undefined> {
  const reader = new ProxyHeaderReader();
  let timedOut = false;
  const timer = timers.at(timers.now() + PROXY_HEADER_TIMEOUT_MS, () => {
    timedOut = true;
    flow.abort();
  });
  try {
    for (;;) {
      let chunk: Uint8Array | undefined;
      try {
        chunk = await flow.read();
      } catch (error) {
        if (timedOut) return `no PROXY header within ${PROXY_HEADER_TIMEOUT_MS / 1000} s`;
        return `the connection failed before its PROXY header: ${error instanceof Error ? error.message : String(error)}`;
      }
      const outcome = chunk === undefined ? reader.end() : reader.push(chunk);
      if (outcome.kind === "more") continue;
      if (outcome.kind === "refused") {
        flow.abort();
        return outcome.reason;
      }
      flow.adoptProxiedClient(headerClient(outcome.header), outcome.rest);
      return undefined;
    }
  } finally {
    timer.cancel();
  }
}

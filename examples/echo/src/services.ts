/**
 * The echo appliance's services, on any stack: main.ts runs them on the appliance's device, and
 * the tests on a virtual link.
 *
 * - Echo (RFC 862): over UDP, each datagram goes back to its sender; over TCP, "once a
 *   connection is established any data received is sent back", until the client closes.
 * - Discard (RFC 863): over TCP, "any data received is thrown away. No response is sent."
 */
import type { Stack, UdpSocket } from "atoll/net";
import type { TcpFlow, TcpLayer, TcpListener } from "atoll/net/tcp";

/** RFC 862 and RFC 863 assign these ports. */
export const ECHO_PORT = 7;
export const DISCARD_PORT = 9;

export interface ServiceLog {
  debug(message: string | (() => string)): void;
}

export function serveUdpEcho(stack: Stack, log: ServiceLog, port = ECHO_PORT): UdpSocket {
  const socket = stack.udp.bind(port);
  socket.onDatagram((payload, from) => {
    try {
      socket.send(payload, from);
    } catch (error) {
      // A reply that cannot be sent at once (no route back) is dropped, as a lost datagram would be.
      log.debug(`udp echo: reply to ${from.port} dropped: ${String(error)}`);
    }
  });
  return socket;
}

export function serveTcpEcho(tcp: TcpLayer, log: ServiceLog, port = ECHO_PORT): TcpListener {
  // No Nagle: an interactive client should see each echo at once.
  return tcp.listen(port, (flow) => void serve(flow, log, echo), { noDelay: true });
}

/** What the discard service reads into at a time: as much as a read can return at once. */
const DISCARD_BUFFER_BYTES = 64 * 1024;

export function serveTcpDiscard(tcp: TcpLayer, log: ServiceLog, port = DISCARD_PORT): TcpListener {
  return tcp.listen(port, (flow) => void serve(flow, log, discard));
}

async function echo(flow: TcpFlow): Promise<void> {
  // Each chunk goes back before the next is read: a client that does not read stops us (and,
  // through our window, itself) instead of filling memory.
  for await (const chunk of flow) await flow.write(chunk);
}

async function discard(flow: TcpFlow): Promise<void> {
  // One buffer for the whole connection (a "bring your own buffer" read): discarding allocates nothing.
  const sink = new Uint8Array(DISCARD_BUFFER_BYTES);
  while ((await flow.readInto(sink)) > 0);
}

/** Runs a service on one connection, then closes it; a failed connection is only logged. */
async function serve(flow: TcpFlow, log: ServiceLog, service: (flow: TcpFlow) => Promise<void>): Promise<void> {
  try {
    await service(flow);
    await flow.close();
  } catch (error) {
    log.debug(() => `tcp port ${flow.localPort}, client port ${flow.remotePort}: ${String(error)}`);
    flow.abort();
  }
}

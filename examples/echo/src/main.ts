/**
 * Echo services on net device "service" (address from --ipv4, else DHCP):
 * - UDP echo (RFC 862) on port 7: every datagram goes back to its sender unchanged.
 */
import type { Appliance } from "atoll";
import { openStack } from "atoll/net";

/** RFC 862: "the echo service is defined as a datagram based application on UDP ... port 7". */
const ECHO_PORT = 7;

export default async function main(app: Appliance): Promise<void> {
  const stack = await openStack(app, "service", { hostname: "atoll-echo" });
  const udpEcho = stack.udp.bind(ECHO_PORT);
  udpEcho.onDatagram((payload, from) => {
    try {
      udpEcho.send(payload, from);
    } catch (error) {
      // A reply that cannot be sent at once (no route back) is dropped, as a lost datagram would be.
      app.log.debug(`udp echo: reply to ${from.port} dropped: ${String(error)}`);
    }
  });
  app.log.info(`UDP echo on port ${ECHO_PORT}`);
}

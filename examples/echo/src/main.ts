/**
 * Echo services on net device "service" (address from --ipv4, else DHCP):
 * - UDP echo (RFC 862) on port 7: every datagram goes back to its sender unchanged;
 * - TCP echo (RFC 862) on port 7: every byte goes back, until the client closes;
 * - TCP discard (RFC 863) on port 9: every byte is read and dropped.
 *
 *   atoll run dist/echo.atoll --net service=tap:tap0 --ipv4 service=198.18.0.2/24
 *   echo hello | nc -N 198.18.0.2 7
 */
import type { Appliance } from "atoll";
import { openStack } from "atoll/net";
import { attachTcp } from "atoll/net/tcp";
import { DISCARD_PORT, ECHO_PORT, serveTcpDiscard, serveTcpEcho, serveUdpEcho } from "./services.ts";

export default async function main(app: Appliance): Promise<void> {
  const stack = await openStack(app, "service", { hostname: "atoll-echo" });
  const tcp = attachTcp(stack, { countersName: "net.service.tcp" });
  serveUdpEcho(stack, app.log);
  serveTcpEcho(tcp, app.log);
  serveTcpDiscard(tcp, app.log);
  app.log.info(`echo on UDP and TCP port ${ECHO_PORT}, discard on TCP port ${DISCARD_PORT}`);
}

/**
 * Answers ARP and ping on its net device "service" with Atoll's IPv4 stack: the address comes from
 * `atoll run ... --ipv4 service=<addr>/<len>[@<gateway>]`, or from DHCP when none is given. Any
 * size that reassembles is answered (up to 65507 bytes of ICMP data), and the reply is fragmented
 * to the link's MTU. `--log debug` prints every layer's counters at exit.
 */
import type { Appliance } from "atoll";
import { openStack } from "atoll/net";

export default async function main(app: Appliance): Promise<void> {
  await openStack(app, "service", { hostname: "atoll-ping" });
  app.log.info("answering ARP and ping");
}

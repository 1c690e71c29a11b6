/**
 * Answers ARP and ping (ICMP echo) on its net device "service", at the address given with
 * `atoll run ... --ipv4 service=<addr>/<len>`.
 */
import { registerCounters, type Appliance } from "atoll";
import { MacAddress, Ipv4Address } from "atoll/wire/address";
import { parseIpv4Config, ipv4ParamName } from "atoll/net/ipv4-config";
import { PingResponder } from "./responder.ts";

export default function main(app: Appliance): number | void {
  const setting = app.params[ipv4ParamName("service")];
  if (setting === undefined) {
    app.log.error("no IPv4 address for net device 'service': run with --ipv4 service=<addr>/<len>, e.g. --ipv4 service=198.18.0.2/24");
    return 2;
  }
  const config = parseIpv4Config(setting);
  if (typeof config === "string") {
    app.log.error(`bad IPv4 configuration ${config}`);
    return 2;
  }
  const device = app.net("service");
  const mac = MacAddress.read(device.mac, 0);
  const responder = new PingResponder(mac, config.cidr.address, device.maxFrameLength);
  registerCounters("ping", () => ({ ...responder.counters }));
  device.onFrame((frame) => {
    const reply = responder.handle(frame);
    if (reply !== undefined) device.send(reply);
  });
  device.send(responder.announcement());
  app.log.info(`answering ARP and ping at ${Ipv4Address.format(config.cidr.address)} (${MacAddress.format(mac)})`);
}

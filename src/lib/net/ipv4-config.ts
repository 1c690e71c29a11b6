/**
 * Static IPv4 configuration of an interface, as given by `atoll run --ipv4 <dev>=<addr>/<len>[@<gw>]`
 * and passed to the image as the boot parameter `net.<dev>.ipv4`. Pure, so that the CLI rejects a
 * bad flag with the same rules the image applies.
 */
import { Ipv4Address, Ipv4Cidr } from "../wire/address.ts";
import { WireError } from "../wire/error.ts";

export interface Ipv4Config {
  readonly cidr: Ipv4Cidr;
  /** Default gateway, on the interface's prefix. */
  readonly gateway?: Ipv4Address | undefined;
}

/** Parses "198.18.0.2/24" or "198.18.0.2/24@198.18.0.1"; returns the config or a one-line reason. */
export function parseIpv4Config(text: string): Ipv4Config | string {
  const at = text.indexOf("@");
  const cidrText = at === -1 ? text : text.slice(0, at);
  const cidr = Ipv4Cidr.parse(cidrText);
  if (cidr instanceof WireError) return `'${text}': ${cidr.message}; expected <address>/<prefix length>[@<gateway>], e.g. 198.18.0.2/24@198.18.0.1`;
  if (!Ipv4Address.isUnicast(cidr.address) || Ipv4Address.isLoopback(cidr.address)) {
    return `'${text}': ${Ipv4Address.format(cidr.address)} is not a usable host address`;
  }
  if (cidr.prefixLength === 0) return `'${text}': a /0 prefix leaves no on-link network; use the prefix of the attached link, e.g. /24`;
  // RFC 1122 §3.2.1.3: the all-zeros and all-ones host parts name the network and its broadcast.
  if (cidr.prefixLength <= 30 && (cidr.address === cidr.network || cidr.address === cidr.broadcast)) {
    return `'${text}': ${Ipv4Address.format(cidr.address)} is the ${cidr.address === cidr.network ? "network" : "broadcast"} address of /${cidr.prefixLength}, not a host address`;
  }
  if (at === -1) return { cidr };
  const gateway = Ipv4Address.parse(text.slice(at + 1));
  if (gateway instanceof WireError) return `'${text}': gateway ${gateway.message}`;
  if (!cidr.contains(gateway)) return `'${text}': gateway ${Ipv4Address.format(gateway)} is not on ${Ipv4Address.format(cidr.network)}/${cidr.prefixLength}`;
  if (gateway === cidr.address) return `'${text}': the gateway cannot be the interface's own address`;
  return { cidr, gateway };
}

/** The boot parameter that carries a device's static IPv4 configuration. */
export function ipv4ParamName(device: string): string {
  return `net.${device}.ipv4`;
}

/**
 * The user-mode link's DHCP server (RFC 2131): one guest, one address. It answers DISCOVER with
 * an OFFER and REQUEST for that address with an ACK (lease `leaseSeconds`, router = the gateway),
 * NAKs a REQUEST for any other address, and ignores the rest (DECLINE, RELEASE, INFORM, replies).
 *
 * Pure: it maps a received message to the reply to send (or none), so tests drive it directly;
 * gateway.ts binds it to UDP port 67 of the gateway's own stack.
 */
import { Ipv4Address, type Ipv4Cidr } from "../../lib/wire/address.ts";
import { DhcpRepr } from "../../lib/wire/dhcp.ts";
import { WireError } from "../../lib/wire/error.ts";

export interface DhcpServerOptions {
  /** The gateway: server identifier and router. */
  readonly server: Ipv4Address;
  /** The one address handed out, with the link's prefix (10.0.2.15/24). */
  readonly guest: Ipv4Cidr;
  readonly leaseSeconds: number;
}

export interface DhcpReply {
  readonly message: Uint8Array;
  /** Where to send it: the client's address when it has one (renewing), else broadcast. */
  readonly to: Ipv4Address;
  readonly type: "offer" | "ack" | "nak";
}

export class DhcpServer {
  /** Set when an ACK went out: the guest has its address. */
  bound = false;
  readonly counters = { received: 0, malformed: 0, offers: 0, acks: 0, naks: 0, ignored: 0 };

  constructor(private readonly options: DhcpServerOptions) {}

  /** The reply to one message received on port 67, or undefined for none. */
  handle(bytes: Uint8Array): DhcpReply | undefined {
    this.counters.received++;
    const request = DhcpRepr.parse(bytes);
    if (request instanceof WireError) {
      this.counters.malformed++;
      return undefined;
    }
    if (request.operation !== "boot-request") {
      this.counters.ignored++;
      return undefined;
    }
    const { server, guest } = this.options;
    switch (request.messageType) {
      case "discover":
        this.counters.offers++;
        return this.reply(request, "offer");
      case "request": {
        // SELECTING names a server: a request for another server's offer is not ours to answer.
        if (request.serverIdentifier !== undefined && request.serverIdentifier !== server) {
          this.counters.ignored++;
          return undefined;
        }
        const wanted = request.requestedAddress ?? request.clientAddress;
        if (wanted === guest.address) {
          this.counters.acks++;
          this.bound = true;
          return this.reply(request, "ack");
        }
        this.counters.naks++;
        return this.reply(request, "nak");
      }
      default:
        this.counters.ignored++;
        return undefined;
    }
  }

  private reply(request: DhcpRepr, type: "offer" | "ack" | "nak"): DhcpReply {
    const { server, guest, leaseSeconds } = this.options;
    const repr: DhcpRepr = {
      operation: "boot-reply",
      messageType: type,
      transactionId: request.transactionId,
      secs: 0,
      broadcast: request.broadcast,
      hops: 0,
      clientAddress: type === "ack" ? request.clientAddress : Ipv4Address.UNSPECIFIED,
      yourAddress: type === "nak" ? Ipv4Address.UNSPECIFIED : guest.address,
      serverAddress: Ipv4Address.UNSPECIFIED,
      relayAgentAddress: Ipv4Address.UNSPECIFIED,
      clientHardwareAddress: request.clientHardwareAddress,
      serverIdentifier: server,
    };
    if (type !== "nak") {
      repr.subnetMask = guest.netmask;
      repr.routers = [server];
      repr.leaseTime = leaseSeconds;
      repr.renewalTime = Math.floor(leaseSeconds / 2);
      repr.rebindingTime = Math.floor((leaseSeconds * 7) / 8);
    }
    const message = new Uint8Array(DhcpRepr.bufferLength(repr));
    DhcpRepr.emit(repr, message);
    // RFC 2131 §4.1: NAKs are broadcast; a renewing client (ciaddr set) gets a unicast reply.
    const unicast = type !== "nak" && request.clientAddress !== Ipv4Address.UNSPECIFIED && !request.broadcast;
    return { message, to: unicast ? request.clientAddress : Ipv4Address.BROADCAST, type };
  }
}


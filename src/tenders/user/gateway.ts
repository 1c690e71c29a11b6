/**
 * The user-mode network gateway: a helper process (`atoll __gateway`, spawned by the tender) that
 * sits on the other end of the appliance's user-mode link and runs Atoll's own stack there, as
 * passt does with the host's: 10.0.2.2/24 on a link that exists nowhere else, a DHCP server that
 * hands the guest 10.0.2.15/24 (router 10.0.2.2), and, for each published port, a node:net server
 * on 127.0.0.1:<host port> whose connections it splices to TCP connections to 10.0.2.15:<guest
 * port> through its stack. Nothing is routed anywhere else: there is no NAT to the outside.
 *
 * It ends with the tender: when its stdin (a pipe from the tender) or the link reaches end of file.
 * Signals to the whole process group do not end it first (see SIGNAL_GRACE_MS).
 * Its first message on the link is a control line (READY or ERROR ...), never a frame. Before READY
 * it seals itself (seal.ts): it parses every frame the appliance sends, so it runs with least
 * privilege, under a seccomp allowlist of its own (allowlist.ts), as nobody in an empty root when
 * the tender runs as root.
 */
import { randomFillSync } from "node:crypto";
import { createSocket, type Socket as DatagramSocket } from "node:dgram";
import { createServer, type Server, type Socket } from "node:net";
import { constants } from "node:os";
import { attachTcp, type TcpFlow, type TcpLayer } from "../../lib/net/tcp/index.ts";
import { createStack, type Stack } from "../../lib/net/stack.ts";
import type { UdpSocket } from "../../lib/net/udp.ts";
import type { NetLogger, NetLogFactory } from "../../lib/net/ethernet.ts";
import type { Timers } from "../../lib/net/types.ts";
import { Ipv4Address, Ipv4Cidr, MacAddress } from "../../lib/wire/address.ts";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT } from "../../lib/wire/dhcp.ts";
import { WireError } from "../../lib/wire/error.ts";
import { ProxyHeaderRepr } from "../../lib/wire/proxy-protocol.ts";
import type { PublishProtocol } from "../common/attachments.ts";
import { loadNative } from "../common/native.ts";
import { loadSptNative } from "../spt/native.ts";
import { DhcpServer } from "./dhcp-server.ts";
import { SocketLink } from "./link.ts";
import { publishedSocketFds, sealGateway, type GatewaySeal } from "./seal.ts";
import { DEFAULT_UDP_FLOW_LIMITS, UdpFlowTable, type UdpFlowLimits } from "./udp-flows.ts";

export const GATEWAY_ADDRESS = Ipv4Address.fromOctets(10, 0, 2, 2);
export const GUEST_CIDR = new Ipv4Cidr(Ipv4Address.fromOctets(10, 0, 2, 15), 24);
/** Locally administered, like slirp's 52:55:0a:00:02:02. */
const GATEWAY_MAC = MacAddress.fromOctets(0x52, 0x55, 0x0a, 0x00, 0x02, 0x02);
export const LEASE_SECONDS = 3600;
/** The link's fd in the gateway: stdio slot 3. */
export const GATEWAY_LINK_FD = 3;
export const CONTROL_READY = "ATOLL-GATEWAY READY";
export const CONTROL_ERROR = "ATOLL-GATEWAY ERROR ";
/**
 * How long the gateway outlives a SIGINT, SIGTERM or SIGHUP. Such signals usually go to many
 * processes at once: the gateway runs in a session of its own (spawnGateway), which keeps a
 * process group's (a terminal's Ctrl-C, `kill -TERM -<pgid>`, timeout) away from it, but systemd
 * signals every process of a unit's cgroup, so the gateway may get the tender's signal too, and
 * the tender ends the appliance with 128 + the signal's number. Were the gateway to die at once,
 * the appliance could see its link vanish first and abort (255) instead. So the gateway keeps
 * serving until its stdin closes (the tender is gone), and ends by itself only when the signal
 * was for it alone.
 */
export const SIGNAL_GRACE_MS = 5_000;
/** How long a host connection waits for the guest's address before it is tried anyway. */
const GUEST_WAIT_MS = 30_000;

/** True for an ARP or IPv4 frame sent from `address`: the guest has it configured (by DHCP or --ipv4). */
export function sentFrom(frame: Uint8Array, address: Ipv4Address): boolean {
  if (frame.length < 34) return false;
  const etherType = ((frame[12] ?? 0) << 8) | (frame[13] ?? 0);
  const offset = etherType === 0x0806 ? 28 : etherType === 0x0800 ? 26 : -1;
  return offset > 0 && Ipv4Address.read(frame, offset) === address;
}

export interface GatewayConfig {
  readonly device: string;
  readonly publish: readonly { readonly hostPort: number; readonly guestPort: number; readonly protocol: PublishProtocol; readonly spec: string }[];
  /** Log connections and DHCP to stderr. */
  readonly verbose?: boolean;
  /** How to seal itself once its sockets are open (seal.ts). */
  readonly seal: GatewaySeal;
}

function hostTimers(): Timers {
  return {
    now: () => performance.now(),
    at(deadline, callback) {
      const timer = setTimeout(callback, Math.max(0, deadline - performance.now()));
      return { cancel: () => clearTimeout(timer) };
    },
  };
}

function logFactory(verbose: boolean): NetLogFactory {
  return (source) => {
    const write = (level: string) => (message: string | (() => string)) => {
      if (!verbose && level !== "error") return;
      process.stderr.write(`atoll gateway: ${source}: ${typeof message === "function" ? message() : message}\n`);
    };
    const logger: NetLogger = { error: write("error"), warn: write("warn"), info: write("info"), debug: () => undefined };
    return logger;
  };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function bindDatagram(socket: DatagramSocket, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ address: "127.0.0.1", port, exclusive: true }, () => {
      socket.off("error", reject);
      resolve();
    });
  });
}

function listenError(spec: string, port: number, error: unknown): string {
  const code = error instanceof Error && "code" in error ? String(error.code) : "";
  if (code === "EADDRINUSE") return `-p ${spec}: host port 127.0.0.1:${port} is already in use: pick another host port`;
  if (code === "EACCES") return `-p ${spec}: no permission to listen on 127.0.0.1:${port} (ports below 1024 need root or CAP_NET_BIND_SERVICE): pick a port from 1024`;
  return `-p ${spec}: cannot listen on 127.0.0.1:${port}: ${error instanceof Error ? error.message : String(error)}`;
}

/** Entry of `atoll __gateway <config JSON>`. */
export async function gatewayMain(argv: readonly string[]): Promise<void> {
  const config = JSON.parse(argv[0] ?? "{}") as GatewayConfig;
  const native = loadNative();
  const fd = GATEWAY_LINK_FD;
  const quit = (): never => process.exit(0);
  process.stdin.on("end", quit);
  process.stdin.on("close", quit);
  process.stdin.on("error", quit);
  process.stdin.resume();
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      setTimeout(() => process.exit(128 + constants.signals[signal]), SIGNAL_GRACE_MS);
    });
  }

  const servers: { server: Server; guestPort: number }[] = [];
  const datagramSockets: { socket: DatagramSocket; guestPort: number }[] = [];
  for (const mapping of config.publish) {
    try {
      if (mapping.protocol === "udp") {
        const socket = createSocket({ type: "udp4" });
        await bindDatagram(socket, mapping.hostPort);
        datagramSockets.push({ socket, guestPort: mapping.guestPort });
      } else {
        const server = createServer({ noDelay: true, pauseOnConnect: true, allowHalfOpen: true });
        await listen(server, mapping.hostPort);
        servers.push({ server, guestPort: mapping.guestPort });
      }
    } catch (error) {
      native.write(fd, new TextEncoder().encode(CONTROL_ERROR + listenError(mapping.spec, mapping.hostPort, error)));
      process.exit(1);
    }
  }

  // The link's watcher makes the fd non-blocking (ioctl FIONBIO) and registers it: before lockdown.
  // No frame is read until this function returns to the event loop.
  const link = new SocketLink(native, fd, GATEWAY_MAC, quit);
  // Least privilege before the first frame is read: everything the gateway opens is open now.
  // (Nothing to do only under ATOLL_GATEWAY_UNSEALED=1 without a loadable addon: see spawn.ts.)
  const sealing = config.seal.filter || config.seal.emptyRoot || config.seal.dropPrivileges;
  if (sealing) {
    try {
      const published = publishedSocketFds();
      const expected = { listeners: servers.length, datagrams: datagramSockets.length };
      if (published.listeners.length !== expected.listeners || published.datagrams.length !== expected.datagrams) {
        throw new Error(
          `found ${published.listeners.length} TCP listeners and ${published.datagrams.length} UDP sockets, expected ${expected.listeners} and ${expected.datagrams}`,
        );
      }
      sealGateway(loadSptNative(), config.seal, published);
    } catch (error) {
      const reason = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
      native.write(fd, new TextEncoder().encode(`${CONTROL_ERROR}net device '${config.device}': the user-mode network gateway could not drop its privileges: ${reason.replace(/^atoll: /, "")}`));
      process.exit(1);
    }
  }

  const verbose = config.verbose === true;
  const log = logFactory(verbose);
  // READY goes first: creating the stack already sends frames (a gratuitous ARP).
  native.write(fd, new TextEncoder().encode(CONTROL_READY));
  const stack = createStack({
    link,
    timers: hostTimers(),
    random: (bytes) => void randomFillSync(bytes),
    ipv4: { cidr: new Ipv4Cidr(GATEWAY_ADDRESS, GUEST_CIDR.prefixLength) },
    log,
    // Nothing is routed beyond the gateway: say so at once (ICMP prohibited), so that the guest's
    // connects and sends to the outside fail in a round trip instead of after two minutes of SYNs.
    refuseRouting: true,
  });
  const dhcp = new DhcpServer({ server: GATEWAY_ADDRESS, guest: GUEST_CIDR, leaseSeconds: LEASE_SECONDS });
  // Connections wait until the guest has its address: it sent from it (a gratuitous ARP, with a
  // static --ipv4 too) or was ACKed; before that, ARP for it would fail and the connection with it.
  let guestUp = false;
  const bound: (() => void)[] = [];
  const up = (): void => {
    guestUp = true;
    link.observer = undefined;
    for (const wake of bound.splice(0)) wake();
  };
  link.observer = (frame) => {
    if (sentFrom(frame, GUEST_CIDR.address)) up();
  };
  const dhcpSocket = stack.udp.bind({ port: DHCP_SERVER_PORT });
  dhcpSocket.onDatagram((payload, from) => {
    if (from.port !== DHCP_CLIENT_PORT) return;
    const reply = dhcp.handle(payload);
    if (reply === undefined) return;
    if (verbose) process.stderr.write(`atoll gateway: dhcp: ${reply.type} ${Ipv4Address.format(GUEST_CIDR.address)} to ${Ipv4Address.format(reply.to)}\n`);
    try {
      dhcpSocket.send(reply.message, { address: reply.to, port: DHCP_CLIENT_PORT });
    } catch {
      // Unresolvable (no ARP reply yet): the client retries.
    }
    if (dhcp.bound && !guestUp) up();
  });
  const tcp = attachTcp(stack, { countersName: false, log });
  const guestReady = (): Promise<void> =>
    guestUp
      ? Promise.resolve()
      : new Promise((resolve) => {
          const timer = setTimeout(resolve, GUEST_WAIT_MS);
          bound.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });

  for (const { server, guestPort } of servers) {
    server.on("connection", (socket) => void splice(socket, tcp, guestPort, guestReady, verbose));
  }
  for (const { socket, guestPort } of datagramSockets) relayDatagrams(socket, stack, guestPort, DEFAULT_UDP_FLOW_LIMITS, verbose);
}

/** How often idle UDP flows are looked for: expiry is exact to within this. */
const UDP_SWEEP_MS = 1_000;

/**
 * Relays a published UDP port: each host client (address:port) gets a flow, a socket of its own
 * on the gateway's stack, whose datagrams go to the guest's port and whose replies from there go
 * back to that client. Datagrams are relayed as they are (up to 65507 bytes: beyond the link's
 * MTU, the gateway's IPv4 fragments them); one that cannot be sent (the guest not yet reachable,
 * a full queue, no ephemeral port left for a new flow) is dropped, as UDP may be.
 */
function relayDatagrams(host: DatagramSocket, stack: Stack, guestPort: number, limits: UdpFlowLimits, verbose: boolean): void {
  const guest = { address: GUEST_CIDR.address, port: guestPort };
  const flows = new UdpFlowTable<UdpSocket>(limits, (key, socket, why) => {
    socket.close();
    if (verbose) process.stderr.write(`atoll gateway: udp ${key} → guest port ${guestPort}: flow ended (${why})\n`);
  });
  host.on("error", () => undefined);
  host.on("message", (payload, client) => {
    const key = `${client.address}:${client.port}`;
    try {
      const flow = flows.outbound(key, performance.now(), () => {
        const socket = stack.udp.bind(0);
        socket.onDatagram((reply, from) => {
          if (from.address !== guest.address || from.port !== guest.port) return;
          if (!flows.inbound(key, performance.now())) return;
          // dgram sends later, from the buffer it is given: the stack's reply is a view it reuses.
          host.send(Buffer.from(reply), client.port, client.address);
        });
        // ICMP errors from the guest (port unreachable: nothing listens there) end nothing: UDP has no connection.
        socket.onError(() => undefined);
        if (verbose) process.stderr.write(`atoll gateway: udp ${key} → guest port ${guestPort}: new flow from port ${socket.localPort}\n`);
        return socket;
      });
      flow.send(payload, guest);
    } catch (error) {
      if (verbose) process.stderr.write(`atoll gateway: udp ${key} → guest port ${guestPort}: dropped: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  });
  setInterval(() => flows.expire(performance.now()), UDP_SWEEP_MS);
}

/** The PROXY protocol v2 header naming a host connection's client and the published address it reached (both 127.0.0.1). */
export function proxyHeaderFor(socket: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined; readonly localAddress?: string | undefined; readonly localPort?: number | undefined }): Uint8Array | undefined {
  const client = Ipv4Address.parse(socket.remoteAddress ?? "");
  const server = Ipv4Address.parse(socket.localAddress ?? "");
  if (client instanceof WireError || server instanceof WireError || socket.remotePort === undefined || socket.localPort === undefined) return undefined;
  const header: ProxyHeaderRepr = {
    command: "proxy",
    family: "inet",
    transport: "stream",
    source: { address: client, port: socket.remotePort },
    destination: { address: server, port: socket.localPort },
    tlvs: new Uint8Array(0),
  };
  const bytes = new Uint8Array(ProxyHeaderRepr.bufferLength(header));
  ProxyHeaderRepr.emit(header, bytes);
  return bytes;
}

/** Copies bytes both ways between a host socket and a flow to the guest, with backpressure and half-close. */
async function splice(socket: Socket, tcp: TcpLayer, guestPort: number, guestReady: () => Promise<void>, verbose: boolean): Promise<void> {
  socket.on("error", () => undefined);
  const peer = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
  await guestReady();
  if (socket.destroyed) return;
  let flow: TcpFlow;
  try {
    flow = await tcp.connect(GUEST_CIDR.address, guestPort, { noDelay: true });
  } catch (error) {
    if (verbose) process.stderr.write(`atoll gateway: ${peer} → guest port ${guestPort}: ${error instanceof Error ? error.message : String(error)}\n`);
    socket.resetAndDestroy();
    return;
  }
  if (verbose) process.stderr.write(`atoll gateway: ${peer} → guest port ${guestPort}: connected\n`);
  // First on the connection, before any of the client's bytes: who the client is (the appliance's
  // TCP consumes this from the gateway's address only; see src/lib/net/tcp/proxy-header.ts).
  const header = proxyHeaderFor(socket);
  if (header === undefined) {
    flow.abort();
    socket.resetAndDestroy();
    return;
  }
  void flow.write(header).catch(() => undefined);
  let failed = false;
  const fail = (): void => {
    if (failed) return;
    failed = true;
    flow.abort();
    if (!socket.destroyed) socket.resetAndDestroy();
  };
  socket.on("close", (hadError) => {
    if (hadError) fail();
  });

  // Host → guest: the socket stays paused while the flow's send buffer is full. (Not `for await`:
  // its end destroys the socket, which must stay open for the other direction.)
  const upstream = new Promise<void>((resolve, reject) => {
    socket.on("data", (chunk: Buffer) => {
      socket.pause();
      flow.write(chunk).then(() => socket.resume(), reject);
    });
    socket.on("end", () => {
      // 'end' comes after the last 'data' was handed over; wait for its write to be taken.
      flow.shutdown().then(resolve, reject);
    });
    socket.on("close", () => reject(new Error("host socket closed")));
  });
  // Guest → host: wait for 'drain' when the socket's buffer is full.
  const downstream = (async () => {
    for (;;) {
      const chunk = await flow.read();
      if (chunk === undefined) break;
      if (!socket.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            socket.off("drain", done);
            socket.off("close", done);
            resolve();
          };
          socket.on("drain", done);
          socket.on("close", done);
        });
      }
      if (socket.destroyed) throw new Error("host socket closed");
    }
    socket.end();
  })();
  socket.resume();
  const results = await Promise.allSettled([upstream, downstream]);
  if (results.some((result) => result.status === "rejected")) {
    fail();
    return;
  }
  await flow.close();
  socket.destroy();
}

/**
 * Least privilege for the user-mode network gateway, once its sockets are open and before it reads
 * its first frame: the same machinery as spt's appliance process (native/atoll_seccomp.c), with an
 * allowlist of its own (allowlist.ts).
 *
 *  1. warm up what Node, OpenSSL and glibc would otherwise do lazily with a forbidden call;
 *  2. find its fds by role: the published ports' sockets (by inode, in /proc/self/net/tcp and udp),
 *     libuv's epoll instances;
 *  3. build the filter (libseccomp) while files can still be read;
 *  4. as root (the tender started it in a mount namespace of its own, spawnGateway): enter an empty
 *     read-only root and become nobody with no capabilities and an empty bounding set (root
 *     without CAP_SYS_ADMIN, as in a container, still becomes nobody, without the empty root);
 *  5. PR_SET_NO_NEW_PRIVS and the filter on every thread (SECCOMP_FILTER_FLAG_TSYNC).
 *
 * Without root, step 4 is skipped: the gateway runs as the invoking user, filtered (as spt does).
 * docs/spt.md ("The user-mode network gateway: threat model") says what this buys.
 */
import { randomFillSync } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { filterRules } from "../spt/allowlist.ts";
import { eventLoopFds } from "../spt/appliance.ts";
import type { SptAddon } from "../spt/native.ts";
import { gatewayAllowlist, type GatewayLockdownFds } from "./allowlist.ts";

/** How the tender asks the gateway to seal itself (part of its config). */
export interface GatewaySeal {
  /** Started in a mount namespace of its own (the tender holds CAP_SYS_ADMIN): enter the empty root. */
  readonly emptyRoot: boolean;
  /** The tender holds CAP_SETUID, CAP_SETGID and CAP_SETPCAP (root): become uid:gid without capabilities. */
  readonly dropPrivileges: boolean;
  readonly uid: number;
  readonly gid: number;
  /** Install the seccomp filter. False only on an addon built without libseccomp (a warning says so). */
  readonly filter: boolean;
}

/** TCP state LISTEN in /proc/net/tcp (include/net/tcp_states.h: TCP_LISTEN = 10). */
const TCP_LISTEN = "0A";

/**
 * The socket inodes in a /proc/net/{tcp,udp} table (the header line first; columns: sl,
 * local_address, rem_address, st, tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, inode),
 * only those in state `state` when given.
 */
export function socketInodes(table: string, state?: string): Set<string> {
  const inodes = new Set<string>();
  for (const line of table.split("\n").slice(1)) {
    const columns = line.trim().split(/\s+/);
    const inode = columns[9];
    if (inode === undefined || !/^[0-9]+$/.test(inode) || inode === "0") continue;
    if (state !== undefined && columns[3] !== state) continue;
    inodes.add(inode);
  }
  return inodes;
}

/** This process's fds that are sockets, with their inodes (from `socket:[<inode>]`). */
function socketFds(): Map<number, string> {
  const sockets = new Map<number, string>();
  for (const entry of readdirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${entry}`);
    } catch {
      continue; // the directory's own fd, closed by now
    }
    const inode = /^socket:\[([0-9]+)\]$/.exec(target)?.[1];
    if (inode !== undefined) sockets.set(Number(entry), inode);
  }
  return sockets;
}

/** The published ports' sockets: TCP listeners and UDP sockets (IPv4 only: the gateway binds 127.0.0.1). */
export function publishedSocketFds(): { listeners: number[]; datagrams: number[] } {
  const listening = socketInodes(readFileSync("/proc/self/net/tcp", "utf8"), TCP_LISTEN);
  const udp = socketInodes(readFileSync("/proc/self/net/udp", "utf8"));
  const listeners: number[] = [];
  const datagrams: number[] = [];
  for (const [fd, inode] of socketFds()) {
    if (listening.has(inode)) listeners.push(fd);
    else if (udp.has(inode)) datagrams.push(fd);
  }
  return { listeners, datagrams };
}

/**
 * What Node, OpenSSL and glibc would otherwise do lazily, on first use, with a call the allowlist
 * forbids (as for spt's appliance process; docs/spt.md lists them).
 */
function warmUp(spt: SptAddon): void {
  // process.stderr is made on first use (fstat, ioctl, fcntl on fd 2): the gateway's error lines.
  void process.stderr.writable;
  // OpenSSL's generator seeds itself on first use (the stack draws ISNs and ephemeral ports).
  randomFillSync(new Uint8Array(16));
  // glibc's malloc reads /proc/sys/vm/overcommit_memory on the first arena shrink; SIGUSR1 would
  // start Node's inspector (a thread and a socket); no core dumps of a killed gateway.
  spt.prepare();
}

/**
 * Seals the running gateway (see the file comment); throws an Error with a one-line message if a
 * step fails: the gateway then reports it and exits, and the tender refuses to start.
 */
export function sealGateway(spt: SptAddon, seal: GatewaySeal, published: { listeners: readonly number[]; datagrams: readonly number[] }): GatewayLockdownFds {
  warmUp(spt);
  const fds: GatewayLockdownFds = { ...published, epolls: eventLoopFds(new Set()).epolls, pid: process.pid };
  const program = seal.filter ? spt.compileFilter(filterRules(gatewayAllowlist(fds)), "bpf") : undefined;
  if (seal.emptyRoot) spt.enterEmptyRoot();
  if (seal.dropPrivileges) spt.dropPrivileges(seal.uid, seal.gid);
  if (program !== undefined) spt.installFilter(program);
  return fds;
}

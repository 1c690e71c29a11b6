/**
 * The user-mode network gateway's system call allowlist: everything `atoll __gateway` may do once
 * its sockets are open (gateway.ts, seal.ts). Any other call, any call on another architecture (or
 * through the x32 ABI), and any call whose arguments fail the checks kills the process
 * (SECCOMP_RET_KILL_PROCESS).
 *
 * The gateway parses every frame the appliance sends, so it is written for an attacker who controls
 * the appliance (docs/spt.md, "The user-mode network gateway: threat model"). What it needs after
 * lockdown is the engine (V8, libuv, glibc: shared with spt, `engineCalls`), its link and stdin,
 * and the published ports: accepting connections on its TCP listeners, reading and writing them,
 * and datagrams on its UDP sockets. Nothing that makes a socket, opens a file or starts a process
 * is on the list: `socket`, `connect`, `bind`, `open*`, `execve` and `clone` are all refused, so a
 * compromised gateway can reach only the connections clients made to it.
 *
 * Measured with strace on Node 20 (test/tenders/user/gateway-strace.test.ts); docs/spt.md explains
 * each entry. Keep the two in step.
 *
 * Fds: accept4 makes new ones, so calls on connections cannot be checked by fd number; they need
 * no such check, because every fd the gateway can ever hold is one it had at lockdown (its link,
 * stdin, stdio, listeners, UDP sockets, libuv's own) or a connection accepted from a listener.
 * The calls that could do more on some fd than on others are checked: accept4 on the listeners
 * only, datagrams (sendmsg can carry fds and addresses) on the UDP sockets only, epoll on libuv's
 * instances only, socket options by level and name. (Writes on the link are not bounded by size as
 * spt bounds its TAP writes: "any fd but the link" would need a 64-bit "not equal", which a high
 * bit in the argument passes while the kernel reads the low 32; and a frame too large for the
 * appliance's buffer is cut short there and dropped as malformed anyway.)
 */
import { argIs, engineCalls, nodeExitCalls, onFds, type AllowedCall } from "../spt/allowlist.ts";

/** The file descriptors the gateway holds at lockdown, by role. */
export interface GatewayLockdownFds {
  /** Published TCP ports: listening sockets. */
  readonly listeners: readonly number[];
  /** Published UDP ports: bound datagram sockets. */
  readonly datagrams: readonly number[];
  /** libuv's epoll instances. */
  readonly epolls: readonly number[];
  /** The gateway's own pid: the only target of tgkill. */
  readonly pid: number;
}

// Linux x86_64 values (uapi headers).
const SOL_SOCKET = 1;
const SO_LINGER = 13;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SHUT_WR = 1;
/** accept4's flags: libuv accepts with SOCK_NONBLOCK | SOCK_CLOEXEC, so nothing else is needed. */
const SOCK_NONBLOCK_CLOEXEC = 0o4000 | 0o2000000;

export function gatewayAllowlist(fds: GatewayLockdownFds): AllowedCall[] {
  return [
    // The link, stdin, connections, libuv's wake-ups: see the file comment for why fds are not checked.
    { syscall: "read", why: "frames from the appliance (link), the tender's end of file (stdin), bytes from host connections, libuv's wake-ups and signal pipe", when: "always" },
    { syscall: "write", why: "frames to the appliance (link), bytes to host connections, libuv's wake-ups, messages on stderr", when: "always" },
    { syscall: "writev", why: "libuv writes chunks queued on a full host connection in one call", when: "always" },
    // The published ports.
    {
      syscall: "accept4",
      why: "a client connects to a published TCP port: only on the listening sockets, non-blocking and close-on-exec as libuv asks",
      when: onFds(fds.listeners, argIs(3, SOCK_NONBLOCK_CLOEXEC)),
    },
    { syscall: "getpeername", why: "a connection's client address, for the PROXY protocol v2 header (the appliance sees each client)", when: "always" },
    { syscall: "getsockname", why: "the published address a connection reached, for the PROXY header", when: "always" },
    {
      syscall: "setsockopt",
      why: "TCP_NODELAY on each accepted connection (relayed segments go at once); SO_LINGER 0 to reset a connection the guest refused or a client reset",
      when: [
        [argIs(1, IPPROTO_TCP), argIs(2, TCP_NODELAY)],
        [argIs(1, SOL_SOCKET), argIs(2, SO_LINGER)],
      ],
    },
    { syscall: "shutdown", why: "half-close: the guest ended its direction of a connection (SHUT_WR only)", when: [[argIs(1, SHUT_WR)]] },
    { syscall: "recvmsg", why: "datagrams from clients of a published UDP port: only on those sockets", when: onFds(fds.datagrams) },
    { syscall: "sendmsg", why: "the guest's replies to UDP clients: only on the published UDP sockets (bound to 127.0.0.1, so only to loopback)", when: onFds(fds.datagrams) },
    { syscall: "sendmmsg", why: "libuv sends datagrams queued while a UDP socket was full in one call (only on those sockets)", when: onFds(fds.datagrams) },
    // The event loop.
    { syscall: "epoll_pwait", why: "libuv's event loop waits for the link, stdin, sockets and timers", when: onFds(fds.epolls) },
    { syscall: "epoll_ctl", why: "libuv registers each accepted connection and each watcher change", when: onFds(fds.epolls) },
    ...engineCalls(fds.pid),
    { syscall: "close", why: "connections end; the gateway's sockets close at exit", when: "always" },
    ...nodeExitCalls("the gateway"),
  ];
}

/** The calls the gateway's allowlist names, whatever the fds: for docs and the strace test. */
export const GATEWAY_ALLOWED_SYSCALLS: readonly string[] = gatewayAllowlist({ listeners: [], datagrams: [], epolls: [], pid: 1 }).map(
  (call) => call.syscall,
);

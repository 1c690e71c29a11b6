/**
 * The spt tender's system call allowlist: everything the appliance process may do after lockdown.
 * Any other call, any call on another architecture (or through the x32 ABI), and any call whose
 * arguments fail the checks kills the process (SECCOMP_RET_KILL_PROCESS).
 *
 * The list is what V8, libuv and Node need to keep running JavaScript that does I/O only through
 * the base (measured on Node 20 under a seccomp filter, and by the strace test in
 * test/tenders/spt/), plus the base's own I/O. docs/spt.md explains each entry and compares the
 * list with Solo5's spt and hvt tenders. Keep the three in step.
 *
 * Checks on file descriptors use the fds that exist at lockdown: no call that creates one is
 * allowed afterwards, so an fd number can only ever mean what it meant then.
 */
import type { ArgumentCheck, FilterRule } from "./native.ts";

/** The file descriptors the appliance process holds at lockdown, by role. */
export interface LockdownFds {
  /** The image's TAP devices: frames in and out, a frame at most mtu + 18 bytes. */
  readonly taps: readonly { readonly fd: number; readonly mtu: number }[];
  /** Capture files (--pcap): written. */
  readonly pcaps: readonly number[];
  /** Block device files: positioned reads and writes within `capacity`, fsync at exit. */
  readonly blocks: readonly { readonly fd: number; readonly capacity: number }[];
  /** The most bytes the base moves to or from a block device in one call (its staging buffer). */
  readonly blockTransferMax: number;
  /** libuv's wake-up eventfds and pipes (async handles, signal delivery): read and written. */
  readonly wakeups: readonly number[];
  /** libuv's epoll instances. */
  readonly epolls: readonly number[];
  /** The socket to the launcher, written once with the boot trace (absent when not tracing). */
  readonly control?: number | undefined;
  /** The appliance process's own pid (in its PID namespace): the only target of tgkill. */
  readonly pid: number;
}

export interface AllowedCall {
  readonly syscall: string;
  /** Why the process needs it: the short form of docs/spt.md. */
  readonly why: string;
  /**
   * "always", or alternatives, each a list of checks that must all hold. No alternative at all (say
   * pread64 for an appliance without block devices) means the call is not allowed.
   */
  readonly when: "always" | readonly (readonly ArgumentCheck[])[];
}

const STDOUT = 1;
const STDERR = 2;
const STDIO = [0, 1, 2];

// Linux x86_64 values (uapi headers).
const PROT_EXEC = 0x4;
const MAP_ANONYMOUS = 0x20;
const MADV_DONTNEED = 4;
const MADV_FREE = 8;
const MADV_DONTFORK = 10;
const FUTEX_WAIT = 0;
const FUTEX_WAKE = 1;
const FUTEX_WAIT_BITSET = 9;
const FUTEX_WAKE_BITSET = 10;
const FUTEX_PRIVATE_FLAG = 128;
const FUTEX_CLOCK_REALTIME = 256;
const SIGABRT = 6;
const SIGSEGV = 11;
const GRND_NONBLOCK = 1;
const TCGETS = 0x5401;
const TCSETS = 0x5402;
const F_GETFL = 3;
const F_SETFL = 4;
/** CLOCK_REALTIME (0) to CLOCK_BOOTTIME (7): every clock but other processes' and threads' CPU clocks. */
const LAST_CLOCK_ID = 7;

/** Integer arguments are 32 bits wide: compare only those, as the kernel does. */
export const INT_MASK = "4294967295";
/** Largest Ethernet header a frame carries above the MTU (ETHERNET_HEADER_ROOM in the ABI). */
const FRAME_HEADER_ROOM = 18;

export function argIs(arg: ArgumentCheck["arg"], value: number): ArgumentCheck {
  return { arg, op: "maskedEq", mask: INT_MASK, value: String(value) };
}

export function argBitsAre(arg: ArgumentCheck["arg"], mask: number, value: number): ArgumentCheck {
  return { arg, op: "maskedEq", mask: String(mask), value: String(value) };
}

/** One alternative per fd: the call is allowed on exactly these descriptors. */
export function onFds(fds: readonly number[], ...more: ArgumentCheck[]): ArgumentCheck[][] {
  return [...new Set(fds)].sort((a, b) => a - b).map((fd) => [argIs(0, fd), ...more]);
}

export function atMost(arg: ArgumentCheck["arg"], value: number): ArgumentCheck {
  return { arg, op: "le", value: String(value) };
}

export function allowlist(fds: LockdownFds): AllowedCall[] {
  const control = fds.control === undefined ? [] : [fds.control];
  const tapFds = fds.taps.map((tap) => tap.fd);
  // A frame at most mtu + 18 bytes; a block transfer of at most one staging buffer, starting
  // within the device, in the spirit of Solo5's spt. The end of the range (offset + count) is beyond
  // what a BPF comparison can express; the start may be past the last block when a transfer comes
  // in pieces (a short read or write continues where it stopped).
  const tapWrites = fds.taps.map((tap) => [argIs(0, tap.fd), atMost(2, tap.mtu + FRAME_HEADER_ROOM)]);
  const blockTransfers = fds.blocks.map((block) => [argIs(0, block.fd), atMost(2, fds.blockTransferMax), atMost(3, block.capacity - 1)]);
  const calls: AllowedCall[] = [
    // The base's I/O.
    { syscall: "read", why: "netRead on a TAP; libuv reading its wake-up eventfds and signal pipe", when: onFds([...tapFds, ...fds.wakeups]) },
    {
      syscall: "write",
      why: "consoleWrite (stdout, and stderr for console.error/warn), tender messages (stderr), netWrite (TAP), pcap records, libuv wake-ups (uv_async_send from V8's threads), the boot trace",
      when: [...onFds([STDOUT, STDERR, ...fds.pcaps, ...fds.wakeups, ...control]), ...tapWrites],
    },
    { syscall: "pread64", why: "blockRead", when: blockTransfers },
    { syscall: "pwrite64", why: "blockWrite", when: blockTransfers },
    { syscall: "ftruncate", why: "a pcap ring (--pcap ...,files=<n>) empties its oldest file to reuse it", when: onFds(fds.pcaps) },
    { syscall: "fsync", why: "block devices are made durable when the appliance ends", when: onFds(fds.blocks.map((block) => block.fd)) },
    {
      syscall: "ppoll",
      why: "the wait in yield; without a signal mask (the fd set is in memory, so it cannot be checked)",
      when: [[{ arg: 3, op: "eq", value: "0" }]],
    },
    { syscall: "epoll_pwait", why: "libuv's event loop: the turn between two yields", when: onFds(fds.epolls) },
    { syscall: "epoll_ctl", why: "libuv registers its fds lazily, on the first loop turns after lockdown", when: onFds(fds.epolls) },
    ...engineCalls(fds.pid),
    { syscall: "close", why: "the tender closes its devices at the end (no call can create an fd, so any number is safe)", when: "always" },
    ...nodeExitCalls("the appliance"),
  ];
  return calls;
}

/** What Node's exit path needs, in any process that runs Node: `who` ends with exit_group. */
export function nodeExitCalls(who: string): AllowedCall[] {
  return [
    { syscall: "fstat", why: "Node restores the state of stdin/stdout/stderr at exit (on those fds only)", when: onFds(STDIO) },
    { syscall: "fcntl", why: "Node restores stdio's O_NONBLOCK flag at exit", when: [...onFds(STDIO, argIs(1, F_GETFL)), ...onFds(STDIO, argIs(1, F_SETFL))] },
    {
      syscall: "ioctl",
      why: "Node restores a terminal's mode at exit (TCGETS and TCSETS on stdio only)",
      when: [...onFds(STDIO, argIs(1, TCGETS)), ...onFds(STDIO, argIs(1, TCSETS))],
    },
    { syscall: "exit", why: "a thread ends (V8's workers at exit)", when: "always" },
    { syscall: "exit_group", why: `${who} ends`, when: "always" },
  ];
}

/**
 * What V8, libuv, glibc and Node need to run at all, whatever the process does: memory and threads,
 * clocks, OpenSSL's reseeding, abort, signal handling. Shared with the user-mode network gateway's
 * allowlist (src/tenders/user/allowlist.ts), which is the same engine. `pid` is the process's own
 * pid (in its PID namespace): the only target of tgkill.
 */
export function engineCalls(pid: number): AllowedCall[] {
  // The command is the op without its flag bits (>>> 0 keeps the mask an unsigned 32-bit number).
  const futexCommand = (command: number): ArgumentCheck[] => [argBitsAre(1, ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) >>> 0, command)];
  return [
    // Threads and memory: V8's heap and JIT, its worker threads, glibc's malloc.
    {
      syscall: "futex",
      why: "V8's worker threads (concurrent GC and compilation) and glibc locks: wait and wake only",
      when: [FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET].map(futexCommand),
    },
    {
      syscall: "mmap",
      why: "V8's heap pages and large mallocs: anonymous memory only, never mapped executable",
      when: [[argBitsAre(2, PROT_EXEC, 0), argBitsAre(3, MAP_ANONYMOUS, MAP_ANONYMOUS)]],
    },
    { syscall: "mprotect", why: "V8 commits JIT code pages read-write-execute (no --jitless), so no check is possible", when: "always" },
    { syscall: "munmap", why: "V8 and malloc return memory", when: "always" },
    { syscall: "brk", why: "malloc's main arena", when: "always" },
    {
      syscall: "madvise",
      why: "V8 and malloc release pages (DONTNEED, FREE) and keep them out of forks (DONTFORK)",
      when: [MADV_DONTNEED, MADV_FREE, MADV_DONTFORK].map((advice) => [argIs(2, advice)]),
    },
    { syscall: "sched_yield", why: "spin-then-yield paths in V8 and libuv", when: "always" },
    // Clocks: normally served by the vDSO without a system call; a host without a vDSO clock needs these.
    { syscall: "clock_gettime", why: "clockMonotonic/clockWall and V8's timers on hosts without a vDSO clock", when: [[{ arg: 0, op: "le", value: String(LAST_CLOCK_ID) }]] },
    { syscall: "getrandom", why: "entropy: OpenSSL reseeds its generator from the kernel now and then", when: [[argBitsAre(2, ~GRND_NONBLOCK >>> 0, 0)]] },
    // Process bookkeeping.
    { syscall: "getpid", why: "V8 (GC tracing, isolate ids) and glibc's abort", when: "always" },
    { syscall: "gettid", why: "glibc's abort, for tgkill", when: "always" },
    {
      syscall: "tgkill",
      why: "abort() (SIGABRT), and Node's SIGSEGV handler re-raising a crash (SIGSEGV): to itself only, so that a crash is reported as one, not as a forbidden call",
      when: [SIGABRT, SIGSEGV].map((signal) => [argIs(0, pid), argIs(2, signal)]),
    },
    { syscall: "rt_sigaction", why: "the exit path resets signal handlers", when: "always" },
    { syscall: "rt_sigprocmask", why: "libuv and the exit path block and unblock signals", when: "always" },
    { syscall: "rt_sigreturn", why: "returning from a signal handler (SIGINT/SIGTERM end the appliance through libuv)", when: "always" },
    { syscall: "restart_syscall", why: "a wait interrupted by a signal resumes", when: "always" },
  ];
}

/** The calls the allowlist names, whatever the fds: for docs and for the strace test. */
export const ALLOWED_SYSCALLS: readonly string[] = allowlist({ taps: [], pcaps: [], blocks: [], blockTransferMax: 0, wakeups: [], epolls: [], pid: 1 }).map(
  (call) => call.syscall,
);

/** libseccomp rules for the allowlist. */
export function filterRules(calls: readonly AllowedCall[]): FilterRule[] {
  return calls.flatMap((call) => (call.when === "always" ? [{ syscall: call.syscall, checks: [] }] : call.when.map((checks) => ({ syscall: call.syscall, checks }))));
}

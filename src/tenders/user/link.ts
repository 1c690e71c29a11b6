/**
 * The user-mode link: one Ethernet frame per message over an AF_UNIX SOCK_SEQPACKET socketpair
 * between the tender (the appliance's net device) and the gateway process (Atoll's own stack).
 *
 * Tender side: `userBackend` is a HostNetBackend like the TAP's (the base polls its fd with
 * ppoll). Gateway side: `SocketLink` is a Link for createStack, driven by a libuv watcher so that
 * the gateway's event loop (node:net servers, timers) keeps turning and sleeps when idle.
 */
import { constants } from "node:os";
import type { Link } from "../../lib/net/types.ts";
import type { MacAddress } from "../../lib/wire/address.ts";
import { NetDeviceGone, type HostNetBackend } from "../common/devices.ts";
import type { NativeAddon, WatchHandle } from "../common/native.ts";

const { EAGAIN, EBADF, ECONNRESET } = constants.errno;

/**
 * The link's MTU. The link exists only between the appliance and the gateway (two Atoll stacks on
 * a socketpair), so nothing holds it to Ethernet's 1500: with 64 KiB datagrams, as on Linux's
 * loopback, TCP through `-p` moves a segment per 64 KiB instead of per 1.5 KiB (each segment
 * costs both stacks a message, a checksum pass and the per-segment work). 65520: a multiple of
 * 16 just below 65535, the largest IPv4 datagram.
 */
export const USER_LINK_MTU = 65520;
/** Room for the largest frame: MTU + Ethernet header + one VLAN tag. */
const FRAME_ROOM = USER_LINK_MTU + 18;
/** How long the tender waits for room before dropping a frame; the gateway drains quickly. */
const WRITE_WAIT_NS = 20_000_000;

/**
 * The base's view of the tender's end of the socketpair. When the gateway is gone (end of file)
 * reads throw NetDeviceGone, and the tender ends the appliance with one line: the fd would
 * otherwise poll readable forever, and the link cannot come back. The gateway outlives signals to
 * the process group (gateway.ts), so end of file here means it died alone (killed, or crashed).
 * `gatewayPid`, when known, goes into the message, so that the operator can look for the cause.
 */
export function userBackend(native: NativeAddon, fd: number, gatewayPid?: number): HostNetBackend {
  let open = true;
  return {
    fd,
    mtu: USER_LINK_MTU,
    read(buffer) {
      if (!open) return -EBADF;
      const n = native.read(fd, buffer);
      // End of file; or ECONNRESET, which a socketpair reports instead when the gateway died with
      // frames from us still unread (under load).
      if (n === 0 || n === -ECONNRESET) {
        const which = gatewayPid === undefined ? "" : ` (pid ${gatewayPid})`;
        throw new NetDeviceGone(`the user-mode network gateway${which} exited: the appliance has lost its network (was the gateway killed?)`);
      }
      return n;
    },
    write(frame) {
      if (!open) return -EBADF;
      let n = native.write(fd, frame);
      // Backpressure instead of loss: wait (briefly) for the gateway to make room.
      if (n === -EAGAIN && native.waitWritable(fd, WRITE_WAIT_NS) === 1) n = native.write(fd, frame);
      return n;
    },
    close() {
      if (!open) return;
      open = false;
      native.close(fd);
    },
  };
}

/** Frames queued at most while the tender is not reading; beyond that the link drops, as a wire would. */
const MAX_QUEUED_FRAMES = 4096;
/** Frames read per wakeup before letting the event loop turn (timers, host sockets). */
const READ_BURST = 256;

/** The gateway's end: a Link over the socketpair fd. */
export class SocketLink implements Link {
  readonly mtu = USER_LINK_MTU;
  #listener: ((frame: Uint8Array) => void) | undefined;
  readonly #queue: Uint8Array[] = [];
  readonly #buffer = new Uint8Array(FRAME_ROOM);
  readonly #watch: WatchHandle;
  #closed = false;
  /** Frames dropped because the queue was full or the write failed. */
  dropped = 0;
  /** Sees each received frame before the stack does, while set. */
  observer: ((frame: Uint8Array) => void) | undefined;

  constructor(
    private readonly native: NativeAddon,
    private readonly fd: number,
    readonly mac: MacAddress,
    private readonly onClose: () => void,
  ) {
    this.#watch = native.watch(fd, 1, (events) => this.#ready(events));
  }

  onFrame(listener: (frame: Uint8Array) => void): void {
    this.#listener = listener;
  }

  /** Sends the frame now, or queues a copy while the socket is full. */
  send(frame: Uint8Array): void {
    if (this.#closed) return;
    if (this.#queue.length === 0) {
      const n = this.native.write(this.fd, frame);
      if (n === frame.length) return;
      if (n !== -EAGAIN) {
        this.dropped++;
        return;
      }
      this.native.rewatch(this.#watch, 3);
    }
    if (this.#queue.length >= MAX_QUEUED_FRAMES) {
      this.dropped++;
      return;
    }
    this.#queue.push(frame.slice());
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.native.unwatch(this.#watch);
  }

  #ready(events: number): void {
    if (this.#closed) return;
    if ((events & 2) !== 0) this.#flush();
    if ((events & 5) !== 0) this.#drain();
  }

  #flush(): void {
    while (this.#queue.length > 0) {
      const frame = this.#queue[0] as Uint8Array;
      const n = this.native.write(this.fd, frame);
      if (n === -EAGAIN) return;
      if (n !== frame.length) this.dropped++;
      this.#queue.shift();
    }
    if (!this.#closed) this.native.rewatch(this.#watch, 1);
  }

  #drain(): void {
    for (let i = 0; i < READ_BURST && !this.#closed; i++) {
      const n = this.native.read(this.fd, this.#buffer);
      if (n === -EAGAIN) return;
      if (n <= 0) {
        // 0: the tender closed its end (it exited); anything else: the fd is unusable.
        this.close();
        this.onClose();
        return;
      }
      const frame = this.#buffer.subarray(0, n);
      this.observer?.(frame);
      this.#listener?.(frame);
    }
  }
}

/**
 * TAP devices for the `node` tender: attach to an interface the operator created, then move
 * raw Ethernet frames with non-blocking reads and writes.
 *
 * Opening never creates an interface (its addresses, bridge and firewall are the operator's
 * business), and every way opening can fail is reported as a one-line TapError that says what
 * is wrong and what to run, because the tender prints it verbatim to whoever started the image.
 */
import { constants } from "node:os";

import { loadNative, type NativeAddon } from "./native.ts";

/** Linux interface names are at most IFNAMSIZ - 1 bytes. */
export const MAX_IFNAME_BYTES = 15;

const { EAGAIN, EINTR, EBADF } = constants.errno;

export interface TapHandle {
  /** Non-blocking, close-on-exec fd, usable with NativeAddon.poll. */
  readonly fd: number;
  readonly name: string;
  /** The interface MTU when opened; a frame may be up to mtu + 18 bytes (Ethernet header + VLAN tag). */
  readonly mtu: number;
  /**
   * Reads one frame into `buf`; returns its length, or 0 when nothing is pending. A frame larger
   * than `buf` is truncated by the kernel, so size `buf` for mtu + 18. Throws a TapError only
   * when the device is unusable (closed, or deleted under us).
   */
  read(buf: Uint8Array): number;
  /** Writes one frame; returns its length or a negative errno (-ENOBUFS, -EIO, -EINVAL...): the
   * caller drops the frame as a NIC would, so this never throws. */
  write(frame: Uint8Array): number;
  /** Idempotent. */
  close(): void;
}

/** Why a TAP could not be opened or used; `code` is the errno name (or a validation code). */
export class TapError extends Error {
  override readonly name = "TapError";
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** Attaches to the existing TAP interface `ifname`; throws a TapError on any failure. */
export function openTap(ifname: string): TapHandle {
  validateName(ifname);
  const native = loadNative();
  let fd: number;
  try {
    fd = native.tapOpen(ifname);
  } catch (error) {
    throw openError(ifname, error);
  }
  let mtu: number;
  try {
    mtu = native.ifMtu(ifname);
  } catch (error) {
    native.close(fd);
    throw openError(ifname, error);
  }
  return new Tap(native, fd, ifname, mtu);
}

/**
 * Wraps a TAP fd that was opened (with openTap) by another process, which passed it on with the
 * interface's name and MTU: the spt tender's appliance process cannot open devices itself.
 */
export function adoptTap(fd: number, ifname: string, mtu: number): TapHandle {
  return new Tap(loadNative(), fd, ifname, mtu);
}

class Tap implements TapHandle {
  #open = true;

  constructor(
    private readonly native: NativeAddon,
    readonly fd: number,
    readonly name: string,
    readonly mtu: number,
  ) {}

  read(buf: Uint8Array): number {
    if (!this.#open) throw new TapError("EBADF", `tap device '${this.name}' is closed: open it again with openTap`);
    for (;;) {
      const n = this.native.read(this.fd, buf);
      if (n >= 0) return n;
      if (n === -EAGAIN) return 0;
      if (n === -EINTR) continue;
      const code = errnoName(-n);
      // EBADFD: the interface was deleted while attached; nothing more will ever arrive.
      throw new TapError(code, `reading tap device '${this.name}' failed (${code}): check that the interface still exists (\`ip link show ${this.name}\`) and reopen it`);
    }
  }

  write(frame: Uint8Array): number {
    if (!this.#open) return -EBADF;
    return this.native.write(this.fd, frame);
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.native.close(this.fd);
  }
}

function validateName(ifname: string): void {
  const bytes = Buffer.byteLength(ifname, "utf8");
  if (bytes > MAX_IFNAME_BYTES) {
    throw new TapError(
      "ENAMETOOLONG",
      `tap device name '${ifname}' is too long (${bytes} bytes, Linux allows at most ${MAX_IFNAME_BYTES}): choose a shorter name`,
    );
  }
  // The same rule as the kernel's dev_valid_name, so that a bad name is not reported as "missing".
  if (bytes === 0 || ifname === "." || ifname === ".." || /[/:\s\0]/.test(ifname)) {
    throw new TapError(
      "EINVAL",
      `tap device name '${ifname}' is not a valid interface name: use 1-${MAX_IFNAME_BYTES} characters without '/', ':' or whitespace`,
    );
  }
}

function openError(ifname: string, error: unknown): TapError {
  const code = stringProperty(error, "code") ?? "EUNKNOWN";
  const syscall = stringProperty(error, "syscall") ?? "";
  const detail = error instanceof Error ? error.message : String(error);
  const create = `\`ip tuntap add dev ${ifname} mode tap\``;
  if (syscall === "open") {
    // open(/dev/net/tun) fails before the interface is even looked at.
    if (code === "ENOENT" || code === "ENODEV" || code === "ENXIO") {
      return new TapError(code, `/dev/net/tun is missing (${code}): load the tun module with \`modprobe tun\`, or pass the device into the container (e.g. \`--device /dev/net/tun\`)`);
    }
    if (code === "EACCES" || code === "EPERM") {
      return new TapError(code, `permission denied opening /dev/net/tun for tap device '${ifname}' (${code}): run as root or with CAP_NET_ADMIN (e.g. \`setcap cap_net_admin+ep $(command -v node)\`)`);
    }
  }
  switch (code) {
    case "ENODEV":
      return new TapError(code, `tap device '${ifname}' does not exist: create it with ${create}`);
    case "EPERM":
    case "EACCES":
      return new TapError(code, `permission denied attaching to tap device '${ifname}' (${code}): run as root or with CAP_NET_ADMIN, or create the tap for your user with ${create.slice(0, -1)} user $USER\``);
    case "EINVAL":
      // The kernel's answer when the name belongs to a TUN, a multi-queue TAP or a non-tun driver.
      return new TapError(code, `interface '${ifname}' exists but is not a TAP device (or is a multi-queue one): pass the name of a tap created with \`ip tuntap add dev NAME mode tap\``);
    case "EBUSY":
      return new TapError(code, `tap device '${ifname}' is already in use by another process: stop that process or use another tap`);
    case "ENAMETOOLONG":
      return new TapError(code, `tap device name '${ifname}' is too long (Linux allows at most ${MAX_IFNAME_BYTES} bytes): choose a shorter name`);
    default:
      return new TapError(code, `cannot open tap device '${ifname}': ${detail}`);
  }
}

function stringProperty(value: unknown, key: string): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const property: unknown = Reflect.get(value, key);
  return typeof property === "string" ? property : undefined;
}

// First name wins so that 11 reads as EAGAIN, not its alias EWOULDBLOCK. Node's table lacks
// EBADFD, which is exactly what a read returns once the interface has been deleted.
const ERRNO_NAMES = new Map<number, string>([[77, "EBADFD"]]);
for (const [name, value] of Object.entries(constants.errno)) {
  if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);
}

function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/**
 * TAP devices for the tenders (`spt` opens them in its launcher and adopts the fd in the
 * appliance process): attach to an interface the operator created, then move raw Ethernet
 * frames with non-blocking reads and writes.
 *
 * Opening never creates an interface (its addresses, bridge and firewall are the operator's
 * business), and every way opening can fail is reported as a one-line TapError that says what
 * is wrong and what to run, because the tender prints it verbatim to whoever started the image.
 */
import { constants } from "node:os";

import type { NetFrameMeta } from "../../abi/base.ts";
import { loadNative, type NativeAddon } from "./native.ts";

/** Linux interface names are at most IFNAMSIZ - 1 bytes. */
export const MAX_IFNAME_BYTES = 15;

const { EAGAIN, EINTR, EBADF, EINVAL } = constants.errno;

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
  /**
   * On a TAP opened with `vnetHeader`: turns on checksum offload (TUNSETOFFLOAD with TUN_F_CSUM)
   * and, with `segmentation`, TCP/IPv4 segmentation offload (TUN_F_TSO4). From then on reads fill
   * in `meta` (and with segmentation may return frames of up to TAP_OFFLOAD_MAX_FRAME bytes), and
   * writes take `meta`. Returns 0 or a negative errno (-EINVAL without the vnet header).
   */
  enableOffloads(segmentation: boolean): number;
  /** As read, filling `meta` from the frame's virtio_net_hdr (all zero without the vnet header). */
  readWithMeta(buf: Uint8Array, meta: NetFrameMeta): number;
  /** As write, with the virtio_net_hdr made from `meta` (only on a TAP with the vnet header). */
  writeWithMeta(frame: Uint8Array, meta: NetFrameMeta): number;
  /** Idempotent. */
  close(): void;
}

/** Largest frame on a TAP with TSO: an IPv4 datagram's 65535 bytes behind an Ethernet header with one VLAN tag. */
export const TAP_OFFLOAD_MAX_FRAME = 65535 + 18;

/**
 * struct virtio_net_hdr (include/uapi/linux/virtio_net.h), the 10 bytes IFF_VNET_HDR puts before
 * every frame, in the host's byte order (little-endian here: the TAP is never switched to
 * big-endian headers).
 */
const VNET_HEADER_LENGTH = 10;
const VNET_F_NEEDS_CSUM = 1;
const VNET_F_DATA_VALID = 2;
const VNET_GSO_NONE = 0;
const VNET_GSO_TCPV4 = 1;
const VNET_GSO_ECN = 0x80;
/** TUNSETOFFLOAD flags (include/uapi/linux/if_tun.h). */
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;

/** Why a TAP could not be opened or used; `code` is the errno name (or a validation code). */
export class TapError extends Error {
  override readonly name = "TapError";
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export interface OpenTapOptions {
  /** Open with IFF_VNET_HDR, so that offloads can be enabled (the node tender does; spt does not). */
  readonly vnetHeader?: boolean | undefined;
}

/** Attaches to the existing TAP interface `ifname`; throws a TapError on any failure. */
export function openTap(ifname: string, options: OpenTapOptions = {}): TapHandle {
  validateName(ifname);
  const native = loadNative();
  const vnetHeader = options.vnetHeader ?? false;
  let fd: number;
  try {
    fd = native.tapOpen(ifname, vnetHeader);
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
  // Offloads belong to the interface, not to the fd: a persistent TAP keeps the ones a previous
  // tender turned on (the node tender's default is checksum offload and TSO), and Linux would go
  // on sending partial checksums that a plain-frame reader (spt) drops as corrupt. So every open
  // starts from none, explicitly: plain frames until enableOffloads. (TUNSETOFFLOAD 0 needs no
  // vnet header.)
  const status = native.tapSetOffload(fd, 0);
  if (status < 0) {
    native.close(fd);
    const code = errnoName(-status);
    throw new TapError(code, `tap device '${ifname}': turning its offloads off failed (TUNSETOFFLOAD, ${code}): check that it is a TAP made with \`ip tuntap add dev ${ifname} mode tap\``);
  }
  return new Tap(native, fd, ifname, mtu, vnetHeader);
}

/**
 * Wraps a TAP fd that was opened (with openTap) by another process, which passed it on with the
 * interface's name and MTU: the spt tender's appliance process cannot open devices itself.
 */
export function adoptTap(fd: number, ifname: string, mtu: number): TapHandle {
  return new Tap(loadNative(), fd, ifname, mtu, false);
}

class Tap implements TapHandle {
  #open = true;
  /** The virtio_net_hdr of the frame being read or written: one buffer, so no call allocates. */
  private readonly header = new Uint8Array(VNET_HEADER_LENGTH);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly plainMeta: NetFrameMeta = { checksumTrusted: false, checksumStart: 0, checksumOffset: 0, segmentSize: 0 };

  constructor(
    private readonly native: NativeAddon,
    readonly fd: number,
    readonly name: string,
    readonly mtu: number,
    private readonly vnetHeader: boolean,
  ) {}

  read(buf: Uint8Array): number {
    return this.readWithMeta(buf, this.plainMeta);
  }

  readWithMeta(buf: Uint8Array, meta: NetFrameMeta): number {
    if (!this.#open) throw new TapError("EBADF", `tap device '${this.name}' is closed: open it again with openTap`);
    for (;;) {
      const n = this.vnetHeader ? this.native.readv2(this.fd, this.header, buf) : this.native.read(this.fd, buf);
      if (n >= 0) {
        if (this.vnetHeader) this.decodeHeader(meta);
        return n;
      }
      if (n === -EAGAIN) return 0;
      if (n === -EINTR) continue;
      const code = errnoName(-n);
      // EBADFD: the interface was deleted while attached; nothing more will ever arrive.
      throw new TapError(code, `reading tap device '${this.name}' failed (${code}): check that the interface still exists (\`ip link show ${this.name}\`) and reopen it`);
    }
  }

  write(frame: Uint8Array): number {
    if (!this.#open) return -EBADF;
    if (!this.vnetHeader) return this.native.write(this.fd, frame);
    this.header.fill(0);
    return this.native.writev2(this.fd, this.header, frame);
  }

  writeWithMeta(frame: Uint8Array, meta: NetFrameMeta): number {
    if (!this.#open) return -EBADF;
    if (!this.vnetHeader) return -EINVAL;
    const view = this.headerView;
    const header = this.header;
    header[0] = meta.checksumStart > 0 ? VNET_F_NEEDS_CSUM : 0;
    if (meta.segmentSize > 0) {
      header[1] = VNET_GSO_TCPV4;
      // hdr_len: everything before the payload, the TCP header's data offset included.
      view.setUint16(2, meta.checksumStart + ((frame[meta.checksumStart + 12] ?? 0) >>> 4) * 4, true);
      view.setUint16(4, meta.segmentSize, true);
    } else {
      header[1] = VNET_GSO_NONE;
      view.setUint16(2, 0, true);
      view.setUint16(4, 0, true);
    }
    view.setUint16(6, meta.checksumStart, true);
    view.setUint16(8, meta.checksumOffset, true);
    return this.native.writev2(this.fd, header, frame);
  }

  enableOffloads(segmentation: boolean): number {
    if (!this.#open) return -EBADF;
    if (!this.vnetHeader) return -EINVAL;
    return this.native.tapSetOffload(this.fd, segmentation ? TUN_F_CSUM | TUN_F_TSO4 : TUN_F_CSUM);
  }

  private decodeHeader(meta: NetFrameMeta): void {
    const header = this.header;
    meta.checksumTrusted = (header[0] & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) !== 0;
    const partial = (header[0] & VNET_F_NEEDS_CSUM) !== 0;
    meta.checksumStart = partial ? this.headerView.getUint16(6, true) : 0;
    meta.checksumOffset = partial ? this.headerView.getUint16(8, true) : 0;
    meta.segmentSize = (header[1] & ~VNET_GSO_ECN) !== VNET_GSO_NONE ? this.headerView.getUint16(4, true) : 0;
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

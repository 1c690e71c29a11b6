/**
 * The Atoll base ABI: the only channel between an appliance image and the world.
 *
 * In the spirit of Solo5's solo5.h: a handful of calls, each with a status result instead of
 * host exceptions, so that the same contract can be served by a Node process (`node`), a sealed
 * V8 (`spt`) or a C base around QuickJS (`virtio`). Errors are returned as negative status codes
 * (the errno values of Linux, so that a C base can pass them through unchanged); the library OS
 * turns them into exceptions of its own realm (see src/lib/runtime/base.ts).
 *
 * docs/abi.md is the reference for every call's semantics, errors and limits; keep the two in step.
 * This file holds types and constants only: it is imported by both the tenders and the image.
 */

/** Bumped on any incompatible change to the calls below. */
export const ABI_VERSION = 1;

/** Status codes. Success is 0 (or a non-negative count); failures are negative. */
export const Status = {
  OK: 0,
  /** Nothing to read now; call yield and try again. */
  AGAIN: -11,
  /** Bad argument: wrong type, unknown handle, misaligned or out-of-range offset, short buffer. */
  EINVAL: -22,
  /** The host's I/O failed (for block and net reads the tender logs the cause). */
  EIO: -5,
  /** The device is not declared by the image's manifest or not attached by the tender. */
  ENODEV: -19,
  /** The frame is larger than the device's MTU allows. */
  EMSGSIZE: -90,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

/**
 * Where consoleWrite's bytes go: the appliance's standard output (the default) or its standard
 * error (console.error and console.warn), as the file descriptors a Unix host gives them.
 */
export const ConsoleStream = {
  STDOUT: 1,
  STDERR: 2,
} as const;
export type ConsoleStreamId = (typeof ConsoleStream)[keyof typeof ConsoleStream];

/** Readiness sets from yield are bit sets over net handles, so a base serves at most 32 net devices. */
export const MAX_NET_DEVICES = 32;
/** Largest Ethernet header a frame may carry above the MTU: 14 bytes plus one 802.1Q tag. */
export const ETHERNET_HEADER_ROOM = 18;

export interface NetInfo {
  /** Small integer naming the device in netRead/netWrite and in yield's readiness set. */
  readonly handle: number;
  /** The device's MAC address, 6 bytes. */
  readonly mac: Uint8Array;
  /** Largest IP datagram the link carries; a frame may be up to mtu + ETHERNET_HEADER_ROOM bytes. */
  readonly mtu: number;
  /**
   * Present when the image asked for offloads at netAcquire and the device grants them: from then
   * on every netRead and netWrite on it takes a NetFrameMeta. Absent: plain frames only.
   */
  readonly offloads?: NetOffloads | undefined;
}

/** What netAcquire's caller asks of a device. */
export interface NetAcquireOptions {
  /** Use the device's checksum and TCP segmentation offloads, if it has them (docs/abi.md, "Offloads"). */
  readonly offloads?: boolean | undefined;
}

/**
 * The offloads a device granted, in the manner of virtio-net's (VIRTIO_NET_F_CSUM, _GUEST_CSUM,
 * _HOST_TSO4, _GUEST_TSO4), since TAP devices and virtio NICs both speak that header.
 */
export interface NetOffloads {
  /**
   * Largest frame netRead may return and netWrite may take: a TCP/IPv4 frame of up to this size
   * stands for several MTU-sized segments (coalesced on receive, cut by the host on send).
   */
  readonly maxFrame: number;
}

/**
 * Per-frame metadata on a device with offloads, the fields of struct virtio_net_hdr in plain
 * form. The caller owns one object and passes it to every call: netRead overwrites all fields,
 * netWrite reads them.
 */
export interface NetFrameMeta {
  /**
   * netRead: the frame's TCP or UDP checksum must not be verified: the host has verified it, or
   * it is partial (only the pseudo-header sum) because the frame came from the host's own stack
   * and never crossed a wire. netWrite: ignored.
   */
  checksumTrusted: boolean;
  /**
   * netWrite: when > 0, the host computes the Internet checksum over the frame's bytes from this
   * offset to its end (the checksum field holding the pseudo-header sum) and stores it at
   * checksumStart + checksumOffset. netRead: where the checksum lies when the host left it
   * partial (checksumTrusted is then true), else 0.
   */
  checksumStart: number;
  checksumOffset: number;
  /**
   * netWrite: when > 0, the frame is a TCP/IPv4 segment (with checksumStart at its TCP header)
   * that the host cuts into segments of this many payload bytes, as TCP segmentation offload
   * does: headers copied, sequence numbers, IP identification, lengths and checksums fixed, FIN
   * and PSH only on the last. netRead: the segment size of a coalesced frame, 0 for a plain one.
   */
  segmentSize: number;
}

export interface BlockInfo {
  readonly handle: number;
  /** Size of the device in bytes: a multiple of blockSize. */
  readonly capacity: number;
  /** Transfer unit in bytes (512 on every tender so far). */
  readonly blockSize: number;
}

/** The appliance's command line, split by the tender. */
export interface CommandLine {
  /** Arguments after `--` on the `atoll run` command line. */
  readonly args: readonly string[];
  /**
   * Boot parameters the tender passes from its own flags, keyed by dotted names:
   * `net.<device>.ipv4` = "198.18.0.2/24" or "198.18.0.2/24@198.18.0.1" (from --ipv4),
   * `log` = "info,arp:debug" (from --log). Unknown keys are ignored by the library OS.
   */
  readonly params: Readonly<Record<string, string>>;
}

export interface Base {
  readonly abiVersion: number;
  /** The appliance's command line. */
  readonly cmdline: CommandLine;

  /**
   * Writes bytes to the console: to standard output, or to standard error with
   * `stream` = ConsoleStream.STDERR. Returns OK, EIO, or EINVAL (not bytes, or an unknown stream).
   * Never blocks for long: output may be dropped under pressure. `stream` is optional so that
   * images built before it existed still run, and a base that predates it writes everything to
   * standard output.
   */
  consoleWrite(bytes: Uint8Array, stream?: ConsoleStreamId): number;

  /** Nanoseconds since an arbitrary point before the image started; never goes backwards. Exact below 2^53 ns (104 days). */
  clockMonotonic(): number;
  /** Nanoseconds since the Unix epoch, as the host believes; may jump. A float64 (precise to 0.25 µs at best; the node tender gives 1 ms). */
  clockWall(): number;

  /**
   * Suspends the appliance until the monotonic clock reaches `deadline` (ns) or a net device has
   * input pending, whichever comes first, and resolves to the set of net handles with pending
   * input (bit `1 << handle`; 0 when the deadline passed). A deadline in the past polls without
   * waiting. All promise continuations pending in the image run before the appliance is
   * suspended: this is the image's only way to sleep. Only acquired devices are reported. At most
   * one yield may be outstanding (a second one resolves to EINVAL).
   */
  yield(deadline: number): Promise<number>;

  /**
   * Looks up a net device declared in the manifest and attached by the tender: NetInfo, or ENODEV.
   * The first acquisition of a device decides whether it uses offloads (`options.offloads`);
   * acquiring it again returns the same NetInfo.
   */
  netAcquire(name: string, options?: NetAcquireOptions): NetInfo | number;
  /**
   * Reads one frame into `buffer` (which must hold mtu + ETHERNET_HEADER_ROOM bytes, or
   * offloads.maxFrame on a device with offloads, where `meta` is required and filled in):
   * returns its length (> 0), AGAIN when no frame is pending, EINVAL, or EIO when the device
   * failed (the tender logs why, e.g. the TAP interface was deleted).
   */
  netRead(handle: number, buffer: Uint8Array, meta?: NetFrameMeta): number;
  /**
   * Sends one whole Ethernet frame (all of `frame`, at least 14 bytes), with `meta` on a device
   * with offloads (required there). Returns OK, EMSGSIZE, EINVAL (also for metadata that does not
   * fit the frame) or EIO (not sent: e.g. the host's queue is full). Frames may be dropped, as on
   * a wire.
   */
  netWrite(handle: number, frame: Uint8Array, meta?: NetFrameMeta): number;

  /** Looks up a block device declared in the manifest and attached by the tender: BlockInfo, or ENODEV. */
  blockAcquire(name: string): BlockInfo | number;
  /**
   * Reads `buffer.length` bytes at byte `offset`. Both must be multiples of blockSize and the
   * range must lie within capacity; any number of blocks may move in one call. OK, EINVAL or EIO.
   */
  blockRead(handle: number, offset: number, buffer: Uint8Array): number;
  /** Writes `data` at `offset`, with the same rules as blockRead. OK, EINVAL or EIO. */
  blockWrite(handle: number, offset: number, data: Uint8Array): number;

  /** Fills `buffer` with cryptographically secure random bytes (at most 65536 a call). OK or EINVAL. */
  entropy(buffer: Uint8Array): number;

  /**
   * The image's baked assets: the payload of its `assets` section (format in docs/assets.md), or
   * undefined when the image has none. The same bytes on every call, lent without a copy: they
   * are part of the sealed image, so the image must treat them as read-only. Optional, so that a
   * base without assets (an older tender, a test fake) is still a Base: the library OS reads a
   * missing call as "no assets".
   */
  assets?(): Uint8Array | undefined;

  /** Ends the appliance with an exit status (0..255). Does not return. */
  exit(code: number): never;
  /** Ends the appliance abnormally, reporting `reason`; the tender exits with status 255. Does not return. */
  abort(reason: string): never;
}

/** What an image's code evaluates to: the tender calls `start` once with the base. */
export interface ImageEntry {
  start(base: Base): void;
}

/** The exit status a tender uses when an image calls abort (as Solo5 does). */
export const ABORT_EXIT_STATUS = 255;

/**
 * Devices as the library OS presents them: thin, allocation-free wrappers over the base's net and
 * block calls that turn status codes into AbiErrors and keep counters.
 */
import { ETHERNET_HEADER_ROOM, Status, type Base, type NetFrameMeta, type NetOffloads } from "../../abi/base.ts";
import { AbiError } from "./base.ts";
import type { Scheduler } from "./scheduler.ts";

/** Frames read per readiness event at most, so one busy device cannot starve timers or other devices. */
const MAX_FRAMES_PER_WAKEUP = 256;

export interface NetCounters {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Frames the base refused or failed to send (EIO): dropped, as on a wire. */
  txErrors: number;
  /** Frames received while no listener was set: read and dropped, so they cannot pile up. */
  rxNoListener: number;
}

/** Receives each frame; `checksumTrusted` only ever true on a device with offloads (see NetFrameMeta). */
export type FrameListener = (frame: Uint8Array, checksumTrusted: boolean) => void;

/** A frame's transmit offloads (NetFrameMeta's write half). */
export interface FrameOffload {
  readonly checksumStart: number;
  readonly checksumOffset: number;
  readonly segmentSize: number;
}

export class NetDevice {
  readonly counters: NetCounters = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txErrors: 0, rxNoListener: 0 };
  private readonly receiveBuffer: Uint8Array;
  private listener: FrameListener | undefined;
  /** Reused for every read and write on a device with offloads; undefined without them. */
  private readonly receiveMeta: NetFrameMeta | undefined;
  private readonly transmitMeta: NetFrameMeta | undefined;

  constructor(
    private readonly base: Base,
    scheduler: Scheduler,
    readonly name: string,
    readonly handle: number,
    readonly mac: Uint8Array,
    readonly mtu: number,
    /** What the device granted at netAcquire; undefined: plain frames only. */
    readonly offloads?: NetOffloads | undefined,
  ) {
    this.receiveBuffer = new Uint8Array(Math.max(mtu + ETHERNET_HEADER_ROOM, offloads?.maxFrame ?? 0));
    if (offloads !== undefined) {
      this.receiveMeta = { checksumTrusted: false, checksumStart: 0, checksumOffset: 0, segmentSize: 0 };
      this.transmitMeta = { checksumTrusted: false, checksumStart: 0, checksumOffset: 0, segmentSize: 0 };
    }
    // Watched from acquisition on: pending input must be read (or dropped) or every yield would
    // return at once and the appliance would spin.
    scheduler.watchNet(handle, () => this.drain());
  }

  /** Largest frame this device carries: the MTU plus an Ethernet header with one VLAN tag, or more with offloads. */
  get maxFrameLength(): number {
    return this.receiveBuffer.length;
  }

  /**
   * Delivers every received frame to `listener`. The frame is a view into a buffer that is reused
   * for the next frame: copy what must outlive the call. Replaces any earlier listener.
   */
  onFrame(listener: FrameListener): void {
    this.listener = listener;
  }

  /** Stops delivering frames (they are dropped and counted from now on); the device stays usable for sending. */
  close(): void {
    this.listener = undefined;
  }

  /**
   * Sends one Ethernet frame, with `offload` only on a device with offloads. Throws AbiError for
   * frames the device can never carry (EINVAL, EMSGSIZE); counts and drops on I/O errors.
   */
  send(frame: Uint8Array, offload?: FrameOffload): void {
    const meta = this.transmitMeta;
    let status: number;
    if (meta === undefined) {
      if (offload !== undefined) throw new RangeError(`device '${this.name}' has no offloads`);
      status = this.base.netWrite(this.handle, frame);
    } else {
      meta.checksumStart = offload?.checksumStart ?? 0;
      meta.checksumOffset = offload?.checksumOffset ?? 0;
      meta.segmentSize = offload?.segmentSize ?? 0;
      status = this.base.netWrite(this.handle, frame, meta);
    }
    if (status === Status.OK) {
      this.counters.txFrames++;
      this.counters.txBytes += frame.length;
    } else if (status === Status.EIO) {
      this.counters.txErrors++;
    } else {
      throw new AbiError("netWrite", status, `device '${this.name}', ${frame.length}-byte frame`);
    }
  }

  private drain(): void {
    const meta = this.receiveMeta;
    for (let n = 0; n < MAX_FRAMES_PER_WAKEUP; n++) {
      const length = meta === undefined ? this.base.netRead(this.handle, this.receiveBuffer) : this.base.netRead(this.handle, this.receiveBuffer, meta);
      if (length === Status.AGAIN) return;
      if (length < 0) throw new AbiError("netRead", length, `device '${this.name}'`);
      this.counters.rxFrames++;
      this.counters.rxBytes += length;
      if (this.listener === undefined) this.counters.rxNoListener++;
      else this.listener(this.receiveBuffer.subarray(0, length), meta !== undefined && meta.checksumTrusted);
    }
  }
}

export class BlockDevice {
  constructor(
    private readonly base: Base,
    readonly name: string,
    readonly handle: number,
    /** Bytes. */
    readonly capacity: number,
    readonly blockSize: number,
  ) {}

  /** Reads `buffer.length` bytes at `offset`; both must be multiples of blockSize. */
  readInto(offset: number, buffer: Uint8Array): void {
    const status = this.base.blockRead(this.handle, offset, buffer);
    if (status !== Status.OK) throw new AbiError("blockRead", status, this.describe(offset, buffer.length));
  }

  read(offset: number, length: number): Uint8Array {
    const buffer = new Uint8Array(length);
    this.readInto(offset, buffer);
    return buffer;
  }

  write(offset: number, data: Uint8Array): void {
    const status = this.base.blockWrite(this.handle, offset, data);
    if (status !== Status.OK) throw new AbiError("blockWrite", status, this.describe(offset, data.length));
  }

  private describe(offset: number, length: number): string {
    return `device '${this.name}', offset ${offset}, ${length} bytes, block size ${this.blockSize}, capacity ${this.capacity}`;
  }
}

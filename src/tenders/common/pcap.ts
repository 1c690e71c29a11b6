/**
 * libpcap capture files (the classic format tshark, tcpdump and Wireshark all read): a global
 * header, then a record header and the bytes for each frame. Records are buffered and flushed
 * before the tender sleeps and at exit, so capture costs no syscall per frame under load.
 *
 * A capture is bounded, as tcpdump's -C/-W: each file holds at most `maxBytes`. With one file the
 * capture stops there (one stderr line says so); with `files` > 1 it goes on in the next file of a
 * ring (`<file>`, `<file>.1`, ... `<file>.<n-1>`), overwriting the oldest.
 */
import { closeSync, constants, ftruncateSync, openSync, writeSync } from "node:fs";

const PCAP_MAGIC_MICROSECONDS = 0xa1b2c3d4;
const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 262144;
const FLUSH_THRESHOLD = 1 << 16;
const GLOBAL_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;

/** 100 MiB: minutes of ordinary traffic, seconds of a flood; raise it with `,max=`. */
export const DEFAULT_PCAP_MAX_BYTES = 100 * 1024 * 1024;
const MIN_PCAP_MAX_BYTES = 1024;
const MAX_PCAP_FILES = 1000;
/**
 * On spt each file of a ring is an fd the launcher opens and hands to the sealed appliance, which
 * gets at most 64 fds in all (and two filter rules per capture fd): a ring there is kept short.
 */
export const SPT_MAX_PCAP_FILES = 16;

/** What `--pcap <dev>=<file>[,max=<size>][,files=<n>]` asks for. */
export interface PcapSpec {
  readonly path: string;
  /** The size cap of each file, headers included. */
  readonly maxBytes: number;
  /** 1: stop at the cap; more: rotate through a ring of this many files. */
  readonly files: number;
}

/** The ring's file names: the given path first, then `<path>.1` ... (tcpdump's -W numbers them too). */
export function pcapFilePath(path: string, index: number): string {
  return index === 0 ? path : `${path}.${index}`;
}

/** Flags of a capture file: created or truncated, and appended to, so a reused ring file that was truncated is written from its start. */
export const PCAP_OPEN_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND;

/** Parses a size such as 4096, 64K, 10M or 1G (binary units: K = 1024). */
function parseSize(text: string): number | undefined {
  const match = /^(\d+)([KMG]?)(i?B)?$/i.exec(text);
  if (match?.[1] === undefined) return undefined;
  const unit = (match[2] ?? "").toUpperCase();
  const scale = unit === "K" ? 1024 : unit === "M" ? 1024 ** 2 : unit === "G" ? 1024 ** 3 : 1;
  const bytes = Number(match[1]) * scale;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** Parses the value of `--pcap <dev>=<value>`; a string is what is wrong with it. */
export function parsePcapSpec(value: string): PcapSpec | string {
  const [path = "", ...options] = value.split(",");
  if (path === "") return "no file name; use <file>[,max=<size>][,files=<n>], e.g. service.pcap,max=10M,files=4";
  let maxBytes = DEFAULT_PCAP_MAX_BYTES;
  let files = 1;
  for (const option of options) {
    const eq = option.indexOf("=");
    const key = eq === -1 ? option : option.slice(0, eq);
    const text = eq === -1 ? "" : option.slice(eq + 1);
    if (key === "max") {
      const size = parseSize(text);
      if (size === undefined || size < MIN_PCAP_MAX_BYTES) return `max=${text}: not a size of at least ${MIN_PCAP_MAX_BYTES} bytes; use e.g. max=64K, max=10M or max=2G`;
      maxBytes = size;
    } else if (key === "files") {
      const count = /^\d+$/.test(text) ? Number(text) : NaN;
      if (!(count >= 1 && count <= MAX_PCAP_FILES)) return `files=${text}: not a file count from 1 to ${MAX_PCAP_FILES}; use e.g. files=4`;
      files = count;
    } else {
      return `unknown option '${option}'; use <file>[,max=<size>][,files=<n>], e.g. service.pcap,max=10M,files=4`;
    }
  }
  return { path, maxBytes, files };
}

/** Where a writer's files come from: the node tender opens them by name, the sealed spt appliance reuses fds its launcher opened. */
export interface PcapFiles {
  /** The fd of ring file `index`, empty. */
  open(index: number): number;
  /** Done with `fd` (it is full, or the capture ends). */
  release(fd: number): void;
}

/** Files opened by name when needed (the node tender). */
export function namedPcapFiles(path: string): PcapFiles {
  return {
    open: (index) => openSync(pcapFilePath(path, index), PCAP_OPEN_FLAGS, 0o644),
    release: (fd) => closeSync(fd),
  };
}

/**
 * Files opened beforehand with PCAP_OPEN_FLAGS (the spt launcher: the sealed appliance may open
 * nothing). A file used again is truncated; O_APPEND then writes it from its start.
 */
export function openedPcapFiles(fds: readonly number[]): PcapFiles {
  const used = new Set<number>();
  return {
    open: (index) => {
      const fd = fds[index];
      if (fd === undefined) throw new Error(`pcap ring file ${index} was not opened (${fds.length} were)`);
      if (used.has(index)) ftruncateSync(fd, 0);
      used.add(index);
      return fd;
    },
    release: () => {},
  };
}

function sayOnStderr(line: string): void {
  writeSync(2, `${line}\n`);
}

export class PcapWriter {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private fd: number | undefined;
  private index = 0;
  /** Bytes of the current file, buffered ones included. */
  private fileBytes = 0;
  private stopped = false;
  readonly maxBytes: number;
  readonly files: number;

  /**
   * Starts the capture in ring file 0. `device` names the net device in the message printed when
   * a single-file capture stops at its cap.
   */
  constructor(
    readonly device: string,
    spec: PcapSpec,
    private readonly source: PcapFiles = namedPcapFiles(spec.path),
    private readonly say: (line: string) => void = sayOnStderr,
  ) {
    this.path = spec.path;
    this.maxBytes = spec.maxBytes;
    this.files = spec.files;
    this.startFile();
  }

  readonly path: string;

  private startFile(): void {
    this.fd = this.source.open(this.index);
    const header = new DataView(new ArrayBuffer(GLOBAL_HEADER_BYTES));
    header.setUint32(0, PCAP_MAGIC_MICROSECONDS, true);
    header.setUint16(4, 2, true); // version 2.4
    header.setUint16(6, 4, true);
    header.setInt32(8, 0, true); // GMT offset
    header.setUint32(12, 0, true); // timestamp accuracy
    header.setUint32(16, SNAPLEN, true);
    header.setUint32(20, LINKTYPE_ETHERNET, true);
    writeSync(this.fd, new Uint8Array(header.buffer));
    this.fileBytes = GLOBAL_HEADER_BYTES;
  }

  /** Records one frame with the current wall-clock time. The frame is copied. */
  record(frame: Uint8Array): void {
    if (this.stopped) return;
    // A frame larger than a whole file is cut to fit (as a snaplen would), so a small cap still records every frame's start.
    const captured = Math.min(frame.length, SNAPLEN, this.maxBytes - GLOBAL_HEADER_BYTES - RECORD_HEADER_BYTES);
    if (this.fileBytes + RECORD_HEADER_BYTES + captured > this.maxBytes) {
      this.flush();
      if (this.files === 1) {
        this.stopped = true;
        this.say(
          `atoll: pcap ${this.path} reached its limit of ${this.maxBytes} bytes: capture stopped (use --pcap ${this.device}=${this.path},max=<size> to raise it or ,files=<n> to rotate)`,
        );
        return;
      }
      if (this.fd !== undefined) this.source.release(this.fd);
      this.index = (this.index + 1) % this.files;
      this.startFile();
    }
    const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    const record = new Uint8Array(RECORD_HEADER_BYTES + captured);
    const view = new DataView(record.buffer);
    view.setUint32(0, Math.floor(micros / 1e6), true);
    view.setUint32(4, micros % 1e6, true);
    view.setUint32(8, captured, true);
    view.setUint32(12, frame.length, true);
    record.set(frame.subarray(0, captured), RECORD_HEADER_BYTES);
    this.chunks.push(record);
    this.buffered += record.length;
    this.fileBytes += record.length;
    if (this.buffered >= FLUSH_THRESHOLD) this.flush();
  }

  flush(): void {
    if (this.buffered === 0 || this.fd === undefined) return;
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    writeSync(this.fd, all);
  }

  close(): void {
    this.flush();
    if (this.fd !== undefined) this.source.release(this.fd);
    this.fd = undefined;
  }
}

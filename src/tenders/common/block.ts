/** Block devices backed by host files, for every tender. */
import { closeSync, fstatSync, openSync, readSync, writeSync, fsyncSync } from "node:fs";
import { hostBytes } from "./base.ts";
import { TenderError } from "./errors.ts";

export const BLOCK_SIZE = 512;

export class FileBlockDevice {
  /**
   * @param fd an open, readable and writable descriptor of a regular file
   * @param capacity its size in bytes, a positive multiple of BLOCK_SIZE
   */
  constructor(
    readonly name: string,
    readonly path: string,
    readonly fd: number,
    readonly capacity: number,
  ) {}

  /** Opens `path` for reading and writing; throws a one-line TenderError saying what to fix. */
  static open(name: string, path: string): FileBlockDevice {
    let fd: number;
    try {
      fd = openSync(path, "r+");
    } catch (error) {
      const code = error instanceof Error && "code" in error ? String(error.code) : "";
      if (code === "ENOENT") {
        throw new TenderError(`block device '${name}': file ${path} does not exist: create it, e.g. \`truncate -s 64M ${path}\``);
      }
      if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
        throw new TenderError(`block device '${name}': cannot open ${path} for reading and writing (${code}): check its permissions`);
      }
      if (code === "EISDIR") throw new TenderError(`block device '${name}': ${path} is a directory; give a file`);
      throw new TenderError(`block device '${name}': cannot open ${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      closeSync(fd);
      throw new TenderError(`block device '${name}': ${path} is not a regular file: give a disk image file, e.g. made with \`truncate -s 64M disk.img\``);
    }
    if (stat.size % BLOCK_SIZE !== 0 || stat.size === 0) {
      closeSync(fd);
      throw new TenderError(
        `block device '${name}': ${path} is ${stat.size} bytes, not a positive multiple of ${BLOCK_SIZE}: resize it, e.g. \`truncate -s 64M ${path}\``,
      );
    }
    return new FileBlockDevice(name, path, fd, stat.size);
  }

  /** Reads exactly buffer.length bytes at offset; throws on a short read or I/O error. */
  read(offset: number, given: Uint8Array): void {
    const buffer = this.checkRange(offset, given);
    let done = 0;
    while (done < buffer.length) {
      const n = readSync(this.fd, buffer, done, buffer.length - done, offset + done);
      if (n === 0) throw new Error(`short read at ${offset + done}`);
      done += n;
    }
  }

  /** Writes all of data at offset; throws on an I/O error. */
  write(offset: number, given: Uint8Array): void {
    const data = this.checkRange(offset, given);
    let done = 0;
    while (done < data.length) done += writeSync(this.fd, data, done, data.length - done, offset + done);
  }

  /**
   * The device's own bounds, whatever its callers checked: whole blocks, inside the capacity.
   * Returns the host's view of `bytes` (hostBytes), whose length is the real one and not a
   * property the image may have redefined, so that a view handed in unchecked still cannot
   * reach past the end; the transfer uses that view.
   */
  private checkRange(offset: number, bytes: Uint8Array): Uint8Array {
    const view = hostBytes(bytes);
    if (view === undefined) throw new RangeError(`block device '${this.name}': the buffer is not a usable Uint8Array`);
    const length = view.length;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % BLOCK_SIZE !== 0 || length % BLOCK_SIZE !== 0 || offset + length > this.capacity) {
      throw new RangeError(`block device '${this.name}': ${length} bytes at ${offset} are not whole blocks inside its ${this.capacity} bytes`);
    }
    return view;
  }

  close(): void {
    // Data written through the base must survive the appliance: make it durable before the fd goes.
    try {
      fsyncSync(this.fd);
    } finally {
      closeSync(this.fd);
    }
  }
}

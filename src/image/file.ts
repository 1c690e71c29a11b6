/**
 * Reading an image file for `atoll inspect` and the tenders, with the file treated as hostile:
 * only a regular file is read (a FIFO would hang the reader, /dev/zero would never end), and only
 * after its first bytes and its size (fstat) look like an image (checkImagePrefix), so that a huge
 * file that is no image costs a few hundred bytes of memory, not its size.
 */
import { constants as bufferConstants } from "node:buffer";
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { checkImagePrefix, IMAGE_PREFIX_SIZE, ImageError } from "./format.ts";

/** The path names something that is not a regular file; the message names what it is. */
export class NotRegularFileError extends Error {
  override readonly name = "NotRegularFileError";
  constructor(
    readonly path: string,
    /** "a directory", "a FIFO", "a character device", ... */
    readonly kind: string,
  ) {
    super(`${path} is not a regular file (${kind}): give an .atoll image`);
  }
}

function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isSocket()) return "a socket";
  return "not a file";
}

/**
 * Opens an image read-only and makes sure it is a regular file. O_NONBLOCK keeps open(2) from
 * waiting for a FIFO's writer; it changes nothing for a regular file. Throws the open error
 * (ENOENT, EACCES...) as Node gives it, or NotRegularFileError.
 */
export function openImageFd(path: string): number {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const stats = fstatSync(fd);
  if (!stats.isFile()) {
    closeSync(fd);
    throw new NotRegularFileError(path, fileKind(stats));
  }
  return fd;
}

function readFully(fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.length) {
    const count = readSync(fd, into, done, into.length - done, position + done);
    if (count === 0) break;
    done += count;
  }
  return done;
}

/**
 * Reads the image behind fd (from openImageFd): its prefix first, checked against the file's
 * size, then the rest. Throws ImageError (from the prefix check, or when the file shrinks while
 * being read); the full check is decodeImage's.
 */
export function readImageFd(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const prefix = Buffer.alloc(Math.min(size, IMAGE_PREFIX_SIZE));
  const prefixRead = readFully(fd, prefix, 0);
  checkImagePrefix(prefix.subarray(0, prefixRead), size);
  if (size > bufferConstants.MAX_LENGTH) {
    throw new ImageError(`image is ${size} bytes, more than the ${bufferConstants.MAX_LENGTH} bytes this atoll can read at once`);
  }
  const bytes = Buffer.alloc(size);
  const got = readFully(fd, bytes, 0);
  if (got !== size) throw new ImageError(`image is truncated: read ${got} of its ${size} bytes (did the file change while it was read?)`);
  return bytes;
}

/** openImageFd and readImageFd for a caller that does not keep the file open. */
export function readImage(path: string): Buffer {
  const fd = openImageFd(path);
  try {
    return readImageFd(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * A line on a file descriptor, written whole. The tender's stderr may be a pipe that Node made
 * non-blocking (Node does so when it first uses process.stderr, for every process sharing the
 * pipe), where a plain writeSync can fail with EAGAIN while the reader catches up.
 */
import { writeSync } from "node:fs";

const RETRY_MS = 1;
const GIVE_UP_MS = 2000;
const pause = new Int32Array(new SharedArrayBuffer(4));

export function writeLine(fd: number, line: string): void {
  const bytes = Buffer.from(`${line}\n`);
  let waited = 0;
  for (let done = 0; done < bytes.length; ) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (error) {
      const again = error instanceof Error && "code" in error && error.code === "EAGAIN";
      if (!again || waited >= GIVE_UP_MS) return; // the line is lost: there is no one left to tell
      Atomics.wait(pause, 0, 0, RETRY_MS);
      waited += RETRY_MS;
    }
  }
}

/** One line on stderr, as `atoll` prints its messages. */
export function say(line: string): void {
  writeLine(2, line);
}

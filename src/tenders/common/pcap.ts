/**
 * libpcap capture files (the classic format tshark, tcpdump and Wireshark all read): a global
 * header, then a record header and the bytes for each frame. Records are buffered and flushed
 * before the tender sleeps and at exit, so capture costs no syscall per frame under load.
 */
import { closeSync, openSync, writeSync } from "node:fs";

const PCAP_MAGIC_MICROSECONDS = 0xa1b2c3d4;
const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 262144;
const FLUSH_THRESHOLD = 1 << 16;

export class PcapWriter {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  /** Creates (or truncates) `path`; a tender that opened the file already passes its `fd`. */
  constructor(
    readonly path: string,
    private readonly fd: number = openSync(path, "w"),
  ) {
    const header = new DataView(new ArrayBuffer(24));
    header.setUint32(0, PCAP_MAGIC_MICROSECONDS, true);
    header.setUint16(4, 2, true); // version 2.4
    header.setUint16(6, 4, true);
    header.setInt32(8, 0, true); // GMT offset
    header.setUint32(12, 0, true); // timestamp accuracy
    header.setUint32(16, SNAPLEN, true);
    header.setUint32(20, LINKTYPE_ETHERNET, true);
    writeSync(this.fd, new Uint8Array(header.buffer));
  }

  /** Records one frame with the current wall-clock time. The frame is copied. */
  record(frame: Uint8Array): void {
    const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    const captured = Math.min(frame.length, SNAPLEN);
    const record = new Uint8Array(16 + captured);
    const view = new DataView(record.buffer);
    view.setUint32(0, Math.floor(micros / 1e6), true);
    view.setUint32(4, micros % 1e6, true);
    view.setUint32(8, captured, true);
    view.setUint32(12, frame.length, true);
    record.set(frame.subarray(0, captured), 16);
    this.chunks.push(record);
    this.buffered += record.length;
    if (this.buffered >= FLUSH_THRESHOLD) this.flush();
  }

  flush(): void {
    if (this.buffered === 0) return;
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    writeSync(this.fd, all);
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

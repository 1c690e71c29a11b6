/**
 * --pcap is bounded (issue #12, finding 10: a capture grew to 648 MB in 3 s): each file holds at
 * most max=<size> bytes; a single file stops there with one stderr line, a ring of files=<n>
 * rotates and overwrites the oldest. Checked on the writer itself (named files, as the node
 * tender opens them, and pre-opened fds, as the sealed spt appliance gets them), and the files
 * are read back by tshark.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, openSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_PCAP_MAX_BYTES, openedPcapFiles, parsePcapSpec, PCAP_OPEN_FLAGS, pcapFilePath, PcapWriter } from "../../src/tenders/common/pcap.ts";
import { run } from "../helpers/netns.ts";

/** A broadcast Ethernet frame of `length` bytes whose payload starts with `sequence` (big-endian). */
function frame(sequence: number, length = 1000): Uint8Array {
  const bytes = new Uint8Array(length);
  bytes.fill(0xff, 0, 6);
  bytes.set([2, 0, 0, 0, 0, 1], 6);
  bytes.set([0x88, 0xb5], 12); // local experimental EtherType
  new DataView(bytes.buffer).setUint32(14, sequence);
  return bytes;
}

/** The sequence numbers of the frames in a capture, as tshark reads them. */
function sequences(path: string): number[] {
  const text = run("tshark", ["-r", path, "-T", "fields", "-e", "data.data"]).trim();
  return text === "" ? [] : text.split("\n").map((hex) => Number.parseInt(hex.slice(0, 8), 16));
}

function withDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "atoll-pcap-cap-"));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("parsePcapSpec: a bare file keeps the 100 MiB default; max and files parse; bad values say what to write", () => {
  assert.deepEqual(parsePcapSpec("service.pcap"), { path: "service.pcap", maxBytes: DEFAULT_PCAP_MAX_BYTES, files: 1 });
  assert.equal(DEFAULT_PCAP_MAX_BYTES, 100 * 1024 * 1024);
  assert.deepEqual(parsePcapSpec("a.pcap,max=64K,files=3"), { path: "a.pcap", maxBytes: 65536, files: 3 });
  assert.deepEqual(parsePcapSpec("a.pcap,files=2,max=10M"), { path: "a.pcap", maxBytes: 10 * 1024 * 1024, files: 2 });
  assert.deepEqual(parsePcapSpec("a.pcap,max=2G"), { path: "a.pcap", maxBytes: 2 * 1024 ** 3, files: 1 });
  assert.deepEqual(parsePcapSpec("a.pcap,max=5000"), { path: "a.pcap", maxBytes: 5000, files: 1 });
  assert.match(String(parsePcapSpec("a.pcap,max=10")), /^max=10: not a size of at least 1024 bytes; use e\.g\. max=64K/);
  assert.match(String(parsePcapSpec("a.pcap,max=lots")), /^max=lots: not a size/);
  assert.match(String(parsePcapSpec("a.pcap,files=0")), /^files=0: not a file count from 1 to 1000/);
  assert.match(String(parsePcapSpec("a.pcap,files=x")), /^files=x: not a file count/);
  assert.match(String(parsePcapSpec("a.pcap,size=3")), /^unknown option 'size=3'; use <file>\[,max=<size>\]\[,files=<n>\]/);
  assert.match(String(parsePcapSpec(",max=1M")), /^no file name/);
});

test("one file: the capture stops at its cap with one stderr line; the file is whole and readable", () => {
  withDir((dir) => {
    const path = join(dir, "service.pcap");
    const lines: string[] = [];
    const pcap = new PcapWriter("service", { path, maxBytes: 16384, files: 1 }, undefined, (line) => lines.push(line));
    for (let sequence = 0; sequence < 1000; sequence++) pcap.record(frame(sequence));
    pcap.close();
    // 24-byte header + 16 records of 1016 bytes = 16280; a 17th would pass 16384.
    assert.equal(statSync(path).size, 24 + 16 * 1016);
    assert.deepEqual(sequences(path), Array.from({ length: 16 }, (_, index) => index));
    assert.deepEqual(lines, [
      `atoll: pcap ${path} reached its limit of 16384 bytes: capture stopped (use --pcap service=${path},max=<size> to raise it or ,files=<n> to rotate)`,
    ]);
    assert.equal(existsSync(`${path}.1`), false);
  });
});

test("a frame larger than a whole file is cut to fit (its original length kept), as a snaplen would", () => {
  withDir((dir) => {
    const path = join(dir, "big.pcap");
    const pcap = new PcapWriter("service", { path, maxBytes: 1024, files: 1 }, undefined, () => {});
    pcap.record(frame(7, 9000));
    pcap.close();
    assert.equal(statSync(path).size, 1024);
    const [captured, original] = run("tshark", ["-r", path, "-T", "fields", "-e", "frame.cap_len", "-e", "frame.len"]).trim().split("\t");
    assert.deepEqual([captured, original], ["984", "9000"]);
  });
});

test("files=3 by name (node tender): rotates through <file>, <file>.1, <file>.2 and overwrites the oldest", () => {
  withDir((dir) => {
    const path = join(dir, "ring.pcap");
    const lines: string[] = [];
    const pcap = new PcapWriter("service", { path, maxBytes: 16384, files: 3 }, undefined, (line) => lines.push(line));
    // 16 frames a file: 100 frames fill files 0,1,2,0,1,2 and 4 frames of file 0 again.
    for (let sequence = 0; sequence < 100; sequence++) pcap.record(frame(sequence));
    pcap.close();
    assert.deepEqual(lines, [], "rotation prints nothing");
    assert.equal(existsSync(`${path}.3`), false);
    assert.deepEqual(sequences(pcapFilePath(path, 0)), Array.from({ length: 4 }, (_, index) => 96 + index));
    assert.deepEqual(sequences(pcapFilePath(path, 1)), Array.from({ length: 16 }, (_, index) => 64 + index));
    assert.deepEqual(sequences(pcapFilePath(path, 2)), Array.from({ length: 16 }, (_, index) => 80 + index));
    for (let index = 0; index < 3; index++) assert.ok(statSync(pcapFilePath(path, index)).size <= 16384);
  });
});

test("files=2 on fds opened beforehand (spt): a reused file is truncated and written from its start", () => {
  withDir((dir) => {
    const path = join(dir, "sealed.pcap");
    const fds = [0, 1].map((index) => openSync(pcapFilePath(path, index), PCAP_OPEN_FLAGS, 0o644));
    const pcap = new PcapWriter("service", { path, maxBytes: 16384, files: 2 }, openedPcapFiles(fds), () => {});
    for (let sequence = 0; sequence < 40; sequence++) pcap.record(frame(sequence));
    pcap.close();
    // Files 0 (0-15), 1 (16-31), then 0 again from its start (32-39).
    assert.equal(statSync(path).size, 24 + 8 * 1016);
    assert.deepEqual(sequences(path), Array.from({ length: 8 }, (_, index) => 32 + index));
    assert.deepEqual(sequences(`${path}.1`), Array.from({ length: 16 }, (_, index) => 16 + index));
  });
});

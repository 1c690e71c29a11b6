import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Ipv4Address } from "atoll/wire/address";
import { SeqRangeSet, seqAdd, seqDiff, seqGe, seqGt, seqInRange, seqLe, seqLt, seqMax, seqMin } from "../../../src/lib/net/tcp/seq.ts";
import { SipHash24, TcpSecrets } from "../../../src/lib/net/tcp/isn.ts";
import {
  COOKIE_MSS_TABLE,
  checkCookie,
  cookieMssIndex,
  decodeCookieTimestamp,
  encodeCookieTimestamp,
  makeCookie,
} from "../../../src/lib/net/tcp/cookies.ts";
import { Cubic, NewReno, initialWindow } from "../../../src/lib/net/tcp/congestion.ts";
import { ReceiveBuffer, SendBuffer } from "../../../src/lib/net/tcp/buffers.ts";
import { seededRandomSource } from "../../../src/lib/net/testing/virtual-link.ts";

describe("sequence arithmetic (RFC 9293 §3.4)", () => {
  it("compares across the 2^32 wrap", () => {
    const top = 0xffffff00;
    const wrapped = seqAdd(top, 0x200);
    assert.equal(wrapped, 0x100);
    assert.ok(seqLt(top, wrapped) && seqGt(wrapped, top));
    assert.ok(seqLe(top, top) && seqGe(top, top));
    assert.equal(seqDiff(wrapped, top), 0x200);
    assert.equal(seqDiff(top, wrapped), -0x200);
    assert.equal(seqMax(top, wrapped), wrapped);
    assert.equal(seqMin(top, wrapped), top);
    assert.ok(seqInRange(0xffffffff, top, wrapped));
    assert.ok(seqInRange(0, top, wrapped));
    assert.ok(!seqInRange(wrapped, top, wrapped));
    assert.equal(seqAdd(5, -10), 0xfffffffb);
  });

  it("agrees with BigInt arithmetic modulo 2^32 (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: -(2 ** 31) + 1, max: 2 ** 31 - 1 }), (a, n) => {
        const b = seqAdd(a, n);
        assert.equal(BigInt(b), (BigInt(a) + BigInt(n) + 2n ** 32n) % 2n ** 32n);
        assert.equal(seqDiff(b, a), n);
        assert.equal(seqLt(a, b), n > 0);
        assert.equal(seqGt(a, b), n < 0);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("SeqRangeSet", () => {
  it("merges overlapping and adjacent ranges and counts new bytes", () => {
    const set = new SeqRangeSet();
    assert.equal(set.add(100, 200), 100);
    assert.equal(set.add(300, 400), 100);
    assert.equal(set.add(150, 250), 50);
    assert.equal(set.size, 2);
    assert.equal(set.add(250, 300), 50);
    assert.equal(set.size, 1);
    assert.deepEqual([set.start(0), set.end(0)], [100, 400]);
    set.removeBelow(150);
    assert.deepEqual([set.start(0), set.end(0)], [150, 400]);
    assert.equal(set.coveredBetween(0, 200), 50);
    set.removeFrom(390);
    assert.equal(set.highest, 390);
  });

  it("matches a byte-set model, across the wrap (property)", () => {
    const base = 0xffffff80;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 250 }), fc.integer({ min: 1, max: 40 })), { maxLength: 30 }),
        fc.integer({ min: 0, max: 300 }),
        (ranges, cut) => {
          const set = new SeqRangeSet();
          const model = new Set<number>();
          for (const [offset, length] of ranges) {
            let fresh = 0;
            for (let i = offset; i < offset + length; i++) if (!model.has(i)) (model.add(i), fresh++);
            assert.equal(set.add(seqAdd(base, offset), seqAdd(base, offset + length)), fresh);
          }
          set.removeBelow(seqAdd(base, cut));
          for (const i of [...model]) if (i < cut) model.delete(i);
          assert.equal(set.coveredBytes, model.size);
          for (let i = 0; i < 300; i++) assert.equal(set.contains(seqAdd(base, i)), model.has(i));
          for (let r = 1; r < set.size; r++) assert.ok(seqLt(set.end(r - 1), set.start(r)), "sorted, disjoint, not adjacent");
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("SipHash-2-4 and ISNs (RFC 6528)", () => {
  it("matches the reference test vectors", () => {
    const key = Uint8Array.from({ length: 16 }, (_, i) => i);
    const hash = new SipHash24(key);
    const vectors: [number, string][] = [
      [0, "726fdb47dd0e0e31"],
      [1, "74f839c593dc67fd"],
      [8, "93f5f5799a932462"],
      [15, "a129ca6149be45e5"],
      [63, "958a324ceb064572"],
    ];
    for (const [length, expected] of vectors) {
      hash.hash(Uint8Array.from({ length }, (_, i) => i));
      assert.equal(hash.high.toString(16).padStart(8, "0") + hash.low.toString(16).padStart(8, "0"), expected, `length ${length}`);
    }
  });

  it("gives ISNs that differ by 4-tuple and advance with a 4 µs clock", () => {
    const secrets = new TcpSecrets(seededRandomSource(1));
    const a = Ipv4Address.fromOctets(10, 0, 0, 1);
    const b = Ipv4Address.fromOctets(10, 0, 0, 2);
    const first = secrets.initialSequence(a, 80, b, 50000, 0);
    assert.equal(seqDiff(secrets.initialSequence(a, 80, b, 50000, 1000), first), 250_000);
    assert.notEqual(secrets.initialSequence(a, 80, b, 50001, 0), first);
    assert.notEqual(new TcpSecrets(seededRandomSource(2)).initialSequence(a, 80, b, 50000, 0), first);
  });
});

describe("SYN cookies (RFC 4987 §3.6)", () => {
  const secrets = new TcpSecrets(seededRandomSource(3));
  const tuple = { local: Ipv4Address.fromOctets(10, 0, 0, 1), localPort: 80, remote: Ipv4Address.fromOctets(10, 0, 0, 9), remotePort: 40000 };

  it("validates its own cookies for about two minutes and encodes the MSS", () => {
    const cookie = makeCookie(secrets, tuple, 12345, cookieMssIndex(1460), 1_000_000);
    assert.equal(checkCookie(secrets, tuple, 12345, cookie, 1_000_000), 1460);
    assert.equal(checkCookie(secrets, tuple, 12345, cookie, 1_000_000 + 120_000), 1460);
    assert.equal(checkCookie(secrets, tuple, 12345, cookie, 1_000_000 + 200_000), -1);
    assert.equal(checkCookie(secrets, tuple, 12346, cookie, 1_000_000), -1);
    assert.equal(checkCookie(secrets, { ...tuple, remotePort: 40001 }, 12345, cookie, 1_000_000), -1);
    assert.equal(checkCookie(secrets, tuple, 12345, cookie ^ 1, 1_000_000), -1);
    assert.equal(COOKIE_MSS_TABLE[cookieMssIndex(1000)], 536);
    assert.equal(COOKIE_MSS_TABLE[cookieMssIndex(9000)], 1460);
  });

  it("carries window scale and SACK in the timestamp, never ahead of the clock", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: -1, max: 14 }), fc.boolean(), (tsNow, scale, sack) => {
        const value = encodeCookieTimestamp(tsNow, scale, sack);
        assert.ok(seqLe(value, tsNow));
        assert.deepEqual(decodeCookieTimestamp(value), { windowScale: scale, sackPermitted: sack });
      }),
    );
  });
});

describe("congestion control", () => {
  const mss = 1000;

  it("NewReno: slow start, congestion avoidance, halving on loss, one segment on timeout (RFC 5681)", () => {
    const cc = new NewReno(mss);
    assert.equal(cc.cwnd, initialWindow(mss));
    cc.onAck(mss, 0, 10, true);
    assert.equal(cc.cwnd, initialWindow(mss) + mss);
    cc.onAck(mss, 0, 10, false);
    assert.equal(cc.cwnd, initialWindow(mss) + mss, "application-limited: no growth");
    cc.onLoss(0, 20_000);
    assert.equal(cc.ssthresh, 10_000);
    assert.equal(cc.cwnd, 10_000);
    for (let i = 0; i < 10; i++) cc.onAck(mss, 0, 10, true);
    assert.equal(cc.cwnd, 11_000, "one MSS per window in congestion avoidance");
    cc.onRetransmitTimeout(0, 4000);
    assert.equal(cc.cwnd, mss);
    assert.equal(cc.ssthresh, 2 * mss);
  });

  it("CUBIC: β = 0.7 on loss, concave growth back to W_max at K, then convex (RFC 9438)", () => {
    const cc = new Cubic(mss);
    for (let i = 0; i < 90; i++) cc.onAck(mss, 0, 100, true); // slow start to 100 segments
    assert.equal(cc.cwnd, 100 * mss);
    cc.onLoss();
    assert.equal(cc.cwnd, 70 * mss);
    assert.equal(cc.ssthresh, 70 * mss);
    // K = cbrt(W_max (1 − β) / C) = cbrt(100 · 0.3 / 0.4) ≈ 4.22 s
    const k = Math.cbrt((100 * 0.3) / 0.4);
    let now = 0;
    const windows: number[] = [];
    // One RTT (100 ms) at a time, a window's worth of ACKs per RTT.
    while (now <= 9000) {
      const segments = Math.floor(cc.cwnd / mss);
      for (let i = 0; i < segments; i++) cc.onAck(mss, now, 100, true);
      windows.push(cc.cwnd / mss);
      now += 100;
    }
    const atK = windows[Math.round((k * 1000) / 100)] ?? 0;
    assert.ok(Math.abs(atK - 100) < 6, `near W_max at K (${atK})`);
    const early = (windows[10] ?? 0) - (windows[0] ?? 0);
    const nearK = (windows[40] ?? 0) - (windows[30] ?? 0);
    const late = (windows[90] ?? 0) - (windows[80] ?? 0);
    assert.ok(early > nearK, `concave before K (${early} > ${nearK})`);
    assert.ok(late > nearK, `convex after K (${late} > ${nearK})`);
    cc.onRetransmitTimeout();
    assert.equal(cc.cwnd, mss);
  });
});

describe("buffers", () => {
  it("the send buffer wraps around and copies out any range", () => {
    const buffer = new SendBuffer(10);
    assert.equal(buffer.append(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), 0, 8), 8);
    buffer.release(6);
    assert.equal(buffer.append(Uint8Array.from([9, 10, 11, 12, 13, 14, 15, 16, 17]), 0, 9), 8);
    assert.equal(buffer.free, 0);
    const out = new Uint8Array(10);
    buffer.copyOut(1, 9, out, 1);
    assert.deepEqual([...out], [0, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
  });

  it("the receive buffer keeps out-of-order data at its place", () => {
    const buffer = new ReceiveBuffer(8, 2);
    buffer.place(4, Uint8Array.from([5, 6, 7]), 0, 3);
    buffer.place(0, Uint8Array.from([1, 2, 3, 4]), 0, 4);
    buffer.commit(7);
    assert.deepEqual([...(buffer.read(5) ?? [])], [1, 2, 3, 4, 5]);
    assert.equal(buffer.roomAt(0), 8);
    buffer.place(2, Uint8Array.from([10, 11, 12, 13, 14, 15]), 0, 6);
    buffer.place(0, Uint8Array.from([8, 9]), 0, 2);
    buffer.commit(8);
    assert.deepEqual([...(buffer.read(100) ?? [])], [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    assert.equal(buffer.read(1), undefined);
  });
});

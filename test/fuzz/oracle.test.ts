/**
 * The fuzzer's oracle and mutator on their own: the oracle must accept what a correct stack sends
 * and name what is wrong with a bad frame (else a fuzz run would pass vacuously), and the
 * mutator must stay within what a TAP delivers and repeat itself for a seed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ethernetFrame, icmpMessage, ipv4Packet, SeededRandom, udpDatagram } from "../../src/lib/net/testing/virtual-link.ts";
import { EtherType, IpProtocol, MacAddress } from "atoll/wire";
import { FrameGenerator, type GeneratedFrame } from "./generator.ts";
import { ip, MAX_FRAME, OUR_MAC, OURS, peerAddress, peerMac } from "./host.ts";
import { FrameMutator } from "./mutator.ts";
import { SentFrameOracle } from "./oracle.ts";

const PEER = peerAddress(3);

/** A frame padded to Ethernet's minimum of 60 bytes, as the stack sends it. */
function padded(frame: Uint8Array): Uint8Array {
  if (frame.length >= 60) return frame;
  const copy = new Uint8Array(60);
  copy.set(frame);
  return copy;
}

/** A UDP datagram from the fuzzed host to a peer. */
function sentUdp(): Uint8Array {
  return padded(ethernetFrame(peerMac(3), OUR_MAC, EtherType.Ipv4, ipv4Packet({ src: OURS, dst: PEER, protocol: IpProtocol.Udp }, udpDatagram(OURS, PEER, 5000, 7, new Uint8Array(4)))));
}

test("the oracle accepts a well-formed frame of ours and names each fault of a bad one", () => {
  const oracle = new SentFrameOracle();
  assert.equal(oracle.problemWithSent(sentUdp(), true), undefined);
  assert.match(oracle.problemWithSent(sentUdp().subarray(0, 50), true) ?? "", /not padded to 60/);
  const foreignSource = sentUdp();
  MacAddress.write(peerMac(9), foreignSource, 6);
  assert.match(oracle.problemWithSent(foreignSource, true) ?? "", /source MAC/);
  const badChecksum = sentUdp();
  badChecksum[14 + 20 + 6] ^= 0x01;
  assert.match(oracle.problemWithSent(badChecksum, true) ?? "", /udp: bad checksum/);
  // RFC 1122 §3.2.2: an ICMP error never goes to a broadcast address.
  const portUnreachable = icmpMessage({ kind: "destination-unreachable", code: 3, nextHopMtu: 0, original: ipv4Packet({ src: PEER, dst: OURS, protocol: IpProtocol.Udp }, udpDatagram(PEER, OURS, 5000, 9, new Uint8Array(4))) });
  const toBroadcastError = padded(ethernetFrame(MacAddress.BROADCAST, OUR_MAC, EtherType.Ipv4, ipv4Packet({ src: OURS, dst: ip(198, 18, 0, 255), protocol: IpProtocol.Icmp }, portUnreachable)));
  assert.match(oracle.problemWithSent(toBroadcastError, true) ?? "", /an ICMP error to 198\.18\.0\.255/);
});

test("the mutator's frames stay within what a TAP delivers, and a seed repeats them", () => {
  const run = (seed: number): { frames: Uint8Array[]; counts: Readonly<Record<string, number>> } => {
    const random = new SeededRandom(seed);
    const fed: Uint8Array[] = [];
    const generator = new FrameGenerator(random, { sent: [sentUdp()], solicitations: [] });
    const mutator = new FrameMutator(random, fed);
    const frames: Uint8Array[] = [];
    const pending: GeneratedFrame[] = [];
    for (let n = 0; n < 5000; n++) {
      if (pending.length === 0) pending.push(...generator.generate());
      const next = pending.shift();
      assert.ok(next !== undefined);
      const frame = random.chance(next.mutation) ? mutator.mutate(next.frame) : mutator.keep(next.frame);
      assert.ok(frame.length <= MAX_FRAME, `${frame.length} bytes`);
      frames.push(frame);
      fed.push(frame);
    }
    return { frames, counts: { ...generator.generated, ...mutator.mutations } };
  };
  const [a, b] = [run(11), run(11)];
  assert.deepEqual(a.frames, b.frames);
  assert.deepEqual(a.counts, b.counts);
  // Every kind of mutation happens within a few thousand frames.
  for (const kind of ["none", "field", "bitflip", "overwrite", "truncate", "extend", "random", "splice", "length", "fragment"]) assert.ok((a.counts[kind] ?? 0) > 0, kind);
  assert.notDeepEqual(run(12).frames, a.frames);
});

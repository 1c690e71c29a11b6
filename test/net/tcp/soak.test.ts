/**
 * Randomized soak: each scenario draws impairments (loss, duplication, reordering, corruption,
 * delay, MTU), options on each side (SACK, timestamps, window scaling, congestion control,
 * Nagle, buffer sizes) and a write size, then echoes data both ways and checks SHA-256, a clean
 * close, and that nothing is left after TIME-WAIT. ATOLL_TCP_SOAK_RUNS sets how many scenarios
 * (default 25; 1,700 ran clean during development), ATOLL_TCP_SOAK_SEED the first seed.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { SeededRandom } from "../../../src/lib/net/testing/virtual-link.ts";
import type { FlowOptions, TcpLayerOptions } from "../../../src/lib/net/tcp/settings.ts";
import { TcpNetwork, patternBytes } from "./harness.ts";

const RUNS = Number(process.env.ATOLL_TCP_SOAK_RUNS ?? 25);
const FIRST_SEED = Number(process.env.ATOLL_TCP_SOAK_SEED ?? 1);

function options(random: SeededRandom): TcpLayerOptions & FlowOptions {
  return {
    sack: random.chance(0.7),
    timestamps: random.chance(0.7),
    windowScaling: random.chance(0.8),
    congestion: random.chance(0.5) ? "cubic" : "newreno",
    noDelay: random.chance(0.3),
    sendBufferSize: random.chance(0.3) ? 1024 + random.below(65536) : 256 * 1024,
    receiveBufferSize: random.chance(0.3) ? 1024 + random.below(65536) : 256 * 1024,
  };
}

describe(`tcp randomized soak, ${RUNS} scenarios`, () => {
  for (let seed = FIRST_SEED; seed < FIRST_SEED + RUNS; seed++) {
    it(`scenario ${seed}`, async () => {
      const random = new SeededRandom(seed * 7919);
      const impairments = {
        loss: random.chance(0.7) ? random.next() * 0.1 : 0,
        duplication: random.chance(0.5) ? random.next() * 0.05 : 0,
        reordering: random.chance(0.5) ? random.next() * 0.2 : 0,
        reorderDelayMs: 1 + random.below(20),
        corruption: random.chance(0.3) ? random.next() * 0.02 : 0,
        delayMs: random.below(3) === 0 ? 0 : random.below(50),
        jitterMs: random.below(5),
      };
      const mtu = random.chance(0.3) ? 576 + random.below(900) : 1500;
      const net = new TcpNetwork({ seed, impairments: { ...impairments, mtu } });
      const server = net.host("198.18.0.1/24", { mtu, tcp: options(random) });
      const client = net.host("198.18.0.2/24", { mtu: random.chance(0.2) ? 1500 : mtu, tcp: options(random) });
      const size = 64 * 1024 + random.below(512 * 1024);
      const chunkSize = 1 + random.below(40_000);
      server.tcp.listen(7, (flow) => {
        void (async () => {
          for await (const chunk of flow) await flow.write(chunk);
          await flow.close();
        })().catch(() => undefined);
      });
      const flow = await net.drive(client.tcp.connect(server.address, 7));
      const sent = createHash("sha256");
      const received = createHash("sha256");
      let receivedBytes = 0;
      const writing = (async () => {
        for (let offset = 0, i = 0; offset < size; offset += chunkSize, i++) {
          const chunk = patternBytes(Math.min(chunkSize, size - offset), seed * 1000 + i);
          sent.update(chunk);
          await flow.write(chunk);
        }
        await flow.shutdown();
      })();
      const reading = (async () => {
        for await (const chunk of flow) {
          received.update(chunk);
          receivedBytes += chunk.length;
        }
      })();
      await net.drive(Promise.all([writing, reading]), 3_600_000);
      assert.equal(receivedBytes, size);
      assert.equal(received.digest("hex"), sent.digest("hex"));
      await net.drive(flow.close());
      await net.advance(200_000);
      assert.equal(client.tcp.connectionList().length + server.tcp.connectionList().length, 0, JSON.stringify({ impairments, mtu }));
    });
  }
});

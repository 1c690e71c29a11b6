/**
 * `npm run fuzz -- [--frames N] [--seed N] [--quiet]`: a long run of the frame fuzzer, which is
 * test code (test/fuzz/: generator, mutator, oracle, and the run itself in fuzzer.ts; its CI-sized
 * run is test/net/fuzz-frames.test.ts). Prints progress with frames/s, then the counters. Same
 * seed, same frames, same result: a failure at frame k reproduces with `--seed S --frames k+1`.
 */
import { totalReceiveDrops, STACK_LAYERS } from "../src/lib/net/index.ts";
import { runFuzz } from "../test/fuzz/fuzzer.ts";



const USAGE = `Usage: npm run fuzz -- [--frames N] [--seed N] [--quiet]

Feeds N random and mutated frames (default 10,000,000) through an in-process IPv4 stack, checking
that nothing throws, the counters balance, the state stays bounded and every frame sent is well
formed. Prints progress (frames/s) every million frames, then the counters. Exit status 1 on a
failure, with the seed and frame index that reproduce it.

  --frames N   frames to feed (underscores allowed: 100_000_000)
  --seed N     the generator's seed, 0 to 4294967295 (default: random, printed)
  --quiet      no progress lines
`;

function parseArguments(argv: readonly string[]): { frames: number; seed: number; quiet: boolean } {
  const options = { frames: 10_000_000, seed: Math.floor(Math.random() * 0x1_0000_0000), quiet: false };
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] as string;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = (): number => {
      const text = inline ?? argv[++index];
      const number = Number((text ?? "").replace(/_/g, ""));
      if (text === undefined || !Number.isInteger(number) || number < 0) usage(`${flag} needs a whole number, not ${JSON.stringify(text)}`);
      return number;
    };
    if (flag === "--frames") options.frames = value();
    else if (flag === "--seed") {
      options.seed = value();
      if (options.seed > 0xffff_ffff) usage("--seed is at most 4294967295");
    } else if (flag === "--quiet") options.quiet = true;
    else if (flag === "-h" || flag === "--help") {
      process.stdout.write(USAGE);
      process.exit(0);
    } else usage(`unknown argument ${JSON.stringify(arg)}`);
  }
  return options;
}

function usage(message: string): never {
  process.stderr.write(`fuzz: ${message}\n\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { frames, seed, quiet } = parseArguments(process.argv.slice(2));
  process.stdout.write(`fuzz: ${frames.toLocaleString("en")} frames, seed ${seed}\n`);
  try {
    const report = await runFuzz({
      frames,
      seed,
      progressEvery: 1_000_000,
      onProgress: quiet
        ? undefined
        : (progress) => {
            const heap = process.memoryUsage().heapUsed / 2 ** 20;
            process.stdout.write(
              `  ${progress.frames.toLocaleString("en")} frames, ${Math.round(progress.framesPerSecond).toLocaleString("en")} frames/s, heap ${heap.toFixed(0)} MiB, drops ${totalReceiveDrops(progress.counters).toLocaleString("en")}\n`,
            );
          },
    });
    process.stdout.write(
      `fuzz: ok: ${report.frames.toLocaleString("en")} frames in ${(report.elapsedMs / 1000).toFixed(1)} s (${Math.round(report.framesPerSecond).toLocaleString("en")} frames/s), ${(report.virtualMs / 1000).toFixed(0)} s of virtual time; ${report.sentFrames.toLocaleString("en")} frames sent and checked (${report.sentDatagramsReassembled} fragmented datagrams reassembled)\n`,
    );
    process.stdout.write(`generated: ${JSON.stringify(report.generated)}\nmutations: ${JSON.stringify(report.mutations)}\nlog lines: ${JSON.stringify(report.logLines)}\npeaks: ${JSON.stringify(report.peaks)}\n`);
    for (const layer of STACK_LAYERS) {
      const values: Readonly<Record<string, number>> = report.counters[layer];
      process.stdout.write(`counters ${layer}: ${Object.entries(values).map(([key, value]) => `${key}=${value}`).join(" ")}\n`);
    }
  } catch (error) {
    process.stderr.write(`fuzz: FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}

await main();

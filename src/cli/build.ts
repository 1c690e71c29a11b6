/** `atoll build`: bundle and seal an appliance into dist/<name>.atoll. */
import { relative } from "node:path";
import { flag, parseCommandLine, stringValue } from "./args.ts";
import { CommandError } from "./errors.ts";

export const BUILD_HELP = `Usage: atoll build [<appdir>] [options]

Bundles the appliance in <appdir> (default: the current directory), which holds atoll.config.ts,
with the library code it imports, into one sealed image, and prints the image's path.

Options:
  --outdir <dir>   write the image there (default: <appdir>/dist)
  --minify         minify the code (smaller image; stack traces still map with --inspect)
  --no-check       skip the type check (the appliance's code against the image's globals)
  -h, --help       show this help
`;

export async function buildCommand(argv: readonly string[]): Promise<void> {
  const parsed = parseCommandLine(
    "build",
    argv,
    { outdir: { type: "string" }, minify: { type: "boolean" }, "no-check": { type: "boolean" }, help: { type: "boolean", short: "h" } },
    1,
  );
  if (flag(parsed, "help")) {
    process.stdout.write(BUILD_HELP);
    return;
  }
  const { buildAppliance, BuildError } = await import("../build/build.ts");
  try {
    const result = await buildAppliance(parsed.positionals[0] ?? ".", {
      outDir: stringValue(parsed, "outdir"),
      minify: flag(parsed, "minify"),
      check: !flag(parsed, "no-check"),
    });
    process.stdout.write(`${relative(process.cwd(), result.imagePath) || result.imagePath}\n`);
  } catch (error) {
    if (error instanceof BuildError) throw new CommandError(`atoll build: ${error.message}`);
    throw error;
  }
}

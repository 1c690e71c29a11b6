/** `atoll inspect`: what an image is, without running it. */
import { NotRegularFileError, readImage } from "../image/file.ts";
import { decodeImage, ImageError } from "../image/format.ts";
import { escapeLine, terminalSafeJson } from "../tenders/common/terminal-text.ts";
import { flag, parseCommandLine } from "./args.ts";
import { CommandError, UsageError } from "./errors.ts";

export const INSPECT_HELP = `Usage: atoll inspect <image> [--json]

Verifies an image and prints its name, size, SHA-256, format version, devices and build time.

Options:
  --json       print one JSON object instead of text
  -h, --help   show this help
`;

export function inspectCommand(argv: readonly string[]): void {
  const parsed = parseCommandLine("inspect", argv, { json: { type: "boolean" }, help: { type: "boolean", short: "h" } }, 1);
  if (flag(parsed, "help")) {
    process.stdout.write(INSPECT_HELP);
    return;
  }
  const path = parsed.positionals[0];
  if (path === undefined) throw new UsageError("atoll inspect: which image? e.g. `atoll inspect dist/hello.atoll`");
  let bytes: Buffer;
  try {
    bytes = readImage(path);
  } catch (error) {
    if (error instanceof NotRegularFileError) throw new CommandError(`atoll inspect: ${error.message}`);
    // The message may quote the image (a manifest's unknown field name): shown escaped.
    if (error instanceof ImageError) throw new CommandError(`atoll inspect: ${path}: ${escapeLine(error.message)}`);
    const code = error instanceof Error && "code" in error ? String(error.code) : "";
    throw new CommandError(
      code === "ENOENT" ? `atoll inspect: image ${path} does not exist: build one with \`atoll build <appdir>\`` : `atoll inspect: cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  let image;
  try {
    image = decodeImage(bytes);
  } catch (error) {
    if (error instanceof ImageError) throw new CommandError(`atoll inspect: ${path}: ${escapeLine(error.message)}`);
    throw error;
  }
  const { manifest } = image;
  const summary = {
    name: manifest.name,
    size: image.size,
    sha256: image.sha256,
    formatVersion: image.formatVersion,
    abiVersion: manifest.abiVersion,
    devices: { net: manifest.net, block: manifest.block },
    buildTime: manifest.buildTime,
    builtBy: manifest.builtBy,
    codeBytes: Buffer.byteLength(image.code),
    sourceMap: image.sourceMap !== undefined,
    assetsBytes: image.assets?.length ?? 0,
  };
  if (flag(parsed, "json")) {
    process.stdout.write(`${terminalSafeJson(JSON.stringify(summary, null, 2))}\n`);
    return;
  }
  // Every string below comes from the image: the manifest's own checks do not cover builtBy.
  const list = (names: readonly string[]): string => (names.length === 0 ? "-" : names.map((name) => escapeLine(name)).join(", "));
  process.stdout.write(
    [
      `name:            ${escapeLine(summary.name)}`,
      `size:            ${summary.size} bytes (code ${summary.codeBytes}${summary.assetsBytes > 0 ? `, assets ${summary.assetsBytes}` : ""})`,
      `sha256:          ${summary.sha256}`,
      `format version:  ${summary.formatVersion}`,
      `abi version:     ${summary.abiVersion}`,
      `net devices:     ${list(manifest.net)}`,
      `block devices:   ${list(manifest.block)}`,
      `build time:      ${escapeLine(summary.buildTime)}`,
      `built by:        ${escapeLine(summary.builtBy)}`,
      `source map:      ${summary.sourceMap ? "yes" : "no"}`,
      "",
    ].join("\n"),
  );
}

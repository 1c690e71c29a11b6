/**
 * The `atoll` command: new, build, inspect, run. Each subcommand loads only what it needs, so
 * `atoll run` starts without loading the bundler.
 */
import { buildCommand, BUILD_HELP } from "./build.ts";
import { CommandError, EXIT_FAILURE, EXIT_RUN_FAILED, EXIT_USAGE, UsageError } from "./errors.ts";
import { inspectCommand, INSPECT_HELP } from "./inspect.ts";
import { newCommand, newHelp } from "./new.ts";
import { RUN_HELP, runCommand } from "./run.ts";

const HELP = `Usage: atoll <command> [options]

Atoll builds TypeScript appliances into sealed unikernel images and runs them.

Commands:
  new <dir>        create an appliance from a template
  build [<dir>]    build an appliance into dist/<name>.atoll
  inspect <image>  show what an image holds
  run <image>      run an image on a tender

Run \`atoll <command> --help\` for a command's options. Docs: docs/cli.md
`;

const COMMANDS: Record<string, { run: (argv: readonly string[]) => void | Promise<void>; help: () => string }> = {
  new: { run: newCommand, help: newHelp },
  build: { run: buildCommand, help: () => BUILD_HELP },
  inspect: { run: inspectCommand, help: () => INSPECT_HELP },
  run: { run: runCommand, help: () => RUN_HELP },
};

export async function main(argv: readonly string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === "__gateway") {
    // Hidden: the user-mode network gateway a tender spawns (src/tenders/user/gateway.ts).
    const { gatewayMain } = await import("../tenders/user/gateway.ts");
    await gatewayMain(rest);
    return;
  }
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    const topic = name === "help" ? rest[0] : undefined;
    const command = topic === undefined ? undefined : COMMANDS[topic];
    process.stdout.write(command === undefined ? HELP : command.help());
    if (name === undefined) process.exitCode = EXIT_USAGE;
    return;
  }
  if (name === "--version" || name === "-v") {
    const { atollVersion } = await import("../host/package-root.ts");
    process.stdout.write(`atoll ${atollVersion()}\n`);
    return;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    fail(`atoll: unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(", ")}; see \`atoll --help\`)`, EXIT_USAGE);
    return;
  }
  try {
    await command.run(rest);
  } catch (error) {
    const isRun = name === "run";
    if (error instanceof UsageError) fail(error.message, isRun ? EXIT_RUN_FAILED : EXIT_USAGE);
    else if (error instanceof CommandError) fail(error.message, isRun ? EXIT_RUN_FAILED : EXIT_FAILURE);
    else if (error instanceof Error && isUserFacing(error)) fail(`atoll ${name}: ${error.message.replace(/^atoll: /, "")}`, isRun ? EXIT_RUN_FAILED : EXIT_FAILURE);
    else throw error;
  }
}

/** Errors from lower layers that already carry a one-line, actionable message. */
function isUserFacing(error: Error): boolean {
  return ["TenderError", "TapError", "ImageError", "BuildError", "ManifestError"].includes(error.name) || error.message.startsWith("atoll: ");
}

function fail(message: string, status: number): void {
  process.stderr.write(`${message.replace(/^atoll: atoll /, "atoll ")}\n`);
  process.exitCode = status;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`atoll: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 70;
});

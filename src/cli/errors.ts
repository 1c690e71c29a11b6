/** Errors the CLI reports as one line and an exit status, never as a stack trace. */

/** A bad command line: exit status 2 (125 for `run`, whose 0..255 belong to the appliance). */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A failure the user can act on (missing file, bad image, build error): exit status 1 (125 for `run`). */
export class CommandError extends Error {
  override readonly name = "CommandError";
}

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** `atoll run` could not start the appliance (as `docker run` uses 125 for its own errors). */
export const EXIT_RUN_FAILED = 125;

/**
 * Errors and error numbers every tender shares.
 */
import { constants } from "node:os";

/**
 * A mistake in how a tender was asked to run an image (a missing file, an undeclared device, a
 * TAP that cannot be attached...): `atoll run` prints its message, one line that says what is
 * wrong and what to do, and exits with 125, without a stack trace.
 */
export class TenderError extends Error {
  override readonly name = "TenderError";
}

/** The host's "nothing to read now" errno, as the native addon returns it negated (11 on Linux). */
export const EAGAIN: number = constants.errno.EAGAIN;

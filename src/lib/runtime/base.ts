/**
 * The image's hold on the base ABI. The tender hands the base to the image once, at start; every
 * library module reaches it through here, so tests can install a fake one.
 */
import { Status, type Base } from "../../abi/base.ts";

/** A failed base call, raised in the image's own realm (the base itself only returns status codes). */
export class AbiError extends Error {
  override readonly name = "AbiError";
  constructor(
    readonly call: string,
    readonly status: number,
    detail?: string,
  ) {
    super(`${call} failed: ${statusName(status)}${detail === undefined ? "" : ` (${detail})`}`);
  }
}

export function statusName(status: number): string {
  for (const [name, value] of Object.entries(Status)) if (value === status) return name;
  return `status ${status}`;
}

let installed: Base | undefined;

export function installBase(base: Base): void {
  installed = base;
}

export function base(): Base {
  if (installed === undefined) throw new Error("atoll: the base ABI is not installed (is this code running outside an image?)");
  return installed;
}

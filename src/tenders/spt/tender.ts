/**
 * The `spt` tender: the appliance sealed inside V8, a seccomp allowlist around its process (in
 * the spirit of Solo5's spt). One process per appliance, started by the `atoll run` process:
 *
 *   atoll run --tender spt     the launcher (launcher.ts): opens the devices, starts the appliance
 *                              process in namespaces of its own, waits, reports how it ended;
 *   the appliance process      the same program started again with the boot plan on fd 3
 *                              (appliance.ts): seals the image in a fresh context (sealed.ts),
 *                              locks itself down (allowlist.ts), runs the image.
 *
 * docs/spt.md describes the design, the allowlist, and what is and is not isolated.
 */
import { TenderError } from "../common/errors.ts";
import { runApplianceStage } from "./appliance.ts";
import { launchSpt, type SptBootTrace, type SptHooks, type SptRunOptions } from "./launcher.ts";
import { BOOT_FD_ENV, CONTROL_FD } from "./plan.ts";
import { say } from "./say.ts";
import { escapeLine } from "../common/terminal-text.ts";

export type { SptBootTrace, SptHooks, SptRunOptions } from "./launcher.ts";

/** Exit status when the appliance process itself could not get the image started. */
const EXIT_RUN_FAILED = 125;

/**
 * Runs an image on the spt tender: as the launcher, or, in the process it starts (marked by
 * ATOLL_SPT_BOOT_FD), as the appliance. Either way the process ends with the appliance's status.
 */
export async function runSpt(options: SptRunOptions, onTrace?: (trace: SptBootTrace) => void, hooks?: SptHooks): Promise<void> {
  const bootFd = process.env[BOOT_FD_ENV];
  if (bootFd === undefined) {
    await launchSpt(options, onTrace, hooks);
    return;
  }
  if (bootFd !== String(CONTROL_FD)) {
    throw new TenderError(`${BOOT_FD_ENV}=${bootFd}: only the spt launcher sets it (to ${CONTROL_FD}); unset it to run an image`);
  }
  try {
    runApplianceStage(CONTROL_FD, hooks);
  } catch (error) {
    // Before lockdown everything may still fail: say what, as one line, and end as a failed start.
    const reason = error instanceof Error ? error.message : String(error);
    say(`atoll: the spt appliance process could not start the image: ${escapeLine(reason)}`);
    process.exit(EXIT_RUN_FAILED);
  }
}

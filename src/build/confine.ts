/**
 * Keeps every file the build embeds inside the appliance's directory.
 *
 * `atoll build` runs the appliance's atoll.config.ts on the host, as the user (as any build tool
 * runs its config), so this is no sandbox: a config that runs code can copy anything into the
 * directory before it returns. What it stops is the quiet way: a setting (`assets: "/etc/ssh"`,
 * `entry: "../../x.ts"`) or a symbolic link checked out with the sources (`public/ssh ->
 * /etc/ssh`) that would bake the host's files into an image which is then shipped (issue #12,
 * finding 4). A path is inside when it is, lexically, under the directory and its real path
 * (every symbolic link resolved, realpath(3)) is under the directory's real path. Links that stay
 * inside are fine (a shared folder linked into public/).
 */
import { realpathSync } from "node:fs";
import { isAbsolute, relative, resolve, sep } from "node:path";

export class ConfinementError extends Error {
  override readonly name = "ConfinementError";
}

/** The appliance directory, as given (absolute) and as the file system resolves it. */
export interface ApplianceRoot {
  readonly path: string;
  readonly real: string;
}

export function applianceRoot(appDir: string): ApplianceRoot {
  const path = resolve(appDir);
  return { path, real: realpathSync.native(path) };
}

/** True when `path` is `root` or below it (both absolute, normalized). */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/**
 * Where a config setting (`what`: "assets", "entry") that names a path leads: relative to the
 * appliance directory, or absolute. Refuses one that leaves the directory lexically (`..`, an
 * absolute path elsewhere, which also covers glob-looking values such as `../**` or
 * `/etc/ssh/*`, since nothing expands them). Returns the absolute path, which need not exist.
 */
export function settingPath(root: ApplianceRoot, what: string, setting: string): string {
  const path = resolve(root.path, setting);
  // The real path too: an absolute setting may name the directory through its resolved path.
  if (!isInside(root.path, path) && !isInside(root.real, path)) {
    throw new ConfinementError(`${what} ${JSON.stringify(setting)} is outside the appliance directory (${path}): an image embeds only files inside ${root.path}`);
  }
  return path;
}

/**
 * The real path of an existing `path` inside the appliance, refusing one whose symbolic links
 * lead out of it. `shown` names the entry in the message (the setting, or the file found while
 * walking the assets).
 */
export function confinedRealPath(root: ApplianceRoot, shown: string, path: string): string {
  const real = realpathSync.native(path);
  if (!isInside(root.real, real)) {
    throw new ConfinementError(`${shown} resolves through a symbolic link to ${real}, outside the appliance directory ${root.path}: copy what the image needs into it`);
  }
  return real;
}

/** Runs the built `atoll` command (bin/atoll.cjs → build/atoll.cjs) as a user would. */
import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");
export const ATOLL = join(ROOT, "bin", "atoll.cjs");

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function atoll(args: readonly string[], options: SpawnSyncOptions = {}): Result {
  const result = spawnSync(process.execPath, [ATOLL, ...args], { encoding: "utf8", timeout: 60_000, cwd: ROOT, ...options });
  return { status: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** Builds an example once per test process and returns its image path. */
const built = new Map<string, string>();
export function exampleImage(name: string): string {
  let path = built.get(name);
  if (path === undefined) {
    const result = atoll(["build", join("examples", name)]);
    if (result.status !== 0) throw new Error(`building examples/${name} failed: ${result.stderr}`);
    path = join(ROOT, result.stdout.trim());
    built.set(name, path);
  }
  return path;
}

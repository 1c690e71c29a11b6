/**
 * Runs an image with user-mode networking and one published port (`atoll run -p <free>:<guest>`,
 * 127.0.0.1 only, no root) until its output shows it is serving; stop() ends it (SIGTERM, then
 * SIGKILL) and is safe to call twice.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { ATOLL, ROOT } from "./cli.ts";
import { freePort } from "./serve.ts";

export { freePort };

export interface Published {
  /** http://127.0.0.1:<port> */
  readonly origin: string;
  /** stdout and stderr so far, each kept apart. */
  readonly stdout: () => string;
  readonly stderr: () => string;
  stop(): Promise<void>;
}

export async function runPublished(image: string, options: { guestPort?: number; tender?: "node" | "spt"; ready: RegExp; args?: readonly string[] }): Promise<Published> {
  const port = await freePort();
  const argv = [ATOLL, "run", image, "-p", `${port}:${options.guestPort ?? 80}`, "--tender", options.tender ?? "node", ...(options.args ?? [])];
  const child: ChildProcess = spawn(process.execPath, argv, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 20_000;
  while (!options.ready.test(stdout + stderr)) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`atoll run did not come up:\n${stdout}${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { origin: `http://127.0.0.1:${port}`, stdout: () => stdout, stderr: () => stderr, stop };
}

/** curl, as a client outside Node: status, headers and body of one request. */
export function curl(url: string, extra: readonly string[] = []): { status: number; body: string } {
  const result = spawnSync("curl", ["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", ...extra, url], { encoding: "utf8" });
  assert.equal(result.status, 0, `curl ${url}: ${result.stderr}`);
  const cut = result.stdout.lastIndexOf("\n");
  return { status: Number(result.stdout.slice(cut + 1)), body: result.stdout.slice(0, cut) };
}

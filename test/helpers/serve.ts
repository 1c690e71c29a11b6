/** Servers under test: free ports, TCP exchanges, and commands run while a check polls them. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect, createServer } from "node:net";

/** A TCP port on 127.0.0.1 that is free right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(typeof address === "object" && address !== null);
  return address.port;
}

/** One TCP exchange: sends `request`, reads until the peer closes or `done` says enough. */
export async function exchange(port: number, request: string, done: (received: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let received = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer on 127.0.0.1:${port} within 10 s (got ${JSON.stringify(received)})`));
    }, 10_000);
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(request));
    socket.on("data", (chunk: string) => {
      received += chunk;
      if (done(received)) socket.end();
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Sends `data` to 127.0.0.1:port, half-closes, and returns all that comes back before the peer's end. */
export function halfCloseExchange(port: number, data: Uint8Array, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on("error", reject);
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no end from 127.0.0.1:${port} within ${timeoutMs} ms`)));
    socket.end(data);
  });
}

/**
 * Runs a command in its own process group while `check` runs (given the output so far), then
 * ends the group with SIGTERM: npm, its shell, the tender and the user-mode network gateway.
 */
export async function whileRunning(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
  check: (output: () => string) => Promise<void>,
): Promise<void> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  try {
    await check(() => output);
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}; the appliance said:\n${output}`);
  } finally {
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
    }
    await exited;
  }
}

/** Tries `attempt` every 200 ms until it returns true; throws, with its last error, after `timeoutMs`. */
export async function eventually(what: string, attempt: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await attempt()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms${last instanceof Error ? ` (last: ${last.message})` : ""}`);
}


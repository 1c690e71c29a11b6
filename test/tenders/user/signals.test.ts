/**
 * Signals to the whole process group, as `docker stop`, systemd, Kubernetes, `timeout` and a
 * terminal's Ctrl-C send them: the tender gets it (the user-mode network gateway, in a session of
 * its own, does not). The appliance must end with 128 + the signal's number and nothing on stderr,
 * under load, every time, leaving no process behind; a gateway that dies alone ends it with one line.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { request, Agent } from "node:http";
import { constants } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import { ATOLL, exampleImage, ROOT } from "../../helpers/cli.ts";
import { freePort } from "../../helpers/published.ts";

interface Started {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: Promise<number>;
}

/** `atoll run` as the leader of a process group of its own (as a shell job or a container's init would be). */
async function startWebsite(port: number, tender: "node" | "spt"): Promise<Started> {
  const child = spawn(process.execPath, [ATOLL, "run", exampleImage("website"), "--tender", tender, "-p", `${port}:80`], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number>((resolve) => child.on("exit", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : signalNumber(signal)))));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`atoll run did not come up:\n${stdout}${stderr}`);
    }
    if ((await get(port).catch(() => 0)) === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal];
}

function get(port: number, agent?: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/", agent: agent ?? false }, (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode ?? 0));
      response.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(5_000, () => req.destroy(new Error("timed out")));
    req.end();
  });
}

/** Keeps `connections` keep-alive clients fetching until stopped; returns how many requests succeeded. */
function load(port: number, connections: number): { stop: () => Promise<number> } {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  let running = true;
  let done = 0;
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      try {
        if ((await get(port, agent)) === 200) done++;
      } catch {
        // The appliance going away mid-request is what this test is about.
      }
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return done;
    },
  };
}

/** Processes whose process group is `pgid` (the run's leader and everything it started). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command (which may hold spaces): state ppid pgrp ...
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") members.push(Number(entry));
    } catch {
      // Gone while we looked.
    }
  }
  return members;
}

async function waitGroupGone(pgid: number): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    const left = groupMembers(pgid);
    if (left.length === 0) return left;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return groupMembers(pgid);
}

function gatewayPid(port: number): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv.includes("__gateway") && argv.some((arg) => arg.includes(`"hostPort":${port},`))) return Number(entry);
    } catch {
      // Gone while we looked.
    }
  }
  throw new Error(`no gateway for host port ${port}`);
}

const REPETITIONS = 10;
const sptAddon = join(ROOT, "build", "Release", "atoll_spt.node");

for (const tender of ["node", "spt"] as const) {
  const skip = tender === "spt" && !existsSync(sptAddon) ? "needs the atoll_spt addon (npm run build)" : false;
  describe(`signals to the process group under load (${tender} tender)`, { skip }, () => {
    for (const [signal, status] of [
      ["SIGTERM", 143],
      ["SIGINT", 130],
    ] as const) {
      test(`${signal} to the group: ${REPETITIONS} times status ${status}, stderr empty, no process left`, async () => {
        for (let run = 0; run < REPETITIONS; run++) {
          const port = await freePort();
          const started = await startWebsite(port, tender);
          const pgid = started.child.pid ?? -1;
          const traffic = load(port, 8);
          try {
            // Let the load build up: requests in flight both ways when the signal lands.
            await new Promise((resolve) => setTimeout(resolve, 300));
            process.kill(-pgid, signal);
            const exitStatus = await started.exited;
            const served = await traffic.stop();
            assert.ok(served > 0, `run ${run}: the load reached the appliance`);
            assert.equal(exitStatus, status, `run ${run}: ${started.stderr()}`);
            assert.equal(started.stderr(), "", `run ${run}: nothing on stderr`);
            assert.deepEqual(await waitGroupGone(pgid), [], `run ${run}: no process left in the group`);
          } finally {
            await traffic.stop();
            if (groupMembers(pgid).length > 0) process.kill(-pgid, "SIGKILL");
          }
        }
      });
    }

    test("a gateway killed alone (SIGKILL), idle or under load, ends the appliance with one line, 255", async () => {
      for (const connections of [0, 8, 8, 8]) {
        const port = await freePort();
        const started = await startWebsite(port, tender);
        const pgid = started.child.pid ?? -1;
        const traffic = load(port, connections);
        try {
          await new Promise((resolve) => setTimeout(resolve, 300));
          process.kill(gatewayPid(port), "SIGKILL");
          assert.equal(await started.exited, 255);
          const lines = started.stderr().trimEnd().split("\n");
          assert.equal(lines.length, 1, started.stderr());
          assert.match(lines[0] ?? "", /^atoll: appliance 'website' aborted: net device 'service': the user-mode network gateway (\(pid \d+\) )?exited: the appliance has lost its network/);
          assert.deepEqual(await waitGroupGone(pgid), []);
        } finally {
          await traffic.stop();
          if (groupMembers(pgid).length > 0) process.kill(-pgid, "SIGKILL");
        }
      }
    });
  });
}

/** The process state letter from /proc/<pid>/stat (R, S, T, Z ...). */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "";
}

describe("job control under spt (the appliance in a session of its own)", { skip: existsSync(sptAddon) ? false : "needs the atoll_spt addon" }, () => {
  test("SIGTSTP to the group stops the appliance process with the launcher; SIGCONT lets both go on", async () => {
    const port = await freePort();
    const started = await startWebsite(port, "spt");
    const pgid = started.child.pid ?? -1;
    try {
      const gateway = gatewayPid(port);
      const children = readFileSync(`/proc/${pgid}/task/${pgid}/children`, "utf8").trim().split(/\s+/).map(Number);
      const appliance = children.find((pid) => pid !== gateway);
      assert.ok(appliance !== undefined, "the appliance process");
      assert.ok(!groupMembers(pgid).includes(appliance), "not in the launcher's process group");
      process.kill(-pgid, "SIGTSTP");
      for (let i = 0; i < 100 && processState(appliance) !== "T"; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(processState(appliance), "T", "appliance stopped");
      assert.equal(processState(pgid), "T", "launcher stopped");
      process.kill(-pgid, "SIGCONT");
      for (let i = 0; i < 100 && processState(appliance) === "T"; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.notEqual(processState(appliance), "T", "appliance going on");
      assert.equal(await get(port), 200);
      process.kill(-pgid, "SIGTERM");
      assert.equal(await started.exited, 143);
      assert.equal(started.stderr(), "");
    } finally {
      if (groupMembers(pgid).length > 0) process.kill(-pgid, "SIGKILL");
    }
  });
});

describe("a signal for the gateway alone", () => {
  test("SIGTERM to the gateway only: it keeps serving for the grace period, then ends, and the appliance says so in one line", async () => {
    const port = await freePort();
    const started = await startWebsite(port, "node");
    const pgid = started.child.pid ?? -1;
    try {
      const gateway = gatewayPid(port);
      const signalled = Date.now();
      process.kill(gateway, "SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(await get(port), 200, "still serving after the signal");
      assert.equal(await started.exited, 255);
      const waited = Date.now() - signalled;
      assert.ok(waited >= 4_500 && waited < 15_000, `ended after ${waited} ms`);
      assert.match(started.stderr(), new RegExp(`^atoll: appliance 'website' aborted: net device 'service': the user-mode network gateway \\(pid ${gateway}\\) exited: [^\\n]*\\n$`));
    } finally {
      if (groupMembers(pgid).length > 0) process.kill(-pgid, "SIGKILL");
    }
  });
});

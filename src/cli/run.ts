/** `atoll run`: run an image (or an appliance directory, built first) on a tender. */
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseLevelSpec } from "../lib/logs/levels.ts";
import { parseIpv4Config } from "../lib/net/ipv4-config.ts";
import { deviceMap, flag, parseCommandLine, stringList, stringValue } from "./args.ts";
import { CommandError, UsageError } from "./errors.ts";
import type { RunOptions } from "../tenders/node/tender.ts";
import { OFFLOAD_MODES, type NetAttachment, type OffloadMode, type PortMapping } from "../tenders/common/attachments.ts";
import { parsePublish } from "../tenders/user/attach.ts";
import { parsePcapSpec, SPT_MAX_PCAP_FILES } from "../tenders/common/pcap.ts";

export const RUN_HELP = `Usage: atoll run <image|appdir> [options] [-- <appliance args>]

Runs an appliance image on a tender. Given an appliance directory, builds it first.
The appliance's exit status is the command's; 125 means atoll could not start it.

Options:
  --tender <name>              tender to run on: node (default), or spt (sealed: a seccomp
                               allowlist around the appliance's own process; see docs/spt.md).
                               The node tender offers no isolation: an image can reach the
                               host through it; run untrusted images with --tender spt (or
                               the VM tenders when they land)
  --memory <MiB>               (spt) limit the appliance's heap and array buffers to <MiB> MiB
  --net <dev>=user             attach net device <dev> to the user-mode network (the default
                               for a declared net device): no root, no TAP; the guest gets
                               10.0.2.15/24 by DHCP from a gateway at 10.0.2.2
  --net <dev>=tap:<iface>      attach net device <dev> to an existing TAP interface
  -p, --publish [<dev>=]<host>:<guest>[/tcp|/udp]
                               publish the guest's TCP (or UDP) port <guest> on the host's
                               127.0.0.1:<host> (user-mode network; repeatable)
  --ipv4 <dev>=<addr>/<len>[@<gateway>]
                               static IPv4 configuration for net device <dev>
  --block <dev>=<file>         attach block device <dev> to a file (size: a multiple of 512)
  --offload <dev>=all|checksum|none
                               (TAP, node tender) offloads the TAP may grant: checksums and
                               TCP segmentation (all, the default), checksums only, or none
  --pcap <dev>=<file>[,max=<size>][,files=<n>]
                               write every frame of net device <dev> to a pcap file of at
                               most <size> bytes (default 100M); capture stops there, or with
                               files=<n> rotates through <file>, <file>.1 ... <file>.<n-1>
                               (n at most 1000; 16 on spt)
  --log <level>[,<source>:<level>...]
                               log levels: quiet, error, warn, info (default), debug
  --inspect                    open the V8 inspector on 127.0.0.1:9229 (chrome://inspect)
  --inspect-brk                as --inspect, and wait for a debugger before the image starts
  --no-check                   given an appliance directory, build it without the type check
  --build                      given an appliance directory, build it on the host first; needed
                               with --tender spt, since the build runs its atoll.config.ts as
                               you, unsandboxed (only the image runs sealed)
  -h, --help                   show this help

Examples:
  atoll run dist/echo.atoll -p 8007:7          # user-mode network: nc 127.0.0.1 8007
  ip tuntap add dev tap0 mode tap && ip addr add 198.18.0.1/24 dev tap0 && ip link set tap0 up
  atoll run dist/ping.atoll --net service=tap:tap0 --ipv4 service=198.18.0.2/24
`;

interface TenderPolicy {
  /** The image runs behind a sandbox: building an appliance directory for it needs --build. */
  readonly sealed: boolean;
  readonly why: string;
}

/**
 * What each tender promises. Building an appliance directory runs its atoll.config.ts and the
 * bundler on the host, as the user, outside any sandbox (as any build tool runs its config): on
 * a sealed tender, `run <appdir>` would do that silently under a command that promises isolation,
 * so it is refused unless --build says the user means it (issue #12, finding 4).
 */
const TENDERS: Readonly<Record<string, TenderPolicy>> = {
  node: { sealed: false, why: "the developer loop: the image runs in atoll's own process, like the build" },
  spt: { sealed: true, why: "the image runs in its own process under seccomp and namespaces (docs/spt.md)" },
};

function isOffloadMode(value: string): value is OffloadMode {
  return OFFLOAD_MODES.some((mode) => mode === value);
}
/** --memory bounds: V8 needs a few MiB of old space to boot; above 1 TiB is surely a typo. */
const MIN_MEMORY_MIB = 16;
const MAX_MEMORY_MIB = 1 << 20;

export async function runCommand(argv: readonly string[]): Promise<void> {
  const parsed = parseCommandLine(
    "run",
    argv,
    {
      tender: { type: "string" },
      net: { type: "string", multiple: true },
      publish: { type: "string", multiple: true, short: "p" },
      ipv4: { type: "string", multiple: true },
      block: { type: "string", multiple: true },
      pcap: { type: "string", multiple: true },
      offload: { type: "string", multiple: true },
      log: { type: "string" },
      memory: { type: "string" },
      inspect: { type: "boolean" },
      "inspect-brk": { type: "boolean" },
      "no-check": { type: "boolean" },
      build: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    1,
  );
  if (flag(parsed, "help")) {
    process.stdout.write(RUN_HELP);
    return;
  }
  const target = parsed.positionals[0];
  if (target === undefined) throw new UsageError("atoll run: which image? e.g. `atoll run dist/hello.atoll` (see `atoll run --help`)");

  const tender = stringValue(parsed, "tender") ?? "node";
  const policy = TENDERS[tender];
  if (policy === undefined) throw new UsageError(`atoll run: unknown tender '${tender}' (available: ${Object.keys(TENDERS).join(", ")})`);
  const memory = stringValue(parsed, "memory");
  const memoryMiB = memory === undefined ? undefined : Number(memory);
  if (memoryMiB !== undefined && (!/^\d+$/.test(memory ?? "") || memoryMiB < MIN_MEMORY_MIB || memoryMiB > MAX_MEMORY_MIB)) {
    throw new UsageError(`atoll run: --memory ${memory}: give a whole number of MiB from ${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB}, e.g. --memory 256`);
  }
  if (memoryMiB !== undefined && tender !== "spt") {
    throw new UsageError("atoll run: --memory needs --tender spt (the node tender runs the appliance in atoll's own heap)");
  }

  const netSpecs = deviceMap("run", "net", stringList(parsed, "net"), "service=tap:tap0");
  const nets = new Map<string, NetAttachment>();
  for (const [device, spec] of netSpecs) {
    if (spec === "user") {
      nets.set(device, { kind: "user", publish: [] });
      continue;
    }
    const match = /^tap:(.+)$/.exec(spec);
    if (match?.[1] === undefined) throw new UsageError(`atoll run: --net ${device}=${spec}: unknown attachment; use tap:<iface> or user, e.g. --net ${device}=user`);
    nets.set(device, { kind: "tap", ifname: match[1] });
  }
  for (const [device, mode] of deviceMap("run", "offload", stringList(parsed, "offload"), "service=none")) {
    const attachment = nets.get(device);
    if (!isOffloadMode(mode)) throw new UsageError(`atoll run: --offload ${device}=${mode}: unknown mode; use all, checksum or none, e.g. --offload ${device}=none`);
    if (attachment?.kind !== "tap") throw new UsageError(`atoll run: --offload ${device}=${mode}: offloads are a TAP's; attach the device with --net ${device}=tap:<iface>`);
    if (tender === "spt" && mode !== "none") throw new UsageError(`atoll run: --offload ${device}=${mode}: the spt tender moves plain frames only; use --tender node or leave --offload out`);
    nets.set(device, { ...attachment, offload: mode });
  }
  const publish: PortMapping[] = [];
  for (const spec of stringList(parsed, "publish")) {
    const mapping = parsePublish(spec);
    if (typeof mapping === "string") throw new UsageError(`atoll run: ${mapping}`);
    // TCP and UDP ports are apart: 8053 may carry both (-p 8053:53 -p 8053:53/udp), as with Docker.
    const twin = publish.find((other) => other.hostPort === mapping.hostPort && other.protocol === mapping.protocol);
    if (twin !== undefined) throw new UsageError(`atoll run: -p ${spec}: host port ${mapping.hostPort} is already published by -p ${twin.spec}`);
    if (mapping.device !== undefined && nets.get(mapping.device)?.kind === "tap") {
      throw new UsageError(`atoll run: -p ${spec}: net device '${mapping.device}' is on a TAP; publishing ports needs --net ${mapping.device}=user`);
    }
    publish.push(mapping);
  }
  const ipv4 = deviceMap("run", "ipv4", stringList(parsed, "ipv4"), "service=198.18.0.2/24");
  for (const [device, spec] of ipv4) {
    const config = parseIpv4Config(spec);
    if (typeof config === "string") throw new UsageError(`atoll run: --ipv4 ${device}=${spec}: ${config}`);
  }
  const blocks = deviceMap("run", "block", stringList(parsed, "block"), "storage=disk.img");
  const pcaps = deviceMap("run", "pcap", stringList(parsed, "pcap"), "service=service.pcap");
  for (const [device, value] of pcaps) {
    const spec = parsePcapSpec(value);
    if (typeof spec === "string") throw new UsageError(`atoll run: --pcap ${device}=${value}: ${spec}`);
    if (tender === "spt" && spec.files > SPT_MAX_PCAP_FILES) {
      throw new UsageError(`atoll run: --pcap ${device}=${value}: the spt tender rotates through at most ${SPT_MAX_PCAP_FILES} files; use files=${SPT_MAX_PCAP_FILES} or fewer with a larger max=<size>`);
    }
  }
  const log = stringValue(parsed, "log");
  if (log !== undefined) {
    const spec = parseLevelSpec(log);
    if (typeof spec === "string") throw new UsageError(`atoll run: --log ${log}: ${spec}`);
  }
  const inspect = flag(parsed, "inspect-brk") ? "inspect-brk" : flag(parsed, "inspect") ? "inspect" : undefined;

  let imagePath = target;
  const isDirectory = existsSync(target) && statSync(target).isDirectory();
  const build = flag(parsed, "build");
  if (build && !isDirectory) throw new UsageError(`atoll run: --build builds an appliance directory, and ${target} is not one: give the directory, or leave --build out to run an image`);
  if (isDirectory) {
    const { buildAppliance, findConfig, BuildError } = await import("../build/build.ts");
    if (findConfig(target) === undefined) {
      throw new CommandError(`atoll run: ${target} is a directory without atoll.config.ts: give an .atoll image or an appliance directory`);
    }
    // Refused before the config is even loaded: loading it is running it.
    if (policy.sealed && !build) {
      const image = join(target, "dist", "<name>.atoll");
      throw new UsageError(`atoll run: building ${target} would run its atoll.config.ts on this host as you, outside the ${tender} sandbox: build it first (atoll build ${target}, then atoll run ${image} --tender ${tender}) or add --build`);
    }
    if (build) {
      const then = policy.sealed ? `; then the image runs sealed on ${tender}` : "";
      process.stderr.write(`atoll: building ${target} on the host (runs its atoll.config.ts as you, unsandboxed)${then}\n`);
    }
    try {
      imagePath = (await buildAppliance(target, { check: !flag(parsed, "no-check") })).imagePath;
    } catch (error) {
      if (error instanceof BuildError) throw new CommandError(`atoll run: ${error.message}`);
      throw error;
    }
  }

  const traceTarget = process.env.ATOLL_BOOT_TRACE;
  const onTrace =
    traceTarget === undefined || traceTarget === ""
      ? undefined
      : (trace: object): void => {
          const line = `${JSON.stringify(trace)}\n`;
          if (traceTarget === "1" || traceTarget === "stderr") process.stderr.write(line);
          else writeFileSync(traceTarget, line);
        };
  const options: RunOptions = { imagePath, nets, publish, ipv4, blocks, pcaps, log, inspect, args: parsed.rest };
  if (tender === "spt") {
    const { runSpt } = await import("../tenders/spt/tender.ts");
    await runSpt({ ...options, memoryMiB }, onTrace);
    return;
  }
  const { runImage } = await import("../tenders/node/tender.ts");
  runImage(options, onTrace);
}

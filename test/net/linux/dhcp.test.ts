/**
 * examples/ping without --ipv4 leases its address from Linux's dnsmasq over a TAP in a private
 * namespace, says so in its log, shows up in dnsmasq's lease file and log (with its MAC and the
 * hostname it sent), and answers ping at the leased address. The capture holds the whole
 * DISCOVER/OFFER/REQUEST/ACK exchange and nothing malformed.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exampleImage } from "../../helpers/cli.ts";
import { Netns } from "../../helpers/netns.ts";
import { HOST_ADDRESS, HOST_CIDR, expertProblems, skipReason, startAppliance, tryExec, tsharkFields, waitFor, type RunningAppliance } from "./fixtures/lab.ts";

const skip = skipReason("dnsmasq", "tshark", "ping");
const POOL = { first: 50, last: 60 };

let ns: Netns | undefined;
let dir = "";
let pcap = "";
let appliance: RunningAppliance | undefined;
let dnsmasq: ReturnType<Netns["spawn"]> | undefined;

before(async () => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "atoll-linux-dhcp-"));
  pcap = join(dir, "service.pcap");
  ns = new Netns(`atoll-ldhcp-${process.pid}`);
  ns.addTap("tap0", HOST_CIDR);
  // DHCP only (--port=0: no DNS), on tap0 only, in the foreground, logging to stderr.
  const server = ns.spawn([
    "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=tap0", "--bind-interfaces", "--user=root",
    `--dhcp-range=198.18.0.${POOL.first},198.18.0.${POOL.last},255.255.255.0,1h`, "--dhcp-authoritative", "--log-dhcp",
    `--dhcp-leasefile=${join(dir, "leases")}`, `--pid-file=${join(dir, "dnsmasq.pid")}`,
  ]);
  dnsmasq = server;
  await waitFor("dnsmasq to start", () => /DHCP, IP range/.test(server.output()) || server.exitCode !== null, 15_000);
  assert.equal(server.exitCode, null, `dnsmasq exited: ${server.output()}`);
});

after(async () => {
  await appliance?.stop();
  dnsmasq?.kill("SIGKILL");
  ns?.destroy();
  if (dir !== "" && process.env.ATOLL_KEEP_TEST_FILES === undefined) rmSync(dir, { recursive: true, force: true });
});

test("without --ipv4 the appliance leases an address from dnsmasq and answers ping there", { skip, timeout: 60_000 }, async (t) => {
  assert.ok(ns !== undefined && dnsmasq !== undefined);
  const server = dnsmasq;
  const started = performance.now();
  const running = startAppliance(ns, exampleImage("ping"), { pcap });
  appliance = running;
  // index.ts logs "<device>: <address>/<prefix>, <gateway> (DHCP from <server>, <lease> s)".
  // dnsmasq offers its own address as the router (option 3).
  const leased = /INFO\s+net: service: (198\.18\.0\.(\d+))\/24, gateway 198\.18\.0\.1 \(DHCP from ([\d.]+), (\d+) s\)/;
  await waitFor("the appliance's lease", () => leased.test(running.output()) || running.output().includes("aborted"), 30_000);
  const match = leased.exec(running.output());
  assert.ok(match !== null, `no lease in the appliance's log:\n${running.output()}`);
  const [, address = "", host = "", from, seconds] = match;
  t.diagnostic(`leased ${address} from ${from} for ${seconds} s, ${Math.round(performance.now() - started)} ms after start`);
  assert.ok(Number(host) >= POOL.first && Number(host) <= POOL.last, `${address} is in dnsmasq's range`);
  assert.equal(from, HOST_ADDRESS);
  assert.ok(Number(seconds) > 3500 && Number(seconds) <= 3600, `lease of ${seconds} s (dnsmasq grants 1 h)`);

  // The appliance is pingable at its leased address; Linux learns its MAC by ARP.
  const ping = tryExec(ns, ["ping", "-n", "-c", "5", "-i", "0.1", "-W", "2", address]);
  assert.match(ping.output, /5 packets transmitted, 5 received, 0% packet loss/, ping.output);
  const mac = ns.exec(["ip", "neigh", "show", address]).split(/\s+/)[4] ?? "";
  assert.match(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);

  // dnsmasq's side: the ACK in its log and the lease in its file, with the MAC and hostname.
  await waitFor("the lease file", () => readFileSync(join(dir, "leases"), "utf8").includes(address), 5000);
  const lease = readFileSync(join(dir, "leases"), "utf8").trim().split("\n").find((line) => line.includes(` ${address} `)) ?? "";
  const [expiry, leaseMac, leaseAddress, hostname] = lease.split(" ");
  assert.deepEqual({ leaseMac, leaseAddress, hostname }, { leaseMac: mac, leaseAddress: address, hostname: "atoll-ping" }, `lease file: ${lease}`);
  assert.ok(Number(expiry) > Date.now() / 1000, "the lease expires in the future");
  assert.match(server.output(), new RegExp(`DHCPACK\\(tap0\\) ${address.replace(/\./g, "\\.")} ${mac} atoll-ping`), server.output());
});

test("the capture holds DISCOVER, OFFER, REQUEST and ACK, and nothing malformed", { skip, timeout: 60_000 }, async () => {
  assert.ok(appliance !== undefined);
  assert.equal(await appliance.stop(), 143, appliance.output());
  assert.equal(expertProblems(pcap), "", "malformed or erroneous packets in the tender's capture");
  // Option 53, the message type: 1 DISCOVER, 2 OFFER, 3 REQUEST, 5 ACK.
  const types = tsharkFields(pcap, "dhcp", ["dhcp.option.dhcp"]).map(([type]) => Number(type));
  assert.deepEqual([...new Set(types)].sort(), [1, 2, 3, 5], `DHCP message types in the capture: ${types.join(",")}`);
  assert.ok(types.indexOf(1) < types.indexOf(2) && types.indexOf(2) < types.indexOf(3) && types.indexOf(3) < types.indexOf(5), `order: ${types.join(",")}`);
});

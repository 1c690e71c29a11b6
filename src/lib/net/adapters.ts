/** Adapters from the runtime (NetDevice, Scheduler, base entropy) to the stack's seams. */
import { ETHERNET_HEADER_ROOM } from "../../abi/base.ts";
import { AbiError, base } from "../runtime/base.ts";
import type { NetDevice } from "../runtime/devices.ts";
import type { Scheduler } from "../runtime/scheduler.ts";
import { MacAddress } from "../wire/address.ts";
import type { Link, RandomSource, Timers } from "./types.ts";

const NS_PER_MS = 1e6;

export function timersFromScheduler(scheduler: Scheduler): Timers {
  return {
    now: () => scheduler.now() / NS_PER_MS,
    at: (deadlineMs, callback) => scheduler.at(deadlineMs * NS_PER_MS, callback),
  };
}


export function linkFromDevice(device: NetDevice): Link {
  const offloads = device.offloads;
  return {
    mac: MacAddress.read(device.mac, 0),
    mtu: device.mtu,
    // The largest datagram is the largest frame less the Ethernet header room (a VLAN tag's
    // included); no more than the MTU when the device grants checksum offload only.
    offloads: offloads === undefined ? undefined : { maxTcpDatagram: Math.max(device.mtu, Math.min(0xffff, offloads.maxFrame - ETHERNET_HEADER_ROOM)) },
    send: (frame, offload) => device.send(frame, offload),
    onFrame: (listener) => device.onFrame(listener),
  };
}

export function baseRandom(): RandomSource {
  return (bytes) => {
    for (let offset = 0; offset < bytes.length; offset += 65536) {
      const status = base().entropy(bytes.subarray(offset, Math.min(bytes.length, offset + 65536)));
      if (status !== 0) throw new AbiError("entropy", status);
    }
  };
}

/**
 * What `--memory <MiB>` bounds in the spt tender's appliance process, and how the engine giving up
 * is reported (docs/spt.md, "Memory" and the exit table). Plain functions: appliance.ts applies them.
 *
 * `--memory N` gives the appliance N MiB on top of what the process held when its image was about
 * to run (Node, V8 and its threads' stacks, the sealed context, the compiled image):
 *  - the V8 heap's old generation is limited to N MiB (--max-old-space-size, with a near-heap-limit
 *    callback for a one-line message), its young generation's semi-spaces to N/16 MiB;
 *  - the process's private writable memory (RLIMIT_DATA: V8's heap pages, malloc, ArrayBuffer
 *    contents) is limited to what it held then plus N MiB, so the heap and the array buffers share
 *    those N MiB. A `new ArrayBuffer` past it throws a RangeError in the image (which may handle
 *    it); V8 failing to grow its heap past it is V8's out-of-memory handler, one line.
 * RLIMIT_AS would not do: V8 reserves about 900 MiB of address space it never commits (measured
 * VmSize of an idle appliance: 915 MiB, VmData 63 MiB, RssAnon 11 MiB), so an address-space
 * bound would be that reservation plus N and bound nothing resident.
 */
import { ABORT_EXIT_STATUS } from "../../abi/base.ts";

const KIB = 1024;
const MIB = 1024 * KIB;

/** `atoll run`'s status when the JavaScript engine gave up (as a SIGABRT would end it: 128 + 6). */
export const ENGINE_ABORT_EXIT_STATUS = 134;

/** VmData (KiB) from /proc/self/status: the process's private writable memory, as RLIMIT_DATA counts it. */
export function vmDataKiB(procStatus: string): number {
  const match = /^VmData:\s+(\d+) kB$/m.exec(procStatus);
  if (match?.[1] === undefined) throw new Error("cannot read VmData from /proc/self/status");
  return Number(match[1]);
}

/** RLIMIT_DATA for `--memory`: what the process holds now plus the appliance's MiB. */
export function dataLimitBytes(currentDataKiB: number, memoryMiB: number): number {
  return currentDataKiB * KIB + memoryMiB * MIB;
}

/** V8's largest semi-space on 64-bit hosts without pointer compression (Node's build), in MiB. */
const V8_DEFAULT_MAX_SEMI_SPACE_MIB = 16;

/**
 * --max-semi-space-size for `--memory`: a sixteenth of the bound, from 1 MiB to V8's default. The
 * young generation's semi-spaces are committed memory that RLIMIT_DATA counts; at V8's 16 MiB they
 * took up to 48 MiB of a 64 MiB bound, and the hog fixture (16 MiB kept, 320 MiB churned) hit the
 * bound at --memory 64. At a sixteenth it runs at 64 and at 32 (measured); smaller semi-spaces
 * mean more scavenges, so small bounds cost some speed.
 */
export function semiSpaceMiB(memoryMiB: number): number {
  return Math.min(V8_DEFAULT_MAX_SEMI_SPACE_MIB, Math.max(1, Math.floor(memoryMiB / 16)));
}

/** The lines the appliance process prints when memory runs out or the engine gives up. */
export interface EngineFailureLines {
  /** The V8 heap reached --max-old-space-size (the near-heap-limit callback). */
  readonly heapLimit: string;
  /** V8 could not get memory (followed by " [V8: <where>]"). */
  readonly outOfMemory: string;
  /** V8 aborted: a fatal error (followed by " [V8: <where>: <what>]") or SIGABRT (" (SIGABRT)"). */
  readonly fatal: string;
  readonly outOfMemoryStatus: number;
  readonly fatalStatus: number;
}

export function engineFailureLines(name: string, memoryMiB: number | undefined): EngineFailureLines {
  const prefix = `atoll: appliance '${name}'`;
  return {
    heapLimit: `${prefix} ran out of memory: its V8 heap is limited to ${memoryMiB ?? 0} MiB (--memory)`,
    outOfMemory: memoryMiB === undefined ? `${prefix} ran out of memory` : `${prefix} ran out of memory: ${limitedTo(memoryMiB)}`,
    fatal: `${prefix} was aborted by the JavaScript engine`,
    outOfMemoryStatus: ABORT_EXIT_STATUS,
    fatalStatus: ENGINE_ABORT_EXIT_STATUS,
  };
}

function limitedTo(memoryMiB: number): string {
  return `its heap and array buffers are limited to ${memoryMiB} MiB (--memory)`;
}

/**
 * An abort whose reason is an ArrayBuffer allocation refused under --memory (the library OS aborts
 * with the description of what its main threw; uncaught exceptions arrive described the same way):
 * reported as running out of memory, not as a crash of the image. The reason is the image's, so an
 * image can fake it; it then only gets this line and status instead of the abort's.
 */
export function arrayBufferRefusal(description: string, name: string, memoryMiB: number | undefined): string | undefined {
  if (memoryMiB === undefined || !/^(unhandled promise rejection: )?RangeError: Array buffer allocation failed/.test(description)) return undefined;
  return `atoll: appliance '${name}' ran out of memory: ${limitedTo(memoryMiB)} (uncaught RangeError: Array buffer allocation failed)`;
}

/**
 * A second seccomp filter for the spt tender: block transfers (pread64, pwrite64) must end within
 * the device, offset + count <= capacity.
 *
 * The allowlist (allowlist.ts, compiled by libseccomp) compares each argument on its own: count at
 * most one staging buffer, offset before the device's end. That still let native code in the
 * appliance process write 256 KiB at capacity - 512 and grow the block file by 255.5 KiB (issue
 * #12, finding 12). libseccomp cannot express a sum of two arguments, but classic BPF can: this
 * file assembles a small program by hand that adds the two 64-bit arguments in 32-bit halves and
 * kills the process (SECCOMP_RET_KILL_PROCESS, like any refused call) when the end is past the
 * capacity. It is installed as its own filter before the allowlist; the kernel runs every filter
 * and takes the strictest verdict, so for everything else it allows and leaves the decision to the
 * allowlist (other calls, other fds, other architectures' and x32 call numbers).
 *
 * Why not make the file unable to grow instead: file seals (F_SEAL_GROW) exist for memfds only, and
 * RLIMIT_FSIZE is per process, so it would also cap stdout redirected to a file and the pcap
 * files, and could only be the largest block device's size. Neither bounds each device exactly.
 *
 * Plain data, no I/O: the program is bytes for installFilter (struct sock_filter, little-endian).
 */

/** One classic BPF instruction (linux/filter.h struct sock_filter). */
export interface BpfInstruction {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

/** A block device as the filter sees it: its fd in the appliance process and its size in bytes. */
export interface BoundedBlock {
  readonly fd: number;
  readonly capacity: number;
}

/** The architecture the filter is built for: audit value and the two calls' numbers (uapi headers). */
interface ArchCalls {
  readonly audit: number;
  readonly pread64: number;
  readonly pwrite64: number;
}

const ARCHES: Readonly<Record<string, ArchCalls>> = {
  x64: { audit: 0xc000003e, pread64: 17, pwrite64: 18 }, // AUDIT_ARCH_X86_64
  arm64: { audit: 0xc00000b7, pread64: 67, pwrite64: 68 }, // AUDIT_ARCH_AARCH64
};

// linux/bpf_common.h and linux/filter.h opcodes.
const LD_W_ABS = 0x20; // A = seccomp_data[k] (32 bits)
const LD_MEM = 0x60; // A = M[k]
const ST = 0x02; // M[k] = A
const TAX = 0x07; // X = A
const ADD_K = 0x04; // A += k
const ADD_X = 0x0c; // A += X
const JEQ_K = 0x15;
const JGT_K = 0x25;
const JGE_K = 0x35;
const JGE_X = 0x3d;
const RET_K = 0x06;

// linux/seccomp.h.
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;

// struct seccomp_data: nr, arch, instruction_pointer, args[6]; little-endian halves of each arg.
const NR = 0;
const ARCH = 4;
const argLow = (index: number): number => 16 + 8 * index;
const argHigh = (index: number): number => 16 + 8 * index + 4;
const FD = 0;
const COUNT = 2;
const OFFSET = 3;

/** Scratch memory words (BPF has 16). */
const END_HIGH = 0;
const END_LOW = 1;

const TWO_TO_32 = 2 ** 32;
/** A negative loff_t: the kernel refuses it anyway (EINVAL); the filter need not reason about it. */
const SIGN_BIT = 0x80000000;

type Target = string | number;
interface Pending {
  readonly code: number;
  readonly k: number;
  readonly jt?: Target;
  readonly jf?: Target;
}

/** Resolves labels into the relative forward jumps BPF wants (each at most 255 instructions). */
function assemble(items: readonly (Pending | { readonly label: string })[]): BpfInstruction[] {
  const labels = new Map<string, number>();
  const instructions: Pending[] = [];
  for (const item of items) {
    if ("label" in item) labels.set(item.label, instructions.length);
    else instructions.push(item);
  }
  return instructions.map((instruction, index) => {
    const offset = (target: Target | undefined): number => {
      if (target === undefined) return 0;
      const destination = typeof target === "number" ? index + 1 + target : labels.get(target);
      if (destination === undefined) throw new Error(`block bounds filter: no label ${String(target)}`);
      const jump = destination - index - 1;
      if (jump < 0 || jump > 255) throw new Error("block bounds filter: too many block devices for one filter");
      return jump;
    };
    return { code: instruction.code, jt: offset(instruction.jt), jf: offset(instruction.jf), k: instruction.k >>> 0 };
  });
}

/** The checks for one device: the transfer's end, computed in 64 bits from 32-bit halves. */
function deviceCheck(block: BoundedBlock, index: number): (Pending | { readonly label: string })[] {
  const capacityHigh = Math.floor(block.capacity / TWO_TO_32);
  const capacityLow = block.capacity % TWO_TO_32;
  const kill = `kill-${index}`;
  const allow = `allow-${index}`;
  return [
    { label: `device-${index}` },
    // count < 2^32 (the allowlist holds it to one staging buffer anyway), offset >= 0.
    { code: LD_W_ABS, k: argHigh(COUNT) },
    { code: JEQ_K, k: 0, jt: 0, jf: kill },
    { code: LD_W_ABS, k: argHigh(OFFSET) },
    { code: JGE_K, k: SIGN_BIT, jt: kill, jf: 0 },
    { code: ST, k: END_HIGH },
    // end = offset + count: the low halves, with the carry into the high half.
    { code: LD_W_ABS, k: argLow(COUNT) },
    { code: TAX, k: 0 },
    { code: LD_W_ABS, k: argLow(OFFSET) },
    { code: ADD_X, k: 0 },
    { code: ST, k: END_LOW },
    // Unsigned: a sum below one of its terms wrapped around.
    { code: JGE_X, k: 0, jt: `no-carry-${index}`, jf: 0 },
    { code: LD_MEM, k: END_HIGH },
    { code: ADD_K, k: 1 },
    { code: ST, k: END_HIGH },
    { label: `no-carry-${index}` },
    // end <= capacity, high halves first.
    { code: LD_MEM, k: END_HIGH },
    { code: JGT_K, k: capacityHigh, jt: kill, jf: 0 },
    { code: JEQ_K, k: capacityHigh, jt: 0, jf: allow },
    { code: LD_MEM, k: END_LOW },
    { code: JGT_K, k: capacityLow, jt: kill, jf: allow },
    { label: kill },
    { code: RET_K, k: SECCOMP_RET_KILL_PROCESS },
    { label: allow },
    { code: RET_K, k: SECCOMP_RET_ALLOW },
  ];
}

/**
 * The filter for these devices on `arch` (process.arch). Throws for an architecture it does not
 * know, and for capacities that are not whole positive numbers of bytes.
 */
export function blockBoundsFilter(blocks: readonly BoundedBlock[], arch: string): BpfInstruction[] {
  const calls = ARCHES[arch];
  if (calls === undefined) throw new Error(`the spt tender's block bounds filter knows no system call numbers for ${arch}`);
  for (const block of blocks) {
    if (!Number.isSafeInteger(block.capacity) || block.capacity <= 0) throw new Error(`block capacity ${block.capacity} is not a positive number of bytes`);
  }
  return assemble([
    { code: LD_W_ABS, k: ARCH },
    // Another architecture: the allowlist kills it; so does this filter, for good measure.
    { code: JEQ_K, k: calls.audit, jt: 1, jf: 0 },
    { code: RET_K, k: SECCOMP_RET_KILL_PROCESS },
    { code: LD_W_ABS, k: NR },
    { code: JEQ_K, k: calls.pread64, jt: "transfer", jf: 0 },
    { code: JEQ_K, k: calls.pwrite64, jt: "transfer", jf: "allow" },
    { label: "transfer" },
    { code: LD_W_ABS, k: argLow(FD) },
    // fd is an unsigned int: its low 32 bits, as the allowlist compares it.
    ...blocks.map((block, index) => ({ code: JEQ_K, k: block.fd, jt: `device-${index}`, jf: 0 })),
    // A transfer on any other fd: the allowlist decides (it allows none).
    { label: "allow" },
    { code: RET_K, k: SECCOMP_RET_ALLOW },
    ...blocks.flatMap(deviceCheck),
  ]);
}

/** The program as installFilter takes it: struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }. */
export function encodeFilter(program: readonly BpfInstruction[]): Uint8Array {
  const bytes = new Uint8Array(program.length * 8);
  const view = new DataView(bytes.buffer);
  program.forEach((instruction, index) => {
    view.setUint16(index * 8, instruction.code, true);
    view.setUint8(index * 8 + 2, instruction.jt);
    view.setUint8(index * 8 + 3, instruction.jf);
    view.setUint32(index * 8 + 4, instruction.k, true);
  });
  return bytes;
}

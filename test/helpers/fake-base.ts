/**
 * A base ABI for tests: a virtual monotonic clock that jumps to each yield's deadline, in-memory
 * net queues, memory-backed block devices, and exit/abort recorded instead of ending the process.
 */
import { ABI_VERSION, ConsoleStream, ETHERNET_HEADER_ROOM, Status, type Base, type CommandLine, type ConsoleStreamId } from "../../src/abi/base.ts";

/**
 * A real base never returns from exit or abort. The fake must (a throw would surface as an
 * unhandled rejection in the test runner), so it records the outcome, stops the clock and returns:
 * tests look at `outcome`, never at what the image does after it ended.
 */
function ended(): never {
  return undefined as never;
}

export interface FakeNet {
  name: string;
  mac: Uint8Array;
  mtu: number;
  /** Frames waiting for the image to read. */
  inbound: Uint8Array[];
  /** Frames the image sent. */
  outbound: Uint8Array[];
}

export class FakeBase implements Base {
  readonly abiVersion = ABI_VERSION;
  clock = 1_000_000;
  /** Everything written to the console, in order (both streams). */
  readonly console: string[] = [];
  /** What went to standard error (ConsoleStream.STDERR) only. */
  readonly consoleErrors: string[] = [];
  readonly nets: FakeNet[] = [];
  readonly blocks: { name: string; data: Uint8Array }[] = [];
  yields = 0;
  /** Called at each yield with the deadline: lets a test inject input at a virtual time. */
  onYield: ((deadline: number) => void) | undefined;
  private settle: ((value: number | "abort") => void) | undefined;
  readonly outcome: Promise<{ code: number | "abort"; reason: string }>;

  constructor(readonly cmdline: CommandLine = { args: [], params: {} }) {
    this.outcome = new Promise((resolve) => {
      this.settle = (code) => resolve({ code, reason: this.abortReason });
    });
  }
  private abortReason = "";

  addNet(name: string, mtu = 1500): FakeNet {
    const net: FakeNet = { name, mac: new Uint8Array([2, 0, 0, 0, 0, this.nets.length + 1]), mtu, inbound: [], outbound: [] };
    this.nets.push(net);
    return net;
  }

  consoleWrite(bytes: Uint8Array, stream?: ConsoleStreamId): number {
    if (stream !== undefined && stream !== ConsoleStream.STDOUT && stream !== ConsoleStream.STDERR) return Status.EINVAL;
    const text = new TextDecoder().decode(bytes);
    this.console.push(text);
    if (stream === ConsoleStream.STDERR) this.consoleErrors.push(text);
    return Status.OK;
  }
  clockMonotonic(): number {
    return this.clock;
  }
  clockWall(): number {
    return 1.7e18 + this.clock;
  }
  yield(deadline: number): Promise<number> {
    this.yields++;
    return new Promise((resolve) => {
      setImmediate(() => {
        this.onYield?.(deadline);
        const ready = this.readySet();
        if (ready === 0 && deadline > this.clock) this.clock = deadline;
        resolve(ready);
      });
    });
  }
  readySet(): number {
    let ready = 0;
    this.nets.forEach((net, handle) => {
      if (net.inbound.length > 0) ready |= 1 << handle;
    });
    return ready;
  }
  netAcquire(name: string) {
    const handle = this.nets.findIndex((net) => net.name === name);
    const net = this.nets[handle];
    return net === undefined ? Status.ENODEV : { handle, mac: net.mac, mtu: net.mtu };
  }
  netRead(handle: number, buffer: Uint8Array): number {
    const net = this.nets[handle];
    if (net === undefined || buffer.length < net.mtu + ETHERNET_HEADER_ROOM) return Status.EINVAL;
    const frame = net.inbound.shift();
    if (frame === undefined) return Status.AGAIN;
    buffer.set(frame);
    return frame.length;
  }
  netWrite(handle: number, frame: Uint8Array): number {
    const net = this.nets[handle];
    if (net === undefined) return Status.EINVAL;
    net.outbound.push(frame.slice());
    return Status.OK;
  }
  blockAcquire(name: string) {
    const handle = this.blocks.findIndex((block) => block.name === name);
    const block = this.blocks[handle];
    return block === undefined ? Status.ENODEV : { handle, capacity: block.data.length, blockSize: 512 };
  }
  blockRead(handle: number, offset: number, buffer: Uint8Array): number {
    const block = this.blocks[handle];
    if (block === undefined || offset % 512 !== 0 || buffer.length % 512 !== 0 || offset + buffer.length > block.data.length) return Status.EINVAL;
    buffer.set(block.data.subarray(offset, offset + buffer.length));
    return Status.OK;
  }
  blockWrite(handle: number, offset: number, data: Uint8Array): number {
    const block = this.blocks[handle];
    if (block === undefined || offset % 512 !== 0 || data.length % 512 !== 0 || offset + data.length > block.data.length) return Status.EINVAL;
    block.data.set(data, offset);
    return Status.OK;
  }
  entropy(buffer: Uint8Array): number {
    for (let i = 0; i < buffer.length; i++) buffer[i] = (i * 37 + 11) & 0xff;
    return Status.OK;
  }
  exit(code: number): never {
    this.settle?.(code);
    return ended();
  }
  abort(reason: string): never {
    this.abortReason = reason;
    this.settle?.("abort");
    return ended();
  }
}

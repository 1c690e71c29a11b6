/**
 * The sealed context: a fresh V8 realm that holds nothing from the host but the base ABI.
 *
 * Under the node tender the base is a host object, so an image can walk from it (or from a value
 * it returns: the yield promise, a NetInfo, an error) to the host realm's Function constructor and
 * from there to `process`. Here the realm is built so that no host object is ever reachable:
 *
 *  - The context is created without a contextified host object (vm.constants.DONT_CONTEXTIFY), with
 *    code generation from strings and WebAssembly disabled; `console` (V8's, wired to the
 *    inspector), `SharedArrayBuffer` and `WebAssembly` are deleted before the image runs.
 *  - The base, its NetInfo/BlockInfo results, the command line and the yield promises are created
 *    inside the context by a bootstrap (`sealedBootstrap` below, evaluated from its source text).
 *    The bootstrap holds the host functions ("gates") in closures and never hands them out.
 *  - Gates take and return primitives only. Bytes cross through a staging ArrayBuffer that belongs
 *    to the context and is visible to the host through a host view made before the image runs; the
 *    bootstrap copies between it and the image's buffers with intrinsics it captured at install
 *    time, so that an image that patches Uint8Array.prototype cannot make host code run its getters.
 *  - Gates never throw, and the bootstrap catches anyway: a host exception would carry the host's
 *    Function constructor in error.constructor.constructor.
 *  - The host never reads a property of an image value. Uncaught image errors are described by the
 *    bootstrap, inside the context: reading `.stack` from host code would hand an image-installed
 *    Error.prepareStackTrace CallSite objects of the host realm.
 *  - Host functions are strict-mode code and the bootstrap is too, so V8 hides them (and every frame
 *    below them) from CallSite.getFunction() and getThis().
 *  - `import()` rejects with an error of the context (the default would be a host error).
 */
import { randomFillSync } from "node:crypto";
import { types } from "node:util";
import * as vm from "node:vm";
import { ABI_VERSION, ETHERNET_HEADER_ROOM, MAX_NET_DEVICES, Status } from "../../abi/base.ts";
import { consoleFd, inputWaiter, isHandle, MAX_ENTROPY, writeConsole, type HostBaseOptions } from "../common/base.ts";
import { BLOCK_SIZE } from "../common/block.ts";
import { readFrame, type HostBlock } from "../common/devices.ts";

/** The host base's options (the same devices and hooks as the node tender's), plus what sealing needs. */
export interface SealedOptions extends HostBaseOptions {
  readonly name: string;
  /** Test builds only: extra base functions taking one string (see test/tenders/spt/fixtures). */
  readonly extraGates?: ReadonlyMap<string, (argument: string) => number> | undefined;
}

/** What evaluating the image's script and calling its start came to. */
export type LoadOutcome = { readonly kind: "loaded" } | { readonly kind: "load-failed"; readonly description: string };
export type StartOutcome =
  | { readonly kind: "started" }
  | { readonly kind: "not-an-entry" }
  | { readonly kind: "start-threw"; readonly description: string };

export interface SealedAppliance {
  /** The most bytes one gate call moves (the staging buffer's size): the allowlist bounds block I/O by it. */
  readonly stagingBytes: number;
  /** Compiles the image's code for this context (no image code runs). */
  compile(code: string, filename: string, cachedData: Buffer | undefined): vm.Script;
  /** Evaluates the compiled image: its first instructions run. */
  evaluate(script: vm.Script): LoadOutcome;
  /** Calls start(base) on what the image evaluated to. */
  start(): StartOutcome;
  /** A description of any value the image threw, computed inside the context. */
  describe(value: unknown): string;
}

/** The host functions the bootstrap wraps: primitives in, a number out, never a throw. */
interface HostGates {
  consoleWrite(length: number, stream: number): number;
  clockMonotonic(): number;
  clockWall(): number;
  yield(deadline: number): number;
  netAcquire(handle: number): number;
  netRead(handle: number, capacity: number): number;
  netWrite(handle: number, length: number): number;
  blockRead(handle: number, offset: number, length: number): number;
  blockWrite(handle: number, offset: number, length: number): number;
  entropy(length: number): number;
  exit(code: number): number;
  abort(reason: string): number;
}

/** Everything the bootstrap needs to know, as JSON (parsed inside the context). */
interface BootstrapLayout {
  readonly abiVersion: number;
  readonly status: typeof Status;
  readonly headerRoom: number;
  readonly blockSize: number;
  readonly maxEntropy: number;
  readonly nets: readonly { readonly name: string; readonly mac: readonly number[]; readonly mtu: number }[];
  readonly blocks: readonly { readonly name: string; readonly capacity: number }[];
  readonly cmdline: { readonly args: readonly string[]; readonly params: Readonly<Record<string, string>> };
  readonly extraGates: readonly string[];
}

/** What the bootstrap returns to the host: three functions of the context. */
interface BootstrapEntryPoints {
  /** Evaluated entry → 0 started, 1 not an entry, or a description of what start threw. */
  start(entry: unknown): number | string;
  describe(value: unknown): string;
  /** Resolves the outstanding yield with a ready set. */
  wake(ready: number): void;
}

/** Staging holds any frame, any entropy request, and a run of whole blocks. */
const MIN_STAGING_BYTES = 256 * 1024;
const BOOTSTRAP_FILENAME = "atoll://spt/bootstrap.js";

/**
 * Runs INSIDE the appliance's context: the host evaluates its source text there, so it must not
 * refer to anything outside its own body (no imports, no module constants), and it must stay
 * strict-mode code. Everything it uses from the realm is captured before the image's first
 * instruction, because afterwards the image may have replaced any global or prototype method.
 * After install it uses no iteration protocol, spread, destructuring or property lookup that
 * could reach a prototype, and calls captured functions through the captured Reflect.apply.
 */
function sealedBootstrap(
  gates: HostGates,
  extraGates: readonly ((argument: string) => number)[],
  layoutJson: string,
  stagingBuffer: ArrayBuffer,
  assetsBuffer: ArrayBuffer | null,
): BootstrapEntryPoints {
  "use strict";
  const apply = Reflect.apply;
  const reflectGet = Reflect.get;
  const freeze = Object.freeze;
  const defineProperty = Object.defineProperty;
  const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  const Bytes = Uint8Array;
  const PromiseConstructor = Promise;
  const StringConstructor = String;
  const TypeErrorConstructor = TypeError;
  const typedArrayPrototype: object = Object.getPrototypeOf(Bytes.prototype);
  const getterOf = (key: string | symbol) => {
    const getter = getOwnPropertyDescriptor(typedArrayPrototype, key)?.get;
    if (getter === undefined) throw new TypeErrorConstructor("atoll: this realm's typed arrays are not as expected");
    return getter;
  };
  const tagGetter = getterOf(Symbol.toStringTag);
  const lengthGetter = getterOf("length");
  const bufferGetter = getterOf("buffer");
  const byteOffsetGetter = getterOf("byteOffset");
  const setBytes = Bytes.prototype.set;

  const layout: BootstrapLayout = JSON.parse(layoutJson);
  const { OK, EINVAL, EIO, ENODEV, EMSGSIZE } = layout.status;
  const nets = layout.nets;
  const blocks = layout.blocks;
  const netCount = nets.length;
  const blockCount = blocks.length;
  const staging = new Bytes(stagingBuffer);
  const stagingSize = staging.length;
  // The same bytes on every call, as the ABI says; the image may only spoil its own copy.
  const assetBytes = assetsBuffer === null ? undefined : new Bytes(assetsBuffer);

  const gateConsoleWrite = gates.consoleWrite;
  const gateClockMonotonic = gates.clockMonotonic;
  const gateClockWall = gates.clockWall;
  const gateYield = gates.yield;
  const gateNetAcquire = gates.netAcquire;
  const gateNetRead = gates.netRead;
  const gateNetWrite = gates.netWrite;
  const gateBlockRead = gates.blockRead;
  const gateBlockWrite = gates.blockWrite;
  const gateEntropy = gates.entropy;
  const gateExit = gates.exit;
  const gateAbort = gates.abort;

  // A gate that threw would hand over a host error: swallow it and report EIO.
  const guarded = (gate: () => number): number => {
    try {
      const result = gate();
      return typeof result === "number" ? result : EIO;
    } catch {
      return EIO;
    }
  };
  const isBytes = (value: unknown): value is Uint8Array =>
    typeof value === "object" && value !== null && apply(tagGetter, value, []) === "Uint8Array";
  const lengthOf = (bytes: Uint8Array): number => apply(lengthGetter, bytes, []);
  const isHandle = (value: unknown, count: number): value is number =>
    typeof value === "number" && value % 1 === 0 && value >= 0 && value < count;
  /** bytes[from, from + length) → staging[0, length). */
  const copyIn = (bytes: Uint8Array, from: number, length: number): void => {
    const view = new Bytes(apply(bufferGetter, bytes, []), apply(byteOffsetGetter, bytes, []) + from, length);
    apply(setBytes, staging, [view, 0]);
  };
  /** staging[0, length) → bytes[to, to + length). */
  const copyOut = (bytes: Uint8Array, to: number, length: number): void => {
    apply(setBytes, bytes, [new Bytes(stagingBuffer, 0, length), to]);
  };
  const smaller = (a: number, b: number): number => (a < b ? a : b);
  const settled = (value: number): Promise<number> => new PromiseConstructor<number>((resolve) => resolve(value));

  let lastMonotonic = 0;
  let lastWall = 0;
  let pendingYield: ((ready: number) => void) | undefined;

  /** The block range's length, or -1 when the request is not valid (node tender rules). */
  const blockRange = (handle: unknown, offset: unknown, buffer: unknown): number => {
    if (!isHandle(handle, blockCount) || !isBytes(buffer)) return -1;
    if (typeof offset !== "number" || offset % 1 !== 0 || offset < 0) return -1;
    const length = lengthOf(buffer);
    if (offset % layout.blockSize !== 0 || length % layout.blockSize !== 0 || length === 0) return -1;
    return offset + length > blocks[handle].capacity ? -1 : length;
  };

  const args = layout.cmdline.args;
  freeze(args);
  const cmdline = freeze({ args, params: freeze(layout.cmdline.params) });

  const base = {
    abiVersion: layout.abiVersion,
    cmdline,

    consoleWrite: (bytes: unknown, stream: unknown): number => {
      if (!isBytes(bytes)) return EINVAL;
      // Absent means standard output (images built before the argument existed); 1 and 2 are the
      // ConsoleStream values (the host checks them again).
      const streamId = stream === undefined ? 1 : stream;
      if (streamId !== 1 && streamId !== 2) return EINVAL;
      const length = lengthOf(bytes);
      for (let done = 0; done < length; ) {
        const chunk = smaller(length - done, stagingSize);
        copyIn(bytes, done, chunk);
        const status = guarded(() => gateConsoleWrite(chunk, streamId));
        if (status !== OK) return status;
        done += chunk;
      }
      return OK;
    },

    clockMonotonic: (): number => {
      const now = guarded(() => gateClockMonotonic());
      if (now >= lastMonotonic) lastMonotonic = now;
      return lastMonotonic;
    },

    clockWall: (): number => {
      const now = guarded(() => gateClockWall());
      if (now >= 0) lastWall = now;
      return lastWall;
    },

    yield: (deadline: unknown): Promise<number> => {
      if (typeof deadline !== "number" || deadline !== deadline || pendingYield !== undefined) {
        return settled(EINVAL);
      }
      let resolveYield: ((ready: number) => void) | undefined;
      const promise = new PromiseConstructor<number>((resolve) => {
        resolveYield = resolve;
      });
      const status = guarded(() => gateYield(deadline));
      if (status !== OK) return settled(status);
      pendingYield = resolveYield;
      return promise;
    },

    netAcquire: (name: unknown): { handle: number; mac: Uint8Array; mtu: number } | number => {
      if (typeof name !== "string") return EINVAL;
      for (let handle = 0; handle < netCount; handle++) {
        const net = nets[handle];
        if (net.name !== name) continue;
        guarded(() => gateNetAcquire(handle));
        const mac = new Bytes(6);
        for (let i = 0; i < 6; i++) mac[i] = net.mac[i];
        return { handle, mac, mtu: net.mtu };
      }
      return ENODEV;
    },

    netRead: (handle: unknown, buffer: unknown): number => {
      if (!isHandle(handle, netCount) || !isBytes(buffer)) return EINVAL;
      const capacity = lengthOf(buffer);
      if (capacity < nets[handle].mtu + layout.headerRoom) return EINVAL;
      const length = guarded(() => gateNetRead(handle, smaller(capacity, stagingSize)));
      if (length > 0) copyOut(buffer, 0, length);
      return length;
    },

    netWrite: (handle: unknown, frame: unknown): number => {
      if (!isHandle(handle, netCount) || !isBytes(frame)) return EINVAL;
      const length = lengthOf(frame);
      if (length < 14) return EINVAL;
      if (length > nets[handle].mtu + layout.headerRoom) return EMSGSIZE;
      copyIn(frame, 0, length);
      return guarded(() => gateNetWrite(handle, length));
    },

    blockAcquire: (name: unknown): { handle: number; capacity: number; blockSize: number } | number => {
      if (typeof name !== "string") return EINVAL;
      for (let handle = 0; handle < blockCount; handle++) {
        if (blocks[handle].name === name) return { handle, capacity: blocks[handle].capacity, blockSize: layout.blockSize };
      }
      return ENODEV;
    },

    blockRead: (handle: unknown, offset: unknown, buffer: unknown): number => {
      const length = blockRange(handle, offset, buffer);
      if (length < 0 || !isHandle(handle, blockCount) || typeof offset !== "number" || !isBytes(buffer)) return EINVAL;
      for (let done = 0; done < length; ) {
        const chunk = smaller(length - done, stagingSize);
        const status = guarded(() => gateBlockRead(handle, offset + done, chunk));
        if (status !== OK) return status;
        copyOut(buffer, done, chunk);
        done += chunk;
      }
      return OK;
    },

    blockWrite: (handle: unknown, offset: unknown, data: unknown): number => {
      const length = blockRange(handle, offset, data);
      if (length < 0 || !isHandle(handle, blockCount) || typeof offset !== "number" || !isBytes(data)) return EINVAL;
      for (let done = 0; done < length; ) {
        const chunk = smaller(length - done, stagingSize);
        copyIn(data, done, chunk);
        const status = guarded(() => gateBlockWrite(handle, offset + done, chunk));
        if (status !== OK) return status;
        done += chunk;
      }
      return OK;
    },

    entropy: (buffer: unknown): number => {
      if (!isBytes(buffer)) return EINVAL;
      const length = lengthOf(buffer);
      if (length > layout.maxEntropy) return EINVAL;
      if (length === 0) return OK;
      const status = guarded(() => gateEntropy(length));
      if (status === OK) copyOut(buffer, 0, length);
      return status;
    },

    assets: (): Uint8Array | undefined => assetBytes,

    exit: (code: unknown): never => {
      const status = typeof code === "number" && code % 1 === 0 && code >= 0 && code <= 255 ? code : 255;
      guarded(() => gateExit(status));
      throw new TypeErrorConstructor("atoll: exit did not end the appliance");
    },

    abort: (reason: unknown): never => {
      const text = typeof reason === "string" ? reason : "abort called without a reason";
      guarded(() => gateAbort(text));
      throw new TypeErrorConstructor("atoll: abort did not end the appliance");
    },
  };
  for (let i = 0; i < layout.extraGates.length; i++) {
    const gate = extraGates[i];
    const name = layout.extraGates[i] ?? "";
    // A test build adds functions; it cannot replace the ABI's.
    if (name === "" || reflectGet(base, name) !== undefined) continue;
    const call = (argument: unknown): number => (typeof argument === "string" && gate !== undefined ? guarded(() => gate(argument)) : EINVAL);
    defineProperty(base, name, { value: freeze(call), enumerable: true });
  }
  for (const key of Reflect.ownKeys(base)) {
    const value: unknown = Reflect.get(base, key);
    if (typeof value === "function") freeze(value);
  }
  freeze(base);

  // Host channels the engine puts in every realm: V8's console talks to the inspector, and shared
  // memory has no use without threads while it would make timers of arbitrary precision.
  Reflect.deleteProperty(globalThis, "console");
  Reflect.deleteProperty(globalThis, "SharedArrayBuffer");
  Reflect.deleteProperty(globalThis, "WebAssembly");

  const describe = (value: unknown): string => {
    try {
      if (typeof value === "object" && value !== null) {
        const stack: unknown = reflectGet(value, "stack");
        if (typeof stack === "string") return stack;
      }
      const text = StringConstructor(value);
      return typeof text === "string" ? text : "a value that cannot be described";
    } catch {
      return "a value that cannot be described";
    }
  };

  return freeze({
    start: (entry: unknown): number | string => {
      let start: unknown;
      try {
        start = typeof entry === "object" && entry !== null ? reflectGet(entry, "start") : undefined;
        if (typeof start !== "function") return 1;
        apply(start, entry, [base]);
      } catch (error) {
        return describe(error);
      }
      return 0;
    },
    describe,
    wake: (ready: number): void => {
      const resolve = pendingYield;
      pendingYield = undefined;
      if (resolve !== undefined) resolve(ready);
    },
  });
}

/**
 * The bootstrap's source text, for evaluation in the context. TypeScript compilers may wrap named
 * functions in a `__name(fn, "name")` helper (esbuild's keepNames, which tsx enables), defined in
 * the module, not in the context: the context gets a harmless one, which keeps `fn` as it is.
 */
function bootstrapSource(): string {
  return `(() => { "use strict"; const __name = (target) => target; return (${sealedBootstrap.toString()}); })()`;
}

function isFunction(value: unknown): value is (...args: unknown[]) => unknown {
  return typeof value === "function";
}

/** Builds the sealed context and its base. Nothing of the image runs until `evaluate`. */
export function createSealedAppliance(options: SealedOptions): SealedAppliance {
  const { nets, blocks } = options;
  if (nets.length > MAX_NET_DEVICES) throw new Error(`at most ${MAX_NET_DEVICES} net devices are supported`);
  // import() must reject with an error of the context: Node's default rejection is a host error.
  // The callback is set on the context as well as on the image's script, because a script
  // compiled from a V8 code cache loses its own (Node 20) and falls back to the context's.
  let contextTypeError: (...args: unknown[]) => unknown = () => undefined;
  const importModuleDynamically = (): never => {
    throw Reflect.construct(contextTypeError, ["import() is not available to an atoll appliance: bundle the module into the image"]);
  };
  const context = vm.createContext(vm.constants.DONT_CONTEXTIFY, {
    name: `atoll:${options.name}`,
    codeGeneration: { strings: false, wasm: false },
    importModuleDynamically,
  });
  // Taken now, before the image could replace the global.
  const ContextTypeError: unknown = vm.runInContext("TypeError", context);
  if (!isFunction(ContextTypeError)) throw new Error("atoll: the sealed context has no TypeError");
  contextTypeError = ContextTypeError;

  const largestFrame = Math.max(0, ...nets.map((net) => net.backend.mtu + ETHERNET_HEADER_ROOM));
  const stagingBytes = Math.max(MIN_STAGING_BYTES, Math.ceil(largestFrame / BLOCK_SIZE) * BLOCK_SIZE);
  // The staging buffer belongs to the context (so nothing of the host's realm hangs off the views
  // the bootstrap makes of it); the host works on it through a view of its own, made now.
  const stagingBuffer: unknown = vm.runInContext(`new ArrayBuffer(${stagingBytes})`, context);
  if (!types.isArrayBuffer(stagingBuffer)) throw new Error("atoll: the sealed context returned no staging buffer");
  const staging = new Uint8Array(stagingBuffer);

  const pollFds = new Int32Array(nets.length).fill(-1);
  const captures = nets.flatMap((net) => (net.pcap === undefined ? [] : [net.pcap]));
  const startNs = process.hrtime.bigint();
  const monotonic = (): number => Number(process.hrtime.bigint() - startNs);
  const isLength = (value: unknown, limit: number): value is number =>
    typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= limit;
  const blockAt = (handle: unknown, offset: unknown, length: unknown): HostBlock | undefined => {
    if (!isHandle(handle, blocks.length) || !isLength(length, staging.length) || length % BLOCK_SIZE !== 0) return undefined;
    const block = blocks[handle];
    if (block === undefined || !isLength(offset, block.device.capacity - length) || offset % BLOCK_SIZE !== 0) return undefined;
    return block;
  };
  /** A gate body that threw is a tender bug; it must still not cross into the image. */
  const safely = (what: string, body: () => number): number => {
    try {
      return body();
    } catch (error) {
      options.warn(`${what} failed: ${error instanceof Error ? error.message : String(error)}`);
      return Status.EIO;
    }
  };

  let yielding = false;
  let wake: (ready: number) => void = () => {};
  const waitForInput = inputWaiter({ poll: options.poll, maxWaitNs: options.maxWaitNs, pollFds, captures, monotonic });

  const gates: HostGates = Object.freeze({
    consoleWrite: (length: number, stream: number): number =>
      safely("console write", () => {
        const fd = consoleFd(stream);
        if (!isLength(length, staging.length) || fd === undefined) return Status.EINVAL;
        // Positions are mapped on the host side of the gate: the image never sees its source map.
        return writeConsole(fd, options.positions === undefined ? staging.subarray(0, length) : options.positions.rewriteBytes(staging.subarray(0, length)));
      }),
    clockMonotonic: monotonic,
    // As the node tender: Date.now follows changes to the host's clock, at 1 ms precision.
    clockWall: () => Date.now() * 1e6,
    yield: (deadline: number): number =>
      safely("yield", () => {
        if (typeof deadline !== "number" || Number.isNaN(deadline) || yielding) return Status.EINVAL;
        yielding = true;
        waitForInput(deadline, (ready) => {
          yielding = false;
          wake(ready);
        });
        return Status.OK;
      }),
    netAcquire: (handle: number): number =>
      safely("netAcquire", () => {
        const net = isHandle(handle, nets.length) ? nets[handle] : undefined;
        if (net === undefined) return Status.EINVAL;
        // Only acquired devices are polled: input on a device the image never asked for must not wake it.
        pollFds[handle] = net.backend.fd;
        return Status.OK;
      }),
    netRead: (handle: number, capacity: number): number =>
      safely("netRead", () => {
        const net = isHandle(handle, nets.length) ? nets[handle] : undefined;
        if (net === undefined || !isLength(capacity, staging.length)) return Status.EINVAL;
        const n = readFrame(net, () => net.backend.read(staging.subarray(0, capacity)), options);
        if (n <= 0) return n;
        net.pcap?.record(staging.subarray(0, n));
        return n;
      }),
    netWrite: (handle: number, length: number): number =>
      safely("netWrite", () => {
        const net = isHandle(handle, nets.length) ? nets[handle] : undefined;
        if (net === undefined || !isLength(length, net.backend.mtu + ETHERNET_HEADER_ROOM) || length < 14) return Status.EINVAL;
        const frame = staging.subarray(0, length);
        if (net.backend.write(frame) !== length) return Status.EIO;
        net.pcap?.record(frame);
        return Status.OK;
      }),
    blockRead: (handle: number, offset: number, length: number): number =>
      safely("blockRead", () => {
        const block = blockAt(handle, offset, length);
        if (block === undefined) return Status.EINVAL;
        try {
          block.device.read(offset, staging.subarray(0, length));
          return Status.OK;
        } catch (error) {
          options.warn(`block device '${block.name}': read at ${offset} failed: ${String(error)}`);
          return Status.EIO;
        }
      }),
    blockWrite: (handle: number, offset: number, length: number): number =>
      safely("blockWrite", () => {
        const block = blockAt(handle, offset, length);
        if (block === undefined) return Status.EINVAL;
        try {
          block.device.write(offset, staging.subarray(0, length));
          return Status.OK;
        } catch (error) {
          options.warn(`block device '${block.name}': write at ${offset} failed: ${String(error)}`);
          return Status.EIO;
        }
      }),
    entropy: (length: number): number =>
      safely("entropy", () => {
        if (!isLength(length, MAX_ENTROPY)) return Status.EINVAL;
        randomFillSync(staging, 0, length);
        return Status.OK;
      }),
    exit: (code: number): number => options.onExit(isLength(code, 255) ? code : 255),
    abort: (reason: string): number => options.onAbort(typeof reason === "string" ? reason : "abort called without a reason"),
  });

  const extraNames = [...(options.extraGates?.keys() ?? [])];
  const extraFunctions = [...(options.extraGates?.values() ?? [])];
  const layout: BootstrapLayout = {
    abiVersion: ABI_VERSION,
    status: Status,
    headerRoom: ETHERNET_HEADER_ROOM,
    blockSize: BLOCK_SIZE,
    maxEntropy: MAX_ENTROPY,
    nets: nets.map((net) => ({ name: net.name, mac: [...net.mac], mtu: net.backend.mtu })),
    blocks: blocks.map((block) => ({ name: block.name, capacity: block.device.capacity })),
    cmdline: { args: [...options.cmdline.args], params: { ...options.cmdline.params } },
    extraGates: extraNames,
  };

  // The assets are copied once into a buffer of the context (the section's bytes are a view of the
  // host's image file buffer, which may hold other host bytes).
  let assetsBuffer: ArrayBuffer | null = null;
  if (options.assets !== undefined) {
    const buffer: unknown = vm.runInContext(`new ArrayBuffer(${options.assets.length})`, context);
    if (!types.isArrayBuffer(buffer)) throw new Error("atoll: the sealed context returned no assets buffer");
    new Uint8Array(buffer).set(options.assets);
    assetsBuffer = buffer;
  }

  const install: unknown = vm.runInContext(bootstrapSource(), context, { filename: BOOTSTRAP_FILENAME, displayErrors: false });
  if (!isFunction(install)) throw new Error("atoll: the sealed bootstrap did not evaluate to a function");
  const entryPoints: unknown = install(gates, extraFunctions, JSON.stringify(layout), stagingBuffer, assetsBuffer);
  const entryPoint = (name: keyof BootstrapEntryPoints): ((...args: unknown[]) => unknown) => {
    const value: unknown = typeof entryPoints === "object" && entryPoints !== null ? Reflect.get(entryPoints, name) : undefined;
    if (!isFunction(value)) throw new Error(`atoll: the sealed bootstrap returned no ${name}`);
    return value;
  };
  // Read once, now, before any image code could have touched anything.
  const start = entryPoint("start");
  const describeInside = entryPoint("describe");
  const wakeInside = entryPoint("wake");
  wake = (ready) => {
    wakeInside(ready);
  };
  const describe = (value: unknown): string => {
    const text = describeInside(value);
    return typeof text === "string" ? text : "a value that cannot be described";
  };


  let entry: unknown;
  return {
    stagingBytes,
    compile(code, filename, cachedData) {
      return new vm.Script(code, {
        filename,
        importModuleDynamically,
        ...(cachedData === undefined ? {} : { cachedData }),
      });
    },
    evaluate(script) {
      try {
        // displayErrors would make Node read the error's stack from host code (see the header).
        entry = script.runInContext(context, { displayErrors: false });
      } catch (error) {
        return { kind: "load-failed", description: describe(error) };
      }
      return { kind: "loaded" };
    },
    start() {
      // The host holds the entry without looking at it; only the bootstrap does.
      const outcome = start(entry);
      if (outcome === 0) return { kind: "started" };
      if (outcome === 1) return { kind: "not-an-entry" };
      return { kind: "start-threw", description: typeof outcome === "string" ? outcome : "a value that cannot be described" };
    },
    describe,
  };
}

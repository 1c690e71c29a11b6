/**
 * Counters that layers register (frames in/out, drops by reason), read by the appliance and
 * printed at exit when the "atoll" log source is at debug.
 */

export type CounterSnapshot = Readonly<Record<string, number>>;

const sources = new Map<string, () => CounterSnapshot>();

/** Registers a layer's counters under a name such as "net.service" or "arp"; a later registration replaces it. */
export function registerCounters(name: string, read: () => CounterSnapshot): void {
  sources.set(name, read);
}

export function readCounters(): Record<string, CounterSnapshot> {
  const out: Record<string, CounterSnapshot> = {};
  for (const [name, read] of sources) out[name] = { ...read() };
  return out;
}

export function formatCounters(snapshot: Record<string, CounterSnapshot>): string[] {
  return Object.entries(snapshot).map(
    ([name, values]) =>
      `${name}: ${Object.entries(values)
        .map(([key, value]) => `${key}=${value}`)
        .join(" ")}`,
  );
}

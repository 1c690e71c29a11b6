/**
 * The manifest: what an image declares about itself. It travels inside the image as JSON and is
 * validated at both ends: by the builder before it seals an image, and by every tender before it
 * runs one (an image is untrusted input to a tender).
 */

export interface Manifest {
  /** Appliance name: lower-case letters, digits and dashes, as in `dist/<name>.atoll`. */
  readonly name: string;
  /** Net devices the appliance needs, by name; a tender refuses to run it unless each is attached. */
  readonly net: readonly string[];
  /** Block devices the appliance needs, by name. */
  readonly block: readonly string[];
  /** The image format's producer, e.g. "atoll 0.1.0". */
  readonly builtBy: string;
  /** Build time, ISO 8601 UTC. */
  readonly buildTime: string;
  /** ABI version the image's library OS speaks. */
  readonly abiVersion: number;
}

const NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
const DEVICE_PATTERN = /^[a-z][a-z0-9_-]{0,30}$/;
const MAX_DEVICES = 32;
/** As Date.prototype.toISOString writes it: 2026-11-27T09:30:55.859Z. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

export class ManifestError extends Error {
  override readonly name = "ManifestError";
}

/** Validates that a device name list is well formed; returns the list or throws ManifestError naming the problem. */
export function validateDeviceNames(kind: "net" | "block", value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ManifestError(`'${kind}' must be a list of device names, e.g. ${kind}: ["service"]`);
  if (value.length > MAX_DEVICES) throw new ManifestError(`'${kind}' declares ${value.length} devices; at most ${MAX_DEVICES} are allowed`);
  const seen = new Set<string>();
  const names: string[] = [];
  for (const entry of value) {
    if (typeof entry !== "string" || !DEVICE_PATTERN.test(entry)) {
      throw new ManifestError(
        `'${kind}' device name ${JSON.stringify(entry)} is invalid: use lower-case letters, digits, '-' or '_', starting with a letter (at most 31 characters)`,
      );
    }
    if (seen.has(entry)) throw new ManifestError(`'${kind}' declares device '${entry}' twice`);
    seen.add(entry);
    names.push(entry);
  }
  return names;
}

export function validateName(value: unknown): string {
  if (typeof value !== "string" || !NAME_PATTERN.test(value)) {
    throw new ManifestError(
      `appliance name ${JSON.stringify(value)} is invalid: use lower-case letters, digits and '-', starting with a letter (at most 63 characters)`,
    );
  }
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Parses and validates a manifest read from an image. Throws ManifestError with a one-line reason. */
export function parseManifest(json: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new ManifestError("manifest is not valid JSON");
  }
  if (!isRecord(value)) throw new ManifestError("manifest is not a JSON object");
  const allowed = new Set(["name", "net", "block", "builtBy", "buildTime", "abiVersion"]);
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) throw new ManifestError(`manifest has an unknown field '${key}'`);
  }
  const name = validateName(value.name);
  const net = validateDeviceNames("net", value.net);
  const block = validateDeviceNames("block", value.block);
  for (const device of net) {
    if (block.includes(device)) throw new ManifestError(`device '${device}' is declared both as net and as block`);
  }
  if (typeof value.builtBy !== "string" || value.builtBy.length > 200) throw new ManifestError("manifest field 'builtBy' must be a string of at most 200 characters");
  if (typeof value.buildTime !== "string" || !ISO_TIME.test(value.buildTime) || Number.isNaN(Date.parse(value.buildTime))) {
    throw new ManifestError("manifest field 'buildTime' must be an ISO 8601 time");
  }
  if (typeof value.abiVersion !== "number" || !Number.isInteger(value.abiVersion) || value.abiVersion < 1) {
    throw new ManifestError("manifest field 'abiVersion' must be a positive integer");
  }
  return { name, net, block, builtBy: value.builtBy, buildTime: value.buildTime, abiVersion: value.abiVersion };
}

/**
 * `atoll.config.ts`: what an appliance declares about itself, read by `atoll build`.
 *
 *   import { defineConfig } from "atoll/config";
 *   export default defineConfig({ name: "ping", net: ["service"] });
 */

export interface AtollConfig {
  /** Appliance name: lower-case letters, digits and '-'; the image is dist/<name>.atoll. */
  readonly name: string;
  /**
   * The module whose default export is the appliance's main function, relative to the config
   * (inside its directory: `atoll build` refuses one outside). Default "src/main.ts".
   */
  readonly entry?: string;
  /** Net devices the appliance uses, by name (attached with `atoll run --net <name>=...`). */
  readonly net?: readonly string[];
  /** Block devices the appliance uses, by name (attached with `atoll run --block <name>=<file>`). */
  readonly block?: readonly string[];
  /**
   * A directory, relative to the config, whose files `atoll build` bakes into the image's assets
   * section (e.g. "public"); read them with `imageAssets()` from "atoll/assets" (docs/assets.md).
   * One directory, not a glob; it and the symbolic links under it must stay inside the config's
   * directory.
   */
  readonly assets?: string;
}

/** Identity function that gives an editor the config's type, as vite's defineConfig does. */
export function defineConfig(config: AtollConfig): AtollConfig {
  return config;
}

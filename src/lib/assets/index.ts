/**
 * "atoll/assets": the files `atoll build` baked into the image (the `assets` setting of
 * atoll.config.ts), as a read-only store:
 *
 *   import { imageAssets } from "atoll/assets";
 *   const page = imageAssets().lookup("/index.html");   // { body, contentType, etag, variants }
 *
 * The bytes are the image's assets section, handed over by the tender through the base's
 * `assets()` call without a copy (docs/abi.md, docs/assets.md); bodies are views of it. Do not
 * write to them.
 */
import { base } from "../runtime/base.ts";
import { EMPTY_ASSET_STORE, decodeAssets, type AssetStore } from "./format.ts";

export {
  AssetFormatError,
  EMPTY_ASSET_STORE,
  decodeAssets,
  encodeAssets,
  type Asset,
  type AssetEntry,
  type AssetStore,
  type AssetVariant,
  type ContentCoding,
} from "./format.ts";
export { contentTypeFor, isCompressible } from "./content-types.ts";

let store: AssetStore | undefined;

/**
 * The image's assets (an empty store when it has none, or when the tender predates the call).
 * Decoded once, on first use.
 */
export function imageAssets(): AssetStore {
  if (store !== undefined) return store;
  const section = base().assets?.();
  // The tender's bytes belong to its realm: a view made here is an ordinary Uint8Array of the image's.
  store = section === undefined ? EMPTY_ASSET_STORE : decodeAssets(new Uint8Array(section.buffer, section.byteOffset, section.byteLength));
  return store;
}

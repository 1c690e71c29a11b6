/**
 * serveStatic: a fetch-style handler for a static website from an asset store (atoll/assets).
 *
 * - GET and HEAD (HEAD answers with GET's fields, Content-Length included); anything else 405
 *   with `Allow: GET, HEAD` (RFC 9110 §15.5.6).
 * - Paths are percent-decoded (invalid UTF-8 → 400). "/dir/" serves "/dir/index.html"; "/dir"
 *   redirects (301) to "/dir/" when that has an index, so relative links in the page work.
 * - Precompressed variants (built by `atoll build`) by Accept-Encoding: br preferred, then gzip,
 *   q-values honoured, q=0 excluding; `Vary: Accept-Encoding` whenever variants exist; 406 when
 *   the client refuses every coding the asset has, identity included.
 * - Strong ETags (SHA-256); If-Match → 412, If-None-Match (weak comparison) → 304.
 * - Range on GET: one range (after coalescing) → 206 with Content-Range; none satisfiable → 416;
 *   several → 200 with the whole file. If-Range with a strong ETag match only.
 * - Not found: 404 with the store's "/404.html" when there is one.
 */
import { TextDecoder } from "../web/encoding.ts";
import { Headers } from "../web/headers.ts";
import type { Request } from "../web/request.ts";
import { Response } from "../web/response.ts";
import { URL, percentDecode } from "../web/url.ts";
import type { Asset, AssetStore, ContentCoding } from "../assets/format.ts";
import { chooseContentCoding, evaluatePreconditions, evaluateRange, ifRangeAllows } from "./representation.ts";

export interface StaticOptions {
  /** The file served for a path ending in "/" (default "index.html"). */
  readonly indexFile?: string | undefined;
  /** The asset served with 404 when nothing matches (default "/404.html" when present; null: a plain-text 404). */
  readonly notFoundPage?: string | null | undefined;
  /** Cache-Control for found assets: a value, or a function of the asset (default: none). */
  readonly cacheControl?: string | ((asset: Asset) => string | undefined) | undefined;
}

/** Codings in the server's order of preference: brotli compresses text better than gzip. */
const BR_AND_GZIP: readonly ContentCoding[] = ["br", "gzip"];
const BR_ONLY: readonly ContentCoding[] = ["br"];
const GZIP_ONLY: readonly ContentCoding[] = ["gzip"];
const NO_CODINGS: readonly ContentCoding[] = [];
const ALLOW = "GET, HEAD";

interface Representation {
  readonly body: Uint8Array;
  readonly etag: string;
  readonly coding: ContentCoding | undefined;
}

function textResponse(status: number, text: string, headers: Record<string, string> = {}): Response {
  return new Response(`${text}\n`, { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers } });
}

function decodePath(pathname: string, decoder: TextDecoder): string | undefined {
  // A serialized pathname is ASCII (the URL parser percent-encodes the rest): without "%" it
  // decodes to itself.
  if (!pathname.includes("%")) return pathname;
  try {
    return decoder.decode(percentDecode(pathname));
  } catch {
    return undefined;
  }
}

/** The representation to send, or undefined when the client accepts none (→ 406). */
/** The codings an asset has, in the server's order of preference (one of four arrays made once). */
function availableCodings(asset: Asset): readonly ContentCoding[] {
  const br = asset.variants.br !== undefined;
  const gzip = asset.variants.gzip !== undefined;
  return br ? (gzip ? BR_AND_GZIP : BR_ONLY) : gzip ? GZIP_ONLY : NO_CODINGS;
}

function selectRepresentation(asset: Asset, acceptEncoding: string | null): Representation | undefined {
  const available = availableCodings(asset);
  const choice = chooseContentCoding(acceptEncoding, available);
  if (choice === undefined) return undefined;
  const variant = choice === "br" || choice === "gzip" ? asset.variants[choice] : undefined;
  if (variant !== undefined) return { body: variant.body, etag: variant.etag, coding: variant.coding };
  return { body: asset.body, etag: asset.etag, coding: undefined };
}

function hasVariants(asset: Asset): boolean {
  return asset.variants.gzip !== undefined || asset.variants.br !== undefined;
}

/**
 * The fields every 200 (and 304) of one representation carries, built and validated once and
 * copied into each response (a copy of a Headers shares its values; building one checks each).
 */
interface FieldTemplates {
  /** The Cache-Control value the templates were made with (a function of the asset may change its answer). */
  readonly cacheControl: string | undefined;
  /** RFC 9110 §15.4.5: what a 304 carries, the validator and the caching fields a 200 would have. */
  readonly notModified: Headers;
  /** A 200's fields. */
  readonly full: Headers;
}

export function serveStatic(store: AssetStore, options: StaticOptions = {}): (request: Request) => Response {
  const indexFile = options.indexFile ?? "index.html";
  const notFoundPath = options.notFoundPage === undefined ? "/404.html" : options.notFoundPage;
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  /** By representation body (each asset's identity and variant bodies are distinct views). */
  const templates = new WeakMap<Uint8Array, FieldTemplates>();

  const cacheControlFor = (asset: Asset): string | undefined =>
    typeof options.cacheControl === "function" ? options.cacheControl(asset) : options.cacheControl;

  const notFound = (request: Request): Response => {
    const page = notFoundPath === null ? undefined : store.lookup(notFoundPath);
    const representation = page === undefined ? undefined : selectRepresentation(page, request.headers.get("accept-encoding"));
    if (page === undefined || representation === undefined) return textResponse(404, "Not Found");
    const headers = new Headers({ "content-type": page.contentType });
    if (representation.coding !== undefined) headers.set("content-encoding", representation.coding);
    if (hasVariants(page)) headers.set("vary", "Accept-Encoding");
    return new Response(representation.body, { status: 404, headers });
  };

  /** Vary and Cache-Control: what every answer about an asset carries, even a 406. */
  const assetFields = (asset: Asset, cacheControl: string | undefined): Headers => {
    const headers = new Headers();
    if (hasVariants(asset)) headers.set("vary", "Accept-Encoding");
    if (cacheControl !== undefined) headers.set("cache-control", cacheControl);
    return headers;
  };

  const templatesFor = (asset: Asset, representation: Representation, cacheControl: string | undefined): FieldTemplates => {
    const known = templates.get(representation.body);
    if (known !== undefined && known.cacheControl === cacheControl) return known;
    const notModified = assetFields(asset, cacheControl);
    notModified.set("etag", representation.etag);
    const full = new Headers(notModified);
    full.set("content-type", asset.contentType);
    if (representation.coding !== undefined) full.set("content-encoding", representation.coding);
    full.set("accept-ranges", "bytes");
    const made = { cacheControl, notModified, full };
    templates.set(representation.body, made);
    return made;
  };

  const serveAsset = (asset: Asset, request: Request): Response => {
    const cacheControl = cacheControlFor(asset);
    const representation = selectRepresentation(asset, request.headers.get("accept-encoding"));
    if (representation === undefined) {
      // RFC 9110 §12.5.3: identity is excluded and no variant is acceptable.
      return textResponse(406, "Not Acceptable: no acceptable content coding", Object.fromEntries(assetFields(asset, cacheControl)));
    }
    const fields = templatesFor(asset, representation, cacheControl);

    const outcome = evaluatePreconditions(request.headers.get("if-match"), request.headers.get("if-none-match"), representation.etag);
    if (outcome === "precondition-failed") return textResponse(412, "Precondition Failed", Object.fromEntries(fields.notModified));
    // RFC 9110 §15.4.5: a 304 carries the validator and caching fields a 200 would have, no content.
    if (outcome === "not-modified") return new Response(null, { status: 304, headers: fields.notModified });

    const size = representation.body.length;
    // RFC 9110 §14.2: Range is defined for GET only; a HEAD gets what a plain GET would.
    if (request.method === "GET" && ifRangeAllows(request.headers.get("if-range"), representation.etag)) {
      const range = evaluateRange(request.headers.get("range"), size);
      if (range.kind === "unsatisfiable") {
        const headers = new Headers(fields.full);
        headers.set("content-range", `bytes */${size}`);
        headers.delete("content-type");
        headers.delete("content-encoding");
        return new Response(null, { status: 416, headers });
      }
      if (range.kind === "partial") {
        const headers = new Headers(fields.full);
        headers.set("content-range", `bytes ${range.first}-${range.last}/${size}`);
        return new Response(representation.body.subarray(range.first, range.last + 1), { status: 206, headers });
      }
    }
    // A HEAD still gets the body: the server sends none, but takes Content-Length from it.
    return new Response(representation.body, { status: 200, headers: fields.full });
  };

  return (request: Request): Response => {
    if (request.method !== "GET" && request.method !== "HEAD") return textResponse(405, "Method Not Allowed", { allow: ALLOW });
    const url = new URL(request.url);
    const path = decodePath(url.pathname, decoder);
    if (path === undefined) return textResponse(400, "Bad Request: the path is not valid UTF-8 once percent-decoded");
    if (path.endsWith("/")) {
      const index = store.lookup(`${path}${indexFile}`);
      return index === undefined ? notFound(request) : serveAsset(index, request);
    }
    const asset = store.lookup(path);
    if (asset !== undefined) return serveAsset(asset, request);
    if (store.lookup(`${path}/${indexFile}`) !== undefined) {
      // A directory without its slash: relative links in its index resolve against "/dir/", not "/".
      return new Response(null, { status: 301, headers: { location: `${url.pathname}/${url.search}` } });
    }
    return notFound(request);
  };
}


/**
 * Content types by file extension, for the assets the builder bakes (IANA media types; the
 * choices where practice and registry differ are noted). Text types carry `charset=utf-8`, since
 * a static site's text files are UTF-8 and browsers otherwise guess.
 */

const TYPES: Readonly<Record<string, string>> = {
  // Documents and code
  html: "text/html; charset=utf-8",
  htm: "text/html; charset=utf-8",
  xhtml: "application/xhtml+xml",
  css: "text/css; charset=utf-8",
  // RFC 9239: text/javascript is the one JavaScript type.
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  cjs: "text/javascript; charset=utf-8",
  json: "application/json",
  map: "application/json",
  jsonld: "application/ld+json",
  webmanifest: "application/manifest+json",
  xml: "application/xml",
  rss: "application/rss+xml",
  atom: "application/atom+xml",
  txt: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  tsv: "text/tab-separated-values; charset=utf-8",
  ics: "text/calendar; charset=utf-8",
  vtt: "text/vtt; charset=utf-8",
  // RFC 9512
  yaml: "application/yaml",
  yml: "application/yaml",
  toml: "application/toml",
  wasm: "application/wasm",
  pdf: "application/pdf",
  // Images
  png: "image/png",
  apng: "image/apng",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  jfif: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  jxl: "image/jxl",
  svg: "image/svg+xml",
  // image/vnd.microsoft.icon is the registered type; image/x-icon is what every browser knows.
  ico: "image/x-icon",
  bmp: "image/bmp",
  tif: "image/tiff",
  tiff: "image/tiff",
  // Fonts (RFC 8081)
  woff: "font/woff",
  woff2: "font/woff2",
  ttf: "font/ttf",
  otf: "font/otf",
  eot: "application/vnd.ms-fontobject",
  // Audio and video
  mp3: "audio/mpeg",
  m4a: "audio/mp4",
  aac: "audio/aac",
  ogg: "audio/ogg",
  oga: "audio/ogg",
  opus: "audio/ogg",
  wav: "audio/wav",
  flac: "audio/flac",
  weba: "audio/webm",
  mp4: "video/mp4",
  m4v: "video/mp4",
  webm: "video/webm",
  ogv: "video/ogg",
  mov: "video/quicktime",
  // Archives and binaries
  zip: "application/zip",
  gz: "application/gzip",
  tgz: "application/gzip",
  br: "application/octet-stream",
  zst: "application/zstd",
  tar: "application/x-tar",
  "7z": "application/x-7z-compressed",
  bin: "application/octet-stream",
};

export const DEFAULT_CONTENT_TYPE = "application/octet-stream";

/** The content type for a file name by its extension (case-insensitive), application/octet-stream when unknown. */
export function contentTypeFor(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return DEFAULT_CONTENT_TYPE;
  return TYPES[name.slice(dot + 1).toLowerCase()] ?? DEFAULT_CONTENT_TYPE;
}

/** Types whose bytes are already compressed: compressing them again costs build time and saves nothing. */
const INCOMPRESSIBLE = /^(?:image\/(?:png|apng|jpeg|gif|webp|avif|jxl)|font\/woff2?|audio\/|video\/|application\/(?:zip|gzip|zstd|x-7z-compressed|pdf))/;

export function isCompressible(contentType: string): boolean {
  return !INCOMPRESSIBLE.test(contentType);
}

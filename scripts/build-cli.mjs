// Bundles the host side (CLI and node tender) into build/atoll.cjs, so that `atoll run` starts
// from one precompiled file: no TypeScript compiler and no module resolution at boot.
import { build } from "esbuild";

await build({
  entryPoints: ["src/cli/main.ts"],
  outfile: "build/atoll.cjs",
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  // The bundler and the type checker are loaded only by `atoll build`; keep them dependencies,
  // not part of the bundle.
  external: ["esbuild", "typescript"],
  sourcemap: true,
  logLevel: "warning",
});

import { defineConfig } from "atoll/config";

export default defineConfig({
  name: "website",
  entry: "src/main.ts",
  net: ["service"],
  assets: "public",
});

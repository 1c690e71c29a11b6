import { defineConfig } from "atoll/config";

export default defineConfig({
  name: "hono",
  entry: "src/main.ts",
  net: ["service"],
});

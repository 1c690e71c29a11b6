import { defineConfig } from "atoll/config";

export default defineConfig({
  name: "ping",
  entry: "src/main.ts",
  net: ["service"],
});

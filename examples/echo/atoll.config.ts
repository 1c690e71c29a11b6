import { defineConfig } from "atoll/config";

export default defineConfig({
  name: "echo",
  entry: "src/main.ts",
  net: ["service"],
});

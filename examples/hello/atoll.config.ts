import { defineConfig } from "atoll/config";

export default defineConfig({
  name: "hello",
  entry: "src/main.ts",
});

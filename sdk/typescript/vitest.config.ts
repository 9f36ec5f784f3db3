import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // Generated bindings import "cosmictron": this checkout's sources.
    alias: { cosmictron: fileURLToPath(new URL("./src/index.ts", import.meta.url)) },
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // One real server per file; files run one after another on a 2-core machine.
    fileParallelism: false,
  },
});

import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 90_000,
    // One real server per file; files run one after another on a 2-core machine.
    fileParallelism: false,
  },
});

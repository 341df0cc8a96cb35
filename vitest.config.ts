import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  // Examples and tests import the public API as `sluice`, resolved to the source here.
  resolve: { alias: { sluice: fileURLToPath(new URL("./src/index.ts", import.meta.url)) } },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The end-to-end suite (test/e2e/) runs the production bundle: build it once per run.
    globalSetup: ["test/e2e/support/bundle.ts"],
    // Integration tests bind real sockets and talk to the machine's Postgres and Redis.
    pool: "forks",
    // The JSON report feeds the plain "N passed, N failed" line printed by .ci/run.
    reporters: ["default", ["json", { outputFile: "test-results/vitest.json" }]]
  }
})

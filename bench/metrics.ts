/**
 * What recording a finished request's metrics costs (observability/Metrics.ts
 * `recordRequest`: requests, duration, TTFT, inter-token latency and three token counters),
 * in process, with the tenant label over five tenants (two declared, two `other`,
 * `default`). Median µs per call over rounds; run it before and after a change to the
 * metrics (bench/README.md, "Metric recording").
 *
 *   npm run bench:metrics                # 200,000 calls x 9 rounds
 *   npm run bench:metrics -- 100000 5    # calls, rounds
 */
import { Effect } from "effect"
import * as Metrics from "../src/observability/Metrics.ts"

const calls = Number(process.argv[2] ?? 200_000)
const rounds = Number(process.argv[3] ?? 9)
const declared = new Map([["acme", {}], ["beta", {}]])
const tenants = ["acme", "beta", "t1", "t2", "default"]
const sample = {
  model: "llama-3.1-8b",
  backend: "a",
  outcome: "completed" as const,
  durationMs: 120,
  ttftMs: 30,
  interTokenMs: 5,
  promptTokens: 40,
  completionTokens: 100,
  cachedTokens: 16,
  failedAttempts: []
}

const round = Effect.gen(function*() {
  const started = performance.now()
  for (let i = 0; i < calls; i++) {
    yield* Metrics.recordRequest({ ...sample, tenant: Metrics.tenantLabel(declared, tenants[i % tenants.length]) })
  }
  return ((performance.now() - started) * 1000) / calls
})

const results: Array<number> = []
for (let r = 0; r < rounds; r++) results.push(Effect.runSync(round))
const sorted = [...results].sort((a, b) => a - b)
console.log(`recordRequest: ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)} µs per call (median of ${rounds} rounds of ${calls}; all: ${results.map((x) => x.toFixed(2)).join(" ")})`)

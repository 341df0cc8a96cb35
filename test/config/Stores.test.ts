/**
 * The config of the stores: the ledger's queue and journal (`ledger:`) and the Redis
 * budget policy (`budgets.redis_down`, `replicas`, `local_share`), decoded, validated and
 * defaulted into the plan.
 */
import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import * as Load from "../../src/config/Load.ts"

const base = `
backends:
  - { id: a, url: http://127.0.0.1:9001/v1, models: [m] }
`
const parse = (yaml: string) => Effect.runSyncExit(Load.parse(`${base}${yaml}`, "sluice.yaml", {}))
const plan = (yaml: string) => {
  const exit = parse(yaml)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}
const error = (yaml: string) => {
  const exit = parse(yaml)
  if (Exit.isSuccess(exit)) throw new Error("expected a config error")
  return String(exit.cause)
}

describe("stores config", () => {
  it("defaults: a bounded ledger queue, 50 ms group commit, 16 MiB segments; local_share of the whole limit", () => {
    const p = plan("")
    expect(p.ledger).toEqual({
      queueRecords: 10_000,
      batchRecords: 500,
      intervalMs: 200,
      maxBackoffMs: 30_000,
      syncIntervalMs: 50,
      segmentBytes: 16 * 1024 * 1024
    })
    expect(p.budgets).toMatchObject({ redisDown: "local_share", localShare: 1 })
  })

  it("reads the ledger section", () => {
    const p = plan("ledger: { queue: 2000, batch: 100, interval: 50ms, max_backoff: 5s, sync_interval: 10ms, segment_size: 1MiB }")
    expect(p.ledger).toEqual({
      queueRecords: 2000,
      batchRecords: 100,
      intervalMs: 50,
      maxBackoffMs: 5000,
      syncIntervalMs: 10,
      segmentBytes: 1024 * 1024
    })
  })

  it("derives the local share from the replica count, or takes it as given", () => {
    expect(plan("budgets: { tokens_per_window: 600, replicas: 3 }").budgets.localShare).toBeCloseTo(1 / 3)
    expect(plan("budgets: { tokens_per_window: 600, local_share: 0.25, redis_down: local_share }").budgets).toMatchObject({
      localShare: 0.25,
      redisDown: "local_share"
    })
    expect(plan("budgets: { redis_down: fail_closed }").budgets.redisDown).toBe("fail_closed")
  })

  it("rejects what cannot work, naming the path", () => {
    expect(error("budgets: { replicas: 3, local_share: 0.5 }")).toContain("budgets.local_share")
    expect(error("budgets: { local_share: 1.5 }")).toContain("budgets.local_share")
    expect(error("budgets: { redis_down: fail_open }")).toContain("budgets.redis_down")
    expect(error("ledger: { queue: 10, batch: 100 }")).toContain("ledger.queue")
    expect(error("ledger: { fsync: 10ms }")).toContain("ledger.fsync")
  })
})

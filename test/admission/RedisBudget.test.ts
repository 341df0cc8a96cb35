/**
 * Budgets shared through the machine's real Redis (127.0.0.1:6379). This test fails, not
 * skips, when Redis is not running.
 */
import { Effect, Exit } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as RedisBudget from "../../src/admission/RedisBudget.ts"
import { TenantId } from "../../src/domain/Ids.ts"

const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)

describe("TokenBudget in Redis", () => {
  let redis: Redis
  let other: Redis
  const prefix = `sluice-test:${process.pid}:${Date.now()}`

  beforeAll(async () => {
    redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
    other = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
    // No skip: a missing Redis is a failure of this suite.
    await redis.connect()
    await other.connect()
  })
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
    await other.quit()
  })

  it("shares one tenant's window between two replicas without overbooking", async () => {
    const a = RedisBudget.make(redis, { limit: 1000, windowMs: 60_000, prefix })
    const b = RedisBudget.make(other, { limit: 1000, windowMs: 60_000, prefix })
    const t = TenantId("shared")
    // 20 concurrent reservations of 100 from two replicas: exactly 10 fit.
    const replicas = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b))
    const exits = await Promise.all(replicas.map((replica) => run(Effect.exit(replica.reserve(t, 100)))))
    const granted = exits.flatMap((e, i) => Exit.isSuccess(e) ? [{ replica: replicas[i]!, reservation: e.value }] : [])
    expect(granted.length).toBe(10)
    // Each replica settles what it reserved, charging 40 of 100: 600 tokens come back.
    await Promise.all(granted.map(({ replica, reservation }) => run(replica.settle(reservation, 40))))
    const snapshotA = await run(a.snapshot)
    const snapshotB = await run(b.snapshot)
    expect(snapshotA.reservedTokens + snapshotB.reservedTokens).toBe(0)
    expect(snapshotA.doubleSettlements + snapshotB.doubleSettlements).toBe(0)
    // Either replica sees the room the settlements freed: 1000 - 400 = 600.
    await run(b.reserve(t, 600))
    const refused = await run(Effect.exit(a.reserve(t, 1)))
    expect(Exit.isFailure(refused)).toBe(true)
  })

  it("settles a reservation exactly once", async () => {
    const a = RedisBudget.make(redis, { limit: undefined, windowMs: 60_000, prefix })
    const r = await run(a.reserve(TenantId("once"), 10))
    await run(a.settle(r, 7))
    await run(a.settle(r, 7))
    const s = await run(a.snapshot)
    expect(s.settlements).toBe(1)
    expect(s.doubleSettlements).toBe(1)
    expect(await redis.hget(RedisBudget.keyOf(prefix, TenantId("once"), r.window), "used")).toBe("7")
  })

  it("falls back to a local budget when Redis does not answer, and settles there", async () => {
    const dead = new Redis("redis://127.0.0.1:1", { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, commandTimeout: 100 })
    dead.on("error", () => undefined)
    const a = RedisBudget.make(dead, { limit: 100, windowMs: 60_000, prefix })
    const t = TenantId("fallback")
    const r = await run(a.reserve(t, 80))
    expect(Exit.isFailure(await run(Effect.exit(a.reserve(t, 30))))).toBe(true)
    await run(a.settle(r, 10))
    const s = await run(a.snapshot)
    expect(s).toMatchObject({ reservedTokens: 0, openReservations: 0, settlements: 1, chargedTokens: 10, doubleSettlements: 0 })
    dead.disconnect()
  })
})

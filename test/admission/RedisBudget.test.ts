/**
 * Budgets shared through Redis: the machine's real Redis (127.0.0.1:6379) for the shared
 * window, and a redis-server of this test's own for outages (frozen with SIGSTOP, so
 * commands time out and run late, which is what makes exactly-once hard). Fails, not
 * skips, when Redis is not running.
 */
import { Effect, Exit, Scope } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as RedisBudget from "../../src/admission/RedisBudget.ts"
import type { Claim } from "../../src/admission/Budget.ts"
import { ModelId, TenantId } from "../../src/domain/Ids.ts"
import type { Rule } from "../../src/domain/Quotas.ts"
import { eventually } from "../support/Gateway.ts"
import * as RedisServer from "../support/RedisServer.ts"

const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const claim = (tenant: TenantId, tokens: number): Claim => ({
  tenant,
  keyId: undefined,
  model: ModelId("m"),
  inputTokens: tokens,
  outputTokens: 0,
  costMicros: 0
})
const used = (tokens: number) => ({ inputTokens: tokens, outputTokens: 0, costMicros: 0 })

describe("TokenBudget in Redis", () => {
  let redis: Redis
  let other: Redis
  const prefix = `sluice-test:${process.pid}:${Date.now()}`
  const scopes: Array<Scope.Closeable> = []
  /** The legacy per-tenant token window, under this run's prefix. */
  const budget = async (
    client: Redis,
    { limit, windowMs, ...options }: { readonly limit: number | undefined; readonly windowMs: number } & Omit<RedisBudget.RedisBudgetOptions, "rules">
  ) => {
    const scope = await run(Scope.make())
    scopes.push(scope)
    const rules = (c: Claim): ReadonlyArray<Rule> =>
      limit === undefined ? [] : [{
        subject: `tenant ${c.tenant}`,
        field: "tokens_per_window",
        base: `${prefix}:${c.tenant}`,
        metric: "tokens",
        window: { kind: "fixed", ms: windowMs },
        limit
      }]
    return run(Scope.provide(RedisBudget.make(client, { rules, retryIntervalMs: 100, ...options }), scope))
  }

  beforeAll(async () => {
    redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
    other = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
    // No skip: a missing Redis is a failure of this suite.
    await redis.connect()
    await other.connect()
  })
  afterAll(async () => {
    for (const s of scopes) await run(Scope.close(s, Exit.void))
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
    await other.quit()
  })

  it("shares one tenant's window between two replicas without overbooking", async () => {
    const a = await budget(redis, { limit: 1000, windowMs: 60_000 })
    const b = await budget(other, { limit: 1000, windowMs: 60_000 })
    const t = TenantId("shared")
    // 20 concurrent reservations of 100 from two replicas: exactly 10 fit.
    const replicas = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b))
    const exits = await Promise.all(replicas.map((replica) => run(Effect.exit(replica.reserve(claim(t, 100))))))
    const granted = exits.flatMap((e, i) => Exit.isSuccess(e) ? [{ replica: replicas[i]!, reservation: e.value }] : [])
    expect(granted.length).toBe(10)
    // Each replica settles what it reserved, charging 40 of 100: 600 tokens come back.
    await Promise.all(granted.map(({ replica, reservation }) => run(replica.settle(reservation, used(40)))))
    const snapshotA = await run(a.snapshot)
    const snapshotB = await run(b.snapshot)
    expect(snapshotA.reservedTokens + snapshotB.reservedTokens).toBe(0)
    expect(snapshotA.doubleSettlements + snapshotB.doubleSettlements).toBe(0)
    // Either replica sees the room the settlements freed: 1000 - 400 = 600.
    await run(b.reserve(claim(t, 600)))
    const refused = await run(Effect.exit(a.reserve(claim(t, 1))))
    expect(Exit.isFailure(refused)).toBe(true)
  })

  it("reports the spend pressure a reservation leaves, from the shared counter", async () => {
    // spend_per_day $1 (1,000,000 µ$) under this run's prefix, shared by two replicas.
    const rules = (): ReadonlyArray<Rule> => [{
      subject: "tenant spend",
      field: "spend_per_day",
      base: `${prefix}:spend`,
      metric: "spend",
      window: "day",
      limit: 1_000_000
    }]
    const make = async (client: Redis) => {
      const scope = await run(Scope.make())
      scopes.push(scope)
      return run(Scope.provide(RedisBudget.make(client, { rules, retryIntervalMs: 100 }), scope))
    }
    const [a, b] = [await make(redis), await make(other)]
    const spend = (costMicros: number): Claim => ({ ...claim(TenantId("spend"), 10), costMicros })
    const first = await run(a.reserve(spend(250_000)))
    expect(first.spendPressure).toBeCloseTo(0.25)
    await run(a.settle(first, { inputTokens: 10, outputTokens: 0, costMicros: 600_000 }))
    // The other replica sees what the first settled.
    const second = await run(b.reserve(spend(300_000)))
    expect(second.spendPressure).toBeCloseTo(0.9)
    await run(b.settle(second, { inputTokens: 10, outputTokens: 0, costMicros: 0 }))
  })

  it("settles a reservation exactly once", async () => {
    const a = await budget(redis, { limit: 1_000_000, windowMs: 60_000 })
    const r = await run(a.reserve(claim(TenantId("once"), 10)))
    await run(a.settle(r, used(7)))
    await run(a.settle(r, used(7)))
    const s = await run(a.snapshot)
    expect(s.settlements).toBe(1)
    expect(s.doubleSettlements).toBe(1)
    const key = RedisBudget.keyOf(`${prefix}:once`, r.holds[0]!.bucket)
    expect(await redis.hmget(key, "used", "reserved")).toEqual(["7", "0"])
  })

  it("falls back to a local share of the limit when Redis does not answer, and settles there", async () => {
    const dead = new Redis("redis://127.0.0.1:1", { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, commandTimeout: 100 })
    dead.on("error", () => undefined)
    const a = await budget(dead, { limit: 300, windowMs: 60_000, localShare: 1 / 3 })
    const t = TenantId("fallback")
    const r = await run(a.reserve(claim(t, 80)))
    // The local share is 100 of the 300: 80 + 30 does not fit.
    expect(Exit.isFailure(await run(Effect.exit(a.reserve(claim(t, 30)))))).toBe(true)
    await run(a.settle(r, used(10)))
    const s = await run(a.snapshot)
    expect(s).toMatchObject({ reservedTokens: 0, openReservations: 0, settlements: 1, chargedTokens: 10, doubleSettlements: 0 })
    expect(s.shared).toMatchObject({ degraded: true, localReservedTokens: 80 })
    dead.disconnect()
  })

  it("refuses reservations while Redis does not answer when the policy is fail_closed", async () => {
    const dead = new Redis("redis://127.0.0.1:1", { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, commandTimeout: 100 })
    dead.on("error", () => undefined)
    const a = await budget(dead, { limit: 300, windowMs: 60_000, redisDown: "fail_closed" })
    const exit = await run(Effect.exit(a.reserve(claim(TenantId("closed"), 10))))
    expect(Exit.isFailure(exit) && String(exit.cause)).toContain("BudgetUnavailable")
    dead.disconnect()
  })

  it("releases a crashed replica's concurrency slots after the longest a request may run", async () => {
    const rules = (c: Claim): ReadonlyArray<Rule> => [{
      subject: `tenant ${c.tenant}`,
      field: "concurrent_requests",
      base: `${prefix}:conc:${c.tenant}`,
      metric: "concurrent",
      window: "none",
      limit: 1
    }]
    const scope = await run(Scope.make())
    scopes.push(scope)
    const crashed = await run(Scope.provide(RedisBudget.make(redis, { rules, maxOpenMs: 300 }), scope))
    const alive = await run(Scope.provide(RedisBudget.make(other, { rules, maxOpenMs: 300 }), scope))
    const t = TenantId("crash")
    // The crashed replica never settles this one.
    await run(crashed.reserve(claim(t, 1)))
    const refused = await run(Effect.exit(alive.reserve(claim(t, 1))))
    expect(Exit.isFailure(refused) && refused.cause.reasons[0]?._tag === "Fail" && refused.cause.reasons[0].error).toMatchObject({
      field: "concurrent_requests"
    })
    await sleep(400)
    const r = await run(alive.reserve(claim(t, 1)))
    await run(alive.settle(r, used(1)))
    expect(await redis.hmget(`${prefix}:conc:crash:0`, "used", "reserved")).toEqual(["0", "0"])
  })

  describe("through an outage of a redis-server of the test's own", () => {
    let own: RedisServer.RedisServer
    beforeAll(async () => {
      own = await RedisServer.start()
    })
    afterAll(async () => {
      await own?.stop()
    })

    it("spends a share of what was left, then applies every queued settlement once and releases late reservations", async () => {
      const scope = await run(Scope.make())
      scopes.push(scope)
      const client = await run(Scope.provide(RedisBudget.connect(own.url), scope))
      const a = await budget(client, { limit: 1000, windowMs: 60_000, localShare: 0.5 })
      const t = TenantId("outage")
      const held = await run(a.reserve(claim(t, 400)))
      // Redis says 600 are left. Then it stops answering.
      own.freeze()
      // The first reservation times out (and may run late); the local share is half of 600.
      const local1 = await run(a.reserve(claim(t, 200)))
      expect(Exit.isFailure(await run(Effect.exit(a.reserve(claim(t, 150)))))).toBe(true)
      const local2 = await run(a.reserve(claim(t, 100)))
      await run(a.settle(held, used(350)))
      await run(a.settle(local1, used(180)))
      await run(a.settle(local2, used(90)))
      expect((await run(a.snapshot)).shared).toMatchObject({ degraded: true, pendingSettlements: 4 })
      await sleep(300)
      own.thaw()
      const after = await eventually(() => run(a.snapshot), (s) => s.shared?.degraded === false && s.shared.pendingSettlements === 0, 5000)
      expect(after.shared).toMatchObject({ degraded: false, pendingSettlements: 0, droppedSettlements: 0 })
      const key = RedisBudget.keyOf(`${prefix}:${t}`, held.holds[0]!.bucket)
      const check = new Redis(own.url)
      // 350 settled from Redis + 270 spent locally, each once; the late reservation released.
      expect(await check.hmget(key, "used", "reserved")).toEqual(["620", "0"])
      await check.quit()
    })
  })
})

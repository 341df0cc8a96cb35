/**
 * The limit engine's settlement invariants over several tenants, by fast-check, on the
 * in-memory engine and on two replicas sharing the machine's real Redis (a key prefix
 * unique to each run). Each generated request reserves its estimate and is settled as the
 * gateway settles it: in the release of an `acquireRelease` whose body completes, fails or
 * is interrupted, charging what it produced (never more than reserved here), and writing
 * one ledger record; some settlements are then repeated (a retried release).
 * Required after every run:
 * - per tenant, what the ledger records equals what the engine counted (tokens, requests,
 *   micro-dollars): nothing charged twice, nothing lost;
 * - every repeated settlement is refused and counted, never charged;
 * - nothing stays reserved (no leak) and no open reservation remains;
 * - the requests-per-minute and tokens-per-minute limits were never exceeded.
 * Fails, never skips, without Redis.
 */
import { Effect, Exit, Fiber, Scope } from "effect"
import * as fc from "fast-check"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Actual, type Claim, makeInMemory, type Reservation, type TokenBudget } from "../../src/admission/Budget.ts"
import * as RedisBudget from "../../src/admission/RedisBudget.ts"
import { ModelId, TenantId } from "../../src/domain/Ids.ts"
import { type LimitSet, type Rule, rulesOf } from "../../src/domain/Quotas.ts"

const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const TENANTS = ["t0", "t1", "t2", "t3"] as const
const LIMITS: Record<string, LimitSet> = {
  t0: { requests_per_minute: 6 },
  t1: { tokens_per_minute: 900, concurrent_requests: 3 },
  t2: { output_tokens_per_day: 700, spend_per_day: 0.5 },
  t3: {}
}

interface Op {
  readonly tenant: number
  readonly replica: number
  readonly input: number
  readonly output: number
  /** How the request ends. */
  readonly end: "completed" | "failed" | "interrupted"
  /** The fraction of its output it produced before it ended. */
  readonly produced: number
  readonly repeat: boolean
}

const op: fc.Arbitrary<Op> = fc.record({
  tenant: fc.integer({ min: 0, max: TENANTS.length - 1 }),
  replica: fc.integer({ min: 0, max: 1 }),
  input: fc.integer({ min: 1, max: 120 }),
  output: fc.integer({ min: 0, max: 200 }),
  end: fc.constantFrom("completed" as const, "failed" as const, "interrupted" as const),
  produced: fc.double({ min: 0, max: 1, noNaN: true }),
  repeat: fc.boolean()
})

interface LedgerRow {
  readonly tenant: string
  readonly reservation: number
  readonly actual: Actual
}

const rulesFor = (prefix: string) => (claim: Claim): ReadonlyArray<Rule> =>
  rulesOf(`tenant ${claim.tenant}`, `${prefix}:${claim.tenant}`, LIMITS[claim.tenant])

/** One generated batch against two engines (replicas of one store, or two handles on memory). */
const runBatch = async (replicas: ReadonlyArray<TokenBudget["Service"]>, ops: ReadonlyArray<Op>) => {
  const ledger: Array<LedgerRow> = []
  const settled: Array<{ readonly engine: TokenBudget["Service"]; readonly reservation: Reservation; readonly actual: Actual }> = []
  const admitted = new Map<string, number>()
  // All requests start together (their reservations interleave), each ends its own way.
  await Effect.runPromise(Effect.forEach(ops, (o) => {
    const engine = replicas[o.replica]!
    const tenant = TENANTS[o.tenant]!
    const claim: Claim = {
      tenant: TenantId(tenant),
      keyId: undefined,
      model: ModelId("m"),
      inputTokens: o.input,
      outputTokens: o.output,
      costMicros: o.input * 100 + o.output * 1000
    }
    const actualOf = (exit: Exit.Exit<unknown, unknown>): Actual => {
      if (Exit.isFailure(exit) && o.end !== "interrupted") return { inputTokens: 0, outputTokens: 0, costMicros: 0 }
      const out = Math.floor(o.output * o.produced)
      return { inputTokens: o.input, outputTokens: out, costMicros: o.input * 100 + out * 1000 }
    }
    const request = Effect.acquireRelease(engine.reserve(claim), (reservation, exit) => {
      const actual = actualOf(exit)
      return Effect.andThen(engine.settle(reservation, actual), Effect.sync(() => {
        ledger.push({ tenant, reservation: reservation.id, actual })
        settled.push({ engine, reservation, actual })
      }))
    }).pipe(
      Effect.tap(() => Effect.sync(() => admitted.set(tenant, (admitted.get(tenant) ?? 0) + 1))),
      Effect.andThen(Effect.yieldNow),
      Effect.andThen(o.end === "failed" ? Effect.fail("failed" as const) : Effect.void),
      Effect.scoped
    )
    if (o.end !== "interrupted") return Effect.ignore(request)
    return Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(request)
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
    })
  }, { concurrency: "unbounded", discard: true }))
  // Retried releases of some settled requests: refused, never charged.
  let repeats = 0
  for (const [i, s] of settled.entries()) {
    if (ops[i]?.repeat !== true) continue
    repeats++
    await Effect.runPromise(s.engine.settle(s.reservation, s.actual))
  }
  return { ledger, admitted, repeats }
}

const totals = (ledger: ReadonlyArray<LedgerRow>, tenant: string) =>
  ledger.filter((r) => r.tenant === tenant).reduce(
    (t, r) => ({
      requests: t.requests + 1,
      input: t.input + r.actual.inputTokens,
      output: t.output + r.actual.outputTokens,
      micros: t.micros + r.actual.costMicros
    }),
    { requests: 0, input: 0, output: 0, micros: 0 }
  )

describe("limit engine settlement (property)", () => {
  it("in memory: ledger totals = settled totals per tenant, no double charge, no leak, limits hold", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const engine = makeInMemory(rulesFor("mem"))
        const { ledger, admitted, repeats } = await runBatch([engine, engine], ops)
        const snap = await Effect.runPromise(engine.snapshot)
        expect(snap.openReservations).toBe(0)
        expect(snap.reservedTokens).toBe(0)
        expect(snap.doubleSettlements).toBe(repeats)
        expect(new Set(ledger.map((r) => r.reservation)).size).toBe(ledger.length)
        expect(snap.settlements).toBe(ledger.length)
        const all = TENANTS.map((t) => totals(ledger, t))
        expect(snap.chargedTokens).toBe(all.reduce((n, t) => n + t.input + t.output, 0))
        expect(snap.chargedMicros).toBe(all.reduce((n, t) => n + t.micros, 0))
        expect(admitted.get("t0") ?? 0).toBeLessThanOrEqual(6)
        expect(totals(ledger, "t1").input + totals(ledger, "t1").output).toBeLessThanOrEqual(900)
        expect(totals(ledger, "t2").output).toBeLessThanOrEqual(700)
        expect(totals(ledger, "t2").micros).toBeLessThanOrEqual(500_000)
      }),
      { numRuns: 60 }
    )
  })

  describe("in Redis, two replicas", () => {
    let redis: Redis
    let other: Redis
    const scopes: Array<Scope.Closeable> = []
    const base = `sluice-test:prop:${process.pid}:${Date.now().toString(36)}`
    let runNo = 0

    beforeAll(async () => {
      redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
      other = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
      await redis.connect()
      await other.connect()
    })
    afterAll(async () => {
      for (const s of scopes) await Effect.runPromise(Scope.close(s, Exit.void))
      const keys = await redis.keys(`${base}:*`)
      if (keys.length > 0) await redis.del(...keys)
      await redis.quit()
      await other.quit()
    })

    /** A counter's used and reserved, summed over its buckets. */
    const counter = async (prefix: string, tenant: string, field: string) => {
      let used = 0
      let reserved = 0
      for (const key of await redis.keys(`${prefix}:${tenant}:${field}:*`)) {
        const [u, r] = await redis.hmget(key, "used", "reserved")
        used += Number(u ?? 0)
        reserved += Number(r ?? 0)
      }
      return { used, reserved }
    }

    it("Redis counters = ledger totals per tenant, no double charge, no leak, limits hold", async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
          const prefix = `${base}:${runNo++}`
          const scope = await Effect.runPromise(Scope.make())
          scopes.push(scope)
          const make = (client: Redis) => Effect.runPromise(Scope.provide(RedisBudget.make(client, { rules: rulesFor(prefix) }), scope))
          const replicas = [await make(redis), await make(other)]
          const { ledger, admitted, repeats } = await runBatch(replicas, ops)
          // A command slower than the store's deadline (a loaded machine) degrades it and queues
          // the settlement until its probe gets an answer: the totals must hold once it has
          // (bounded wait), which is the store's promise.
          const healthy = (s: { readonly shared?: { readonly degraded: boolean; readonly pendingSettlements: number } | undefined }) =>
            s.shared?.degraded === false && s.shared.pendingSettlements === 0
          let snaps = await Promise.all(replicas.map((r) => Effect.runPromise(r.snapshot)))
          for (let i = 0; i < 100 && !snaps.every(healthy); i++) {
            await new Promise((r) => setTimeout(r, 50))
            snaps = await Promise.all(replicas.map((r) => Effect.runPromise(r.snapshot)))
          }
          expect(snaps.reduce((n, s) => n + s.openReservations, 0)).toBe(0)
          expect(snaps.reduce((n, s) => n + s.doubleSettlements, 0)).toBe(repeats)
          expect(snaps.every(healthy)).toBe(true)
          const t0 = totals(ledger, "t0")
          const t1 = totals(ledger, "t1")
          const t2 = totals(ledger, "t2")
          expect(await counter(prefix, "t0", "requests_per_minute")).toEqual({ used: t0.requests, reserved: 0 })
          expect(await counter(prefix, "t1", "tokens_per_minute")).toEqual({ used: t1.input + t1.output, reserved: 0 })
          expect(await counter(prefix, "t1", "concurrent_requests")).toEqual({ used: 0, reserved: 0 })
          expect(await counter(prefix, "t2", "output_tokens_per_day")).toEqual({ used: t2.output, reserved: 0 })
          expect(await counter(prefix, "t2", "spend_per_day")).toEqual({ used: t2.micros, reserved: 0 })
          expect(admitted.get("t0") ?? 0).toBeLessThanOrEqual(6)
          expect(t1.input + t1.output).toBeLessThanOrEqual(900)
          expect(t2.output).toBeLessThanOrEqual(700)
          expect(t2.micros).toBeLessThanOrEqual(500_000)
        }),
        { numRuns: 12 }
      )
    }, 60_000)
  })
})

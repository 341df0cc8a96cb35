import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import { BudgetExceeded, type Claim, makeInMemory } from "../../src/admission/Budget.ts"
import { resetText, toWire } from "../../src/request/WireErrors.ts"
import { ModelId, TenantId } from "../../src/domain/Ids.ts"
import { bucketEndMs, bucketOf, costMicros, type Rule, rulesOf } from "../../src/domain/Quotas.ts"

const t = TenantId("acme")
/** The field of the limit an exit was refused by (undefined: admitted). */
const refusedBy = (exit: Exit.Exit<unknown, unknown>): string | undefined => {
  if (!Exit.isFailure(exit)) return undefined
  const e = exit.cause.reasons[0]
  return e?._tag === "Fail" && e.error instanceof BudgetExceeded ? e.error.field : "other"
}
const claim = (tenant: TenantId, tokens: number): Claim => ({
  tenant,
  keyId: undefined,
  model: ModelId("m"),
  inputTokens: tokens,
  outputTokens: 0,
  costMicros: 0
})
const used = (tokens: number) => ({ inputTokens: tokens, outputTokens: 0, costMicros: 0 })
/** The legacy per-tenant token window. */
const windowRule = (limit: number | undefined, windowMs: number) => (c: Claim): ReadonlyArray<Rule> =>
  limit === undefined ? [] : [{
    subject: `tenant ${c.tenant}`,
    field: "tokens_per_window",
    base: `b:${c.tenant}`,
    metric: "tokens",
    window: { kind: "fixed", ms: windowMs },
    limit
  }]

describe("TokenBudget (in memory)", () => {
  it.effect("reserves, settles to actual usage and refunds the rest", () =>
    Effect.gen(function*() {
      const budget = makeInMemory(windowRule(1000, 60_000))
      const r = yield* budget.reserve(claim(t, 600))
      let snap = yield* budget.snapshot
      assert.strictEqual(snap.reservedTokens, 600)
      // A second reservation that would exceed the window is refused with retry-after.
      const refused = yield* Effect.exit(budget.reserve(claim(t, 500)))
      assert.isTrue(Exit.isFailure(refused))
      yield* budget.settle(r, used(120))
      snap = yield* budget.snapshot
      assert.deepStrictEqual(
        { reserved: snap.reservedTokens, open: snap.openReservations, charged: snap.chargedTokens },
        { reserved: 0, open: 0, charged: 120 }
      )
      // The refund makes room again.
      yield* budget.reserve(claim(t, 800))
    }))

  it.effect("never settles a reservation twice", () =>
    Effect.gen(function*() {
      const budget = makeInMemory(windowRule(undefined, 60_000))
      const r = yield* budget.reserve(claim(t, 50))
      yield* budget.settle(r, used(40))
      yield* budget.settle(r, used(40))
      const snap = yield* budget.snapshot
      assert.strictEqual(snap.settlements, 1)
      assert.strictEqual(snap.doubleSettlements, 1)
      assert.strictEqual(snap.chargedTokens, 40)
    }))

  it.effect("opens a fresh window after the window length", () =>
    Effect.gen(function*() {
      const budget = makeInMemory(windowRule(100, 60_000))
      const r = yield* budget.reserve(claim(t, 100))
      yield* budget.settle(r, used(100))
      const exit = yield* Effect.exit(budget.reserve(claim(t, 10)))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const e = exit.cause.reasons[0]
        assert.isTrue(e?._tag === "Fail" && e.error.retryAfterMs > 0 && e.error.retryAfterMs <= 60_000)
      }
      yield* TestClock.adjust(60_000)
      yield* budget.reserve(claim(t, 100))
    }))

  it.effect("the sliding minute counts the previous minute's requests by how much of it is still in the window", () =>
    Effect.gen(function*() {
      const budget = makeInMemory((c) => rulesOf(`tenant ${c.tenant}`, `s:${c.tenant}`, { requests_per_minute: 4 }))
      for (let i = 0; i < 4; i++) yield* budget.settle(yield* budget.reserve(claim(t, 1)), used(1))
      assert.isTrue(Exit.isFailure(yield* Effect.exit(budget.reserve(claim(t, 1)))))
      // Just into the next minute the previous one still counts almost fully: refused,
      // with a retry-after of the time until enough of it has slid out.
      yield* TestClock.adjust(60_000 + 6_000)
      const early = yield* Effect.exit(budget.reserve(claim(t, 1)))
      assert.isTrue(Exit.isFailure(early))
      if (Exit.isFailure(early)) {
        const e = early.cause.reasons[0]
        assert.isTrue(e?._tag === "Fail" && e.error._tag === "BudgetExceeded" && e.error.retryAfterMs > 0 && e.error.retryAfterMs <= 54_000)
      }
      // Half way, two of the four have slid out.
      yield* TestClock.adjust(24_000)
      yield* budget.reserve(claim(t, 1))
      yield* budget.reserve(claim(t, 1))
      assert.isTrue(Exit.isFailure(yield* Effect.exit(budget.reserve(claim(t, 1)))))
    }))

  it.effect("checks every rule of a request together: one refusal reserves nothing anywhere", () =>
    Effect.gen(function*() {
      const budget = makeInMemory((c) => [
        ...rulesOf(`tenant ${c.tenant}`, `a:${c.tenant}`, { tokens_per_day: 100, concurrent_requests: 2 }),
        ...rulesOf(`tenant ${c.tenant}, model m`, `b:${c.tenant}`, { output_tokens_per_minute: 50 })
      ])
      const big = { ...claim(t, 10), outputTokens: 60 }
      const refused = yield* Effect.exit(budget.reserve(big))
      assert.strictEqual(refusedBy(refused), "output_tokens_per_minute")
      // Nothing was held by the refused request: two requests of 50 tokens still fit, a third is over concurrency.
      const a = yield* budget.reserve({ ...claim(t, 10), outputTokens: 25 })
      const b = yield* budget.reserve({ ...claim(t, 10), outputTokens: 25 })
      const third = yield* Effect.exit(budget.reserve(claim(t, 1)))
      assert.strictEqual(refusedBy(third), "concurrent_requests")
      yield* budget.settle(a, { inputTokens: 10, outputTokens: 5, costMicros: 0 })
      yield* budget.settle(b, { inputTokens: 10, outputTokens: 5, costMicros: 0 })
      // 30 of the 100 tokens of the day are used; 71 do not fit, 70 do.
      assert.strictEqual(refusedBy(yield* Effect.exit(budget.reserve(claim(t, 71)))), "tokens_per_day")
      yield* budget.reserve(claim(t, 70))
    }))

  it("renders a refusal as OpenAI does: 429, the limit named, retry-after and x-ratelimit-* headers", () => {
    const wire = toWire(new BudgetExceeded({
      tenant: t,
      subject: "tenant acme",
      field: "spend_per_day",
      limit: 5_000_000,
      requested: 120_000,
      remaining: 40_000,
      retryAfterMs: 3_723_000,
      requests: { limit: 60, remaining: 12, resetMs: 1500 },
      tokens: { limit: 1000, remaining: 0, resetMs: 250 }
    }))
    assert.strictEqual(wire.status, 429)
    assert.strictEqual(wire.body.code, "rate_limit_exceeded")
    assert.include(wire.body.message, "spend_per_day of tenant acme is $5.00")
    assert.strictEqual(wire.retryAfterMs, 3_723_000)
    assert.deepStrictEqual(wire.headers, {
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "12",
      "x-ratelimit-reset-requests": "2s",
      "x-ratelimit-limit-tokens": "1000",
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-reset-tokens": "250ms"
    })
    assert.strictEqual(resetText(3_723_000), "1h2m3s")
    assert.strictEqual(resetText(61_000), "1m1s")
  })

  it("windows: UTC days and calendar months; prices in micro-dollars", () => {
    const feb = Date.UTC(2028, 1, 10, 12)
    assert.strictEqual(bucketEndMs("month", bucketOf("month", feb)), Date.UTC(2028, 2, 1))
    assert.strictEqual(bucketEndMs("month", bucketOf("month", Date.UTC(2027, 11, 31, 23))), Date.UTC(2028, 0, 1))
    assert.strictEqual(bucketEndMs("day", bucketOf("day", feb)), Date.UTC(2028, 1, 11))
    // 1000 prompt tokens (200 cached) and 500 output at $0.5 / $0.25 / $2 per million.
    assert.strictEqual(
      costMicros({ input: 0.5, cachedInput: 0.25, output: 2 }, { promptTokens: 1000, completionTokens: 500, cachedTokens: 200 }),
      400 + 50 + 1000
    )
    assert.strictEqual(costMicros(undefined, { promptTokens: 10, completionTokens: 10, cachedTokens: 0 }), 0)
  })
})

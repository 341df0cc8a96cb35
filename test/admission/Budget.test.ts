import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import { type Claim, makeInMemory } from "../../src/admission/Budget.ts"
import { ModelId, TenantId } from "../../src/domain/Ids.ts"
import type { Rule } from "../../src/domain/Quotas.ts"

const t = TenantId("acme")
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
})

/**
 * Spend pressure steers routing: the `cost` scorer prices a request at the configured token
 * prices when every candidate has one (else GPU-seconds), and the policy weighs it in by the
 * tenant's spend pressure, so a tenant near its spend limit goes to the cheaper eligible
 * backend while a tenant with room keeps the latency-first order. The budget side: the
 * limit engine reports the pressure a reservation leaves.
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { makeInMemory, spendPressure } from "../../src/admission/Budget.ts"
import { ModelId, TenantId } from "../../src/domain/Ids.ts"
import { rulesOf } from "../../src/domain/Quotas.ts"
import type { BackendView, RoutingContext } from "../../src/routing/Contract.ts"
import * as Pipeline from "../../src/routing/Pipeline.ts"
import { builtinScorers } from "../../src/routing/plugins/index.ts"
import * as Registry from "../../src/routing/Registry.ts"
import { request, routingPlan, view } from "./support.ts"

const ids = (vs: ReadonlyArray<BackendView>) => vs.map((v) => v.backend.id)

/** `fast`: idle, short predicted TTFT, expensive tokens; `cheap`: busier and slower, a quarter of the price. */
const candidates = (prices: { readonly fast?: number; readonly cheap?: number } = { fast: 1000, cheap: 250 }) => [
  view("fast", { index: 0, predictedTtftMs: 60, pendingRequests: 0, kvUsage: 0.1, priceMicros: prices.fast }),
  view("cheap", { index: 1, predictedTtftMs: 400, pendingRequests: 3, kvUsage: 0.5, slotsFree: 8, priceMicros: prices.cheap })
]

const route = (pressure: number | undefined, vs: ReadonlyArray<BackendView>, over: Parameters<typeof routingPlan>[0] = {}) => {
  const plan = routingPlan(over)
  const compiled = Pipeline.compiler(Registry.make())(plan)
  const ctx: RoutingContext = { req: request("hello there", pressure === undefined ? {} : { spendPressure: pressure }), nowMs: 0, plan }
  const out = Pipeline.run(compiled, ctx, vs, () => 0.5)
  if (!out.ok) throw new Error(`refused by ${out.filter}`)
  return ids(out.views)
}

describe("cost scorer", () => {
  const plan = routingPlan()
  const ctx: RoutingContext = { req: request("x"), nowMs: 0, plan }

  it("uses the configured token prices when every candidate has one", () => {
    const s = builtinScorers.cost!(plan)
    // GPU-seconds say `a` is cheaper; the token prices say `b` is.
    const vs = [
      view("a", { prefillGpuSeconds: 0.1, decodeGpuSeconds: 0.1, priceMicros: 800 }),
      view("b", { prefillGpuSeconds: 1, decodeGpuSeconds: 1, priceMicros: 200 })
    ]
    expect(vs.map((v) => s.score(ctx, v, vs))).toEqual([0.25, 1])
  })

  it("falls back to GPU-seconds when a candidate has no price", () => {
    const s = builtinScorers.cost!(plan)
    const vs = [
      view("a", { prefillGpuSeconds: 0.1, decodeGpuSeconds: 0.1, priceMicros: 800 }),
      view("b", { prefillGpuSeconds: 0.2, decodeGpuSeconds: 0.2, priceMicros: undefined })
    ]
    expect(vs.map((v) => s.score(ctx, v, vs))).toEqual([1, 0.5])
  })
})

describe("spend pressure in the inference policy", () => {
  it("pressure 0 (or none) leaves the configured order unchanged: latency first", () => {
    const vs = candidates()
    expect(route(undefined, vs)).toEqual(["fast", "cheap"])
    expect(route(0, vs)).toEqual(["fast", "cheap"])
    const plan = routingPlan()
    const compiled = Pipeline.compiler(Registry.make())(plan)
    const ctx = (p: number | undefined): RoutingContext => ({ req: request("hello there", p === undefined ? {} : { spendPressure: p }), nowMs: 0, plan })
    // The same scores, not just the same order.
    expect(Pipeline.spendWeight(compiled, ctx(0))).toBe(0)
    expect(Pipeline.score(ctx(0), vs, compiled.scorers, compiled.totalWeight))
      .toEqual(Pipeline.score(ctx(undefined), vs, compiled.scorers, compiled.totalWeight))
  })

  it("a tenant with room keeps the latency-first choice", () => {
    expect(route(0.3, candidates())).toEqual(["fast", "cheap"])
  })

  it("high pressure puts the cheaper backend first", () => {
    expect(route(0.95, candidates())).toEqual(["cheap", "fast"])
    expect(route(1, candidates())).toEqual(["cheap", "fast"])
  })

  it("without prices, the GPU-second estimate decides which is cheaper", () => {
    const vs = [
      view("fast", { index: 0, predictedTtftMs: 60, kvUsage: 0.1, prefillGpuSeconds: 0.4, decodeGpuSeconds: 2 }),
      view("cheap", { index: 1, predictedTtftMs: 400, pendingRequests: 3, kvUsage: 0.5, prefillGpuSeconds: 0.1, decodeGpuSeconds: 0.5 })
    ]
    expect(route(0, vs)).toEqual(["fast", "cheap"])
    expect(route(0.95, vs)).toEqual(["cheap", "fast"])
  })

  it("spend_pressure_weight 0 turns the steering off", () => {
    expect(route(1, candidates(), { spendPressureWeight: 0 })).toEqual(["fast", "cheap"])
  })

  it("the steering weight grows with the pressure", () => {
    const plan = routingPlan()
    const compiled = Pipeline.compiler(Registry.make())(plan)
    const weightAt = (p: number) => Pipeline.spendWeight(compiled, { req: request("x", { spendPressure: p }), nowMs: 0, plan })
    const ws = [0.1, 0.3, 0.5, 0.8, 1].map(weightAt)
    for (let i = 1; i < ws.length; i++) expect(ws[i]!).toBeGreaterThan(ws[i - 1]!)
    // p = 1: spend_pressure_weight (4) × the configured total weight (11).
    expect(weightAt(1)).toBe(44)
  })
})

describe("the limit engine reports spend pressure", () => {
  const tenant = TenantId("acme")
  const model = ModelId("m")
  const claim = (costMicros: number) => ({ tenant, keyId: undefined, model, inputTokens: 10, outputTokens: 10, costMicros })

  it("is the used share of the tightest spend limit after the reservation, 0 without one", async () => {
    // spend_per_day 1 USD = 1,000,000 micro-dollars; spend_per_month 10 USD.
    const rules = rulesOf("tenant acme", "t:acme", { spend_per_day: 1, spend_per_month: 10, requests_per_minute: 100 })
    const budget = makeInMemory(() => rules)
    const r1 = await Effect.runPromise(budget.reserve(claim(250_000)))
    expect(r1.spendPressure).toBeCloseTo(0.25)
    await Effect.runPromise(budget.settle(r1, { inputTokens: 10, outputTokens: 10, costMicros: 600_000 }))
    const r2 = await Effect.runPromise(budget.reserve(claim(300_000)))
    expect(r2.spendPressure).toBeCloseTo(0.9)
    const free = makeInMemory(() => rulesOf("tenant b", "t:b", { requests_per_minute: 100 }))
    expect((await Effect.runPromise(free.reserve(claim(250_000)))).spendPressure).toBe(0)
  })

  it("is clamped to [0, 1]", () => {
    const rules = rulesOf("tenant acme", "t:acme", { spend_per_day: 1 })
    expect(spendPressure(rules, [900_000], [500_000])).toBe(1)
    expect(spendPressure(rules, [0], [0])).toBe(0)
  })
})

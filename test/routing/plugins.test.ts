/**
 * Unit tests per routing plugin: each filter keeps what its README says, each scorer
 * follows its formula, each picker orders as documented.
 */
import { describe, expect, it } from "vitest"
import { BackendId, GpuSku, TenantId } from "../../src/domain/Ids.ts"
import type { RoutingContext, Scored } from "../../src/routing/Contract.ts"
import { builtinFilters as filters, builtinPickers as pickers, builtinScorers as scorers } from "../../src/routing/plugins/index.ts"
import { modelPlan, request, routingPlan, view } from "./support.ts"

const ctxWith = (over: Partial<RoutingContext> = {}): RoutingContext => ({
  req: request("hello there"),
  nowMs: 0,
  plan: routingPlan(),
  ...over
})
const ids = (vs: ReadonlyArray<{ readonly backend: { readonly id: string } }>) => vs.map((v) => v.backend.id)

describe("filters", () => {
  const ctx = ctxWith()
  const plan = routingPlan()

  it("model_served drops cold backends and backends whose adapter lacks the call kind", () => {
    const vs = [view("a"), view("b", { health: "cold" }), view("c")]
    expect(ids(filters.model_served(plan).apply(ctx, vs))).toEqual(["a", "c"])
    const all = [view("a"), view("c")]
    expect(filters.model_served(plan).apply(ctx, all)).toBe(all) // nothing dropped: same array
  })

  it("health drops unhealthy, keeps degraded", () => {
    const vs = [view("a", { health: "unhealthy" }), view("b", { health: "degraded" })]
    expect(ids(filters.health(plan).apply(ctx, vs))).toEqual(["b"])
  })

  it("breaker drops open, keeps degraded and half-open", () => {
    const vs = [view("a", { breaker: "open" }), view("b", { breaker: "degraded" }), view("c", { breaker: "half_open" })]
    expect(ids(filters.breaker(plan).apply(ctx, vs))).toEqual(["b", "c"])
  })

  it("quantization keeps the model's allowed quantizations, all when unset", () => {
    const vs = [view("a", {}, { quantization: "fp8" }), view("b", {}, { quantization: "bf16" })]
    expect(ids(filters.quantization(plan).apply(ctx, vs))).toEqual(["a", "b"])
    const strict = ctxWith({ req: request("x", { model: modelPlan({ allowedQuantizations: ["bf16"] }) }) })
    expect(ids(filters.quantization(plan).apply(strict, vs))).toEqual(["b"])
  })

  it("sku keeps the model's allowed GPUs", () => {
    const vs = [view("a"), view("b", {}, { gpu: GpuSku("A100-80GB") })]
    const strict = ctxWith({ req: request("x", { model: modelPlan({ allowedGpus: ["A100-80GB"] }) }) })
    expect(ids(filters.sku(plan).apply(strict, vs))).toEqual(["b"])
  })

  it("saturation drops cooling-down, slot-full, over-queue and over-KV backends, and fails open", () => {
    const tight = routingPlan({ maxQueue: 4, maxKvUsage: 0.9 })
    const vs = [
      view("cool", { coolingDown: true }),
      view("full", { slotsFree: 0 }),
      view("queued", { pendingRequests: 5 }),
      view("kv", { kvUsage: 0.95 }),
      view("ok", { pendingRequests: 4, kvUsage: 0.89 })
    ]
    const f = filters.saturation(tight)
    expect(ids(f.apply(ctx, vs))).toEqual(["ok"])
    expect(f.failOpen).toBe(true)
    expect(f.apply(ctx, vs.slice(0, 4))).toHaveLength(0) // the pipeline keeps them all (see Pipeline tests)
  })

  it("tenant applies allowed and denied backend lists; unlisted tenants may use all", () => {
    const plan = routingPlan({
      tenants: new Map([["acme", { allowedBackends: new Set([BackendId("a"), BackendId("b")]), deniedBackends: new Set([BackendId("b")]) }]])
    })
    const vs = [view("a"), view("b"), view("c")]
    const acme = ctxWith({ req: request("x", { tenant: TenantId("acme") }) })
    expect(ids(filters.tenant(plan).apply(acme, vs))).toEqual(["a"])
    expect(filters.tenant(plan).apply(ctx, vs)).toBe(vs)
  })
})

describe("scorers", () => {
  const plan = routingPlan()
  const ctx = ctxWith()

  it("queue_depth = (min q + 1) / (q + 1)", () => {
    const vs = [view("a", { pendingRequests: 0 }), view("b", { pendingRequests: 1 }), view("c", { pendingRequests: 3 })]
    const s = scorers.queue_depth(plan)
    expect(vs.map((v) => s.score(ctx, v, vs))).toEqual([1, 0.5, 0.25])
  })

  it("kv_usage = 1 − kv", () => {
    const s = scorers.kv_usage(plan)
    expect(s.score(ctx, view("a", { kvUsage: 0.25 }), [])).toBe(0.75)
    expect(s.score(ctx, view("a", { kvUsage: 1.5 }), [])).toBe(0)
  })

  it("prefix_cache = trust · matched / total", () => {
    const s = scorers.prefix_cache(plan)
    expect(s.score(ctx, view("a", { prefixMatchedBlocks: 5, prefixTotalBlocks: 10 }), [])).toBe(0.5)
    expect(s.score(ctx, view("a", { prefixMatchedBlocks: 10, prefixTotalBlocks: 10, prefixTrust: 0.5 }), [])).toBe(0.5)
    expect(s.score(ctx, view("a", { prefixMatchedBlocks: 0, prefixTotalBlocks: 0 }), [])).toBe(0)
  })

  it("session_affinity = 1 on the session's backend unless unhealthy", () => {
    const s = scorers.session_affinity(plan)
    expect(s.score(ctx, view("a", { sessionAffine: true }), [])).toBe(1)
    expect(s.score(ctx, view("a", { sessionAffine: true, health: "unhealthy" }), [])).toBe(0)
    expect(s.score(ctx, view("a"), [])).toBe(0)
  })

  it("headroom = 1 − predicted ITL / target, or relative tokens/s without a profile", () => {
    const s = scorers.headroom(plan)
    expect(s.score(ctx, view("a", { predictedItlMs: 25 }), [])).toBeCloseTo(0.75)
    expect(s.score(ctx, view("a", { predictedItlMs: 250 }), [])).toBe(0)
    const target = ctxWith({ req: request("x", { model: modelPlan({ itlTargetMs: 50 }) }) })
    expect(s.score(target, view("a", { predictedItlMs: 25 }), [])).toBeCloseTo(0.5)
    const unknown = [
      view("u1", { tokensPerSecond: 50 }, { profile: undefined }),
      view("u2", { tokensPerSecond: 100 }, { profile: undefined })
    ]
    expect(unknown.map((v) => s.score(ctx, v, unknown))).toEqual([0.5, 1])
  })

  it("predicted_ttft = (best + s) / (ttft + s) with s = 5% of the target", () => {
    const s = scorers.predicted_ttft(plan)
    const vs = [view("a", { predictedTtftMs: 100 }), view("b", { predictedTtftMs: 300 })]
    // default target 2 s → slack 100 ms: a = 1, b = 200/400
    expect(vs.map((v) => s.score(ctx, v, vs))).toEqual([1, 0.5])
  })

  it("cost = cheapest / cost, with GPU-seconds × price", () => {
    const s = scorers.cost(plan)
    const vs = [
      view("a", { prefillGpuSeconds: 0.5, decodeGpuSeconds: 0.5 }, { costPerGpuSecond: 1 }),
      view("b", { prefillGpuSeconds: 0.5, decodeGpuSeconds: 0.5 }, { costPerGpuSecond: 0.5 })
    ]
    expect(vs.map((v) => s.score(ctx, v, vs))).toEqual([0.5, 1])
  })
})

describe("pickers", () => {
  const plan = routingPlan()
  const ctx = ctxWith()
  const scored = (scores: ReadonlyArray<number>): Array<Scored> =>
    scores.map((score, i) => ({ view: view(`b${i}`, { index: i }), score }))

  it("max_score orders by score, ties in config order", () => {
    expect(ids(pickers.max_score(plan).order(ctx, scored([0.2, 0.9, 0.9, 0.1]), Math.random))).toEqual(["b1", "b2", "b0", "b3"])
  })

  it("p2c puts the better of two random candidates first and keeps everyone", () => {
    const rolls = [0.0, 0.99] // i = 0, j = last
    let k = 0
    const order = pickers.p2c(plan).order(ctx, scored([0.5, 0.9, 0.1, 0.7]), () => rolls[k++]!)
    // i = 0 (b0: 0.5); j = ⌊0.99·3⌋ = 2, shifted past i → 3 (b3: 0.7): b3 first, then the rest by score.
    expect(ids(order)).toEqual(["b3", "b1", "b0", "b2"])
  })

  it("weighted_random draws the first in proportion to the scores", () => {
    const p = pickers.weighted_random(plan)
    const counts = new Map<string, number>()
    let x = 7
    const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 4294967296)
    for (let i = 0; i < 4000; i++) {
      const first = p.order(ctx, scored([1, 3, 0]), rnd)[0]!.backend.id
      counts.set(first, (counts.get(first) ?? 0) + 1)
    }
    expect(counts.get("b2")).toBeUndefined()
    expect((counts.get("b1") ?? 0) / 4000).toBeGreaterThan(0.7)
    expect((counts.get("b1") ?? 0) / 4000).toBeLessThan(0.8)
  })
})

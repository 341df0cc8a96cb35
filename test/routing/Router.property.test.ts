/**
 * Properties of routing (fast-check):
 * - every scorer returns a number in [0, 1], whatever the view's numbers (NaN and ∞ included);
 * - a backend a hard filter excludes is never among the candidates, under any policy but `ordered`;
 *   one the health gates (health, breaker) exclude is a candidate only when the model routes in
 *   panic (under half of its eligible backends pass the gates), and then after all the others;
 *   saturation drops none (a cooling-down backend comes after the ones that are not);
 * - a session stays on its backend while that backend is healthy and no busier than the others,
 *   and leaves it once it turns unhealthy;
 * (the prefix index's bound is in PrefixIndex.test.ts).
 */
import fc from "fast-check"
import { describe, it } from "vitest"
import type { Backend } from "../../src/backends/Backend.ts"
import { GpuSku } from "../../src/domain/Ids.ts"
import type { BreakerState, RoutingContext } from "../../src/routing/Contract.ts"
import { builtinScorers as scorers } from "../../src/routing/plugins/index.ts"

const SCORERS = Object.keys(scorers)
import { routerFor } from "./harness.ts"
import { backend, modelPlan, request, routingPlan, text, view } from "./support.ts"

const anyNumber = fc.oneof(
  fc.double({ noNaN: false }),
  fc.constantFrom(0, -1, 1, Infinity, -Infinity, Number.NaN),
  fc.integer({ min: 0, max: 10_000 })
)

describe("routing properties", () => {
  it("every score is in [0, 1]", () => {
    const viewArb = fc.record({
      pendingRequests: anyNumber,
      kvUsage: anyNumber,
      prefixMatchedBlocks: anyNumber,
      prefixTotalBlocks: anyNumber,
      prefixTrust: anyNumber,
      predictedTtftMs: anyNumber,
      predictedItlMs: anyNumber,
      prefillGpuSeconds: anyNumber,
      decodeGpuSeconds: anyNumber,
      tokensPerSecond: fc.option(anyNumber, { nil: undefined }),
      sessionAffine: fc.boolean(),
      known: fc.boolean()
    })
    fc.assert(
      fc.property(fc.array(viewArb, { minLength: 1, maxLength: 6 }), fc.constantFrom(...SCORERS), (specs, name) => {
        const views = specs.map(({ known, ...over }, i) =>
          view(`b${i}`, { ...over, index: i }, known ? {} : { profile: undefined })
        )
        const ctx: RoutingContext = { req: request("x", { model: modelPlan({ ttftTargetMs: 500 }) }), nowMs: 0, plan: routingPlan() }
        const s = scorers[name]!(routingPlan())
        return views.every((v) => {
          const x = s.score(ctx, v, views)
          return x >= 0 && x <= 1
        })
      }),
      { numRuns: 500 }
    )
  })

  it("a filtered-out backend is never a candidate", async () => {
    const state = fc.record({
      health: fc.constantFrom("healthy", "degraded", "unhealthy", "cold"),
      breaker: fc.constantFrom<BreakerState>("closed", "degraded", "open"),
      quantization: fc.constantFrom("fp8", "bf16"),
      gpu: fc.constantFrom("H100", "A100-80GB"),
      coolingDown: fc.boolean()
    })
    await fc.assert(
      fc.asyncProperty(
        fc.array(state, { minLength: 1, maxLength: 5 }),
        fc.constantFrom("inference", "round_robin", "least_outstanding", "random"),
        fc.constantFrom("max_score", "p2c", "weighted_random"),
        fc.option(fc.constantFrom("fp8", "bf16"), { nil: undefined }),
        async (states, policy, picker, allowedQuant) => {
          const backends = states.map((s, i) => {
            const b = backend(`b${i}`, { quantization: s.quantization, gpu: GpuSku(s.gpu) })
            if (s.health === "cold") b.observeHealth({ _tag: "Loading" }, 0)
            if (s.health === "degraded") b.observeHealth({ _tag: "ProbeFailed" }, 0)
            if (s.health === "unhealthy") for (let k = 0; k < 3; k++) b.observeHealth({ _tag: "ProbeFailed" }, k)
            if (s.coolingDown) b.coolDown(Date.now() + 60_000)
            return b
          })
          const r = await routerFor(backends, { policy, picker })
          try {
            // Open breakers through the real breaker: record failures on the (model, SKU) keys chosen to be open.
            for (const [i, s] of states.entries()) {
              if (s.breaker !== "open") continue
              for (let k = 0; k < 20; k++) await r.run(r.breakers.record(backends[i]!.plan.models.keys().next().value!, backends[i]!.plan.gpu, "failure"))
            }
            const now = Date.now()
            const hardExcluded = (b: Backend) =>
              b.health === "cold" || (allowedQuant !== undefined && b.plan.quantization !== allowedQuant)
            const gateExcluded = (b: Backend) =>
              b.health === "unhealthy" || r.breakers.state(b.plan.models.keys().next().value!, b.plan.gpu, now) === "open"
            const req = request(text(500, states.length), { model: modelPlan({ allowedQuantizations: allowedQuant === undefined ? undefined : [allowedQuant] }) })
            const result = await r.run(r.router.candidates(req)).then(
              (route) => ({ ok: true as const, route }),
              () => ({ ok: false as const })
            )
            const eligible = backends.filter((b) => !hardExcluded(b))
            if (!result.ok) return eligible.length === 0
            const { backends: bs, panic } = result.route
            const available = eligible.filter((b) => !gateExcluded(b))
            if (panic !== available.length < 0.5 * eligible.length) return false
            if (bs.length === 0 || bs.some(hardExcluded)) return false
            // Saturation is soft (issue 16): it drops no candidate, and the saturated (cooling
            // down) come after the others among those the gates keep.
            const kept = panic ? eligible : available
            if (!kept.every((b) => bs.includes(b))) return false
            const open = bs.filter((b) => !gateExcluded(b))
            const firstBusy = open.findIndex((b) => states[backends.indexOf(b)]!.coolingDown)
            if (firstBusy !== -1 && !open.slice(firstBusy).every((b) => states[backends.indexOf(b)]!.coolingDown)) return false
            if (!panic) return bs.every((b) => !gateExcluded(b))
            // In panic the gate-excluded come last.
            const firstBad = bs.findIndex(gateExcluded)
            return firstBad === -1 || bs.slice(firstBad).every(gateExcluded)
          } finally {
            await r.close()
          }
        }
      ),
      { numRuns: 150 }
    )
  })

  it("a session stays on its backend while healthy and no busier than the others", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 5 }),
        fc.array(fc.record({ other: fc.nat(), uncached: fc.boolean() }), { minLength: 1, maxLength: 12 }),
        fc.integer(),
        async (n, turns, seed) => {
          const backends = Array.from({ length: n }, (_, i) => backend(`b${i}`))
          const r = await routerFor(backends)
          try {
            let history = text(300, seed)
            const first = request(history, { sessionKey: "s:prop" })
            const firstChoice = (await r.order(first))[0]
            const home = backends.find((b) => b.id === firstChoice)!
            await (await r.dispatch(first, home)).end()
            for (const t of turns) {
              // Other traffic lands on the other backends, so they are never less busy than home.
              const others = backends.filter((b) => b !== home)
              const victim = others[t.other % others.length]!
              await r.dispatch(request(text(t.uncached ? 3000 : 100, t.other), {}), victim, false)
              history += " " + text(200, t.other)
              const req = request(history, { sessionKey: "s:prop" })
              const order = await r.order(req)
              if (order[0] !== home.id) return false
              await (await r.dispatch(req, home)).end()
            }
            for (let k = 0; k < 3; k++) home.observeHealth({ _tag: "ProbeFailed" }, k)
            const after = await r.order(request(history + " more", { sessionKey: "s:prop" }))
            return !after.includes(home.id)
          } finally {
            await r.close()
          }
        }
      ),
      { numRuns: 60 }
    )
  })
})

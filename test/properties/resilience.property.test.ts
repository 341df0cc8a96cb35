/**
 * Properties of the breaker and health state machines on their own, over random sequences
 * of outcomes, admissions, permit returns and time (the lifecycle property keeps them out of
 * its way, so they are judged here). Only invariants that any evidence model must keep:
 *
 *  - states change only along legal edges; an open breaker stays open for `open_for`;
 *  - no attempt is admitted while open; closed and degraded admit everything;
 *  - a half-open breaker never has more probes out at once than `half_open_probes`, counting
 *    only the probes of its current half-open period (a permit from before it re-opened is
 *    not one of them), and once every permit is back it admits exactly that many again;
 *  - through the Breakers service, a probe permit comes back whatever way its scope closes;
 *  - health: only legal edges (never unhealthy → healthy without the half-open step),
 *    "loading" always means cold, a report names the new state exactly when it changed,
 *    good evidence never takes a healthy backend down.
 */
import { Effect, Exit, References, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { Health } from "../../src/backends/Backend.ts"
import { type Evidence, HealthState } from "../../src/backends/Health.ts"
import type { BreakersPlan } from "../../src/config/Plan.ts"
import { GpuSku, ModelId } from "../../src/domain/Ids.ts"
import { Breaker, type Outcome } from "../../src/resilience/Breaker.ts"
import * as Breakers from "../../src/resilience/Breakers.ts"
import type { BreakerState } from "../../src/routing/Contract.ts"

const breakerConfig: fc.Arbitrary<BreakersPlan> = fc
  .record({
    windowMs: fc.integer({ min: 300, max: 60_000 }),
    minRequests: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 12 })),
    degradeAt: fc.double({ min: 0.05, max: 0.9, noNaN: true }),
    openSpread: fc.double({ min: 0, max: 1, noNaN: true }),
    openForMs: fc.integer({ min: 1, max: 2_000 }),
    halfOpenProbes: fc.integer({ min: 1, max: 3 })
  })
  .map(({ openSpread, ...c }) => ({
    ...c,
    openAt: c.degradeAt + (1 - c.degradeAt) * openSpread,
    slowTtftMs: 1_000,
    degradedWeight: 0.5
  }))

type Op =
  | { readonly kind: "advance"; readonly ms: number }
  | { readonly kind: "admit" }
  | { readonly kind: "record"; readonly attempt: number; readonly outcome: Outcome }
  | { readonly kind: "release"; readonly attempt: number }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 2_500 })) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("admit" as const) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("record" as const),
      attempt: fc.nat(),
      outcome: fc.constantFrom<Outcome>("ok", "slow", "failure", "failure")
    })
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), attempt: fc.nat() }) }
)

const LEGAL: Record<BreakerState, ReadonlyArray<BreakerState>> = {
  closed: ["closed", "degraded", "open"],
  degraded: ["degraded", "closed", "open"],
  open: ["open", "half_open"],
  half_open: ["half_open", "open", "closed"]
}

/** An admitted attempt, as the dispatcher holds it. */
interface Attempt {
  readonly verdict: "yes" | "probe"
  /** The half-open period the probe permit was taken in. */
  readonly period: number
  readonly permit: { release: () => void } | undefined
  recorded: boolean
  released: boolean
}

/** A probe permit as the Breakers service holds it: given back with the period it was taken in. */
const probePermit = (b: Breaker) => {
  const period = b.probePeriod
  return { release: () => b.releaseProbe(period) }
}

describe("breaker state machine (property)", () => {
  it("keeps its invariants under any sequence of outcomes, admissions, permit returns and time", () => {
    fc.assert(
      fc.property(breakerConfig, fc.array(op, { minLength: 1, maxLength: 300 }), (config, ops) => {
        const b = new Breaker(config)
        let now = 0
        let state: BreakerState = b.state(now)
        let openedAt = 0
        let period = 0
        const attempts: Array<Attempt> = []
        // Observes the state (time-based transitions included) and checks the edge taken.
        const observe = (where: string) => {
          const next = b.state(now)
          if (!LEGAL[state].includes(next)) throw new Error(`illegal transition ${state} → ${next} (${where})`)
          if (state === "open" && next !== "open" && now - openedAt < config.openForMs) {
            throw new Error(`left open after ${now - openedAt} ms < open_for ${config.openForMs} ms`)
          }
          if (next === "open" && state !== "open") openedAt = now
          if (next === "half_open" && state !== "half_open") period++
          state = next
        }
        const probesOut = () => attempts.filter((a) => a.verdict === "probe" && !a.released && a.period === period).length

        for (const o of ops) {
          switch (o.kind) {
            case "advance":
              now += o.ms
              observe("time")
              break
            case "admit": {
              observe("before admit")
              const verdict = b.admit(now)
              if (state === "open" && verdict !== "no") throw new Error(`admitted (${verdict}) while open`)
              if ((state === "closed" || state === "degraded") && verdict !== "yes") throw new Error(`refused while ${state}`)
              if (verdict === "probe" && state !== "half_open") throw new Error(`a probe permit while ${state}`)
              if (verdict !== "no") {
                attempts.push({ verdict, period, permit: verdict === "probe" ? probePermit(b) : undefined, recorded: false, released: false })
              }
              observe("admit")
              if (state === "half_open" && probesOut() > config.halfOpenProbes) {
                throw new Error(`${probesOut()} probes out in one half-open period, at most ${config.halfOpenProbes} allowed`)
              }
              break
            }
            case "record": {
              const open = attempts.filter((a) => !a.recorded)
              const a = open[o.attempt % Math.max(1, open.length)]
              if (a === undefined) break
              observe("before record")
              a.recorded = true
              b.record(o.outcome, now)
              observe(`record ${o.outcome}`)
              break
            }
            case "release": {
              const held = attempts.filter((a) => !a.released)
              const a = held[o.attempt % Math.max(1, held.length)]
              if (a === undefined) break
              a.released = true
              a.permit?.release()
              observe("release")
              break
            }
          }
        }

        // Every permit back: a half-open breaker admits exactly half_open_probes again.
        for (const a of attempts) {
          if (!a.released) {
            a.released = true
            a.permit?.release()
          }
        }
        observe("all released")
        if (state === "half_open") {
          const verdicts = Array.from({ length: config.halfOpenProbes + 1 }, () => b.admit(now))
          expect(verdicts).toEqual([...Array<string>(config.halfOpenProbes).fill("probe"), "no"])
        }
      }),
      {
        numRuns: Number(process.env["SLUICE_BREAKER_RUNS"] ?? 500),
        examples: [[
          // A probe still out (a long stream) when the breaker re-opens, returned during the
          // next half-open period: it must not make room for an extra probe there.
          { windowMs: 10_000, minRequests: 1, degradeAt: 0.5, openAt: 0.5, openForMs: 100, halfOpenProbes: 1, slowTtftMs: 1_000, degradedWeight: 0.5 },
          [
            { kind: "admit" },
            { kind: "record", attempt: 0, outcome: "failure" },
            { kind: "advance", ms: 100 },
            { kind: "admit" },
            { kind: "record", attempt: 0, outcome: "failure" },
            { kind: "advance", ms: 100 },
            { kind: "admit" },
            { kind: "release", attempt: 1 },
            { kind: "admit" }
          ]
        ]]
      }
    )
  })

  it("never leaves closed on good outcomes alone", () => {
    fc.assert(
      fc.property(
        breakerConfig,
        fc.array(fc.tuple(fc.constantFrom<Outcome>("ok"), fc.integer({ min: 0, max: 2_000 })), { maxLength: 200 }),
        (config, outcomes) => {
          const b = new Breaker(config)
          let now = 0
          for (const [outcome, dt] of outcomes) {
            now += dt
            expect(b.admit(now)).toBe("yes")
            b.record(outcome, now)
            expect(b.state(now)).toBe("closed")
          }
        }
      ),
      { numRuns: 200 }
    )
  })
})

describe("Breakers service (property)", () => {
  const model = ModelId("m")
  const gpu = GpuSku("g")

  it("returns every probe permit, whatever way the attempt's scope closes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.constantFrom("success", "failure", "interrupt", "die"), { minLength: 1, maxLength: 12 }),
        (probes, exits) =>
          Effect.runPromise(Effect.gen(function*() {
            const breakers = Breakers.make({
              windowMs: 10_000,
              minRequests: 1,
              degradeAt: 0.5,
              openAt: 0.5,
              openForMs: 1_000,
              halfOpenProbes: probes,
              slowTtftMs: 1_000,
              degradedWeight: 0.5
            })
            yield* breakers.record(model, gpu, "failure")
            yield* TestClock.adjust(1_000)
            // Attempts in scopes closed every way an attempt ends; none of them records.
            for (const how of exits) {
              const scope = yield* Scope.make()
              yield* Scope.provide(breakers.admit(model, gpu), scope)
              const exit = how === "success"
                ? Exit.void
                : how === "failure"
                ? Exit.fail("attempt failed")
                : how === "interrupt"
                ? Exit.interrupt()
                : Exit.die(new Error("defect"))
              yield* Scope.close(scope, exit)
            }
            // All back: exactly `probes` admissions now, then none.
            const scope = yield* Scope.make()
            const admitted = yield* Effect.forEach(Array.from({ length: probes + 1 }), () => Scope.provide(breakers.admit(model, gpu), scope))
            expect(admitted).toEqual([...Array<boolean>(probes).fill(true), false])
            yield* Scope.close(scope, Exit.void)
          }).pipe(
            Effect.provide(TestClock.layer()),
            // The breaker logs its transitions; a hundred runs of them are noise here.
            Effect.provideService(References.MinimumLogLevel, "None")
          ))
      ),
      { numRuns: 100 }
    )
  })
})

const evidence: fc.Arbitrary<Evidence> = fc.oneof(
  fc.constant<Evidence>({ _tag: "ProbeOk" }),
  fc.constant<Evidence>({ _tag: "ProbeFailed" }),
  fc.constant<Evidence>({ _tag: "Loading" }),
  fc.constant<Evidence>({ _tag: "StreamBad" }),
  fc.option(fc.double({ min: 0, max: 500, noNaN: true }), { nil: undefined })
    .map((tokensPerSecond): Evidence => ({ _tag: "StreamOk", tokensPerSecond }))
)

const HEALTH_LEGAL: Record<Health, ReadonlyArray<Health>> = {
  cold: ["cold", "healthy", "unhealthy"],
  healthy: ["healthy", "degraded", "unhealthy", "cold"],
  degraded: ["degraded", "healthy", "unhealthy", "cold"],
  // Back only through the half-open step (degraded), or to cold when the engine reloads.
  unhealthy: ["unhealthy", "degraded", "cold"]
}

describe("health state machine (property)", () => {
  const healthConfig = fc.record({
    windowMs: fc.integer({ min: 100, max: 60_000 }),
    minSamples: fc.integer({ min: 1, max: 20 }),
    unhealthyAt: fc.double({ min: 0.3, max: 1, noNaN: true }),
    degradeAt: fc.double({ min: 0, max: 0.3, noNaN: true }),
    unhealthyAfter: fc.integer({ min: 1, max: 8 }),
    minTokensPerSecond: fc.double({ min: 0, max: 100, noNaN: true })
  })
  /** Evidence arrives at increasing times (gaps up to a few windows). */
  const timed = fc.array(fc.tuple(evidence, fc.integer({ min: 0, max: 5_000 })), { maxLength: 200 })

  it("changes only along legal edges and reports exactly its changes", () => {
    fc.assert(
      fc.property(
        healthConfig,
        fc.constantFrom<Health>("healthy", "cold"),
        timed,
        (config, initial, seq) => {
          const h = new HealthState(config, initial)
          let now = 0
          for (const [e, gap] of seq) {
            now += gap
            const before = h.state
            const reported = h.observe(e, now)
            const after = h.state
            if (!HEALTH_LEGAL[before].includes(after)) throw new Error(`illegal transition ${before} → ${after} on ${e._tag}`)
            expect(reported).toBe(after === before ? undefined : after)
            if (e._tag === "Loading") expect(after).toBe("cold")
          }
        }
      ),
      { numRuns: 500 }
    )
  })

  it("keeps a healthy backend healthy on good evidence alone", () => {
    fc.assert(
      fc.property(
        healthConfig,
        fc.array(fc.oneof(fc.constant<Evidence>({ _tag: "ProbeOk" }), fc.constant<Evidence>({ _tag: "StreamOk", tokensPerSecond: undefined })), { maxLength: 100 }),
        (config, seq) => {
          const h = new HealthState(config, "healthy")
          let now = 0
          for (const e of seq) {
            h.observe(e, now += 10)
            expect(h.state).toBe("healthy")
          }
        }
      ),
      { numRuns: 200 }
    )
  })
})

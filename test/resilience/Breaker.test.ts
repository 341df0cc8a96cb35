import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { BreakersPlan } from "../../src/config/Plan.ts"
import { Breaker, type Outcome } from "../../src/resilience/Breaker.ts"

const config: BreakersPlan = {
  windowMs: 10_000,
  minRequests: 4,
  degradeAt: 0.25,
  openAt: 0.5,
  openForMs: 1_000,
  halfOpenProbes: 2,
  slowTtftMs: 1_000,
  degradedWeight: 0.5
}

describe("Breaker", () => {
  it("waits for enough outcomes, then degrades, opens, half-opens and closes", () => {
    const b = new Breaker(config)
    let t = 0
    expect(b.record("failure", t++)).toBeUndefined()
    expect(b.record("ok", t++)).toBeUndefined()
    expect(b.record("ok", t++)).toBeUndefined()
    // 4 outcomes, 1 failure: 25% → degraded.
    expect(b.record("ok", t++)?.to).toBe("degraded")
    expect(b.admit(t)).toBe("yes")
    // 3 failures of 6 → 50% → open.
    b.record("failure", t++)
    expect(b.record("failure", t++)?.to).toBe("open")
    expect(b.admit(t)).toBe("no")
    // After open_for: half-open, two probe permits at a time.
    t += 1_000
    expect(b.state(t)).toBe("half_open")
    expect(b.admit(t)).toBe("probe")
    expect(b.admit(t)).toBe("probe")
    expect(b.admit(t)).toBe("no")
    b.releaseProbe()
    expect(b.record("ok", t)).toBeUndefined()
    expect(b.record("ok", t)?.to).toBe("closed")
    expect(b.windowSize(t)).toBe(0)
  })

  it("reopens on a failed probe", () => {
    const b = new Breaker(config)
    for (let i = 0; i < 4; i++) b.record("failure", i)
    expect(b.state(10)).toBe("open")
    expect(b.state(1_010)).toBe("half_open")
    expect(b.admit(1_010)).toBe("probe")
    expect(b.record("failure", 1_011)?.to).toBe("open")
    expect(b.admit(1_500)).toBe("no")
  })

  it("degrades on slow outcomes alone and recovers with hysteresis", () => {
    const b = new Breaker(config)
    let t = 0
    for (let i = 0; i < 3; i++) b.record("ok", t++)
    expect(b.record("slow", t++)?.to).toBe("degraded")
    for (let i = 0; i < 3; i++) expect(b.record("ok", t++)).toBeUndefined()
    // 1 slow in 8 = 12.5%: exactly half the degrade threshold is not below it.
    expect(b.record("ok", t++)).toBeUndefined()
    expect(b.record("ok", t++)?.to).toBe("closed")
  })

  it("forgets outcomes older than the window", () => {
    const b = new Breaker(config)
    for (let i = 0; i < 3; i++) b.record("failure", i)
    expect(b.windowSize(20_000)).toBe(0)
    expect(b.record("failure", 20_000)).toBeUndefined()
  })

  // Random outcome streams: the state is always one of the four, open never admits,
  // probe permits never exceed the limit, and the failure-rate rule holds at each step.
  it("obeys its rules for any outcome sequence", () => {
    const step = fc.record({
      outcome: fc.constantFrom<Outcome>("ok", "slow", "failure"),
      dt: fc.integer({ min: 0, max: 700 }),
      probe: fc.boolean()
    })
    fc.assert(fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
      const b = new Breaker(config)
      let t = 0
      let permits = 0
      const recent: Array<[number, Outcome]> = []
      for (const s of steps) {
        t += s.dt
        const before = b.state(t)
        if (s.probe) {
          const verdict = b.admit(t)
          if (before === "open") expect(verdict).toBe("no")
          if (verdict === "probe") permits++
          expect(permits).toBeLessThanOrEqual(config.halfOpenProbes)
        }
        const transition = b.record(s.outcome, t)
        if (before !== "open" && before !== "half_open") {
          recent.push([t, s.outcome])
          while (recent.length > 0 && recent[0]![0] < t - config.windowMs) recent.shift()
        }
        const now = b.state(t)
        expect(["closed", "degraded", "open", "half_open"]).toContain(now)
        if (transition?.to === "open") {
          permits = 0
          expect(b.admit(t)).toBe("no")
          recent.length = 0
        }
        if (transition?.to === "closed" && before === "half_open") recent.length = 0
        if (before === "closed" && transition === undefined && recent.length >= config.minRequests) {
          const failures = recent.filter(([, o]) => o === "failure").length / recent.length
          expect(failures).toBeLessThan(config.openAt)
        }
      }
    }), { numRuns: 500 })
  })
})

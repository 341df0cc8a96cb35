import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { BreakersPlan } from "../../src/config/Plan.ts"
import { Breaker, BUCKETS, type Outcome } from "../../src/resilience/Breaker.ts"

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
    expect(b.record("ok", t++)).toBeUndefined()
    expect(b.record("ok", t++)).toBeUndefined()
    expect(b.record("ok", t++)).toBeUndefined()
    // 4 outcomes, 1 failure: 25% → degraded.
    expect(b.record("failure", t++)?.to).toBe("degraded")
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
    b.releaseProbe(b.probePeriod)
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

  it("is judged when bad evidence arrives: successes after a burst never open it", () => {
    const b = new Breaker({ ...config, minRequests: 10 })
    let t = 0
    // Five failures (below the minimum of evidence), then five successes: 50% over ten
    // outcomes, but the last word was good. Main opened here and refused a healthy model.
    for (let i = 0; i < 5; i++) expect(b.record("failure", t++)).toBeUndefined()
    for (let i = 0; i < 5; i++) expect(b.record("ok", t++)).toBeUndefined()
    expect(b.state(t)).toBe("closed")
    // The next failure is judged on the whole window: 6 of 11 → open.
    expect(b.record("failure", t++)?.to).toBe("open")
  })

  it("forgets outcomes older than the window", () => {
    const b = new Breaker(config)
    for (let i = 0; i < 3; i++) b.record("failure", i)
    expect(b.windowSize(9_000)).toBe(3)
    expect(b.windowSize(20_000)).toBe(0)
    expect(b.record("failure", 20_000)).toBeUndefined()
  })

  it("keeps running totals right across many outcomes and bucket turnovers", () => {
    const b = new Breaker({ ...config, minRequests: 1_000_000 })
    for (let i = 0; i < 200_000; i++) b.record(i % 10 === 0 ? "failure" : "ok", i / 20)
    // All 200k are within the window at t = 9.999 s; the first bucket (1/30 of it) leaves at 10 s.
    expect(b.windowSize(9_999)).toBe(200_000)
    expect(b.windowSize(10_000)).toBe(200_000 - Math.ceil((10_000 / BUCKETS) * 20))
    expect(b.windowSize(30_000)).toBe(0)
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
          // The window slides one bucket (window / BUCKETS) at a time.
          const width = config.windowMs / BUCKETS
          const oldest = Math.floor(t / width) - BUCKETS + 1
          while (recent.length > 0 && Math.floor(recent[0]![0] / width) < oldest) recent.shift()
        }
        const now = b.state(t)
        expect(["closed", "degraded", "open", "half_open"]).toContain(now)
        if (transition?.to === "open") {
          permits = 0
          expect(b.admit(t)).toBe("no")
          recent.length = 0
        }
        if (transition?.to === "closed" && before === "half_open") recent.length = 0
        // Only a failure is judged against open_at: the failure rate after it stays below.
        if (before === "closed" && s.outcome === "failure" && transition === undefined && recent.length >= config.minRequests) {
          const failures = recent.filter(([, o]) => o === "failure").length / recent.length
          expect(failures).toBeLessThan(config.openAt)
        }
      }
    }), { numRuns: 500 })
  })
})

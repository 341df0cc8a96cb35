import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { Health } from "../../src/backends/Backend.ts"
import { type Evidence, type HealthConfig, HealthState, ProbeSchedule } from "../../src/backends/Health.ts"
import { BUCKETS } from "../../src/resilience/Window.ts"

const config: HealthConfig = {
  windowMs: 30_000,
  minSamples: 10,
  unhealthyAt: 0.5,
  degradeAt: 0.2,
  unhealthyAfter: 3,
  minTokensPerSecond: 5
}
const ok: Evidence = { _tag: "StreamOk", tokensPerSecond: 40 }
const bad: Evidence = { _tag: "StreamBad" }

describe("HealthState", () => {
  it("degrades on a bad outcome, and turns unhealthy only with a minimum of evidence and a failure rate", () => {
    const h = new HealthState(config)
    let t = 0
    expect(h.observe(bad, t++)).toBe("degraded")
    // Nine failures in a row are not enough evidence (the old rule took three).
    for (let i = 0; i < 8; i++) expect(h.observe(bad, t++)).toBeUndefined()
    expect(h.state).toBe("degraded")
    expect(h.observe(bad, t++)).toBe("unhealthy")
    expect(h.evidence(t)).toEqual({ samples: 10, failures: 10 })
  })

  it("a burst of failures among successes degrades but does not exclude", () => {
    const h = new HealthState(config)
    let t = 0
    for (let i = 0; i < 20; i++) h.observe(ok, t++)
    for (let i = 0; i < 9; i++) h.observe(bad, t++)
    // 9 of 29 = 31%: below unhealthy_at, above degrade_at.
    expect(h.state).toBe("degraded")
    // Ten more failures: 19 of 39 = 49%, still below; the next one crosses 50%.
    for (let i = 0; i < 10; i++) h.observe(bad, t++)
    expect(h.state).toBe("degraded")
    expect(h.observe(bad, t++)).toBe("unhealthy")
  })

  it("recovers half-open: a good probe brings it back degraded with a clean window; good traffic heals", () => {
    const h = new HealthState(config)
    let t = 0
    for (let i = 0; i < 10; i++) h.observe(bad, t++)
    expect(h.state).toBe("unhealthy")
    // More failures while excluded change nothing.
    expect(h.observe(bad, t++)).toBeUndefined()
    expect(h.observe({ _tag: "ProbeOk" }, t++)).toBe("degraded")
    expect(h.evidence(t)).toEqual({ samples: 0, failures: 0 })
    expect(h.observe(ok, t++)).toBe("healthy")
  })

  it("takes a request served while unhealthy (routed in panic) as recovery evidence", () => {
    const h = new HealthState(config)
    for (let i = 0; i < 10; i++) h.observe(bad, i)
    expect(h.observe(ok, 20)).toBe("degraded")
    expect(h.observe(ok, 21)).toBe("healthy")
  })

  it("forgets outcomes that left the window", () => {
    const h = new HealthState(config)
    for (let i = 0; i < 9; i++) h.observe(bad, i)
    expect(h.state).toBe("degraded")
    // Thirty seconds later the old failures are gone: one more is 1 of 1, not 10 of 10.
    expect(h.observe(bad, 40_000)).toBeUndefined()
    expect(h.state).toBe("degraded")
    expect(h.evidence(40_000)).toEqual({ samples: 1, failures: 1 })
  })

  it("treats a stream below the token-rate floor as a bad outcome", () => {
    const h = new HealthState(config)
    expect(h.observe({ _tag: "StreamOk", tokensPerSecond: 2 }, 0)).toBe("degraded")
    expect(h.evidence(0)).toEqual({ samples: 1, failures: 1 })
  })

  it("stays degraded until the failure rate is below half of degrade_at (hysteresis)", () => {
    const h = new HealthState(config)
    let t = 0
    h.observe(bad, t++)
    // 1 bad of n: degraded while 1/n ≥ 0.1, i.e. up to n = 10.
    for (let i = 0; i < 8; i++) expect(h.observe(ok, t++)).toBeUndefined()
    expect(h.observe(ok, t++)).toBeUndefined()
    expect(h.observe(ok, t++)).toBe("healthy")
  })

  it("judges probes as active health checks: unhealthy after N failed in a row, one failure degrades", () => {
    const h = new HealthState(config)
    expect(h.observe({ _tag: "ProbeFailed" }, 0)).toBe("degraded")
    expect(h.observe({ _tag: "ProbeFailed" }, 1)).toBeUndefined()
    expect(h.observe({ _tag: "ProbeOk" }, 2)).toBe("healthy")
    h.observe({ _tag: "ProbeFailed" }, 3)
    h.observe({ _tag: "ProbeFailed" }, 4)
    expect(h.observe({ _tag: "ProbeFailed" }, 5)).toBe("unhealthy")
  })

  it("is cold while the engine loads, and healthy after its first good probe", () => {
    const h = new HealthState(config)
    expect(h.observe({ _tag: "Loading" }, 0)).toBe("cold")
    expect(h.observe(bad, 1)).toBeUndefined()
    expect(h.observe({ _tag: "ProbeOk" }, 2)).toBe("healthy")
  })

  // Any evidence sequence: unhealthy is only reached with enough evidence (the window holds
  // ≥ minSamples outcomes with a failure rate ≥ unhealthyAt) or N failed probes in a row.
  it("never excludes a backend on less evidence than its rules require", () => {
    const step = fc.record({
      evidence: fc.constantFrom<Evidence>(ok, bad, { _tag: "ProbeOk" }, { _tag: "ProbeFailed" }, { _tag: "StreamOk", tokensPerSecond: 1 }),
      dt: fc.integer({ min: 0, max: 3_000 })
    })
    fc.assert(fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
      const h = new HealthState(config)
      const width = config.windowMs / BUCKETS
      let t = 0
      let probeFailures = 0
      const recent: Array<[number, boolean]> = []
      for (const s of steps) {
        t += s.dt
        const before: Health = h.state
        const after = h.observe(s.evidence, t)
        const e = s.evidence
        if (e._tag === "ProbeFailed") probeFailures++
        if (e._tag === "ProbeOk") probeFailures = 0
        const oldest = Math.floor(t / width) - BUCKETS + 1
        while (recent.length > 0 && Math.floor(recent[0]![0] / width) < oldest) recent.shift()
        const isTraffic = e._tag === "StreamOk" || e._tag === "StreamBad"
        const failed = e._tag === "StreamBad" || (e._tag === "StreamOk" && (e.tokensPerSecond ?? 99) < config.minTokensPerSecond)
        if (before === "unhealthy" && !failed && (isTraffic || e._tag === "ProbeOk")) recent.length = 0
        else if (isTraffic && before !== "unhealthy") recent.push([t, failed])
        if (after === "unhealthy") {
          const n = recent.length
          const failures = recent.filter(([, f]) => f).length
          expect(probeFailures >= config.unhealthyAfter || (n >= config.minSamples && failures / n >= config.unhealthyAt)).toBe(true)
        }
        expect(["cold", "healthy", "degraded", "unhealthy"]).toContain(h.state)
      }
    }), { numRuns: 500 })
  })
})

describe("ProbeSchedule", () => {
  const schedule = () => new ProbeSchedule({ intervalMs: 10_000, backoffMs: 250, backoffMaxMs: 1_000 })

  it("probes a healthy backend every interval, and wakes often enough to notice trouble", () => {
    const s = schedule()
    expect(s.tickMs).toBe(250)
    expect(s.due(0, "healthy")).toBe(true)
    s.probed(0, "healthy")
    expect(s.due(9_999, "healthy")).toBe(false)
    expect(s.due(10_000, "healthy")).toBe(true)
  })

  it("re-probes an unhealthy backend after 250 ms, doubling up to the cap, and returns to the interval once it recovers", () => {
    const s = schedule()
    s.probed(0, "healthy")
    // Turned unhealthy between two regular probes: noticed at the next tick.
    expect(s.due(3_000, "unhealthy")).toBe(false)
    expect(s.due(3_250, "unhealthy")).toBe(true)
    const delays: Array<number> = []
    let t = 3_250
    for (let i = 0; i < 5; i++) {
      s.probed(t, "unhealthy")
      let next = t
      while (!s.due(next, "unhealthy")) next += 10
      delays.push(next - t)
      t = next
    }
    expect(delays).toEqual([250, 500, 1_000, 1_000, 1_000])
    s.probed(t, "degraded")
    expect(s.due(t + 9_999, "degraded")).toBe(false)
    expect(s.due(t + 10_000, "degraded")).toBe(true)
  })

  it("never re-probes faster than the regular interval when that is shorter", () => {
    const s = new ProbeSchedule({ intervalMs: 100, backoffMs: 250, backoffMaxMs: 1_000 })
    expect(s.tickMs).toBe(100)
    s.probed(0, "unhealthy")
    expect(s.due(99, "unhealthy")).toBe(false)
    expect(s.due(100, "unhealthy")).toBe(true)
  })
})

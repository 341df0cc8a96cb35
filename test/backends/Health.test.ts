import { describe, expect, it } from "vitest"
import { HealthState } from "../../src/backends/Health.ts"

const config = { unhealthyAfter: 3, minTokensPerSecond: 5 }

describe("HealthState", () => {
  it("degrades on a bad stream, turns unhealthy after N in a row, recovers through a probe", () => {
    const h = new HealthState(config)
    expect(h.observe({ _tag: "StreamBad" })).toBe("degraded")
    expect(h.observe({ _tag: "StreamBad" })).toBeUndefined()
    expect(h.observe({ _tag: "StreamBad" })).toBe("unhealthy")
    // Half-open: a good probe lets traffic back at lower weight; good traffic heals.
    expect(h.observe({ _tag: "ProbeOk" })).toBe("degraded")
    expect(h.observe({ _tag: "StreamOk", tokensPerSecond: 40 })).toBe("healthy")
  })

  it("treats a stream below the token-rate floor as bad evidence", () => {
    const h = new HealthState(config)
    expect(h.observe({ _tag: "StreamOk", tokensPerSecond: 2 })).toBe("degraded")
    expect(h.observe({ _tag: "StreamOk", tokensPerSecond: 50 })).toBe("healthy")
  })

  it("is cold while the engine loads, and healthy after its first good probe", () => {
    const h = new HealthState(config)
    expect(h.observe({ _tag: "Loading" })).toBe("cold")
    expect(h.observe({ _tag: "ProbeOk" })).toBe("healthy")
  })

  it("resets the bad streak on success", () => {
    const h = new HealthState(config)
    h.observe({ _tag: "ProbeFailed" })
    h.observe({ _tag: "ProbeFailed" })
    h.observe({ _tag: "ProbeOk" })
    h.observe({ _tag: "ProbeFailed" })
    expect(h.state).toBe("degraded")
  })
})

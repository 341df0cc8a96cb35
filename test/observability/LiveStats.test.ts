/**
 * The dashboard's recorder stays bounded whatever the traffic (ring, tenant table, failure
 * list, string lengths) and its summary is right: nearest-rank percentiles, rates over the
 * part of the window seen, errors by reason, top tenants by tokens, recent failures newest
 * first.
 */
import { describe, expect, it } from "vitest"
import { type Finished, quantile, Recorder } from "../../src/observability/LiveStats.ts"

const finished = (over: Partial<Finished> = {}): Finished => ({
  atMs: 1_000_000,
  requestId: "r",
  model: "m",
  backend: "a",
  tenant: "t",
  outcome: "completed",
  status: 200,
  ttftMs: 10,
  interTokenMs: 2,
  promptTokens: 5,
  completionTokens: 10,
  error: undefined,
  failedAttempts: [],
  ...over
})

describe("LiveStats", () => {
  it("nearest-rank quantiles", () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(quantile(xs, 0.5)).toBe(50)
    expect(quantile(xs, 0.9)).toBe(90)
    expect(quantile(xs, 0.99)).toBe(99)
    expect(quantile([7], 0.99)).toBe(7)
    expect(quantile([], 0.5)).toBeUndefined()
  })

  it("summarizes the window: rates, percentiles, outcomes, errors, tenants, failures", () => {
    const r = new Recorder()
    const t0 = 1_000_000
    for (let i = 0; i < 100; i++) {
      r.record(finished({ atMs: t0 + i * 100, ttftMs: i + 1, tenant: i % 4 === 0 ? "small" : "big", requestId: `r${i}` }))
    }
    r.record(finished({ atMs: t0 + 9_900, outcome: "failed", status: 502, error: "BackendsExhausted", completionTokens: 0, ttftMs: undefined }))
    r.record(finished({ atMs: t0 + 9_950, failedAttempts: [{ backend: "b", reason: "Unavailable" }], requestId: "over" }))
    const s = r.summary(t0 + 10_000, 60_000)
    expect(s.windowSeconds).toBe(10)
    expect(s.requests).toBe(102)
    expect(s.tokensPerSecond).toBe((101 * 10) / 10)
    expect(s.ttftMs.p50).toBe(50)
    expect(s.ttftMs.p99).toBe(99)
    expect(s.outcomes).toEqual({ completed: 101, failed: 1 })
    expect(s.errors).toEqual(expect.arrayContaining([{ reason: "BackendsExhausted", count: 1 }, { reason: "attempt: Unavailable", count: 1 }]))
    expect(s.topTenants[0]!.tenant).toBe("big")
    expect(s.recentFailures.map((f) => f.requestId)).toEqual(["over", "r"])
    expect(s.recentFailures[0]!.error).toBe("b: Unavailable")
    // Later, the old requests leave the window.
    const later = r.summary(t0 + 200_000, 60_000)
    expect(later.requests).toBe(0)
    expect(later.ttftMs.p50).toBeUndefined()
  })

  it("stays bounded: 4096 requests in the ring, 10,000 tenants then (other), 20 failures shown, strings cut", () => {
    const r = new Recorder()
    const long = "x".repeat(10_000)
    for (let i = 0; i < 20_000; i++) {
      r.record(finished({ atMs: 1_000 + i, tenant: `tenant-${i}`, outcome: i % 2 === 0 ? "client_aborted" : "completed", model: long, error: long }))
    }
    const s = r.summary(1_000 + 20_000, 60_000)
    expect(s.requests).toBe(4096)
    expect(s.topTenants).toHaveLength(10)
    expect(s.topTenants[0]!.tenant).toBe("(other)")
    expect(s.topTenants[0]!.requests).toBe(10_000)
    expect(s.recentFailures).toHaveLength(20)
    expect(s.recentFailures[0]!.model.length).toBeLessThanOrEqual(129)
    expect(s.recentFailures[0]!.error!.length).toBeLessThanOrEqual(129)
  })
})

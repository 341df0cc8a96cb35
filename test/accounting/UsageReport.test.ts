/**
 * The in-memory usage sums (per tenant, model and hour) that the embedded ledger answers
 * reports from: grouped by UTC day, filtered by tenant and range, and bounded by age and by
 * count whatever is added. And the report's totals and groupings.
 */
import { describe, expect, it } from "vitest"
import { Aggregate, MAX_BUCKETS, report } from "../../src/accounting/UsageReport.ts"
import { TenantId } from "../../src/domain/Ids.ts"

const HOUR = 3_600_000
const DAY = 24 * HOUR
const t0 = Date.parse("2026-11-30T22:30:00Z")
const usage = (p: number, c: number) => ({ promptTokens: p, completionTokens: c, cachedTokens: 1 })

describe("usage sums in memory", () => {
  it("groups by UTC day, filters by tenant and range (by the hour)", () => {
    const a = new Aggregate()
    a.add("acme", "m", t0, usage(10, 1))
    a.add("acme", "m", t0 + 2 * HOUR, usage(20, 2)) // 2026-12-01 00:30
    a.add("acme", "x", t0 + 2 * HOUR, usage(5, 5))
    a.add("beta", "m", t0, usage(99, 9))
    const acme = a.read({ tenant: TenantId("acme"), fromMs: t0 - DAY, toMs: t0 + DAY })
    expect(acme.map((g) => [g.day, g.model, g.requests, g.promptTokens]).sort()).toEqual([
      ["2026-11-30", "m", 1, 10],
      ["2026-12-01", "m", 1, 20],
      ["2026-12-01", "x", 1, 5]
    ])
    expect(a.read({ tenant: undefined, fromMs: t0 + HOUR, toMs: t0 + DAY }).map((g) => g.tenant)).toEqual(["acme", "acme"])
    const r = report({ tenant: undefined, fromMs: t0 - DAY, toMs: t0 + DAY }, a.read({ tenant: undefined, fromMs: t0 - DAY, toMs: t0 + DAY }))
    expect(r.totals).toEqual({ requests: 4, prompt_tokens: 134, cached_tokens: 4, completion_tokens: 17, total_tokens: 151 })
    expect(r.by_tenant?.map((t) => [t.tenant, t.requests])).toEqual([["acme", 3], ["beta", 1]])
    expect(r.by_day.map((d) => [d.day, d.requests])).toEqual([["2026-11-30", 2], ["2026-12-01", 2]])
  })

  it("drops what no query can reach (over 367 days behind the newest) and never holds more than MAX_BUCKETS", () => {
    const a = new Aggregate()
    a.add("acme", "m", t0, usage(1, 1))
    a.add("acme", "m", t0 + 400 * DAY, usage(1, 1))
    expect(a.size).toBe(1)
    a.add("acme", "m", t0, usage(1, 1)) // too old to be kept at all
    expect(a.size).toBe(1)

    const b = new Aggregate()
    const tenants = 1000
    const hours = Math.ceil(MAX_BUCKETS / tenants) + 20
    for (let h = 0; h < hours; h++) for (let t = 0; t < tenants; t++) b.add(`t${t}`, "m", t0 + h * HOUR, usage(1, 0))
    expect(b.size).toBeLessThanOrEqual(MAX_BUCKETS)
    const newest = b.read({ tenant: undefined, fromMs: t0 + (hours - 1) * HOUR, toMs: t0 + hours * HOUR })
    expect(newest.reduce((n, g) => n + g.requests, 0)).toBe(tenants)
    expect(b.read({ tenant: undefined, fromMs: t0, toMs: t0 + HOUR })).toEqual([])
  })
})

/**
 * Flow control's queue (issue 15 item 1): strict priority bands, weighted fair queuing in
 * tokens inside a band, shedding of the lowest band first, bounded wait, removal — and the
 * fair-queuing bound as a property, and the "one tenant floods" scenario on a fake clock.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { type FlowEntry, FlowQueue } from "../../src/admission/FlowQueue.ts"

const entry = (tenant: string, cost: number, over: Partial<FlowEntry<string>> = {}): FlowEntry<string> => ({
  tenant,
  band: 0,
  cost,
  deadlineMs: Infinity,
  value: `${tenant}:${cost}`,
  ...over
})

const drain = <A>(q: FlowQueue<A>): Array<FlowEntry<A>> => {
  const out: Array<FlowEntry<A>> = []
  for (let e = q.next(); e !== undefined; e = q.next()) out.push(e)
  return out
}

describe("FlowQueue", () => {
  it("serves band 0 before band 1 whatever the arrival order", () => {
    const q = new FlowQueue<string>({ bands: 3, maxQueued: 100 })
    q.enqueue(entry("a", 10, { band: 2, value: "low" }))
    q.enqueue(entry("b", 10, { band: 1, value: "mid" }))
    q.enqueue(entry("c", 10, { band: 0, value: "high" }))
    q.enqueue(entry("d", 10, { band: 7, value: "clamped" }))
    expect(drain(q).map((e) => e.value)).toEqual(["high", "mid", "low", "clamped"])
  })

  it("shares a band by tokens, not requests: a tenant of small requests is served many per large one", () => {
    const q = new FlowQueue<string>({ bands: 1, maxQueued: 100 })
    for (let i = 0; i < 4; i++) q.enqueue(entry("big", 1000))
    for (let i = 0; i < 40; i++) q.enqueue(entry("small", 100))
    const order = drain(q).map((e) => e.tenant)
    // Between consecutive "big" requests, ten "small" ones (1,000 tokens each way).
    const bigs = order.flatMap((t, i) => (t === "big" ? [i] : []))
    for (let k = 1; k < bigs.length; k++) expect(bigs[k]! - bigs[k - 1]! - 1).toBe(10)
  })

  it("weights: a tenant of weight 2 gets twice the tokens of one of weight 1 while both wait", () => {
    const q = new FlowQueue<string>({ bands: 1, maxQueued: 1000, weight: (t) => (t === "gold" ? 2 : 1) })
    for (let i = 0; i < 300; i++) {
      q.enqueue(entry("gold", 50))
      q.enqueue(entry("std", 50))
    }
    const first = drain(q).slice(0, 300)
    const gold = first.filter((e) => e.tenant === "gold").length
    expect(gold).toBeGreaterThanOrEqual(199)
    expect(gold).toBeLessThanOrEqual(201)
  })

  it("an idle tenant gets no credit for its idle time", () => {
    const q = new FlowQueue<string>({ bands: 1, maxQueued: 1000 })
    for (let i = 0; i < 50; i++) q.enqueue(entry("busy", 10))
    for (let i = 0; i < 40; i++) q.next()
    // "late" arrives after 400 tokens of service to "busy": it shares from now on, one for one.
    for (let i = 0; i < 10; i++) q.enqueue(entry("late", 10))
    const order = drain(q).slice(0, 10).map((e) => e.tenant)
    expect(order.filter((t) => t === "late").length).toBe(5)
  })

  it("sheds the lowest band first, then a flooding tenant's newest, and refuses what would be served last", () => {
    const q = new FlowQueue<string>({ bands: 2, maxQueued: 3 })
    q.enqueue(entry("batch", 10, { band: 1, value: "b1" }))
    q.enqueue(entry("batch", 10, { band: 1, value: "b2" }))
    q.enqueue(entry("flood", 10, { value: "f1" }))
    // Full: a band-0 arrival sheds band 1's last-served entry.
    const r1 = q.enqueue(entry("flood", 10, { value: "f2" }))
    expect(r1).toMatchObject({ _tag: "Queued", shed: [{ value: "b2" }] })
    const r2 = q.enqueue(entry("flood", 10, { value: "f3" }))
    expect(r2).toMatchObject({ _tag: "Queued", shed: [{ value: "b1" }] })
    // Only band 0 left, all "flood": another flood entry would be served last: refused.
    expect(q.enqueue(entry("flood", 10, { value: "f4" }))).toEqual({ _tag: "Refused" })
    // A quiet tenant's request would be served before flood's newest: that one goes.
    expect(q.enqueue(entry("quiet", 10, { value: "q1" }))).toMatchObject({ _tag: "Queued", shed: [{ value: "f3" }] })
    // A band-1 arrival with band 0 full is refused.
    expect(q.enqueue(entry("batch", 1, { band: 1 }))).toEqual({ _tag: "Refused" })
    expect(drain(q).map((e) => e.value)).toEqual(["f1", "q1", "f2"])
  })

  it("expires entries at their deadline and removes one by ticket (a client that left)", () => {
    const q = new FlowQueue<string>({ bands: 1, maxQueued: 10 })
    const a = q.enqueue(entry("a", 10, { deadlineMs: 100, value: "a" }))
    q.enqueue(entry("b", 10, { deadlineMs: 200, value: "b" }))
    const c = q.enqueue(entry("c", 10, { deadlineMs: 300, value: "c" }))
    expect(q.nextDeadline()).toBe(100)
    expect(q.expire(99)).toEqual([])
    expect(q.expire(150).map((e) => e.value)).toEqual(["a"])
    expect(a._tag === "Queued" && q.remove(a.ticket)).toBe(false)
    expect(c._tag === "Queued" && q.remove(c.ticket)).toBe(true)
    expect(q.depth("c")).toBe(0)
    expect(q.size).toBe(1)
    expect(drain(q).map((e) => e.value)).toEqual(["b"])
  })

  it("property: while tenants wait, the tokens each is served per weight differ by at most one request's cost per weight each", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ weight: fc.integer({ min: 1, max: 4 }), costs: fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 20, maxLength: 60 }) }), { minLength: 2, maxLength: 5 }),
        (tenants) => {
          const weights = new Map(tenants.map((t, i) => [`t${i}`, t.weight]))
          const q = new FlowQueue<number>({ bands: 1, maxQueued: 10_000, weight: (t) => weights.get(t)! })
          const pending = new Map<string, number>()
          tenants.forEach((t, i) => {
            for (const cost of t.costs) q.enqueue({ tenant: `t${i}`, band: 0, cost, deadlineMs: Infinity, value: cost })
            pending.set(`t${i}`, t.costs.length)
          })
          const served = new Map<string, number>([...weights.keys()].map((k) => [k, 0]))
          const maxCost = 500
          for (let e = q.next(); e !== undefined; e = q.next()) {
            served.set(e.tenant, served.get(e.tenant)! + e.cost)
            pending.set(e.tenant, pending.get(e.tenant)! - 1)
            const backlogged = [...pending.entries()].filter(([, n]) => n > 0).map(([t]) => t)
            if (backlogged.length < tenants.length) break
            for (const i of backlogged) {
              for (const j of backlogged) {
                const gap = served.get(i)! / weights.get(i)! - served.get(j)! / weights.get(j)!
                if (gap > maxCost / weights.get(i)! + maxCost / weights.get(j)! + 1e-9) return false
              }
            }
          }
          return true
        }
      ),
      { numRuns: 200 }
    )
  })

  it("one tenant sends 10× its share: the three others wait no longer than alone, and it still gets its share", () => {
    // Fake clock: a server of 4 requests (400 tokens) per tick; four tenants of weight 1 and
    // requests of 100 tokens. Three send 1 per tick (their share), "flood" sends 10 per tick.
    const run = (flood: boolean) => {
      const q = new FlowQueue<{ at: number }>({ bands: 1, maxQueued: 64 })
      const waits = new Map<string, Array<number>>()
      let floodServed = 0
      for (let tick = 0; tick < 1000; tick++) {
        for (const t of ["a", "b", "c"]) q.enqueue({ tenant: t, band: 0, cost: 100, deadlineMs: Infinity, value: { at: tick } })
        if (flood) for (let k = 0; k < 10; k++) q.enqueue({ tenant: "flood", band: 0, cost: 100, deadlineMs: Infinity, value: { at: tick } })
        for (let s = 0; s < 4; s++) {
          const e = q.next()
          if (e === undefined) break
          if (e.tenant === "flood") floodServed++
          else waits.set(e.tenant, [...(waits.get(e.tenant) ?? []), tick - e.value.at])
        }
      }
      const p90 = (xs: Array<number>) => [...xs].sort((x, y) => x - y)[Math.ceil(0.9 * xs.length) - 1]!
      return { p90s: ["a", "b", "c"].map((t) => p90(waits.get(t)!)), floodServed }
    }
    const solo = run(false)
    const shared = run(true)
    for (let i = 0; i < 3; i++) expect(shared.p90s[i]!).toBeLessThanOrEqual(Math.max(1, 1.25 * solo.p90s[i]!))
    // Its weighted share: a quarter of 4 per tick, and the capacity the others leave (1 per tick).
    expect(shared.floodServed).toBeGreaterThanOrEqual(0.9 * 1000)
  })
})

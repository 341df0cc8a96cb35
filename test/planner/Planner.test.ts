/**
 * The virtual-time planner on small deterministic fleets: the baselines place requests the way
 * their definitions say, the inference policy's prefix scorer finds the engines holding a group's
 * prefix, follow-ups land in order, runs are reproducible, and hostile traces are refused cleanly.
 */
import { describe, expect, it } from "vitest"
import * as JournalEntry from "../../src/accounting/JournalEntry.ts"
import { makeRng } from "../../src/domain/Random.ts"
import * as Planner from "../../src/planner/Planner.ts"
import * as Trace from "../../src/planner/Trace.ts"
import { fleet, trace } from "./support.ts"

const sharedPrefix = () => {
  const r = makeRng(5)
  const groups = Array.from({ length: 300 }, () => Math.floor(r() * 12))
  return trace(300, 60, (i) => ({ prompt: 150, output: 60, prefix: { key: `g${groups[i]}`, tokens: 3000 } }))
}

describe("planner", () => {
  it("round_robin spreads requests evenly, in turn", () => {
    const r = Planner.run(fleet(4), trace(40, 50, () => ({ prompt: 100, output: 20 })), { policy: "round_robin" })
    expect(r.completed).toBe(40)
    expect(r.spread).toEqual({ e0: 0.25, e1: 0.25, e2: 0.25, e3: 0.25 })
    expect(r.unfinished).toBe(0)
    expect(r.rejected).toBe(0)
  })

  it("least_outstanding balances long decodes that round_robin piles onto one engine", () => {
    // Every other request decodes 1,500 tokens: round robin sends all of them to e0.
    const t = trace(200, 50, (i) => ({ prompt: 200, output: i % 2 === 0 ? 1500 : 20 }))
    const rr = Planner.run(fleet(2), t, { policy: "round_robin" })
    const lo = Planner.run(fleet(2), t, { policy: "least_outstanding" })
    expect(rr.spread).toEqual({ e0: 0.5, e1: 0.5 })
    expect(lo.spread["e0"]).not.toBe(0.5)
    expect(lo.itl.p90).toBeLessThan(rr.itl.p90)
    expect(lo.outputTokensPerS).toBeGreaterThan(rr.outputTokensPerS)
  })

  it("the inference policy (prefix-aware) gets more cache hits and lower TTFT on a shared-prefix trace", () => {
    const t = sharedPrefix()
    const opts = { kvBlocks: 1000 } // 16K tokens per engine: every engine cannot hold every group's 3K prefix
    const inference = Planner.run(fleet(4), t, { policy: "inference", ...opts })
    const rr = Planner.run(fleet(4), t, { policy: "round_robin", ...opts })
    expect(inference.hitRate).toBeGreaterThan(0.85)
    expect(rr.hitRate).toBeLessThan(0.5)
    expect(inference.ttft.p50 * 3).toBeLessThan(rr.ttft.p50)
    expect(inference.gpuSeconds).toBeLessThan(rr.gpuSeconds)
  })

  it("with the engines' KV events (precise index) the prefix scorer keeps its hits when the approximate index forgets", () => {
    // A 10 ms prefix TTL empties the approximate index between arrivals; the engines' own events do not expire.
    const plan = fleet(4, "routing: { prefix_ttl: 10ms }")
    const approximate = Planner.run(plan, sharedPrefix(), { policy: "inference", kvBlocks: 1000 })
    const precise = Planner.run(plan, sharedPrefix(), { policy: "inference", kvBlocks: 1000, kvEvents: true })
    expect(precise.policy).toBe("inference+kv")
    expect(approximate.hitRate).toBeLessThan(0.5)
    expect(precise.hitRate).toBeGreaterThan(0.85)
    expect(precise.ttft.p90 * 3).toBeLessThan(approximate.ttft.p90)
  })

  it("is deterministic for a seed (jitter included)", () => {
    const t = sharedPrefix().slice(0, 100)
    const a = Planner.run(fleet(3), t, { policy: "random", seed: 7, jitter: 0.05 })
    const b = Planner.run(fleet(3), t, { policy: "random", seed: 7, jitter: 0.05 })
    expect(a).toEqual(b)
  })

  it("replays follow-ups after their predecessor finished, with the history as a cached prefix", () => {
    const first = trace(1, 0, () => ({ prompt: 2000, output: 50 }))
    const seen: Array<number> = []
    const r = Planner.run(fleet(2), first, {
      policy: "inference",
      next: (done, index, atMs) => {
        seen.push(atMs)
        if (seen.length >= 3) return undefined
        return {
          ...done,
          atMs: atMs + 100,
          segments: [...done.segments, { key: Planner.answerKey(index), tokens: done.outputTokens }, { key: `q-${index}`, tokens: 100 }],
          session: "s1"
        }
      }
    })
    expect(r.completed).toBe(3)
    expect(seen[1]! - seen[0]!).toBeGreaterThan(100)
    // Turns 2 and 3 reuse the whole previous prompt and answer (full blocks) from the same engine.
    expect(r.hitRate).toBeGreaterThan(0.55)
    expect(Object.keys(r.spread)).toHaveLength(1)
  })

  it("measures a window: warm-up arrivals and late finishers are not counted as measured", () => {
    const t = trace(100, 100, () => ({ prompt: 100, output: 50 }))
    const r = Planner.run(fleet(2), t, { policy: "round_robin", measure: { warmupMs: 2000, durationMs: 8000, drainMs: 5000 } })
    expect(r.requests).toBe(60)
    expect(r.completed).toBe(60)
    expect(r.goodputShare).toBe(1)
    expect(r.goodput).toBeCloseTo(10, 5)
  })

  it("a request finding no free slot waits for one (FIFO), at most timeouts.queue", () => {
    const burst = trace(12, 0, () => ({ prompt: 300, output: 200 }))
    const free = Planner.run(fleet(1), burst, { policy: "round_robin" })
    const slots = Planner.run(fleet(1, "", 2), burst, { policy: "round_robin" })
    expect(slots.completed).toBe(12)
    expect(slots.rejected).toBe(0)
    // Two at a time: the last pair starts after five pairs of 200-token decodes, every step ≥ c0 = 4.5 ms.
    expect(slots.ttft.p99).toBeGreaterThan(5 * 200 * 4.5)
    expect(free.ttft.p99).toBeLessThan(200)
    const short = Planner.run(fleet(1, "timeouts: { queue: 2s }", 2), burst, { policy: "round_robin" })
    expect(short.rejected).toBeGreaterThan(0)
    expect(short.completed + short.rejected).toBe(12)
  })

  it("flow control: with every candidate saturated, on_saturation queue waits in fair order, reject refuses", () => {
    // max_queue 0: an engine with a request before its first token is saturated.
    const burst = trace(10, 0, () => ({ prompt: 400, output: 50 }))
    const plan = (mode: string, extra = "") => fleet(1, `routing: { max_queue: 0 }\n${extra}`, 4096, `, on_saturation: ${mode}`)
    const routed = Planner.run(plan("route"), burst, { policy: "inference" })
    const queued = Planner.run(plan("queue"), burst, { policy: "inference" })
    const refused = Planner.run(plan("reject"), burst, { policy: "inference" })
    expect(routed).toMatchObject({ completed: 10, flowWaited: 0, flowRefused: 0 })
    // Queue: one at a time (a turn per finished request), every request served.
    expect(queued).toMatchObject({ completed: 10, flowWaited: 9, flowRefused: 0, rejected: 0 })
    expect(queued.ttft.p99).toBeGreaterThan(routed.ttft.p99 * 3)
    expect(refused).toMatchObject({ completed: 1, flowRefused: 9, rejected: 9 })
    // A bounded wait: with max_wait 1 s only what gets a turn within a second is served.
    const short = Planner.run(plan("queue", "flow_control: { max_wait: 1s }"), trace(10, 0, () => ({ prompt: 400, output: 400 })), { policy: "inference" })
    expect(short.flowRefused).toBeGreaterThan(0)
    expect(short.completed + short.flowRefused).toBe(10)
  })

  it("counts what no engine can take as rejected, never hangs", () => {
    const t: Array<Trace.Arrival> = [
      { atMs: 0, tenant: "t", model: "nope", segments: [{ key: "a", tokens: 10 }], outputTokens: 5, maxTokens: 5 },
      { atMs: 1, tenant: "t", model: "m", segments: [{ key: "b", tokens: 500_000 }], outputTokens: 5, maxTokens: 5 },
      { atMs: 2, tenant: "t", model: "m", segments: [{ key: "c", tokens: 10 }], outputTokens: 5, maxTokens: 5 }
    ]
    const r = Planner.run(fleet(1), t, { policy: "inference" })
    expect(r.rejected).toBe(2)
    expect(r.completed).toBe(1)
  })

  it("refuses a backend without a known engine profile and an unknown plugin", () => {
    const plan = fleet(1)
    const bare = { ...plan, backends: plan.backends.map((b) => ({ ...b, profile: undefined, simulate: undefined })) }
    expect(() => Planner.run(bare, [], { policy: "inference" })).toThrow(/known engine profile/)
    expect(() => Planner.run(plan, [], { policy: "inference", picker: "nope" })).toThrow(/nope/)
  })
})

describe("planner traces", () => {
  it("decodes planner lines (shared prefixes, sessions) sorted and rebased", () => {
    const text = [
      `{"at_ms":1500,"model":"m","prompt_tokens":900,"output_tokens":120,"prefix":"sys","prefix_tokens":800,"session":"u1"}`,
      "",
      `{"at_ms":500,"tenant":"acme","model":"m","prompt_tokens":50,"output_tokens":5,"max_tokens":64}`
    ].join("\n")
    const t = Trace.parse(text)
    if (t instanceof Trace.TraceError) throw t
    expect(t.map((a) => a.atMs)).toEqual([0, 1000])
    expect(t[0]).toMatchObject({ tenant: "acme", maxTokens: 64, outputTokens: 5 })
    expect(t[1]!.segments).toEqual([{ key: "p:sys", tokens: 800 }, { key: "u:0", tokens: 100 }])
    expect(t[1]!.session).toBe("u1")
  })

  it("accepts the ledger's usage lines as a trace", () => {
    const record = (id: string, settled: number, prompt: number, completion: number) =>
      JSON.stringify({
        recordId: id, requestId: `rq-${id}`, tenant: "acme", model: "m", outcome: "completed", reservedTokens: prompt + 256,
        estimatedPromptTokens: prompt, charged: { promptTokens: prompt, completionTokens: completion, cachedTokens: 0 },
        reported: true, attempts: [], wastedPromptTokens: 0, durationMs: 2000, settledAtMs: settled
      })
    const lines = [
      JournalEntry.usageLine(1, record("a", 1_000_002_000, 300, 40), "2026-12-02T00:00:00Z"),
      JournalEntry.usageLine(2, record("b", 1_000_001_000, 10, 0), "2026-12-02T00:00:00Z"),
      JournalEntry.header(3, 0),
      JournalEntry.settled(3, record("c", 1_000_004_000, 70, 9))
    ]
    const t = Trace.parse(lines.join(""))
    if (t instanceof Trace.TraceError) throw t
    expect(t).toHaveLength(2) // no completion tokens: no generation load
    expect(t.map((a) => [a.atMs, a.tenant, a.outputTokens, a.maxTokens])).toEqual([[0, "acme", 40, 256], [2000, "acme", 9, 256]])
  })

  it("names the line of a bad record, and bounds the numbers", () => {
    const bad = Trace.parse(`{"at_ms":0,"model":"m","prompt_tokens":10,"output_tokens":1}\nnot json`)
    expect(bad).toBeInstanceOf(Trace.TraceError)
    expect(bad instanceof Trace.TraceError && bad.line).toBe(2)
    expect(Trace.parse(`{"at_ms":0,"model":"m","prompt_tokens":1e12,"output_tokens":1}`)).toBeInstanceOf(Trace.TraceError)
    expect(Trace.parse(`{"at_ms":-1,"model":"m","prompt_tokens":1,"output_tokens":1}`)).toBeInstanceOf(Trace.TraceError)
    expect(Trace.parse(`{"at_ms":0,"model":"m","prompt_tokens":9,"output_tokens":1,"prefix":"x"}`)).toBeInstanceOf(Trace.TraceError)
  })
})

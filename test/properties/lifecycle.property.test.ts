/**
 * The lifecycle invariants of ARCHITECTURE.md §1, checked by fast-check over random
 * interleavings, on real sockets: client aborts at any event, backend failures before
 * and after the first token, first-token and idle timeouts, retries and failover.
 *
 *  - every admitted request yields exactly one accounting record and one settlement;
 *  - when idle: no slot, reservation, KV pin or upstream request is held;
 *  - a tenant is never charged twice (and never for a backend that did not serve it);
 *  - after the first byte the gateway never switches backends: an error ends the stream.
 */
import * as fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { streamChat } from "../support/Client.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

type Behaviour =
  | { readonly kind: "ok"; readonly tokens: number; readonly gapMs: number }
  | { readonly kind: "failBefore"; readonly status: 429 | 500 | 503 }
  | { readonly kind: "slowFirst" }
  | { readonly kind: "errorAfter"; readonly k: number }
  | { readonly kind: "stallAfter"; readonly k: number }
  | { readonly kind: "resetAfter"; readonly k: number }

const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  fc.record({ kind: fc.constant("ok" as const), tokens: fc.integer({ min: 1, max: 8 }), gapMs: fc.integer({ min: 0, max: 15 }) }),
  fc.record({ kind: fc.constant("failBefore" as const), status: fc.constantFrom(429 as const, 500 as const, 503 as const) }),
  fc.record({ kind: fc.constant("slowFirst" as const) }),
  fc.record({ kind: fc.constant("errorAfter" as const), k: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant("stallAfter" as const), k: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant("resetAfter" as const), k: fc.integer({ min: 1, max: 4 }) })
)

const request = fc.record({
  a: behaviour,
  b: behaviour,
  abortAfterEvents: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
  includeUsage: fc.boolean()
})

const TOKENS = 6

const toScript = (bh: Behaviour): Fake.Script => {
  const tokens = Array.from({ length: bh.kind === "ok" ? bh.tokens : TOKENS }, (_, i) => ` w${i}`)
  switch (bh.kind) {
    case "ok":
      return { tokens, gapMs: bh.gapMs, usage: { prompt_tokens: 11, completion_tokens: tokens.length } }
    case "failBefore":
      return { status: bh.status, ...(bh.status === 429 ? { headers: { "retry-after": "0" } } : {}) }
    case "slowFirst":
      return { tokens, firstDelayMs: 400 }
    case "errorAfter":
      return { tokens, errorAfter: bh.k, gapMs: 5 }
    case "stallAfter":
      return { tokens, stallAfter: bh.k, gapMs: 5 }
    case "resetAfter":
      return { tokens, resetAfter: bh.k, gapMs: 10 }
  }
}

describe("lifecycle invariants (property)", () => {
  let a: Fake.FakeEngine
  let b: Fake.FakeEngine
  let gw: TestGateway
  const scripts = new Map<string, { a: Fake.Script; b: Fake.Script }>()

  beforeAll(async () => {
    a = await Fake.start((_, body) => scripts.get(String(body["user"]))?.a ?? {})
    b = await Fake.start((_, body) => scripts.get(String(body["user"]))?.b ?? {})
    gw = await startGateway(`
backends:
  - id: a
    url: ${a.url}
    models: [m]
    max_concurrency: 3
  - id: b
    url: ${b.url}
    models: [m]
    max_concurrency: 3
timeouts: { first_token: 150ms, idle: 120ms, queue: 300ms }
retries: { max_attempts: 2, budget_ratio: 1, min_per_second: 1000 }
budgets: { tokens_per_window: 100000000 }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await a?.close()
    await b?.close()
  })

  it("holds for any interleaving of aborts, failures, timeouts and retries", async () => {
    let n = 0
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 4 }), async (requests) => {
        const before = await gw.run(gw.sink.snapshot)
        const budgetBefore = await gw.run(gw.budget.snapshot)
        const keys = requests.map((r) => {
          const key = `req-${n++}`
          scripts.set(key, { a: toScript(r.a), b: toScript(r.b) })
          return key
        })
        const results = await Promise.all(requests.map((r, i) =>
          streamChat(gw.url, {
            model: "m",
            user: keys[i],
            stream: true,
            messages: [{ role: "user", content: "hello" }],
            ...(r.includeUsage ? { stream_options: { include_usage: true } } : {})
          }, { ...(r.abortAfterEvents !== undefined ? { abortAfterEvents: r.abortAfterEvents } : {}), headers: { "x-request-id": keys[i]! } })
        ))

        // Nothing held once the gateway is idle.
        const held = await eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle), 3000)
        expect(held).toEqual(idle)

        // Exactly one accounting record and one settlement per admitted request.
        const after = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.records >= before.records + requests.length)
        expect(after.records - before.records).toBe(requests.length)
        const budget = await gw.run(gw.budget.snapshot)
        expect(budget.settlements - budgetBefore.settlements).toBe(requests.length)
        expect(budget.doubleSettlements).toBe(0)
        expect(budget.reservedTokens).toBe(0)

        for (let i = 0; i < requests.length; i++) {
          const r = requests[i]!
          const res = results[i]!
          const record = after.recent.find((x) => x.requestId === keys[i])!
          expect(record).toBeDefined()
          if (res.status !== 200) {
            // Failed before the first token: nothing sent, nothing charged.
            expect(record.charged.promptTokens + record.charged.completionTokens).toBe(0)
            expect(["failed"]).toContain(record.outcome)
            continue
          }
          // One backend served the stream: every chunk carries the same completion id.
          const data = res.events.filter((e) => e.startsWith("{"))
          const ids = new Set(data.map((e) => (JSON.parse(e) as { id?: string }).id).filter((x) => x !== undefined))
          expect(ids.size).toBeLessThanOrEqual(1)
          // An error event is always the last thing the client sees.
          const errAt = data.findIndex((e) => e.includes("\"error\""))
          if (errAt !== -1) {
            expect(errAt).toBe(data.length - 1)
            expect(res.events.includes("[DONE]")).toBe(false)
          }
          // Charged at most once, for the committed backend only.
          const served = res.headers["x-sluice-backend"] === "a" ? r.a : r.b
          const streamed = served.kind === "ok" ? served.tokens : TOKENS
          expect(record.backend).toBe(res.headers["x-sluice-backend"])
          expect(record.charged.completionTokens).toBeLessThanOrEqual(streamed)
          if (record.outcome === "completed") {
            expect(served.kind).toBe("ok")
            expect(record.charged).toMatchObject({ promptTokens: 11, completionTokens: streamed })
          }
          if (errAt !== -1) expect(["partial", "client_aborted"]).toContain(record.outcome)
          if (r.abortAfterEvents === undefined && errAt === -1) expect(record.outcome).toBe("completed")
        }
      }),
      { numRuns: 40 }
    )
  }, 120_000)
})

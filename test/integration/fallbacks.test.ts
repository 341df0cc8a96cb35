/**
 * Model fallback chains (`models[].fallbacks`) on the real gateway over real sockets: taken
 * before the first token on typed reasons only (the prompt does not fit; every backend of the
 * model overloaded, unavailable or rate limited), under the retry budget; the reservation is
 * made again for the new model and the abandoned one settles charged nothing, so the request
 * is charged once; the answer names the model that answered (`x-sluice-model`, the `model`
 * field); `sluice_fallbacks_total` counts fallbacks by reason.
 */
import Anthropic from "@anthropic-ai/sdk"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

const settled = (gw: TestGateway) => eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle))

const generations = (engine: Fake.FakeEngine) => engine.seen.filter((s) => s.path.endsWith("/chat/completions"))

describe("model fallback chains", () => {
  let small: Fake.FakeEngine
  let large: Fake.FakeEngine
  let gw: TestGateway

  const chat = (model: string, content: string, extra: Record<string, unknown> = {}) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content }], max_tokens: 16, ...extra })
    })

  beforeAll(async () => {
    small = await Fake.start()
    large = await Fake.start()
    gw = await startGateway(`
models:
  - name: small
    context_window: 200
    tokenizer: chars
    fallbacks: [large]
  - name: busy
    fallbacks: [large]
  - name: alone
  - name: large
    context_window: 100000
backends:
  - { id: s, url: ${small.url}, models: [small, busy, alone] }
  - { id: l, url: ${large.url}, models: [large] }
retries: { max_attempts: 1, budget_ratio: 1, min_per_second: 100 }
timeouts: { drain: 1s }
budgets:
  tokens_per_window: 1000000
`)
  })
  afterAll(async () => {
    await gw?.close()
    await small?.close()
    await large?.close()
  })
  beforeEach(() => {
    small.script = () => ({ usage: { prompt_tokens: 5, completion_tokens: 2 } })
    large.script = () => ({ usage: { prompt_tokens: 900, completion_tokens: 2 } })
  })

  it("a prompt over the context window goes to the larger model; charged once, for the model that answered", async () => {
    const before = await gw.run(gw.budget.snapshot)
    const seen = generations(small).length
    const res = await chat("small", "word ".repeat(400))
    expect(res.status).toBe(200)
    expect(res.headers.get("x-sluice-model")).toBe("large")
    expect(res.headers.get("x-sluice-backend")).toBe("l")
    const body = await res.json() as { model: string }
    expect(body.model).toBe("large")
    expect(generations(small).length).toBe(seen)
    expect(generations(large).at(-1)!.body["model"]).toBe("large")
    const requestId = res.headers.get("x-request-id")
    const snap = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.filter((r) => r.requestId === requestId).length === 1)
    const records = snap.recent.filter((r) => r.requestId === requestId)
    expect(records.map((r) => [r.model, r.outcome, r.charged.promptTokens + r.charged.completionTokens])).toEqual([["large", "completed", 902]])
    const after = await eventually(() => gw.run(gw.budget.snapshot), (s) => s.chargedTokens === before.chargedTokens + 902)
    expect(after.chargedTokens - before.chargedTokens).toBe(902)
    expect(after.doubleSettlements).toBe(0)
    expect(await settled(gw)).toEqual(idle)
  })

  it("every backend overloaded or unavailable before the first token: the fallback answers, streaming and not", async () => {
    small.script = () => ({ status: 503 })
    for (const stream of [false, true]) {
      const before = await gw.run(gw.budget.snapshot)
      const res = await chat("busy", "hi", { stream })
      expect(res.status).toBe(200)
      expect(res.headers.get("x-sluice-model")).toBe("large")
      const text = await res.text()
      expect(text).toContain("\"model\":\"large\"")
      const requestId = res.headers.get("x-request-id")
      const snap = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.filter((r) => r.requestId === requestId).length === 2)
      const records = snap.recent.filter((r) => r.requestId === requestId)
      // The abandoned leg: failed, charged nothing, its attempt recorded; then the answer.
      expect(records.map((r) => [r.model, r.outcome])).toEqual([["busy", "failed"], ["large", "completed"]])
      expect(records[0]!.charged).toMatchObject({ promptTokens: 0, completionTokens: 0 })
      expect(records[0]!.attempts.map((a) => a.reason)).toEqual(["Unavailable"])
      const after = await eventually(() => gw.run(gw.budget.snapshot), (s) => s.chargedTokens === before.chargedTokens + 902)
      expect(after.chargedTokens - before.chargedTokens).toBe(902)
      expect(after.doubleSettlements).toBe(0)
    }
    expect(await settled(gw)).toEqual(idle)
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    const line = metrics.split("\n").find((l) => l.startsWith("sluice_fallbacks_total") && l.includes("model=\"busy\"") && l.includes("reason=\"unavailable\""))
    expect(line).toBeDefined()
    expect(line).toContain("to=\"large\"")
    expect(Number(line!.split(" ").at(-1))).toBe(2)
  })

  it("a rate-limited backend (429) is a fallback reason too", async () => {
    small.script = () => ({ status: 429 })
    const res = await chat("busy", "hi")
    expect(res.status).toBe(200)
    expect(res.headers.get("x-sluice-model")).toBe("large")
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metrics).toMatch(/sluice_fallbacks_total\{[^}]*reason="(rate_limited|overloaded)"[^}]*\} 1/)
  })

  it("the Anthropic Messages API names the fallback model in its message", async () => {
    small.script = () => ({ status: 503 })
    const client = new Anthropic({ baseURL: gw.url, apiKey: "unused", maxRetries: 0 })
    const { data, response } = await client.messages.create({ model: "busy", max_tokens: 8, messages: [{ role: "user", content: "hi" }] }).withResponse()
    expect(data.model).toBe("large")
    expect(response.headers.get("x-sluice-model")).toBe("large")
  })

  it("is not taken for the client's own error, nor for a model without fallbacks", async () => {
    small.script = () => ({ status: 400, errorBody: JSON.stringify({ error: { message: "bad temperature", type: "invalid_request_error", param: "temperature", code: null } }) })
    const seen = generations(large).length
    const refused = await chat("busy", "hi")
    expect(refused.status).toBe(400)
    small.script = () => ({ status: 503 })
    const alone = await chat("alone", "hi")
    expect(alone.status).toBe(503)
    expect(generations(large).length).toBe(seen)
    expect(await settled(gw)).toEqual(idle)
  })
})

describe("model fallback chains under the retry budget", () => {
  let small: Fake.FakeEngine
  let large: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    small = await Fake.start(() => ({ status: 503 }))
    large = await Fake.start()
    gw = await startGateway(`
models:
  - { name: busy, fallbacks: [large] }
  - { name: large }
backends:
  - { id: s, url: ${small.url}, models: [busy] }
  - { id: l, url: ${large.url}, models: [large] }
retries: { max_attempts: 1, budget_ratio: 0, min_per_second: 0 }
timeouts: { drain: 1s }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await small?.close()
    await large?.close()
  })

  it("a spent retry budget answers the first model's error instead", async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "busy", messages: [{ role: "user", content: "hi" }] })
    })
    expect(res.status).toBe(503)
    expect(generations(large).length).toBe(0)
  })
})

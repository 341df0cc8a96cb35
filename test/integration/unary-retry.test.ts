/**
 * Issue 9, item 10: a non-streaming attempt that fails after the backend answered 2xx is
 * not retried (the engine already did the whole generation) unless the model allows it
 * (`models[].retry_unary_after_response`), and its cost is recorded as attempt waste.
 *
 * Real sockets: two fake engines that answer 200 with a malformed JSON body after a delay.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const DELAY_MS = 250

describe("no unary retry after a full generation (item 10)", () => {
  let a: Fake.FakeEngine
  let b: Fake.FakeEngine
  let gw: TestGateway
  const unary = (model: string) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "Summarise the sea in a paragraph." }], max_tokens: 64 })
    })
  const recordOf = async (model: string) => {
    const snap = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.some((r) => r.model === model))
    return snap.recent.filter((r) => r.model === model).at(-1)!
  }

  beforeAll(async () => {
    const malformed: Fake.FakeEngine["script"] = () => ({ firstDelayMs: DELAY_MS, unaryBody: "{\"id\": \"x\", \"choices\": [" })
    a = await Fake.start(malformed)
    b = await Fake.start(malformed)
    gw = await startGateway(`
models:
  - { name: m }
  - { name: lenient, retry_unary_after_response: true }
backends:
  - { id: a, url: "${a.url}", models: [m, lenient] }
  - { id: b, url: "${b.url}", models: [m, lenient] }
routing: { policy: ordered }
retries: { max_attempts: 3, budget_ratio: 1, min_per_second: 1000 }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await a?.close()
    await b?.close()
  })

  it("a 200 with a malformed body after a delay: exactly one attempt, a 502, the waste recorded", async () => {
    const res = await unary("m")
    expect(res.status).toBe(502)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("backend_error")
    expect(a.seen.length).toBe(1)
    expect(b.seen.length).toBe(0)
    const record = await recordOf("m")
    expect(record.outcome).toBe("failed")
    expect(record.attempts.map((x) => [x.backend, x.reason])).toEqual([["a", "MalformedChunk"]])
    // The engine ran the prefill (and the generation: its size is unknown from a broken body).
    expect(record.attempts[0]!.wastedPromptTokens).toBeGreaterThan(0)
    expect(record.wastedPromptTokens).toBe(record.attempts[0]!.wastedPromptTokens)
    expect(record.charged).toEqual({ promptTokens: 0, completionTokens: 0, cachedTokens: 0 })
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metrics).toMatch(/sluice_attempt_waste_prompt_tokens_total\{backend="a"\} [1-9]/)
  })

  it("retries after the response when the model's config allows it", async () => {
    const [seenA, seenB] = [a.seen.length, b.seen.length]
    const res = await unary("lenient")
    expect(res.status).toBe(502)
    expect(a.seen.length).toBe(seenA + 1)
    expect(b.seen.length).toBe(seenB + 1)
    const record = await recordOf("lenient")
    expect(record.attempts.map((x) => [x.backend, x.reason])).toEqual([["a", "MalformedChunk"], ["b", "MalformedChunk"]])
  })
})

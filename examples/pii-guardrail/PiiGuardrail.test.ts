/**
 * The PII guardrail example end to end: the gateway embedded through the public API with the
 * guardrail's layer, a fake engine behind it. The engine must receive the masked text, and
 * /metrics must count what was masked, by kind.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fakeOpenAI, sample, startGateway } from "../support/harness.ts"
import * as PiiGuardrail from "./PiiGuardrail.ts"

describe("examples/pii-guardrail", () => {
  let engine: Awaited<ReturnType<typeof fakeOpenAI>>
  let gateway: Awaited<ReturnType<typeof startGateway>>

  beforeAll(async () => {
    engine = await fakeOpenAI()
    gateway = await startGateway(
      `
models: [{ name: m, tokenizer: chars }]
backends:
  - { id: e, dialect: openai, url: "${engine.url}", models: [m] }
health: { probe_interval: 0 }
`,
      PiiGuardrail.layer
    )
  })
  afterAll(async () => {
    await gateway?.close()
    await engine?.close()
  })

  it("checks card numbers with Luhn", () => {
    expect(PiiGuardrail.luhn("4111111111111111")).toBe(true)
    expect(PiiGuardrail.luhn("4111111111111112")).toBe(false)
  })

  it("does linear work on hostile text (no catastrophic backtracking)", () => {
    const counts = { email: 0, card: 0, phone: 0 }
    const hostile = ["a.".repeat(100_000), "1-".repeat(100_000), "x@".repeat(100_000) + "y", "(1 ".repeat(100_000)]
    const start = performance.now()
    for (const text of hostile) PiiGuardrail.mask(text, counts)
    // Each is 200 KB; a backtracking pattern would take minutes, linear ones take milliseconds.
    expect(performance.now() - start).toBeLessThan(5000)
  })

  it("masks e-mail addresses, phone numbers and Luhn-valid card numbers before dispatch, and counts them", async () => {
    const text = "Mail jane.doe@example.co.uk or call +44 20 7946 0958; card 4111 1111 1111 1111, order 1234 5678 9012 3456."
    const res = await gateway.chat({
      model: "m",
      max_tokens: 8,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: [{ type: "text", text }, { type: "image_url", image_url: { url: "https://x/y.png" } }] },
        { role: "user", content: "and bob@example.com, please" }
      ]
    })
    expect(res.status).toBe(200)
    const body: unknown = await res.json()
    expect(body).toMatchObject({ choices: [{ message: { content: "Hello world" } }] })

    expect(engine.received).toHaveLength(1)
    const messages = engine.received[0]!.body["messages"]
    expect(messages).toEqual([
      { role: "system", content: "Be brief." },
      {
        role: "user",
        content: [
          // The order number fails the Luhn check: it is not a card, and too long for a phone.
          { type: "text", text: "Mail [EMAIL] or call [PHONE]; card [CARD], order 1234 5678 9012 3456." },
          { type: "image_url", image_url: { url: "https://x/y.png" } }
        ]
      },
      { role: "user", content: "and [EMAIL], please" }
    ])
    const sent = JSON.stringify(engine.received[0]!.body)
    expect(sent).not.toContain("jane.doe")
    expect(sent).not.toContain("4111")

    const metrics = await gateway.metrics()
    expect(sample(metrics, "pii_masked_total", { kind: "email" })).toBe(2)
    expect(sample(metrics, "pii_masked_total", { kind: "phone" })).toBe(1)
    expect(sample(metrics, "pii_masked_total", { kind: "card" })).toBe(1)
  })

  it("passes a clean request through unchanged (the client's own bytes)", async () => {
    const before = engine.received.length
    const res = await gateway.chat({ model: "m", max_tokens: 8, messages: [{ role: "user", content: "Nothing personal here." }] })
    expect(res.status).toBe(200)
    expect(engine.received[before]!.body["messages"]).toEqual([{ role: "user", content: "Nothing personal here." }])
    expect(sample(await gateway.metrics(), "pii_masked_total", { kind: "email" })).toBe(2)
  })
})

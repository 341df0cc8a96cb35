/**
 * The first requests after a start do not wait for the tokenizer tables (target 6 of issue
 * 14): while the tables load, admission reserves an upper bound of the prompt's count (its
 * UTF-8 bytes), and every decision a count too high could get wrong waits for the tables and
 * counts exactly: a context-window refusal, a budget refusal, a charge made from the estimate.
 *
 * The cl100k tables' import is held behind a gate here (the module is mocked to wait for it),
 * so "not loaded yet" does not depend on timing. Its own file: the tables are module state.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import * as Tokenizer from "../../src/admission/Tokenizer.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const gate = vi.hoisted(() => {
  let open: () => void = () => {}
  const opened = new Promise<void>((r) => (open = r))
  return { opened, open }
})

// The gateway's load of the tables (a dynamic import of this module) resolves once the gate opens.
vi.mock("gpt-tokenizer/encoding/cl100k_base", async (importOriginal) => {
  await gate.opened
  return importOriginal()
})

/** Template tokens of one user message (Estimate.ts: 4 per message, 3 to prime the reply). */
const TEMPLATE = 4 + 3

/** The real tables, outside the mock. */
const cl100k = await vi.importActual<typeof import("gpt-tokenizer/encoding/cl100k_base")>("gpt-tokenizer/encoding/cl100k_base")

const exactPrompt = (content: string): number => cl100k.countTokens(`user\n${content}\n`, { disallowedSpecial: new Set() }) + TEMPLATE

describe("the first requests, before the tokenizer tables have loaded", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    engine = await Fake.start((model) =>
      model === "silent" ? { usage: null } : { usage: { prompt_tokens: 5, completion_tokens: 2 } }
    )
    gw = await startGateway(`
models:
  - { name: m, tokenizer: cl100k, context_window: 3000 }
  - { name: silent, tokenizer: cl100k }
backends:
  - { id: a, url: ${engine.url}, models: [m, silent] }
budgets: { tokens_per_window: 2500, window: 1m }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  const send = (id: string, model: string, content: string) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": id },
      body: JSON.stringify({ model, max_tokens: 16, messages: [{ role: "user", content }] })
    })

  const record = (id: string) =>
    eventually(async () => (await gw.run(gw.sink.snapshot)).recent.find((r) => r.requestId === id), (r) => r !== undefined, 10_000)

  it("answers without them, reserving the prompt's bytes; refusals and estimate charges wait for the exact count", async () => {
    // 1. A short prompt is answered while the tables cannot load, on the bound.
    const short = "Write one short sentence about rivers and the sea."
    const first = await send("first", "m", short)
    expect(first.status).toBe(200)
    await first.text()
    expect(Tokenizer.isLoaded("cl100k")).toBe(false)
    const firstRecord = await record("first")
    expect(firstRecord!.estimatedPromptTokens).toBe(Buffer.byteLength(`user\n${short}\n`) + TEMPLATE)
    expect(firstRecord!.estimatedPromptTokens).toBeGreaterThan(exactPrompt(short))
    expect(firstRecord!.charged.promptTokens).toBe(5) // the engine's own usage

    // 2. Its bound is over the context window (3000) but its count is not: it waits, then is answered.
    const long = "the river runs to the sea. ".repeat(200)
    expect(Buffer.byteLength(long)).toBeGreaterThan(3000)
    expect(exactPrompt(long) + 16).toBeLessThan(3000)
    const windowed = send("windowed", "m", long)
    // 3. Its bound is over the budget (2500 tokens) but its count is not: refused on the bound, then counted.
    const budgeted = "the river runs to the sea. ".repeat(100)
    expect(Buffer.byteLength(budgeted) + 16).toBeGreaterThan(2500)
    expect(exactPrompt(budgeted) + 16 + exactPrompt(long) + 16).toBeLessThan(2400)
    // 4. An engine that reports no usage: the charge is the exact count, not the bound.
    const silent = send("silent", "silent", short)
    const budgetedAnswer = send("budgeted", "m", budgeted)
    let settled = 0
    for (const p of [windowed, budgetedAnswer]) void p.then(() => settled++)
    await new Promise((r) => setTimeout(r, 300))
    expect(settled).toBe(0) // both wait for the tables
    gate.open()
    const answers = await Promise.all([windowed, budgetedAnswer, silent])
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200])
    await Promise.all(answers.map((r) => r.text()))
    expect(Tokenizer.isLoaded("cl100k")).toBe(true)
    expect((await record("windowed"))!.estimatedPromptTokens).toBe(exactPrompt(long))
    expect((await record("budgeted"))!.estimatedPromptTokens).toBe(exactPrompt(budgeted))
    const silentRecord = await record("silent")
    expect(silentRecord!.reported).toBe(false)
    expect(silentRecord!.charged.promptTokens).toBe(exactPrompt(short))
    expect(silentRecord!.estimatedPromptTokens).toBe(exactPrompt(short))

    // 5. A prompt whose count is over the window is refused on the count.
    const tooLong = "the river runs to the sea. ".repeat(600)
    const refused = await send("refused", "m", tooLong)
    expect(refused.status).toBe(400)
    const body = await refused.json() as { error: { message: string } }
    // (counting stops once over the window: the figure is the count so far, never the bound)
    const said = Number(/at least (\d+) in the messages/.exec(body.error.message)?.[1])
    expect(said).toBeGreaterThan(3000 - 16)
    expect(said).toBeLessThanOrEqual(exactPrompt(tooLong))
    expect(said).toBeLessThan(Buffer.byteLength(tooLong))
  })
})

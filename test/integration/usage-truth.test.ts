/**
 * One source of truth for usage (issue 13): however a request ends, its request log line,
 * `sluice_tokens_total` and its ledger record carry the same settled usage. The case that
 * used to disagree: a stream the client abandons mid-answer, before the engine reported
 * usage, is charged the prompt estimate plus the tokens seen, and the log line and the
 * metric said 0 prompt tokens. Also a stream cut by the engine (partial), a completed one
 * (reported usage) and a refused request (nothing admitted, nothing anywhere).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const tokensMetric = (text: string, kind: string): number => {
  let sum = 0
  for (const line of text.split("\n")) {
    if (line.startsWith("sluice_tokens_total{") && line.includes(`kind="${kind}"`)) sum += Number(line.slice(line.lastIndexOf(" ") + 1))
  }
  return sum
}

describe("usage: log line, metrics and ledger agree", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    engine = await Fake.start((model) =>
      model === "abandoned"
        ? { tokens: Array.from({ length: 40 }, (_, i) => ` t${i}`), holdAfter: 4, usage: null }
        : model === "cut"
        ? { tokens: [" a", " b", " c", " d"], errorAfter: 2 }
        : { usage: { prompt_tokens: 17, completion_tokens: 2, cached_tokens: 8 } }
    )
    gw = await startGateway(`
models: [{ name: abandoned }, { name: cut }, { name: done }]
backends:
  - { id: a, url: ${engine.url}, models: [abandoned, cut, done] }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  const metrics = async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    return { prompt: tokensMetric(text, "prompt"), completion: tokensMetric(text, "completion"), cached: tokensMetric(text, "cached") }
  }

  /** Sends one request; with `abortAfter`, reads that many content chunks and then hangs up. */
  const send = async (id: string, model: string, abortAfter?: number) => {
    const controller = new AbortController()
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      signal: controller.signal,
      headers: { "content-type": "application/json", "x-request-id": id },
      body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "Tell me a long story about a lighthouse keeper." }] })
    })
    if (abortAfter === undefined) {
      await res.text()
      return res.status
    }
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    let seen = ""
    while ((seen.match(/"content"/g) ?? []).length < abortAfter) {
      const { value, done } = await reader.read()
      if (done) break
      seen += decoder.decode(value, { stream: true })
    }
    controller.abort()
    await reader.cancel().catch(() => {})
    return res.status
  }

  /** The three views of one request, once it is settled and logged. */
  const views = async (id: string, before: Awaited<ReturnType<typeof metrics>>) => {
    const record = await eventually(
      async () => (await gw.run(gw.sink.snapshot)).recent.find((r) => r.requestId === id),
      (r) => r !== undefined,
      10_000
    )
    const line = await eventually(async () => gw.lines.find((l) => l.request_id === id), (l) => l !== undefined, 10_000)
    const after = await metrics()
    return {
      record,
      line,
      metric: { prompt: after.prompt - before.prompt, completion: after.completion - before.completion, cached: after.cached - before.cached }
    }
  }

  const agree = (v: Awaited<ReturnType<typeof views>>) => {
    expect(v.record).toBeDefined()
    expect(v.line).toBeDefined()
    const charged = v.record!.charged
    expect({ prompt: v.line!.prompt_tokens, completion: v.line!.completion_tokens, cached: v.line!.cached_tokens })
      .toEqual({ prompt: charged.promptTokens, completion: charged.completionTokens, cached: charged.cachedTokens })
    expect(v.metric).toEqual({ prompt: charged.promptTokens, completion: charged.completionTokens, cached: charged.cachedTokens })
    expect(v.line!.outcome).toBe(v.record!.outcome)
  }

  it("an abandoned stream: the prompt is charged, and the log line and the metric say so", async () => {
    const before = await metrics()
    await send("truth-abandoned", "abandoned", 4)
    const v = await views("truth-abandoned", before)
    expect(v.record!.outcome).toBe("client_aborted")
    expect(v.record!.reported).toBe(false)
    expect(v.record!.charged.promptTokens).toBe(v.record!.estimatedPromptTokens)
    expect(v.record!.charged.promptTokens).toBeGreaterThan(0)
    expect(v.record!.charged.completionTokens).toBeGreaterThanOrEqual(4)
    agree(v)
  })

  it("a stream the engine cut (partial), a completed stream and a refused request agree too", async () => {
    let before = await metrics()
    await send("truth-cut", "cut")
    const cut = await views("truth-cut", before)
    expect(cut.record!.outcome).toBe("partial")
    expect(cut.record!.charged.promptTokens).toBeGreaterThan(0)
    agree(cut)

    before = await metrics()
    expect(await send("truth-done", "done")).toBe(200)
    const done = await views("truth-done", before)
    expect(done.record!.outcome).toBe("completed")
    expect(done.record!.charged).toEqual({ promptTokens: 17, completionTokens: 2, cachedTokens: 8 })
    agree(done)

    before = await metrics()
    expect(await send("truth-refused", "no-such-model")).toBe(404)
    const line = await eventually(async () => gw.lines.find((l) => l.request_id === "truth-refused"), (l) => l !== undefined)
    expect([line!.prompt_tokens, line!.completion_tokens, line!.cached_tokens]).toEqual([0, 0, 0])
    expect((await gw.run(gw.sink.snapshot)).recent.some((r) => r.requestId === "truth-refused")).toBe(false)
    expect(await metrics()).toEqual(before)
  })
})

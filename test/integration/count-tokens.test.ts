/**
 * `/v1/messages/count_tokens` is observed like any request: one log line with its outcome and
 * the tokens it counted, and a count in `sluice_token_count_requests_total`; it costs nothing,
 * so it writes no ledger row, reserves nothing and is not counted as an inference request.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

describe("count_tokens observability", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  const count = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${gw.url}/v1/messages/count_tokens`, {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })

  beforeAll(async () => {
    engine = await Fake.start()
    gw = await startGateway(`
models: [{ name: m, tokenizer: chars }]
backends:
  - { id: a, url: ${engine.url}, models: [m] }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  const metricValue = async (model: string, outcome: string) => {
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    const line = text.split("\n").find((l) =>
      l.startsWith("sluice_token_count_requests_total{") && l.includes(`model="${model}"`) && l.includes(`outcome="${outcome}"`)
    )
    return line === undefined ? 0 : Number(line.split(" ").at(-1))
  }

  it("a counted request: a log line with outcome completed and the tokens counted, no ledger row, no reservation", async () => {
    const ledgerBefore = (await gw.run(gw.sink.snapshot)).recent.length
    const res = await count({ model: "m", messages: [{ role: "user", content: "count these words for me please" }] })
    expect(res.status).toBe(200)
    const { input_tokens } = await res.json() as { input_tokens: number }
    expect(input_tokens).toBeGreaterThan(0)
    const requestId = res.headers.get("request-id")
    const line = await eventually(
      async () => gw.lines.find((l) => l.path === "/v1/messages/count_tokens" && l.status === 200),
      (l) => l !== undefined
    )
    expect(line).toMatchObject({
      msg: "request",
      method: "POST",
      model: "m",
      status: 200,
      outcome: "completed",
      counted_tokens: input_tokens,
      prompt_tokens: 0,
      completion_tokens: 0,
      backend: undefined,
      tenant: "default"
    })
    expect(line!.request_id).toBe(requestId)
    expect(await metricValue("m", "completed")).toBe(1)
    // Nothing was charged or dispatched: no ledger row, no reservation, no engine call, and no
    // inference request in the request metrics.
    expect((await gw.run(gw.sink.snapshot)).recent.length).toBe(ledgerBefore)
    expect(await gw.held()).toEqual(idle)
    expect(engine.seen.length).toBe(0)
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metrics.split("\n").some((l) => l.startsWith("sluice_requests_total{") && l.includes(`model="m"`))).toBe(false)
  })

  it("a refused request: a log line with outcome rejected, the error and no count", async () => {
    const res = await count("{not json")
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error" } })
    const unknown = await count({ model: "nope", messages: [{ role: "user", content: "hi" }] })
    expect(unknown.status).toBe(404)
    await unknown.text()
    const lines = await eventually(
      async () => gw.lines.filter((l) => l.path === "/v1/messages/count_tokens" && l.status !== 200),
      (ls) => ls.length === 2
    )
    for (const l of lines) {
      expect(l.outcome).toBe("rejected")
      expect(l.counted_tokens).toBeUndefined()
      expect(l.error).toBeDefined()
    }
    expect(lines.map((l) => l.model)).toEqual([undefined, "nope"])
    expect(await metricValue("unknown", "rejected")).toBe(2)
  })
})

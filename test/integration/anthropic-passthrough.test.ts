/**
 * `/v1/messages` against an Anthropic-dialect backend: the client's bytes go upstream
 * untouched (only the model renamed when the backend names it otherwise), the backend's
 * bytes come back untouched (no translation round-trip: its own ids, ping, unknown fields),
 * and the request is still accounted from the usage read on the side. The same request to
 * an OpenAI-compatible backend is translated (inbound-sdk.test.ts).
 */
import Anthropic from "@anthropic-ai/sdk"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Upstream from "../support/FakeUpstream.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

const ev = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

const STREAM = [
  ev("message_start", {
    type: "message_start",
    message: {
      id: "msg_upstream_1",
      type: "message",
      role: "assistant",
      model: "claude-upstream",
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 30, cache_read_input_tokens: 10, cache_creation_input_tokens: 0, output_tokens: 1 },
      vendor_field: { kept: true }
    }
  }),
  ev("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
  ev("ping", { type: "ping" }),
  ev("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Bonjour" } }),
  ev("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: " Paris" } }),
  ev("content_block_stop", { type: "content_block_stop", index: 0 }),
  ev("message_delta", { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 4 } }),
  ev("message_stop", { type: "message_stop" })
]

const MESSAGE = JSON.stringify({
  id: "msg_upstream_2",
  type: "message",
  role: "assistant",
  model: "claude-upstream",
  content: [{ type: "text", text: "Bonjour" }],
  stop_reason: "end_turn",
  stop_sequence: null,
  usage: { input_tokens: 12, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, output_tokens: 2 },
  container: null
})

describe("Anthropic Messages passthrough to an Anthropic backend", () => {
  let upstream: Upstream.FakeUpstream
  let gw: TestGateway

  beforeAll(async () => {
    upstream = await Upstream.start()
    upstream.route("POST", "/v1/messages", (req) =>
      (req.body as { stream?: boolean }).stream === true
        ? { headers: { "content-type": "text/event-stream" }, chunks: STREAM }
        : { chunks: [MESSAGE] })
    gw = await startGateway(`
models:
  - name: claude-same
  - name: claude-renamed
backends:
  - id: anthropic
    dialect: anthropic
    url: ${upstream.url}/v1
    models: [claude-same, { name: claude-renamed, upstream: claude-upstream }]
timeouts: { drain: 1s }
budgets:
  tokens_per_window: 1000000
`)
  })
  afterAll(async () => {
    await gw?.close()
    await upstream?.close()
  })

  const post = (body: string) =>
    fetch(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body
    })

  it("streams the backend's own bytes, sends the client's own bytes, and settles on the usage read on the side", async () => {
    // Spacing, key order and an Anthropic-only field (cache_control) a translation would lose.
    const body =
      `{"model":"claude-same",  "max_tokens": 64, "stream": true, "system": [{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}], "messages": [{"role":"user","content":"Bonjour?"}]}`
    const before = (await gw.run(gw.budget.snapshot)).chargedTokens
    const res = await post(body)
    expect(res.status).toBe(200)
    expect(res.headers.get("request-id")).toMatch(/.+/)
    expect(await res.text()).toBe(STREAM.join(""))
    expect(upstream.requests.at(-1)!.text).toBe(body)
    // input 30 + cache reads 10 + output 4, charged once.
    const after = await eventually(() => gw.run(gw.budget.snapshot), (s) => s.chargedTokens === before + 44)
    expect(after.chargedTokens - before).toBe(44)
    expect(await eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle))).toEqual(idle)
  })

  it("renames only the model when the backend names it otherwise; a unary answer is the backend's own body", async () => {
    const body = { model: "claude-renamed", max_tokens: 32, messages: [{ role: "user", content: "hi" }], metadata: { user_id: "u1" } }
    const res = await post(JSON.stringify(body))
    expect(res.status).toBe(200)
    expect(await res.text()).toBe(MESSAGE)
    expect(upstream.requests.at(-1)!.body).toEqual({ ...body, model: "claude-upstream" })
  })

  it("works for the Anthropic SDK, streaming and not", async () => {
    const client = new Anthropic({ baseURL: gw.url, apiKey: "unused", maxRetries: 0 })
    const msg = await client.messages.create({ model: "claude-same", max_tokens: 8, messages: [{ role: "user", content: "hi" }] })
    expect(msg.id).toBe("msg_upstream_2")
    const stream = client.messages.stream({ model: "claude-same", max_tokens: 8, messages: [{ role: "user", content: "hi" }] })
    const final = await stream.finalMessage()
    expect(final.id).toBe("msg_upstream_1")
    expect(final.content).toEqual([{ type: "text", text: "Bonjour Paris" }])
    expect(final.usage).toMatchObject({ input_tokens: 30, cache_read_input_tokens: 10, output_tokens: 4 })
  })

  it("a backend error before the first byte is the gateway's Anthropic error answer", async () => {
    upstream.route("POST", "/v1/messages", {
      status: 529,
      chunks: [JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } })]
    })
    const res = await post(JSON.stringify({ model: "claude-same", max_tokens: 8, messages: [{ role: "user", content: "x" }] }))
    expect(res.status).toBe(529)
    expect(await res.json()).toMatchObject({ type: "error", error: { type: "overloaded_error" } })
  })
})

/**
 * The official `openai` SDK against the real gateway over real sockets, in front of an
 * in-test fake engine: the public API must look like OpenAI's to an unmodified client.
 */
import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

describe("OpenAI SDK against Sluice", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  let client: OpenAI

  beforeAll(async () => {
    engine = await Fake.start()
    gw = await startGateway(`
models:
  - name: llama-3.1-8b
    aliases: [llama3]
    max_output_tokens: 4096
  - name: embed-small
  - name: rerank-small
backends:
  - id: vllm-rerank
    url: ${engine.url}
    dialect: vllm
    models: [rerank-small]
  - id: engine-a
    url: ${engine.url}
    models: [{ name: llama-3.1-8b, upstream: meta-llama/Llama-3.1-8B-Instruct }, embed-small]
    gpu: H100
    quantization: fp8
budgets:
  tokens_per_window: 1000000
`)
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "unused", maxRetries: 0 })
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("answers a non-streaming chat completion", async () => {
    engine.script = () => ({ tokens: ["Paris", " is", " the", " capital"], usage: { prompt_tokens: 21, completion_tokens: 4 } })
    const res = await client.chat.completions.create({
      model: "llama3",
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Capital of France?" }]
    })
    expect(res.choices[0]!.message.content).toBe("Paris is the capital")
    expect(res.usage).toMatchObject({ prompt_tokens: 21, completion_tokens: 4 })
    // The alias resolved to the model, and the backend got its own name for it.
    const sent = engine.seen.at(-1)!
    expect(sent.body["model"]).toBe("meta-llama/Llama-3.1-8B-Instruct")
    expect(sent.path).toBe("/v1/chat/completions")
  })

  it("streams with include_usage and exposes the final usage chunk", async () => {
    engine.script = () => ({ tokens: ["a", "b", "c"], usage: { prompt_tokens: 9, completion_tokens: 3, cached_tokens: 4 } })
    const stream = await client.chat.completions.create({
      model: "llama-3.1-8b",
      messages: [{ role: "user", content: "count" }],
      stream: true,
      stream_options: { include_usage: true }
    })
    let text = ""
    let usage: OpenAI.CompletionUsage | undefined | null
    let finish: string | null | undefined
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ""
      finish = chunk.choices[0]?.finish_reason ?? finish
      if (chunk.usage) usage = chunk.usage
    }
    expect(text).toBe("abc")
    expect(finish).toBe("stop")
    expect(usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 4 } })
  })

  it("hides the usage chunk from a client that did not ask, yet settles on it", async () => {
    engine.script = () => ({ tokens: ["x", "y"], usage: { prompt_tokens: 7, completion_tokens: 2 } })
    const before = (await gw.run(gw.budget.snapshot)).chargedTokens
    const stream = await client.chat.completions.create({
      model: "llama-3.1-8b",
      messages: [{ role: "user", content: "hi" }],
      stream: true
    })
    const chunks: Array<OpenAI.ChatCompletionChunk> = []
    for await (const chunk of stream) chunks.push(chunk)
    expect(chunks.every((c) => c.choices.length > 0)).toBe(true)
    // Upstream was asked for usage anyway.
    expect((engine.seen.at(-1)!.body["stream_options"] as { include_usage: boolean }).include_usage).toBe(true)
    const after = await eventually(() => gw.run(gw.budget.snapshot), (s) => s.chargedTokens === before + 9)
    expect(after.chargedTokens - before).toBe(9)
  })

  it("passes tools through and streams tool call deltas", async () => {
    engine.script = () => ({ toolCall: { name: "get_weather", arguments: ["{\"city\":", " \"Paris\"}"] } })
    const tools: Array<OpenAI.ChatCompletionTool> = [{
      type: "function",
      function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } }
    }]
    const stream = await client.chat.completions.create({
      model: "llama-3.1-8b",
      messages: [{ role: "user", content: "weather?" }],
      tools,
      tool_choice: "required",
      stream: true
    })
    let args = ""
    let name: string | undefined
    let finish: string | null | undefined
    for await (const chunk of stream) {
      const call = chunk.choices[0]?.delta.tool_calls?.[0]
      name ??= call?.function?.name
      args += call?.function?.arguments ?? ""
      finish = chunk.choices[0]?.finish_reason ?? finish
    }
    expect(name).toBe("get_weather")
    expect(JSON.parse(args)).toEqual({ city: "Paris" })
    expect(finish).toBe("tool_calls")
    expect(engine.seen.at(-1)!.body["tools"]).toEqual(tools)
    expect(engine.seen.at(-1)!.body["tool_choice"]).toBe("required")

    const whole = await client.chat.completions.create({ model: "llama-3.1-8b", messages: [{ role: "user", content: "w" }], tools })
    const call = whole.choices[0]!.message.tool_calls?.[0]
    expect(call?.type === "function" && call.function.name).toBe("get_weather")
  })

  it("forwards vendor extensions untouched", async () => {
    engine.script = () => ({})
    await client.chat.completions.create({
      model: "llama-3.1-8b",
      messages: [{ role: "user", content: "hi", name: "bob" }],
      // @ts-expect-error vendor extensions are not in the SDK's types
      top_k: 40,
      chat_template_kwargs: { enable_thinking: false },
      guided_json: { type: "object" }
    })
    const body = engine.seen.at(-1)!.body
    expect(body).toMatchObject({
      top_k: 40,
      chat_template_kwargs: { enable_thinking: false },
      guided_json: { type: "object" },
      messages: [{ role: "user", content: "hi", name: "bob" }]
    })
  })

  it("serves legacy completions, streaming and not", async () => {
    engine.script = () => ({ tokens: ["one", " two"] })
    const res = await client.completions.create({ model: "llama-3.1-8b", prompt: "Say:", max_tokens: 5 })
    expect(res.choices[0]!.text).toBe("one two")
    const stream = await client.completions.create({ model: "llama-3.1-8b", prompt: "Say:", stream: true })
    let text = ""
    for await (const c of stream) text += c.choices[0]?.text ?? ""
    expect(text).toBe("one two")
  })

  it("serves embeddings", async () => {
    const res = await client.embeddings.create({ model: "embed-small", input: ["a", "b"] })
    expect(res.data.map((d) => d.index)).toEqual([0, 1])
    expect(res.data[0]!.embedding).toEqual([0.1, 0.2, 0.3])
    expect(res.usage.prompt_tokens).toBe(10)
  })

  it("passes rerank through to an engine that serves it, and accounts its tokens", async () => {
    const res = await fetch(`${gw.url}/v1/rerank`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "rerank-small", query: "gpu", documents: ["a100", "h100", "tpu"], top_n: 2 })
    })
    expect(res.status).toBe(200)
    const json = await res.json() as { results: Array<{ index: number }>; usage: { total_tokens: number } }
    expect(json.results.map((r) => r.index)).toEqual([0, 1, 2])
    expect(engine.seen.at(-1)).toMatchObject({ path: "/v1/rerank", body: { query: "gpu", top_n: 2 } })
    const record = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.at(-1)?.model === "rerank-small")
    expect(record.recent.at(-1)!.charged).toMatchObject({ promptTokens: 21, completionTokens: 0 })
    // A model whose only backend cannot rerank is refused, not sent.
    const refused = await fetch(`${gw.url}/v1/rerank`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "embed-small", query: "gpu", documents: ["a"] })
    })
    expect(refused.status).toBe(503)
  })

  it("lists and retrieves models from the plan", async () => {
    const list = await client.models.list()
    expect(list.data.map((m) => m.id).sort()).toEqual(["embed-small", "llama-3.1-8b", "rerank-small"])
    const one = await client.models.retrieve("llama3")
    expect(one.id).toBe("llama-3.1-8b")
    await expect(client.models.retrieve("nope")).rejects.toBeInstanceOf(OpenAI.NotFoundError)
  })

  it("accepts X-Request-ID, echoes it and sends it upstream", async () => {
    engine.script = () => ({})
    const { response } = await client.chat.completions
      .create({ model: "llama-3.1-8b", messages: [{ role: "user", content: "hi" }] }, { headers: { "X-Request-ID": "req-abc.123" } })
      .withResponse()
    expect(response.headers.get("x-request-id")).toBe("req-abc.123")
    expect(engine.seen.at(-1)!.headers["x-request-id"]).toBe("req-abc.123")
    const line = await eventually(async () => gw.lines.find((l) => l.request_id === "req-abc.123"), (l) => l !== undefined)
    expect(line).toMatchObject({ model: "llama-3.1-8b", backend: "engine-a", status: 200, outcome: "completed", prompt_tokens: 11 })
  })

  it("maps client errors to the OpenAI envelope", async () => {
    await expect(client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }))
      .rejects.toMatchObject({ status: 404, code: "model_not_found", type: "invalid_request_error" })
    // @ts-expect-error deliberately invalid
    await expect(client.chat.completions.create({ model: "llama-3.1-8b", messages: [{ role: "wizard", content: "x" }] }))
      .rejects.toMatchObject({ status: 400, param: "messages[0].role" })
    await expect(client.chat.completions.create({ model: "llama-3.1-8b", messages: [{ role: "user", content: "x" }], max_tokens: 100_000 }))
      .rejects.toMatchObject({ status: 400, param: "max_tokens" })
    await expect(client.chat.completions.create({ model: "llama-3.1-8b", messages: [{ role: "user", content: "x" }], temperature: 7 }))
      .rejects.toMatchObject({ status: 400, param: "temperature" })
    expect(await gw.held()).toEqual(idle)
  })
})

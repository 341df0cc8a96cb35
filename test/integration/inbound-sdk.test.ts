/**
 * The official `@anthropic-ai/sdk` (Messages) and `openai` (Responses) SDKs against the real
 * gateway over real sockets, in front of an in-test OpenAI-compatible fake engine: the new
 * inbound APIs run the one pipeline (auth, budgets, routing, cancellation, accounting), so
 * an unmodified client works, its errors arrive typed, and a client that leaves a stream
 * aborts the engine's work and releases everything (checked as lifecycle.test.ts checks it).
 */
import Anthropic from "@anthropic-ai/sdk"
import OpenAI from "openai"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

/** What the engine was asked to generate (other requests, such as metrics scrapes, are left out). */
const generations = (engine: Fake.FakeEngine) => engine.seen.filter((s) => s.path.endsWith("/chat/completions"))
const lastChat = (engine: Fake.FakeEngine) => generations(engine).at(-1)!
const chats = (engine: Fake.FakeEngine) => generations(engine).length

const settled = (gw: TestGateway) => eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle))

const weather = {
  name: "get_weather",
  description: "Current weather for a city",
  input_schema: { type: "object" as const, properties: { city: { type: "string" } }, required: ["city"] }
}

describe("Anthropic and OpenAI Responses SDKs against Sluice (OpenAI-compatible backend)", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  let anthropic: Anthropic
  let openai: OpenAI

  beforeAll(async () => {
    engine = await Fake.start()
    gw = await startGateway(`
models:
  - name: m
    max_output_tokens: 4096
backends:
  - id: a
    url: ${engine.url}
    models: [{ name: m, upstream: upstream-m }]
timeouts: { first_token: 2s, idle: 2s, drain: 1s }
budgets:
  tokens_per_window: 1000000
`)
    anthropic = new Anthropic({ baseURL: gw.url, apiKey: "unused", maxRetries: 0 })
    openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "unused", maxRetries: 0 })
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })
  beforeEach(() => {
    engine.script = () => ({})
  })

  it("messages.create: translated to a chat call, answered as an Anthropic message with request-id", async () => {
    engine.script = () => ({ tokens: ["Paris", " is", " lovely"], usage: { prompt_tokens: 20, completion_tokens: 3, cached_tokens: 5 } })
    const { data, response } = await anthropic.messages.create({
      model: "m",
      max_tokens: 64,
      system: "Be brief.",
      stop_sequences: ["END"],
      messages: [{ role: "user", content: "Capital of France?" }]
    }).withResponse()
    expect(data.type).toBe("message")
    expect(data.role).toBe("assistant")
    expect(data.model).toBe("m")
    expect(data.content).toEqual([{ type: "text", text: "Paris is lovely" }])
    expect(data.stop_reason).toBe("end_turn")
    expect(data.usage).toMatchObject({ input_tokens: 15, cache_read_input_tokens: 5, output_tokens: 3 })
    expect(response.headers.get("request-id")).toMatch(/.+/)
    expect(data.id).toBe(`msg_${response.headers.get("request-id")}`)
    const sent = lastChat(engine)
    expect(sent.path).toBe("/v1/chat/completions")
    expect(sent.body).toMatchObject({
      model: "upstream-m",
      max_tokens: 64,
      stop: ["END"],
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Capital of France?" }]
    })
  })

  it("messages.stream: Anthropic's event order with ping, cumulative usage, and the request settled on it", async () => {
    engine.script = () => ({ tokens: ["a", "b", "c"], usage: { prompt_tokens: 9, completion_tokens: 3 } })
    const before = (await gw.run(gw.budget.snapshot)).chargedTokens
    const stream = anthropic.messages.stream({ model: "m", max_tokens: 32, messages: [{ role: "user", content: "count" }] })
    const types: Array<string> = []
    for await (const event of stream) types.push(event.type)
    const final = await stream.finalMessage()
    expect(final.content).toEqual([{ type: "text", text: "abc" }])
    expect(final.stop_reason).toBe("end_turn")
    expect(final.usage).toMatchObject({ input_tokens: 9, output_tokens: 3 })
    expect(types[0]).toBe("message_start")
    expect(types.slice(1, 2)).toEqual(["content_block_start"])
    expect(types.filter((t) => t === "content_block_delta").length).toBe(3)
    expect(types.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"])
    const after = await eventually(() => gw.run(gw.budget.snapshot), (s) => s.chargedTokens === before + 12)
    expect(after.chargedTokens - before).toBe(12)
  })

  it("sends the ping event after the first content_block_start (raw bytes)", async () => {
    engine.script = () => ({ tokens: ["x"] })
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "unused", "anthropic-version": "2023-06-01" },
      body: JSON.stringify({ model: "m", max_tokens: 8, stream: true, messages: [{ role: "user", content: "hi" }] })
    })
    expect(res.headers.get("content-type")).toContain("text/event-stream")
    const names = (await res.text()).split("\n").filter((l) => l.startsWith("event: ")).map((l) => l.slice(7))
    expect(names).toEqual([
      "message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop", "message_delta", "message_stop"
    ])
  })

  it("tools: tool_use blocks streaming and not, and a tool_result turn goes back as a tool message", async () => {
    engine.script = () => ({ toolCall: { name: "get_weather", arguments: ["{\"city\":", " \"Paris\"}"] } })
    const stream = anthropic.messages.stream({
      model: "m",
      max_tokens: 64,
      tools: [weather],
      tool_choice: { type: "any" },
      messages: [{ role: "user", content: "weather?" }]
    })
    const streamed = await stream.finalMessage()
    expect(streamed.stop_reason).toBe("tool_use")
    const use = streamed.content.find((b) => b.type === "tool_use")
    expect(use).toMatchObject({ type: "tool_use", id: "call_1", name: "get_weather", input: { city: "Paris" } })
    expect(lastChat(engine).body["tool_choice"]).toBe("required")
    expect(lastChat(engine).body["tools"]).toEqual([{
      type: "function",
      function: { name: "get_weather", description: weather.description, parameters: weather.input_schema }
    }])

    const whole = await anthropic.messages.create({ model: "m", max_tokens: 64, tools: [weather], messages: [{ role: "user", content: "w" }] })
    expect(whole.content).toEqual([{ type: "tool_use", id: "call_1", name: "get_weather", input: { city: "Paris" } }])

    engine.script = () => ({ tokens: ["Sunny."] })
    const next = await anthropic.messages.create({
      model: "m",
      max_tokens: 64,
      tools: [weather],
      messages: [
        { role: "user", content: "weather?" },
        { role: "assistant", content: [{ type: "tool_use", id: "call_1", name: "get_weather", input: { city: "Paris" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "call_1", content: "22C sunny" }] }
      ]
    })
    expect(next.content).toEqual([{ type: "text", text: "Sunny." }])
    expect(lastChat(engine).body["messages"]).toEqual([
      { role: "user", content: "weather?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } }] },
      { role: "tool", tool_call_id: "call_1", content: "22C sunny" }
    ])
  })

  it("count_tokens: counted by the gateway's estimator, never dispatched", async () => {
    const seen = chats(engine)
    const short = await anthropic.messages.countTokens({ model: "m", messages: [{ role: "user", content: "hi" }] })
    const long = await anthropic.messages.countTokens({
      model: "m",
      system: "You are a helpful assistant.",
      tools: [weather],
      messages: [{ role: "user", content: "hi ".repeat(200) }]
    })
    expect(short.input_tokens).toBeGreaterThan(0)
    expect(long.input_tokens).toBeGreaterThan(short.input_tokens + 150)
    expect(chats(engine)).toBe(seen)
  })

  it("errors arrive as the SDK's typed errors, in Anthropic's envelope", async () => {
    const unknown = await anthropic.messages.create({ model: "nope", max_tokens: 8, messages: [{ role: "user", content: "x" }] })
      .catch((e: unknown) => e)
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError)
    expect((unknown as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({
      type: "error",
      error: { type: "not_found_error", message: expect.stringContaining("nope") }
    })
    expect((unknown as InstanceType<typeof Anthropic.NotFoundError>).requestID).toMatch(/.+/)

    const res = await fetch(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "x" }] })
    })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error", message: expect.stringContaining("max_tokens") } })

    engine.script = () => ({ status: 503 })
    const overloaded = await anthropic.messages.create({ model: "m", max_tokens: 8, messages: [{ role: "user", content: "x" }] })
      .catch((e: unknown) => e)
    expect(overloaded).toBeInstanceOf(Anthropic.APIError)
    expect((overloaded as InstanceType<typeof Anthropic.APIError>).status).toBe(529)
    expect((overloaded as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: "error", error: { type: "overloaded_error" } })
  })

  it("a failure mid-stream ends the Anthropic stream with an error event", async () => {
    engine.script = () => ({ tokens: ["a", "b", "c"], errorAfter: 2 })
    const stream = anthropic.messages.stream({ model: "m", max_tokens: 32, messages: [{ role: "user", content: "x" }] })
    const failure = await stream.finalMessage().catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(Anthropic.APIError)
    expect(String((failure as Error).message)).toContain("api_error")
  })

  it("an abandoned Anthropic stream aborts the engine work and releases everything", async () => {
    const tokens = Array.from({ length: 1000 }, (_, i) => ` t${i}`)
    engine.script = () => ({ tokens, gapMs: 10 })
    const aborted = engine.aborted()
    const closed = engine.nextClose()
    const stream = anthropic.messages.stream({ model: "m", max_tokens: 2000, messages: [{ role: "user", content: "story" }] })
    let deltas = 0
    for await (const event of stream) {
      if (event.type === "content_block_delta" && ++deltas === 3) break
    }
    await closed
    expect(engine.aborted()).toBe(aborted + 1)
    expect(await settled(gw)).toEqual(idle)
    const snap = await gw.run(gw.sink.snapshot)
    const last = snap.recent.at(-1)!
    expect(last.outcome).toBe("client_aborted")
    expect(last.charged.completionTokens).toBeGreaterThanOrEqual(3)
    expect(last.charged.completionTokens).toBeLessThan(100)
    expect((await gw.run(gw.budget.snapshot)).doubleSettlements).toBe(0)
  })

  it("responses.create: a response object with output_text and usage details", async () => {
    engine.script = () => ({ tokens: ["Hello", " there"], usage: { prompt_tokens: 12, completion_tokens: 2, cached_tokens: 4 } })
    const res = await openai.responses.create({ model: "m", instructions: "Be kind.", input: "hi", max_output_tokens: 50 })
    expect(res.object).toBe("response")
    expect(res.status).toBe("completed")
    expect(res.output_text).toBe("Hello there")
    expect(res.model).toBe("m")
    expect(res.usage).toMatchObject({ input_tokens: 12, output_tokens: 2, total_tokens: 14, input_tokens_details: { cached_tokens: 4 } })
    expect((res as unknown as { store: unknown }).store).toBe(false)
    expect(lastChat(engine).body).toMatchObject({
      model: "upstream-m",
      max_tokens: 50,
      messages: [{ role: "system", content: "Be kind." }, { role: "user", content: "hi" }]
    })
  })

  it("responses stream: typed events in order, response.completed with usage", async () => {
    engine.script = () => ({ tokens: ["x", "y"], usage: { prompt_tokens: 7, completion_tokens: 2 } })
    const stream = await openai.responses.create({ model: "m", input: "hi", stream: true })
    const types: Array<string> = []
    let text = ""
    let completed: OpenAI.Responses.Response | undefined
    for await (const event of stream) {
      types.push(event.type)
      if (event.type === "response.output_text.delta") text += event.delta
      if (event.type === "response.completed") completed = event.response
    }
    expect(text).toBe("xy")
    expect(types.slice(0, 4)).toEqual(["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"])
    expect(types.at(-1)).toBe("response.completed")
    expect(completed?.usage).toMatchObject({ input_tokens: 7, output_tokens: 2 })
    expect(completed?.output_text ?? completed?.output).toBeTruthy()
  })

  it("responses function calls: streamed argument deltas, and the output goes back as a tool message", async () => {
    engine.script = () => ({ toolCall: { name: "get_weather", arguments: ["{\"city\":", " \"Paris\"}"] } })
    const tools: Array<OpenAI.Responses.FunctionTool> = [{
      type: "function",
      name: "get_weather",
      parameters: weather.input_schema,
      strict: false
    }]
    const stream = await openai.responses.create({ model: "m", input: "weather?", tools, stream: true })
    let args = ""
    let done: OpenAI.Responses.Response | undefined
    for await (const event of stream) {
      if (event.type === "response.function_call_arguments.delta") args += event.delta
      if (event.type === "response.completed") done = event.response
    }
    expect(JSON.parse(args)).toEqual({ city: "Paris" })
    const call = done!.output.find((o) => o.type === "function_call")
    expect(call).toMatchObject({ type: "function_call", name: "get_weather", call_id: "call_1", arguments: "{\"city\": \"Paris\"}" })

    engine.script = () => ({ tokens: ["Sunny"] })
    const next = await openai.responses.create({
      model: "m",
      tools,
      input: [
        { role: "user", content: "weather?" },
        { type: "function_call", call_id: "call_1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" },
        { type: "function_call_output", call_id: "call_1", output: "22C" }
      ]
    })
    expect(next.output_text).toBe("Sunny")
    expect(lastChat(engine).body["messages"]).toEqual([
      { role: "user", content: "weather?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } }] },
      { role: "tool", tool_call_id: "call_1", content: "22C" }
    ])
  })

  it("responses: a failure mid-stream ends the stream with response.failed, accounted as partial", async () => {
    engine.script = () => ({ tokens: ["a", "b", "c"], errorAfter: 2 })
    const { data: stream, response } = await openai.responses.create({ model: "m", input: "x", stream: true }).withResponse()
    const types: Array<string> = []
    let failed: OpenAI.Responses.Response | undefined
    for await (const event of stream) {
      types.push(event.type)
      if (event.type === "response.failed") failed = event.response
    }
    expect(types.at(-1)).toBe("response.failed")
    expect(types).not.toContain("response.completed")
    expect(failed?.status).toBe("failed")
    expect(failed?.error?.message).toContain("engine died")
    expect(failed?.output[0]).toMatchObject({ type: "message", status: "incomplete" })
    const requestId = response.headers.get("x-request-id")
    const snap = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.some((r) => r.requestId === requestId))
    expect(snap.recent.find((r) => r.requestId === requestId)?.outcome).toBe("partial")
  })

  it("responses: previous_response_id is a clear 400; errors in the OpenAI envelope", async () => {
    const seen = chats(engine)
    const refused = await openai.responses.create({ model: "m", input: "more", previous_response_id: "resp_abc" }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError)
    expect((refused as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("previous_response_id")
    const unknown = await openai.responses.create({ model: "nope", input: "x" }).catch((e: unknown) => e)
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError)
    expect(chats(engine)).toBe(seen)
  })

  it("an abandoned Responses stream aborts the engine work and releases everything", async () => {
    const tokens = Array.from({ length: 1000 }, (_, i) => ` t${i}`)
    engine.script = () => ({ tokens, gapMs: 10 })
    const aborted = engine.aborted()
    const closed = engine.nextClose()
    const stream = await openai.responses.create({ model: "m", input: "story", stream: true })
    let deltas = 0
    for await (const event of stream) {
      if (event.type === "response.output_text.delta" && ++deltas === 3) break
    }
    await closed
    expect(engine.aborted()).toBe(aborted + 1)
    expect(await settled(gw)).toEqual(idle)
    const last = (await gw.run(gw.sink.snapshot)).recent.at(-1)!
    expect(last.outcome).toBe("client_aborted")
    expect(last.charged.completionTokens).toBeGreaterThanOrEqual(3)
    expect(last.charged.completionTokens).toBeLessThan(100)
  })
})

describe("Anthropic and Responses inbound with API keys", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    engine = await Fake.start(() => ({ usage: { prompt_tokens: 5, completion_tokens: 2 } }))
    gw = await startGateway(`
models: [{ name: m }]
backends:
  - { id: a, url: ${engine.url}, models: [m] }
timeouts: { drain: 1s }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("x-api-key (Anthropic SDK) and Bearer (OpenAI SDK) authenticate; a wrong key is a 401 in each API's envelope", async () => {
    const { key } = await gw.run(gw.keyAdmin.createKey({ tenant: "inbound-t", name: "test", createTenant: true }))
    const good = new Anthropic({ baseURL: gw.url, apiKey: key, maxRetries: 0 })
    const msg = await good.messages.create({ model: "m", max_tokens: 8, messages: [{ role: "user", content: "hi" }] })
    expect(msg.content).toEqual([{ type: "text", text: "Hello world" }])
    const res = await new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 }).responses.create({ model: "m", input: "hi" })
    expect(res.output_text).toBe("Hello world")
    // Both requests were the key's tenant in the ledger.
    const records = await eventually(
      () => gw.run(gw.sink.snapshot),
      (s) => s.recent.filter((r) => r.tenant === "inbound-t").length === 2
    )
    expect(records.recent.filter((r) => r.tenant === "inbound-t").length).toBe(2)

    const bad = await new Anthropic({ baseURL: gw.url, apiKey: "sk-sluice-wrong", maxRetries: 0 })
      .messages.create({ model: "m", max_tokens: 8, messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e)
    expect(bad).toBeInstanceOf(Anthropic.AuthenticationError)
    expect((bad as InstanceType<typeof Anthropic.AuthenticationError>).error).toMatchObject({ type: "error", error: { type: "authentication_error" } })
    const badCount = await new Anthropic({ baseURL: gw.url, apiKey: "sk-sluice-wrong", maxRetries: 0 })
      .messages.countTokens({ model: "m", messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e)
    expect(badCount).toBeInstanceOf(Anthropic.AuthenticationError)
    const badResponses = await new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "sk-sluice-wrong", maxRetries: 0 })
      .responses.create({ model: "m", input: "hi" }).catch((e: unknown) => e)
    expect(badResponses).toBeInstanceOf(OpenAI.AuthenticationError)
  })
})

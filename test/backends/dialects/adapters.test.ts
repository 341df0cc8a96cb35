/**
 * Dialect adapters over a real socket (FakeUpstream): what each sends (path, headers,
 * auth style, body), capability refusals, unary translation end to end, and SGLang's
 * explicit abort: fired when the attempt's scope closes early, not when the stream was
 * read to its end or the engine refused the request, and bounded when the engine hangs.
 */
import { Effect, Exit, Redacted, type Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Adapter, type FrameSource, unaryAll } from "../../../src/backends/Contract.ts"
import * as Anthropic from "../../../src/backends/dialects/anthropic/Client.ts"
import * as Ollama from "../../../src/backends/dialects/ollama/Client.ts"
import * as Sglang from "../../../src/backends/dialects/sglang/Client.ts"
import type { FailureReason } from "../../../src/backends/Failure.ts"
import * as Upstream from "../../../src/backends/Upstream.ts"
import * as Fake from "../../support/FakeUpstream.ts"
import { callOf, flatten } from "./support.ts"

const limits = { firstTokenMs: 2000, totalMs: 5000, maxEventBytes: 1 << 20, maxResponseBytes: 1 << 24 }

const run = <A>(effect: Effect.Effect<A, FailureReason, Scope.Scope>) => Effect.runPromiseExit(Effect.scoped(effect))

const failureOf = <A>(exit: Exit.Exit<A, FailureReason>) =>
  Exit.isFailure(exit) ? exit.cause.reasons.flatMap((r) => (r._tag === "Fail" ? [r.error] : []))[0] : undefined

const readAll = (source: FrameSource) =>
  Effect.gen(function*() {
    const frames = []
    while (true) {
      const batch = yield* source.next()
      if (batch === null) return flatten(frames)
      frames.push(...batch)
    }
  })

const sse = (events: ReadonlyArray<readonly [string, unknown]>) =>
  events.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)

describe("anthropic adapter", () => {
  let fake: Fake.FakeUpstream
  let pool: Upstream.UpstreamPool
  let adapter: Adapter
  beforeAll(async () => {
    fake = await Fake.start()
    pool = Upstream.make(`${fake.url}/v1`, { connections: 2, apiKey: Redacted.make("sk-ant-test"), connectTimeoutMs: 1000 })
    adapter = Anthropic.make(pool, limits)
  })
  afterAll(async () => {
    await Effect.runPromise(pool.close)
    await fake.close()
  })

  it("authenticates with x-api-key and anthropic-version, never a bearer", async () => {
    fake.route("POST", "/v1/messages", {
      chunks: [JSON.stringify({
        id: "msg_1",
        type: "message",
        role: "assistant",
        content: [{ type: "text", text: "hi" }],
        stop_reason: "end_turn",
        usage: { input_tokens: 3, output_tokens: 1, cache_read_input_tokens: 2 }
      })]
    })
    const exit = await run(unaryAll(adapter, callOf("chat", { model: "claude", messages: [{ role: "user", content: "x" }] })))
    expect(Exit.isSuccess(exit)).toBe(true)
    const seen = fake.requests.at(-1)!
    expect(seen.path).toBe("/v1/messages")
    expect(seen.headers["x-api-key"]).toBe("sk-ant-test")
    expect(seen.headers["anthropic-version"]).toBe("2023-06-01")
    expect(seen.headers["authorization"]).toBeUndefined()
    if (Exit.isSuccess(exit)) {
      const body = JSON.parse(new TextDecoder().decode(exit.value.body))
      expect(body.choices[0].message.content).toBe("hi")
      expect(body.model).toBe("claude")
      expect(exit.value.usage).toEqual({ promptTokens: 5, completionTokens: 1, cachedTokens: 2 })
    }
  })

  it("refuses completions, embeddings and rerank with a non-retryable 400 before any I/O", async () => {
    expect(adapter.capabilities).toEqual({ chat: true, completion: false, embedding: false, rerank: false })
    const before = fake.requests.length
    for (const kind of ["completion", "embedding", "rerank"] as const) {
      const failure = failureOf(await run(unaryAll(adapter, callOf(kind, { model: "claude", prompt: "x", input: "x", query: "q", documents: ["d"] }))))
      expect(failure?._tag).toBe("InvalidRequest")
      expect(failure?._tag === "InvalidRequest" && failure.status).toBe(400)
      expect(failure?.isRetryable).toBe(false)
      expect(failure?.tripsBreaker).toBe(false)
    }
    expect(fake.requests.length).toBe(before)
  })

  it("streams translated chunks and maps a 529 to Overloaded", async () => {
    fake.route("POST", "/v1/messages", (req) =>
      (req.body as { max_tokens: number }).max_tokens === 1
        ? { status: 529, chunks: [JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } })] }
        : {
          headers: { "content-type": "text/event-stream" },
          chunks: sse([
            ["message_start", { type: "message_start", message: { id: "msg_2", usage: { input_tokens: 4, output_tokens: 1 } } }],
            ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }],
            ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hey" } }],
            ["message_delta", { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 2 } }],
            ["message_stop", { type: "message_stop" }]
          ])
        })
    const call = callOf("chat", { model: "claude", stream: true, messages: [{ role: "user", content: "x" }] })
    const exit = await run(Effect.flatMap(adapter.stream(call), readAll))
    expect(Exit.isSuccess(exit) && exit.value.text).toContain("\"content\":\"Hey\"")
    const overloaded = await run(adapter.stream(callOf("chat", { ...call.body, max_tokens: 1 })))
    expect(failureOf(overloaded)?._tag).toBe("Overloaded")
  })
})

describe("ollama adapter", () => {
  let fake: Fake.FakeUpstream
  let pool: Upstream.UpstreamPool
  let adapter: Adapter
  beforeAll(async () => {
    fake = await Fake.start()
    pool = Upstream.make(fake.url, { connections: 2, apiKey: undefined, connectTimeoutMs: 1000 })
    adapter = Ollama.make(pool, limits)
  })
  afterAll(async () => {
    await Effect.runPromise(pool.close)
    await fake.close()
  })

  it("embeds over /api/embed and answers an OpenAI list", async () => {
    fake.route("POST", "/api/embed", { chunks: [JSON.stringify({ embeddings: [[1, 2], [3, 4]], prompt_eval_count: 6 })] })
    const exit = await run(unaryAll(adapter, callOf("embedding", { model: "nomic", input: ["a", "b"] }, { upstreamModel: "nomic-embed-text" })))
    expect(fake.requests.at(-1)?.body).toEqual({ model: "nomic-embed-text", input: ["a", "b"] })
    expect(Exit.isSuccess(exit)).toBe(true)
    if (Exit.isSuccess(exit)) {
      const body = JSON.parse(new TextDecoder().decode(exit.value.body))
      expect(body).toMatchObject({ object: "list", model: "nomic", data: [{ index: 0, embedding: [1, 2] }, { index: 1, embedding: [3, 4] }] })
      expect(exit.value.usage?.promptTokens).toBe(6)
    }
  })

  it("streams /api/chat NDJSON; a 404 for an unknown model is a non-retryable InvalidRequest", async () => {
    fake.route("POST", "/api/chat", (req) =>
      (req.body as { model: string }).model === "missing"
        ? { status: 404, chunks: [JSON.stringify({ error: "model \"missing\" not found, try pulling it first" })] }
        : {
          headers: { "content-type": "application/x-ndjson" },
          chunks: [
            `${JSON.stringify({ message: { role: "assistant", content: "Hi" }, done: false })}\n`,
            `${JSON.stringify({ message: { role: "assistant", content: "" }, done: true, done_reason: "stop", prompt_eval_count: 5, eval_count: 1 })}\n`
          ]
        })
    const call = callOf("chat", { model: "llama", stream: true, messages: [{ role: "user", content: "x" }] })
    const exit = await run(Effect.flatMap(adapter.stream(call), readAll))
    expect(Exit.isSuccess(exit) && exit.value.events).toContainEqual({ _tag: "Finish", reason: "stop" })
    expect(fake.requests.at(-1)?.path).toBe("/api/chat")
    const missing = failureOf(await run(adapter.stream(callOf("chat", call.body, { upstreamModel: "missing" }))))
    expect(missing?._tag === "InvalidRequest" && missing.status).toBe(404)
  })
})

describe("sglang adapter: explicit abort", () => {
  let fake: Fake.FakeUpstream
  let pool: Upstream.UpstreamPool
  let adapter: Adapter
  const aborts = () => fake.requests.filter((r) => r.path === "/abort_request").map((r) => r.body)
  const chunk = (content: string, finish: string | null = null) =>
    `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`

  beforeAll(async () => {
    fake = await Fake.start()
    pool = Upstream.make(`${fake.url}/v1`, { connections: 4, apiKey: undefined, connectTimeoutMs: 1000 })
    adapter = Sglang.make(pool, { ...limits, abortTimeoutMs: 200 })
    fake.route("POST", "/abort_request", { chunks: ["{}"] })
    fake.route("POST", "/v1/chat/completions", (req) => {
      const body = req.body as { messages: Array<{ content: string }> }
      switch (body.messages[0]!.content) {
        case "finish":
          return { headers: { "content-type": "text/event-stream" }, chunks: [chunk("a"), chunk("b", "stop"), "data: [DONE]\n\n"] }
        case "hold":
          return { headers: { "content-type": "text/event-stream" }, chunks: [chunk("a")], holdOpen: true }
        case "silent":
          return { headersDelayMs: 5000 }
        default:
          return { status: 400, chunks: [JSON.stringify({ object: "error", message: "bad", code: 400 })] }
      }
    })
  })
  afterAll(async () => {
    await Effect.runPromise(pool.close)
    await fake.close()
  })

  const callWith = (content: string, requestId: string) =>
    callOf("chat", { model: "m", stream: true, messages: [{ role: "user", content }] }, { requestId })

  it("sends rid and does not abort a stream read to its end", async () => {
    const exit = await run(Effect.flatMap(adapter.stream(callWith("finish", "rid-done")), readAll))
    expect(Exit.isSuccess(exit)).toBe(true)
    const sent = fake.requests.find((r) => r.path === "/v1/chat/completions" && (r.body as { rid?: string }).rid === "rid-done")
    expect(sent).toBeDefined()
    expect(aborts()).not.toContainEqual({ rid: "rid-done" })
  })

  it("aborts by rid when the attempt's scope closes mid-stream", async () => {
    const exit = await run(Effect.flatMap(adapter.stream(callWith("hold", "rid-left")), (s) => s.next()))
    expect(Exit.isSuccess(exit)).toBe(true)
    expect(aborts()).toContainEqual({ rid: "rid-left" })
  })

  it("aborts when interrupted before the response headers", async () => {
    // Upstream.post's acquire is uninterruptible, so the interrupt lands only when undici's
    // headers timeout (firstTokenMs) fires: keep it short here (see the report).
    const quick = Sglang.make(pool, { ...limits, firstTokenMs: 300, abortTimeoutMs: 200 })
    const exit = await Effect.runPromiseExit(
      Effect.scoped(quick.stream(callWith("silent", "rid-ttft"))).pipe(Effect.timeout("100 millis"))
    )
    expect(Exit.isFailure(exit)).toBe(true)
    expect(aborts()).toContainEqual({ rid: "rid-ttft" })
  })

  it("does not abort a request the engine refused", async () => {
    const failure = failureOf(await run(adapter.stream(callWith("refuse", "rid-400"))))
    expect(failure?._tag).toBe("InvalidRequest")
    expect(aborts()).not.toContainEqual({ rid: "rid-400" })
  })

  it("a hanging abort endpoint is bounded and never fails the finalizer", async () => {
    fake.route("POST", "/abort_request", { headersDelayMs: 5000 })
    const started = performance.now()
    const exit = await run(Effect.flatMap(adapter.stream(callWith("hold", "rid-hang")), (s) => s.next()))
    expect(Exit.isSuccess(exit)).toBe(true)
    expect(performance.now() - started).toBeLessThan(1500)
    fake.route("POST", "/abort_request", { chunks: ["{}"] })
  })
})

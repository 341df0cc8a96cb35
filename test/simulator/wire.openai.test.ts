/**
 * The OpenAI (vLLM) dialect on a real socket, with the official `openai` SDK as the client.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import OpenAI from "openai"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { chatPromptTokens, encodeText } from "../../src/simulator/tokens.ts"
import { get, openaiClient } from "./helpers.ts"

const options: Simulator.SimulatorOptions = { profile: "llama-3.1-8b-fp8-h100", model: "llama-3.1-8b", timeScale: 50 }

const longText = "The river keeps its own counsel in the valley below the mountain. ".repeat(30)

describe("simulator wire: OpenAI chat completions (vLLM flavour)", () => {
  it.live("non-streaming: usage is exact, content has completion_tokens tokens, finish stop", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const client = openaiClient(sim)
      const messages = [{ role: "user" as const, content: "Say something." }]
      const r = yield* Effect.promise(() =>
        client.chat.completions.create({ model: "llama-3.1-8b", messages, sim_output_tokens: 25 } as OpenAI.ChatCompletionCreateParamsNonStreaming)
      )
      expect(r.id).toMatch(/^chatcmpl-/)
      expect(r.object).toBe("chat.completion")
      expect(r.choices[0]!.finish_reason).toBe("stop")
      expect(r.usage?.prompt_tokens).toBe(chatPromptTokens(messages).length)
      expect(r.usage?.completion_tokens).toBe(25)
      expect(r.usage?.total_tokens).toBe(r.usage!.prompt_tokens + 25)
      expect(encodeText(r.choices[0]!.message.content ?? "").length).toBe(25)
    }))

  it.live("max_tokens caps the output with finish_reason length", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const r = yield* Effect.promise(() =>
        openaiClient(sim).chat.completions.create({
          model: "llama-3.1-8b",
          messages: [{ role: "user", content: "go on" }],
          max_tokens: 7,
          sim_output_tokens: 100
        } as OpenAI.ChatCompletionCreateParamsNonStreaming)
      )
      expect(r.choices[0]!.finish_reason).toBe("length")
      expect(r.usage?.completion_tokens).toBe(7)
    }))

  it.live("streaming with include_usage: real chunk shape, usage-only last chunk, cached tokens on a repeat", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const client = openaiClient(sim)
      const messages = [{ role: "user" as const, content: longText }]
      const isl = chatPromptTokens(messages).length
      const run = () =>
        Effect.promise(async () => {
          const stream = await client.chat.completions.create({
            model: "llama-3.1-8b",
            messages,
            stream: true,
            stream_options: { include_usage: true },
            sim_output_tokens: 12
          } as OpenAI.ChatCompletionCreateParamsStreaming)
          const chunks: Array<OpenAI.ChatCompletionChunk> = []
          for await (const c of stream) chunks.push(c)
          return chunks
        })
      const first = yield* run()
      const last = first[first.length - 1]!
      expect(last.choices).toEqual([])
      expect(last.usage?.completion_tokens).toBe(12)
      expect(last.usage?.prompt_tokens).toBe(isl)
      expect(last.usage?.prompt_tokens_details?.cached_tokens).toBe(0)
      const body = first.slice(0, -1)
      for (const c of body) {
        expect(c.object).toBe("chat.completion.chunk")
        expect(c.id).toBe(first[0]!.id)
        expect(c.choices[0]!.index).toBe(0)
        expect(c.choices[0]!.logprobs).toBeNull()
      }
      expect(body[0]!.choices[0]!.delta.role).toBe("assistant")
      expect(body[body.length - 1]!.choices[0]!.finish_reason).toBe("stop")
      const text = body.map((c) => c.choices[0]!.delta.content ?? "").join("")
      expect(encodeText(text).length).toBe(12)
      expect(body.filter((c) => (c.choices[0]!.delta.content ?? "") !== "").length).toBe(12) // one chunk per token
      const second = yield* run()
      expect(second[second.length - 1]!.usage?.prompt_tokens_details?.cached_tokens).toBe(Math.floor((isl - 1) / 16) * 16)
    }))

  it.live("tools with tool_choice required: streamed tool_calls fragments with valid JSON, finish tool_calls", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const tools: Array<OpenAI.ChatCompletionTool> = [{
        type: "function",
        function: {
          name: "get_weather",
          parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } } }
        }
      }]
      const chunks = yield* Effect.promise(async () => {
        const stream = await openaiClient(sim).chat.completions.create({
          model: "llama-3.1-8b",
          messages: [{ role: "user", content: "Weather in Paris?" }],
          tools,
          tool_choice: "required",
          stream: true
        })
        const out: Array<OpenAI.ChatCompletionChunk> = []
        for await (const c of stream) out.push(c)
        return out
      })
      const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])
      expect(calls.length).toBeGreaterThan(1)
      expect(calls[0]!.id).toMatch(/^chatcmpl-tool-/)
      expect(calls[0]!.function?.name).toBe("get_weather")
      expect(calls.slice(1).every((c) => c.id === undefined && c.function?.name === undefined)).toBe(true)
      const args = JSON.parse(calls.map((c) => c.function?.arguments ?? "").join("")) as Record<string, unknown>
      expect(typeof args["city"]).toBe("string")
      expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe("tool_calls")
      // the non-streaming form names the same function
      const r = yield* Effect.promise(() =>
        openaiClient(sim).chat.completions.create({
          model: "llama-3.1-8b",
          messages: [{ role: "user", content: "Weather in Paris?" }],
          tools,
          tool_choice: { type: "function", function: { name: "get_weather" } }
        })
      )
      const call = r.choices[0]!.message.tool_calls![0]!
      assert.strictEqual(call.type, "function")
      if (call.type === "function") expect(JSON.parse(call.function.arguments)).toEqual(args)
      expect(r.choices[0]!.finish_reason).toBe("tool_calls")
    }))

  it.live("completions, embeddings and models", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const client = openaiClient(sim)
      const c = yield* Effect.promise(() =>
        client.completions.create({ model: "llama-3.1-8b", prompt: "Once upon a time", max_tokens: 9, sim_output_tokens: 50 } as OpenAI.CompletionCreateParamsNonStreaming)
      )
      expect(c.object).toBe("text_completion")
      expect(c.usage?.prompt_tokens).toBe(encodeText("Once upon a time").length + 1)
      expect(c.usage?.completion_tokens).toBe(9)
      expect(c.choices[0]!.finish_reason).toBe("length")

      const e1 = yield* Effect.promise(() => client.embeddings.create({ model: "llama-3.1-8b", input: ["alpha", "beta"] }))
      const e2 = yield* Effect.promise(() => client.embeddings.create({ model: "llama-3.1-8b", input: "alpha", dimensions: 64 }))
      expect(e1.data.length).toBe(2)
      expect(e1.data[0]!.embedding.length).toBe(4096)
      expect(e2.data[0]!.embedding.length).toBe(64)
      const norm = Math.hypot(...e1.data[0]!.embedding)
      expect(norm).toBeCloseTo(1, 4)
      const again = yield* Effect.promise(() => client.embeddings.create({ model: "llama-3.1-8b", input: "alpha" }))
      expect(again.data[0]!.embedding).toEqual(e1.data[0]!.embedding)
      expect(e1.usage.prompt_tokens).toBe(4)

      const models = yield* Effect.promise(() => client.models.list())
      expect(models.data.map((m) => m.id)).toEqual(["llama-3.1-8b"])
    }))

  it.live("errors use vLLM's envelope: unknown model 404, context overflow 400", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const client = openaiClient(sim)
      const notFound = yield* Effect.promise(() =>
        client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }).then(() => undefined, (e: unknown) => e)
      )
      assert.instanceOf(notFound, OpenAI.NotFoundError)
      const tooLong = yield* Effect.promise(() =>
        client.chat.completions.create({ model: "llama-3.1-8b", messages: [{ role: "user", content: "x" }], max_tokens: 200_000 })
          .then(() => undefined, (e: unknown) => e)
      )
      assert.instanceOf(tooLong, OpenAI.BadRequestError)
      if (tooLong instanceof OpenAI.BadRequestError) {
        expect(tooLong.message).toContain("maximum context length is 131072 tokens")
        expect(tooLong.error).toMatchObject({ type: "BadRequestError", code: 400 })
      }
      const prompt = Array.from({ length: 131_072 }, (_, i) => i % 50_000)
      const longPrompt = yield* Effect.promise(() =>
        client.completions.create({ model: "llama-3.1-8b", prompt }).then(() => undefined, (e: unknown) => e)
      )
      assert.instanceOf(longPrompt, OpenAI.BadRequestError)
      if (longPrompt instanceof OpenAI.BadRequestError) {
        expect(longPrompt.message).toContain("your request has 131073 input tokens")
      }
      const health = yield* get(`${sim.url}/health`)
      expect(health.status).toBe(200)
    }))
})

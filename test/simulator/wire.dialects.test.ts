/**
 * The other dialects on real sockets: Anthropic Messages (SSE event order, tool_use, cache reads, errors),
 * Ollama (NDJSON, whole tool calls, tags/ps), SGLang (metric names, /abort_request), and vLLM metric names.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { chatPromptTokens, encodeText } from "../../src/simulator/tokens.ts"
import { get, parseNdjson, parseSse, post, waitForStats } from "./helpers.ts"

const longText = "Signals travel along the line from one station to the next before dawn. ".repeat(25)

describe("simulator wire: Anthropic Messages", () => {
  const options: Simulator.SimulatorOptions = {
    profile: "llama-3.1-8b-bf16-h100",
    model: "claude-sim",
    dialect: "anthropic",
    timeScale: 50
  }

  it.live("streams events in the documented order with cumulative usage and cache reads", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const body = {
        model: "claude-sim",
        max_tokens: 100,
        stream: true,
        system: "Be brief.",
        messages: [{ role: "user", content: longText }],
        sim_output_tokens: 6
      }
      const first = yield* post(`${sim.url}/v1/messages`, body, { "anthropic-version": "2023-06-01" })
      expect(first.status).toBe(200)
      expect(first.headers.get("content-type")).toBe("text/event-stream")
      const events = parseSse(first.text)
      expect(events.map((e) => e.event)).toEqual([
        "message_start",
        "content_block_start",
        "ping",
        ...Array<string>(6).fill("content_block_delta"),
        "content_block_stop",
        "message_delta",
        "message_stop"
      ])
      for (const e of events) expect(JSON.parse(e.data).type).toBe(e.event)
      const start = JSON.parse(events[0]!.data)
      const isl = chatPromptTokens([{ role: "system", content: "Be brief." }, { role: "user", content: longText }]).length
      expect(start.message.id).toMatch(/^msg_/)
      expect(start.message.usage).toMatchObject({ input_tokens: isl, cache_read_input_tokens: 0 })
      const text = events.filter((e) => e.event === "content_block_delta").map((e) => JSON.parse(e.data).delta.text).join("")
      expect(encodeText(text).length).toBe(6)
      const delta = JSON.parse(events[events.length - 2]!.data)
      expect(delta.delta.stop_reason).toBe("end_turn")
      expect(delta.usage.output_tokens).toBe(6)
      // a repeat reads the prompt from cache; input_tokens excludes cache reads
      const second = parseSse((yield* post(`${sim.url}/v1/messages`, body)).text)
      const usage = JSON.parse(second[0]!.data).message.usage
      const cached = Math.floor((isl - 1) / 16) * 16
      expect(usage.cache_read_input_tokens).toBe(cached)
      expect(usage.input_tokens).toBe(isl - cached)
    }))

  it.live("tool_use blocks with input_json_delta; non-streaming body; 400 without max_tokens; 529 overloaded", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const tools = [{ name: "lookup", input_schema: { type: "object", properties: { q: { type: "string" } } } }]
      const streamed = parseSse((yield* post(`${sim.url}/v1/messages`, {
        model: "claude-sim",
        max_tokens: 200,
        stream: true,
        tools,
        tool_choice: { type: "tool", name: "lookup" },
        messages: [{ role: "user", content: "find it" }]
      })).text)
      const start = JSON.parse(streamed[1]!.data)
      expect(start.content_block).toMatchObject({ type: "tool_use", name: "lookup", input: {} })
      expect(start.content_block.id).toMatch(/^toolu_/)
      const json = streamed.filter((e) => e.event === "content_block_delta").map((e) => {
        const d = JSON.parse(e.data).delta
        expect(d.type).toBe("input_json_delta")
        return d.partial_json as string
      }).join("")
      expect(typeof JSON.parse(json).q).toBe("string")
      expect(JSON.parse(streamed[streamed.length - 2]!.data).delta.stop_reason).toBe("tool_use")

      const plain = yield* post(`${sim.url}/v1/messages`, {
        model: "claude-sim",
        max_tokens: 5,
        messages: [{ role: "user", content: "hi" }],
        sim_output_tokens: 50
      })
      const msg = JSON.parse(plain.text)
      expect(msg).toMatchObject({ type: "message", role: "assistant", stop_reason: "max_tokens" })
      expect(msg.usage.output_tokens).toBe(5)

      const missing = yield* post(`${sim.url}/v1/messages`, { model: "claude-sim", messages: [] })
      expect(missing.status).toBe(400)
      expect(JSON.parse(missing.text)).toMatchObject({ type: "error", error: { type: "invalid_request_error" } })

      yield* sim.setFaults({ errorRate: 1, errorStatus: 503 })
      const overloaded = yield* post(`${sim.url}/v1/messages`, { model: "claude-sim", max_tokens: 5, messages: [] })
      expect(overloaded.status).toBe(529)
      expect(JSON.parse(overloaded.text)).toMatchObject({ type: "error", error: { type: "overloaded_error" } })
      expect(overloaded.headers.get("request-id")).toMatch(/^req_/)
    }))
})

describe("simulator wire: Ollama", () => {
  const options: Simulator.SimulatorOptions = {
    profile: "llama-3.1-8b-bf16-a100",
    model: "llama3.1:8b",
    dialect: "ollama",
    timeScale: 50
  }

  it.live("streams NDJSON by default and ends with a done line carrying counts and ns durations", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const r = yield* post(`${sim.url}/api/chat`, {
        model: "llama3.1:8b",
        messages: [{ role: "user", content: "hello" }],
        options: { num_predict: 8 },
        sim_output_tokens: 20
      })
      expect(r.headers.get("content-type")).toBe("application/x-ndjson")
      const lines = parseNdjson(r.text)
      expect(lines.length).toBe(9)
      const done = lines[lines.length - 1]!
      expect(done).toMatchObject({ done: true, done_reason: "length", eval_count: 8, load_duration: 0 })
      expect(done["prompt_eval_count"]).toBe(chatPromptTokens([{ role: "user", content: "hello" }]).length)
      expect(done["total_duration"] as number).toBeGreaterThan(done["eval_duration"] as number)
      const text = lines.slice(0, -1).map((l) => (l["message"] as { content: string }).content).join("")
      expect(encodeText(text).length).toBe(8)
    }))

  it.live("/api/generate streams `response` lines; /api/embed returns deterministic vectors", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const lines = parseNdjson((yield* post(`${sim.url}/api/generate`, {
        model: "llama3.1:8b",
        prompt: "Why is the sky blue?",
        sim_output_tokens: 5
      })).text)
      expect(lines.length).toBe(6)
      expect(lines[5]).toMatchObject({ done: true, done_reason: "stop", eval_count: 5, response: "" })
      expect(encodeText(lines.slice(0, 5).map((l) => l["response"] as string).join("")).length).toBe(5)
      const unary = JSON.parse((yield* post(`${sim.url}/api/generate`, {
        model: "llama3.1:8b",
        prompt: "hi",
        raw: true,
        stream: false,
        options: { num_predict: 3 },
        sim_output_tokens: 9
      })).text)
      expect(unary).toMatchObject({ done: true, done_reason: "length", eval_count: 3, prompt_eval_count: 2 })
      const e = JSON.parse((yield* post(`${sim.url}/api/embed`, { model: "llama3.1:8b", input: ["a b", "c"] })).text)
      expect(e.embeddings.length).toBe(2)
      expect(e.embeddings[0].length).toBe(4096)
      expect(e.prompt_eval_count).toBe(encodeText("a b").length + encodeText("c").length + 2)
      const again = JSON.parse((yield* post(`${sim.url}/api/embed`, { model: "llama3.1:8b", input: "a b" })).text)
      expect(again.embeddings[0]).toEqual(e.embeddings[0])
    }))

  it.live("tool calls arrive whole with object arguments; /api/tags, /api/ps, GET /", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const r = yield* post(`${sim.url}/api/chat`, {
        model: "llama3.1:8b",
        stream: false,
        messages: [{ role: "user", content: "weather?" }],
        tools: [{ type: "function", function: { name: "weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }]
      })
      const body = JSON.parse(r.text)
      expect(body.done).toBe(true)
      expect(body.message.tool_calls[0].function.name).toBe("weather")
      expect(typeof body.message.tool_calls[0].function.arguments.city).toBe("string")
      const tags = JSON.parse((yield* get(`${sim.url}/api/tags`)).text)
      expect(tags.models[0].name).toBe("llama3.1:8b")
      const ps = JSON.parse((yield* get(`${sim.url}/api/ps`)).text)
      expect(ps.models[0]).toHaveProperty("size_vram")
      expect((yield* get(`${sim.url}/`)).text).toBe("Ollama is running")
      const missing = yield* post(`${sim.url}/api/chat`, { model: "other", messages: [] })
      expect(missing.status).toBe(404)
      expect(JSON.parse(missing.text).error).toContain("not found")
    }))
})

describe("simulator wire: metrics and SGLang", () => {
  it.live("vLLM mode exposes vLLM's metric names labelled with model_name", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model: "m8", timeScale: 50 })
      yield* post(`${sim.url}/v1/chat/completions`, { model: "m8", messages: [{ role: "user", content: "hi" }], sim_output_tokens: 3 })
      const text = (yield* get(`${sim.url}/metrics`)).text
      for (const name of [
        "vllm:num_requests_running{engine=\"0\",model_name=\"m8\"}",
        "vllm:num_requests_waiting{",
        "vllm:kv_cache_usage_perc{",
        "vllm:prefix_cache_queries_total{",
        "vllm:prefix_cache_hits_total{",
        "vllm:num_preemptions_total{",
        "vllm:time_to_first_token_seconds_bucket{",
        "vllm:inter_token_latency_seconds_count{",
        "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"m8\"} 1.0",
        "vllm:cache_config_info{block_size=\"16\""
      ]) expect(text).toContain(name)
      expect(text).toContain("num_gpu_blocks=\"53750\"")
      expect(text).toContain("vllm:generation_tokens_total{engine=\"0\",model_name=\"m8\"} 3.0")
    }))

  it.live("SGLang mode: SGLang names, OpenAI routes still work, /abort_request ends a stream by rid", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model: "sg", dialect: "sglang", timeScale: 5 })
      const streaming = yield* Effect.forkChild(post(`${sim.url}/v1/chat/completions`, {
        model: "sg",
        rid: "req-42",
        stream: true,
        messages: [{ role: "user", content: "long answer please" }],
        sim_output_tokens: 2000,
        max_tokens: 2000
      }))
      yield* waitForStats(sim, (s) => s.running === 1)
      const abort = yield* post(`${sim.url}/abort_request`, { rid: "req-42" })
      expect(JSON.parse(abort.text)).toEqual({ aborted: 1 })
      const r = yield* Fiber.join(streaming)
      const events = parseSse(r.text)
      expect(events[events.length - 1]!.data).toBe("[DONE]")
      expect(JSON.parse(events[events.length - 2]!.data).choices[0].finish_reason).toBe("abort")
      const stats = yield* sim.stats
      expect(stats.running).toBe(0)
      expect(stats.aborted).toBe(1)
      const text = (yield* get(`${sim.url}/metrics`)).text
      for (const name of ["sglang:num_running_reqs{model_name=\"sg\"}", "sglang:num_queue_reqs{", "sglang:token_usage{",
        "sglang:cache_hit_rate{", "sglang:time_to_first_token_seconds_bucket{", "sglang:cache_config_info{"]) {
        expect(text).toContain(name)
      }
      expect(text).not.toContain("vllm:")
    }))
})

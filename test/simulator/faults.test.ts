/**
 * Fault injection, each mode observed by a client, plus abort-on-disconnect and the admin endpoint.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { request } from "node:http"
import OpenAI from "openai"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { get, openaiClient, parseNdjson, parseSse, post, put, waitForStats } from "./helpers.ts"

const base: Simulator.SimulatorOptions = { profile: "llama-3.1-8b-fp8-h100", model: "m", timeScale: 50 }
const chat = (extra: Record<string, unknown> = {}) => ({
  model: "m",
  messages: [{ role: "user" as const, content: "tell me more" }],
  sim_output_tokens: 10,
  ...extra
})

/** Reads a streaming response, recording when each read arrived. */
const timedStream = (url: string, body: unknown) =>
  Effect.promise(async () => {
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    const reads: Array<{ readonly t: number; readonly text: string }> = []
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      reads.push({ t: performance.now(), text: decoder.decode(value) })
    }
    return { status: res.status, reads, text: reads.map((r) => r.text).join("") }
  })

/** Fetches and reports how the body ended: "ok" or the error's name. */
const fetchOutcome = (url: string, body: unknown) =>
  Effect.promise(async () => {
    try {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
      const text = await res.text()
      return { outcome: "ok", text }
    } catch (e) {
      return { outcome: e instanceof Error ? e.name : "error", text: "" }
    }
  })

describe("simulator faults: before the first token", () => {
  it.live("errorRate with 429 (retry-after), 503 and 500, in vLLM's envelope", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ ...base, faults: { errorRate: 1, errorStatus: 429, retryAfterSeconds: 3 } })
      const client = openaiClient(sim)
      const e429 = yield* Effect.promise(() => client.chat.completions.create(chat() as OpenAI.ChatCompletionCreateParamsNonStreaming).then(() => undefined, (e: unknown) => e))
      assert.instanceOf(e429, OpenAI.RateLimitError)
      if (e429 instanceof OpenAI.RateLimitError) expect(e429.headers.get("retry-after")).toBe("3")
      yield* sim.setFaults({ errorStatus: 503 })
      const r503 = yield* post(`${sim.url}/v1/chat/completions`, chat({ stream: true }))
      expect(r503.status).toBe(503)
      expect(JSON.parse(r503.text).error).toMatchObject({ type: "ServiceUnavailableError", code: 503 })
      yield* sim.setFaults({ errorStatus: 500 })
      const e500 = yield* Effect.promise(() => client.chat.completions.create(chat() as OpenAI.ChatCompletionCreateParamsNonStreaming).then(() => undefined, (e: unknown) => e))
      assert.instanceOf(e500, OpenAI.InternalServerError)
      yield* sim.setFaults({ errorRate: 0 })
      const ok = yield* post(`${sim.url}/v1/chat/completions`, chat())
      expect(ok.status).toBe(200)
    }))

  it.live("fault draws are deterministic under the seed", () =>
    Effect.gen(function*() {
      const statuses = (seed: number) =>
        Effect.gen(function*() {
          const sim = yield* Simulator.start({ ...base, seed, faults: { errorRate: 0.5 } })
          const out: Array<number> = []
          for (let i = 0; i < 16; i++) out.push((yield* post(`${sim.url}/v1/chat/completions`, chat({ sim_output_tokens: 1 }))).status)
          return out
        })
      const a = yield* statuses(7)
      expect(yield* statuses(7)).toEqual(a)
      expect(a).toContain(200)
      expect(a).toContain(503)
    }))

  it.live("cold start: 503 (and /health 503) while loading, then serving", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ ...base, faults: { coldStartSeconds: 10 } }) // 10 s simulated = 200 ms
      expect((yield* get(`${sim.url}/health`)).status).toBe(503)
      const r = yield* post(`${sim.url}/v1/chat/completions`, chat())
      expect(r.status).toBe(503)
      expect(r.headers.get("retry-after")).not.toBeNull()
      expect((yield* sim.stats).loading).toBe(true)
      yield* Effect.sleep(300)
      expect((yield* get(`${sim.url}/health`)).status).toBe(200)
      expect((yield* post(`${sim.url}/v1/chat/completions`, chat())).status).toBe(200)
    }))
})

describe("simulator faults: after the first token", () => {
  it.live("mid-stream error: vLLM data error event (SDK raises), Anthropic event: error, Ollama error line", () =>
    Effect.gen(function*() {
      const faults = { midStreamErrorRate: 1, midStreamAfterTokens: 3 }
      const sim = yield* Simulator.start({ ...base, faults })
      const seen = yield* Effect.promise(async () => {
        const tokens: Array<string> = []
        try {
          const stream = await openaiClient(sim).chat.completions.create({ ...chat(), stream: true } as OpenAI.ChatCompletionCreateParamsStreaming)
          for await (const c of stream) if (c.choices[0]?.delta.content) tokens.push(c.choices[0].delta.content)
          return { tokens, error: undefined }
        } catch (e) {
          return { tokens, error: e }
        }
      })
      assert.instanceOf(seen.error, OpenAI.APIError)
      expect(seen.tokens.length).toBe(3)
      expect((yield* sim.stats).failed).toBe(1)

      const anth = yield* Simulator.start({ ...base, model: "c", dialect: "anthropic", faults })
      const events = parseSse((yield* post(`${anth.url}/v1/messages`, { ...chat({ model: "c", stream: true }), max_tokens: 50 })).text)
      expect(events[events.length - 1]!.event).toBe("error")
      expect(JSON.parse(events[events.length - 1]!.data)).toEqual({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } })

      const ollama = yield* Simulator.start({ ...base, model: "o", dialect: "ollama", faults })
      const lines = parseNdjson((yield* post(`${ollama.url}/api/chat`, chat({ model: "o" }))).text)
      expect(lines.length).toBe(4)
      expect(typeof lines[3]!["error"]).toBe("string")
    }))

  it.live("stall: no bytes for stallSeconds, then the rest of the stream", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ ...base, faults: { stallRate: 1, stallSeconds: 10, stallAfterTokens: 2 } }) // 200 ms wall
      const r = yield* timedStream(`${sim.url}/v1/chat/completions`, chat({ stream: true }))
      let maxGap = 0
      for (let i = 1; i < r.reads.length; i++) maxGap = Math.max(maxGap, r.reads[i]!.t - r.reads[i - 1]!.t)
      expect(maxGap).toBeGreaterThan(180)
      expect(r.text.endsWith("data: [DONE]\n\n")).toBe(true)
    }))

  it.live("malformed chunk: one data line is not JSON", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ ...base, faults: { malformedRate: 1, malformedAfterTokens: 1 } })
      const events = parseSse((yield* post(`${sim.url}/v1/chat/completions`, chat({ stream: true }))).text)
      const bad = events.filter((e) => e.data !== "[DONE]" && (() => {
        try {
          JSON.parse(e.data)
          return false
        } catch {
          return true
        }
      })())
      expect(bad.length).toBe(1)
    }))

  it.live("degenerate output: a repetition loop until max_tokens", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ ...base, faults: { degenerateRate: 1 } })
      const r = JSON.parse((yield* post(`${sim.url}/v1/chat/completions`, chat({ max_tokens: 40 }))).text)
      expect(r.choices[0].finish_reason).toBe("length")
      expect(r.usage.completion_tokens).toBe(40)
      expect(r.choices[0].message.content).toMatch(/^The answer is the same answer\. The answer is the same answer\./)
    }))

  it.live("OOM: every running sequence fails with an error event; the engine keeps serving", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ ...base, timeScale: 5 })
      const long = chat({ stream: true, sim_output_tokens: 3000, max_tokens: 3000 })
      const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(post(`${sim.url}/v1/chat/completions`, long)))
      yield* waitForStats(sim, (s) => s.running === 3)
      yield* sim.setFaults({ oomRate: 1 })
      const results = yield* Effect.forEach(fibers, Fiber.join)
      yield* sim.setFaults({ oomRate: 0 })
      for (const r of results) expect(parseSse(r.text).some((e) => e.data.includes("CUDA out of memory"))).toBe(true)
      const stats = yield* sim.stats
      expect(stats.failed).toBe(3)
      expect(stats.running).toBe(0)
      expect(stats.kvUsage).toBe(0)
      expect((yield* post(`${sim.url}/v1/chat/completions`, chat())).status).toBe(200)
    }))

  it.live("connection reset mid-stream, and crash (reset / exit) through the admin endpoint", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ ...base, faults: { resetRate: 1, resetAfterTokens: 2 } })
      const reset = yield* fetchOutcome(`${sim.url}/v1/chat/completions`, chat({ stream: true }))
      expect(reset.outcome).not.toBe("ok")
      expect((yield* waitForStats(sim, (s) => s.running === 0)).aborted).toBe(1)
      yield* sim.setFaults({ resetRate: 0 })

      const sim2 = yield* Simulator.start({ ...base, timeScale: 5 })
      const inflight = yield* Effect.forkChild(fetchOutcome(`${sim2.url}/v1/chat/completions`, chat({ stream: true, sim_output_tokens: 3000, max_tokens: 3000 })))
      yield* waitForStats(sim2, (s) => s.running === 1)
      expect((yield* post(`${sim2.url}/admin/crash`, { mode: "reset" })).status).toBe(202)
      expect((yield* Fiber.join(inflight)).outcome).not.toBe("ok")
      expect((yield* waitForStats(sim2, (s) => s.running === 0)).running).toBe(0)
      expect((yield* post(`${sim2.url}/v1/chat/completions`, chat())).status).toBe(200) // still serving

      yield* post(`${sim2.url}/admin/crash`, { mode: "exit" })
      yield* Effect.sleep(50)
      expect((yield* fetchOutcome(`${sim2.url}/v1/chat/completions`, chat())).outcome).not.toBe("ok") // refused
    }))

  it.live("slow multiplies step time (simulated e2e latency ×4)", () =>
    Effect.gen(function*() {
      const e2eSum = (slow: number) =>
        Effect.gen(function*() {
          const sim = yield* Simulator.start({ ...base, jitter: 0, faults: { slow } })
          yield* post(`${sim.url}/v1/chat/completions`, chat({ sim_output_tokens: 300, max_tokens: 300 }))
          const m = (yield* get(`${sim.url}/metrics`)).text.match(/vllm:e2e_request_latency_seconds_sum\{[^}]*\} ([0-9.e+-]+)/)
          return Number(m![1])
        })
      const normal = yield* e2eSum(1)
      const slow = yield* e2eSum(4)
      expect(normal).toBeGreaterThan(1.3) // 300 decode steps of ≈4.5 ms
      expect(slow / normal).toBeGreaterThan(3.3)
      expect(slow / normal).toBeLessThan(4.7)
    }))
})

describe("simulator: client disconnect and admin", () => {
  it.live("a destroyed client socket frees the sequence (running back to 0, blocks released) promptly", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ ...base, timeScale: 5 })
      const url = new URL(`${sim.url}/v1/chat/completions`)
      const long = { sim_output_tokens: 3000, max_tokens: 3000 }
      // streaming: hang up after the first bytes
      yield* Effect.callback<void>((resume) => {
        const req = request(
          { host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { "content-type": "application/json" } },
          (res) => {
            res.once("data", () => {
              req.destroy()
              resume(Effect.void)
            })
          }
        )
        req.end(JSON.stringify(chat({ stream: true, ...long })))
      })
      const t0 = performance.now()
      const s = yield* waitForStats(sim, (x) => x.running === 0 && x.aborted === 1, 2000)
      expect(s.running).toBe(0)
      expect(s.aborted).toBe(1)
      expect(s.kvUsage).toBe(0)
      expect(performance.now() - t0).toBeLessThan(500)
      // non-streaming: hang up while it is running (nothing has been written yet)
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { "content-type": "application/json" } })
      req.on("error", () => undefined)
      req.end(JSON.stringify(chat(long)))
      yield* waitForStats(sim, (x) => x.running === 1)
      req.destroy()
      const s2 = yield* waitForStats(sim, (x) => x.running === 0 && x.aborted === 2, 2000)
      expect(s2.aborted).toBe(2)
      expect(s2.kvUsage).toBe(0)
      const metrics = (yield* get(`${sim.url}/metrics`)).text
      expect(metrics).toContain(`vllm:request_success_total{engine="0",finished_reason="abort",model_name="m"} 2.0`)
    }))

  it.live("GET/PUT /admin/faults round-trips and rejects unknown keys or bad values", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start(base)
      const initial = JSON.parse((yield* get(`${sim.url}/admin/faults`)).text)
      expect(initial).toMatchObject({ errorRate: 0, slow: 1 })
      const updated = yield* put(`${sim.url}/admin/faults`, { errorRate: 0.25, errorStatus: 429 })
      expect(JSON.parse(updated.text)).toMatchObject({ errorRate: 0.25, errorStatus: 429, slow: 1 })
      expect((yield* put(`${sim.url}/admin/faults`, { errorRat: 1 })).status).toBe(400)
      expect((yield* put(`${sim.url}/admin/faults`, { errorRate: 2 })).status).toBe(400)
      expect((yield* put(`${sim.url}/admin/faults`, { errorStatus: 418 })).status).toBe(400)
      const stats = JSON.parse((yield* get(`${sim.url}/admin/stats`)).text)
      expect(stats).toMatchObject({ running: 0, waiting: 0, totalBlocks: 53750 })
    }))
})

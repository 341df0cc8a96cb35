/**
 * The simulator's embedding batches are bounded: an absurd batch is refused with a 400 in the engine's own
 * dialect (issue 9, item 2: 50,000 inputs once made `JSON.stringify` throw `RangeError: Invalid string
 * length` from a timer and killed the process), and a large legitimate one is written vector by vector,
 * never as one string.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { describe, expect } from "vitest"
import { MAX_EMBEDDING_INPUTS } from "../../src/simulator/http/embeddings.ts"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { post } from "./helpers.ts"

const start = (dialect: Simulator.Dialect) =>
  Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model: "m", dialect, timeScale: 1000 })

describe("embedding batches in the simulator", () => {
  it.live("refuses more than the input limit with a 400 in the OpenAI envelope, and keeps serving", () =>
    Effect.gen(function*() {
      const sim = yield* start("openai")
      const huge = yield* post(`${sim.url}/v1/embeddings`, { model: "m", input: Array.from({ length: 50_000 }, (_, i) => `t${i}`) })
      expect(huge.status).toBe(400)
      const body = JSON.parse(huge.text) as { error: { message: string; type: string } }
      expect(body.error.type).toBe("BadRequestError")
      expect(body.error.message).toContain("50000 inputs")
      expect(body.error.message).toContain(String(MAX_EMBEDDING_INPUTS))
      const ok = yield* post(`${sim.url}/v1/embeddings`, { model: "m", input: ["still", "here"], dimensions: 8 })
      expect(ok.status).toBe(200)
      expect((JSON.parse(ok.text) as { data: Array<unknown> }).data).toHaveLength(2)
    }).pipe(Effect.scoped))

  it.live("refuses an oversized batch in Ollama's error shape", () =>
    Effect.gen(function*() {
      const sim = yield* start("ollama")
      const res = yield* post(`${sim.url}/api/embed`, { model: "m", input: Array.from({ length: MAX_EMBEDDING_INPUTS + 1 }, () => "x") })
      expect(res.status).toBe(400)
      expect(JSON.parse(res.text)).toEqual({ error: expect.stringContaining(`${MAX_EMBEDDING_INPUTS + 1} inputs`) })
    }).pipe(Effect.scoped))

  it.live("answers a batch at the limit, in order, float and base64", () =>
    Effect.gen(function*() {
      const sim = yield* start("openai")
      const input = Array.from({ length: MAX_EMBEDDING_INPUTS }, (_, i) => `input number ${i}`)
      const res = yield* post(`${sim.url}/v1/embeddings`, { model: "m", input, dimensions: 4 })
      expect(res.status).toBe(200)
      const body = JSON.parse(res.text) as {
        object: string
        data: Array<{ index: number; embedding: Array<number> }>
        usage: { prompt_tokens: number }
      }
      expect(body.object).toBe("list")
      expect(body.data.map((d) => d.index)).toEqual(input.map((_, i) => i))
      expect(body.data.every((d) => d.embedding.length === 4)).toBe(true)
      expect(body.usage.prompt_tokens).toBeGreaterThan(MAX_EMBEDDING_INPUTS)
      const b64 = yield* post(`${sim.url}/v1/embeddings`, { model: "m", input: input.slice(0, 3), dimensions: 4, encoding_format: "base64" })
      const decoded = (JSON.parse(b64.text) as { data: Array<{ embedding: string }> }).data.map((d) =>
        Array.from(new Float32Array(new Uint8Array(Buffer.from(d.embedding, "base64")).buffer))
      )
      expect(decoded[1]!.map((x) => x.toFixed(5))).toEqual(body.data[1]!.embedding.map((x) => x.toFixed(5)))
    }).pipe(Effect.scoped))

  it.live("writes a large answer vector by vector: the heap does not hold the whole body", () =>
    Effect.gen(function*() {
      const sim = yield* start("openai")
      // 1,024 × 4,096 floats: ~90 MB of JSON. Built as one string it would sit on this heap whole.
      const input = Array.from({ length: 1024 }, (_, i) => `vector ${i}`)
      global.gc?.()
      const before = process.memoryUsage().heapUsed
      let peak = before
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().heapUsed)
      }, 5)
      const bytes = yield* Effect.promise(async () => {
        const res = await fetch(`${sim.url}/v1/embeddings`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "m", input })
        })
        let n = 0
        for await (const chunk of res.body!) n += (chunk as Uint8Array).length
        return n
      }).pipe(Effect.ensuring(Effect.sync(() => clearInterval(sampler))))
      expect(bytes).toBeGreaterThan(60_000_000)
      expect(peak - before).toBeLessThan(bytes / 2)
    }).pipe(Effect.scoped), 60_000)
})

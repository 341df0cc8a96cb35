/**
 * The in-process API: start / startFleet / the Layer form, option validation, and the real-time driver keeping
 * to the cost model on the wall clock.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import type OpenAI from "openai"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { PROFILES } from "../../src/profiles/Profiles.ts"
import { get, openaiClient } from "./helpers.ts"

describe("Simulator API", () => {
  it.live("startFleet starts distinct instances; the Layer form provides a running simulator", () =>
    Effect.gen(function*() {
      const fleet = yield* Simulator.startFleet([
        { profile: "llama-3.1-8b-fp8-h100", model: "a", timeScale: 50 },
        { profile: "llama-3.3-70b-fp8-2xh100", model: "b", timeScale: 50, dialect: "sglang" },
        { profile: "llama-3.1-8b-bf16-a100", model: "c", timeScale: 50, dialect: "ollama" }
      ])
      expect(new Set(fleet.map((s) => s.url)).size).toBe(3)
      for (const s of fleet) expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect((yield* get(`${fleet[1]!.url}/metrics`)).text).toContain("sglang:cache_config_info")

      const viaLayer = yield* Effect.gen(function*() {
        const sim = yield* Simulator.Simulator
        return (yield* get(`${sim.url}/v1/models`)).text
      }).pipe(Effect.provide(Simulator.Simulator.layer({ profile: "llama-3.1-8b-fp8-h100", model: "layered", timeScale: 50 })))
      expect(JSON.parse(viaLayer).data[0].id).toBe("layered")
    }))

  it.live("rejects bad options with a typed SimulatorError", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.exit(Simulator.start({ profile: "h200-dreams" as Simulator.ProfileName, model: "x" }))
      assert.isTrue(Exit.isFailure(bad))
      const err = yield* Effect.flip(Simulator.start({ profile: "h200-dreams" as Simulator.ProfileName, model: "x" }))
      expect(err.reason._tag).toBe("UnknownProfile")
      const scale = yield* Effect.flip(Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model: "x", timeScale: 0 }))
      expect(scale.reason._tag).toBe("InvalidOptions")
      const first = yield* Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model: "x" })
      const port = Number(new URL(first.url).port)
      const clash = yield* Effect.flip(Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model: "x", port }))
      expect(clash.reason._tag).toBe("ListenFailed")
      expect(clash.message).toContain(String(port))
    }))

  it.live("the real-time driver keeps to the cost model on the wall clock (time scale 1)", () =>
    Effect.gen(function*() {
      const profile = PROFILES["llama-3.1-8b-fp8-h100"]
      const sim = yield* Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model: "m", timeScale: 1, jitter: 0 })
      const tokens = 80
      const times = yield* Effect.promise(async () => {
        const stream = await openaiClient(sim).chat.completions.create({
          model: "m",
          messages: [{ role: "user", content: "wall clock check" }],
          stream: true,
          max_tokens: tokens,
          sim_output_tokens: tokens
        } as OpenAI.ChatCompletionCreateParamsStreaming)
        const arrivals: Array<number> = []
        for await (const c of stream) if (c.choices[0]?.delta.content) arrivals.push(performance.now())
        return arrivals
      })
      expect(times.length).toBe(tokens)
      const meanGap = (times[times.length - 1]! - times[0]!) / (tokens - 1)
      const decodeStep = profile.c0Ms + profile.decodeMsPerSeq + profile.kvMsPerContextToken * 60
      expect(meanGap).toBeGreaterThan(decodeStep * 0.85)
      expect(meanGap).toBeLessThan(decodeStep * 1.3)
      // Accumulated lag behind the wall clock: tens of ms when another test file shares the
      // two cores; a driver that slept by the step model instead of a deadline drifts by seconds.
      expect((yield* sim.stats).lagSeconds).toBeLessThan(0.25)
    }))
})

/**
 * Calibration against published figures, in virtual time (no sleeping; the whole file runs in about a second).
 *
 * 70B FP8 on 2×H100 — NIM 1.8.0, ISL 5000 / OSL 500, closed loop (backends.md §5.3):
 *   c=1: TTFT 407 ms ±15%, ITL 18.6 ms ±15%;  c=100: ITL 92.9 ms ±20%, throughput ≈ 920 tok/s ±20%.
 * 8B FP8 on 1×H100 — TRT-LLM max-throughput table (§5.3) and NIM's single-stream ITL:
 *   1000/1000 → 15,220 output tok/s ±20%;  2048/128 → 3,450 output tok/s ±20% (closed loop, c = 512);
 *   c=1 ITL 4.63 ms ±15%.
 * ITL is NIM's per-request mean gap (e2e − TTFT)/(out − 1). Prompts are distinct (no prefix-cache hits).
 */
import { describe, expect, it } from "vitest"
import { runClosedLoop } from "../../src/simulator/engine/virtual.ts"
import { PROFILES } from "../../src/profiles/Profiles.ts"

const distinctPrompts = (isl: number, osl: number) => (i: number) => ({
  prompt: Uint32Array.from({ length: isl }, (_, k) => (i * 1_000_003 + k * 7) % 120_000),
  outputTokens: osl,
  finish: "length" as const
})

const within = (measured: number, target: number, tolerance: number) => {
  expect(measured).toBeGreaterThan(target * (1 - tolerance))
  expect(measured).toBeLessThan(target * (1 + tolerance))
}

describe("calibration: Llama-3.3-70B FP8, 2×H100 (NIM, ISL 5000 / OSL 500)", () => {
  const profile = PROFILES["llama-3.3-70b-fp8-2xh100"]

  it("concurrency 1: TTFT ≈ 407 ms and ITL ≈ 18.6 ms (±15%)", () => {
    const r = runClosedLoop(profile, {
      concurrency: 1,
      warmupMs: 10_000,
      measureMs: 60_000,
      makeRequest: distinctPrompts(5000, 500),
      jitter: 0.05,
      seed: 1
    })
    expect(r.records.length).toBeGreaterThan(3)
    within(r.meanTtftMs, 407, 0.15)
    within(r.meanItlMs, 18.6, 0.15)
  })

  it("concurrency 100: ITL ≈ 93 ms (±20%), throughput saturating near 920 tok/s (±20%)", () => {
    const r = runClosedLoop(profile, {
      concurrency: 100,
      warmupMs: 150_000,
      measureMs: 300_000,
      makeRequest: distinctPrompts(5000, 500),
      jitter: 0.05,
      seed: 1
    })
    expect(r.records.length).toBeGreaterThan(100)
    within(r.meanItlMs, 92.9, 0.2)
    within(r.outputTokensPerSecond, 920, 0.2)
    // KV-bound: fewer than 100 sequences fit, the rest queue (NIM's TTFT jumps to 8 s at c=100)
    expect(r.meanRunning).toBeLessThan(100)
    expect(r.meanTtftMs).toBeGreaterThan(2000)
  })
})

describe("calibration: Llama-3.1-8B FP8, 1×H100", () => {
  const profile = PROFILES["llama-3.1-8b-fp8-h100"]

  it("1000/1000 at concurrency 512: ≈ 15,220 output tok/s (TRT-LLM, ±20%)", () => {
    const r = runClosedLoop(profile, {
      concurrency: 512,
      warmupMs: 60_000,
      measureMs: 60_000,
      makeRequest: distinctPrompts(1000, 1000),
      jitter: 0.05,
      seed: 1
    })
    within(r.outputTokensPerSecond, 15_220, 0.2)
  })

  it("2048/128 at concurrency 512: ≈ 3,450 output tok/s (TRT-LLM, prefill-bound, ±20%)", () => {
    const r = runClosedLoop(profile, {
      concurrency: 512,
      warmupMs: 30_000,
      measureMs: 60_000,
      makeRequest: distinctPrompts(2048, 128),
      jitter: 0.05,
      seed: 1
    })
    within(r.outputTokensPerSecond, 3_450, 0.2)
  })

  it("concurrency 1: ITL ≈ 4.63 ms (NIM, ±15%)", () => {
    const r = runClosedLoop(profile, {
      concurrency: 1,
      warmupMs: 5_000,
      measureMs: 30_000,
      makeRequest: distinctPrompts(1000, 500),
      jitter: 0.05,
      seed: 1
    })
    within(r.meanItlMs, 4.63, 0.15)
  })
})

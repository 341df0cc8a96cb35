/**
 * Fixtures for planner tests: plans from YAML through the real config loader, and small synthetic traces.
 */
import { Effect } from "effect"
import * as Load from "../../src/config/Load.ts"
import type { Plan } from "../../src/config/Plan.ts"
import type { Arrival } from "../../src/planner/Trace.ts"

/** A plan of `n` simulated 8B FP8 H100 engines (metrics scraped like the routing bench's). */
export const fleet = (n: number, extra = "", maxConcurrency = 4096, modelFields = ""): Plan =>
  Effect.runSync(Load.parse(
    `models:
  - { name: m, default_max_tokens: 256${modelFields} }
backends:
${Array.from({ length: n }, (_, i) => `  - { id: e${i}, simulate: { profile: llama-3.1-8b-fp8-h100 }, models: [m], gpu: H100, quantization: fp8, metrics: vllm, max_concurrency: ${maxConcurrency} }`).join("\n")}
${extra}`,
    "test",
    {}
  ))

/** `count` requests `gapMs` apart, `prompt` unique tokens (plus an optional shared prefix per group). */
export const trace = (
  count: number,
  gapMs: number,
  shape: (i: number) => { prompt: number; output: number; prefix?: { key: string; tokens: number } }
): Array<Arrival> =>
  Array.from({ length: count }, (_, i) => {
    const s = shape(i)
    return {
      atMs: i * gapMs,
      tenant: "default",
      model: "m",
      segments: [...(s.prefix === undefined ? [] : [s.prefix]), { key: `q${i}`, tokens: s.prompt }],
      outputTokens: s.output,
      maxTokens: 256
    }
  })

/**
 * `tsx bench/planner/stepmodel.ts`: the check issue 15 asks for before trusting the planner's tables:
 * the simulator's step-time model (`c0 + c_pf·P + c_dec·D + c_kv·Σctx`, no attention term that grows
 * faster than the context) against published max-throughput figures at the two ends it was not fitted
 * on: long contexts (5K and 20K-token prompts) and very short sequences (128 in / 128 out, 128 / 2048).
 *
 * Published (backends.md §5.3, TRT-LLM max-throughput, FP8, output tokens/s): Llama-3.1-8B on 1×H100
 * and Llama-3.3-70B on 2×H100 (TP2). The simulator runs a closed loop in virtual time (runClosedLoop)
 * at high concurrency with distinct prompts (no prefix hits), as the calibration test does; the profiles
 * were fitted to 1000/1000 and 2048/128 (8B) and to NIM's 5000/500 latency curve (70B).
 *
 * Writes bench/planner/results/stepmodel.md. Must never: read a clock for anything but its own wall time.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { PROFILES, type ProfileName } from "../../src/profiles/Profiles.ts"
import { runClosedLoop } from "../../src/simulator/engine/virtual.ts"

const distinctPrompts = (isl: number, osl: number) => (i: number) => ({
  prompt: Uint32Array.from({ length: isl }, (_, k) => (i * 1_000_003 + k * 7) % 120_000),
  outputTokens: osl,
  finish: "length" as const
})

interface Point {
  readonly profile: ProfileName
  readonly isl: number
  readonly osl: number
  /** TRT-LLM max-throughput, output tok/s (backends.md §5.3). */
  readonly published: number
  readonly kind: "fitted" | "long context" | "short"
}

const POINTS: ReadonlyArray<Point> = [
  { profile: "llama-3.1-8b-fp8-h100", isl: 128, osl: 128, published: 28_312, kind: "short" },
  { profile: "llama-3.1-8b-fp8-h100", isl: 128, osl: 2048, published: 22_714, kind: "short" },
  { profile: "llama-3.1-8b-fp8-h100", isl: 1000, osl: 1000, published: 15_220, kind: "fitted" },
  { profile: "llama-3.1-8b-fp8-h100", isl: 2048, osl: 128, published: 3_450, kind: "fitted" },
  { profile: "llama-3.1-8b-fp8-h100", isl: 5000, osl: 500, published: 3_459, kind: "long context" },
  { profile: "llama-3.1-8b-fp8-h100", isl: 20_000, osl: 2000, published: 1_351, kind: "long context" },
  { profile: "llama-3.3-70b-fp8-2xh100", isl: 128, osl: 128, published: 6_378, kind: "short" },
  { profile: "llama-3.3-70b-fp8-2xh100", isl: 128, osl: 2048, published: 6_651, kind: "short" },
  { profile: "llama-3.3-70b-fp8-2xh100", isl: 1000, osl: 1000, published: 4_205, kind: "fitted" },
  { profile: "llama-3.3-70b-fp8-2xh100", isl: 2048, osl: 128, published: 762, kind: "fitted" },
  { profile: "llama-3.3-70b-fp8-2xh100", isl: 5000, osl: 500, published: 898, kind: "long context" },
  { profile: "llama-3.3-70b-fp8-2xh100", isl: 20_000, osl: 2000, published: 437, kind: "long context" }
]

const lines = [
  "| profile | ISL / OSL | kind | published tok/s | simulated tok/s | ratio | mean running | mean ITL | what-if: c_kv at HBM read time | ratio |",
  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
]
const started = performance.now()
for (const p of POINTS) {
  const profile = PROFILES[p.profile]
  // Enough clients to fill the engine (KV or max_num_seqs binds first), a warm-up of a few request lifetimes.
  const fit = Math.floor((profile.numGpuBlocks * profile.blockSize) / (p.isl + p.osl))
  const concurrency = Math.min(profile.maxNumSeqs, Math.max(8, Math.ceil(fit * 1.25)))
  const perRequestMs = p.osl * 120 + p.isl * profile.prefillMsPerToken * 8
  const loop = (kvMsPerContextToken: number) =>
    runClosedLoop({ ...profile, kvMsPerContextToken }, {
      concurrency,
      warmupMs: Math.max(20_000, 2 * perRequestMs),
      measureMs: Math.max(60_000, 4 * perRequestMs),
      makeRequest: distinctPrompts(p.isl, p.osl),
      jitter: 0.05,
      seed: 1
    })
  const r = loop(profile.kvMsPerContextToken)
  // The KV bytes of one context token read once per step at the engine's HBM bandwidth (3.35 TB/s per H100).
  const hbm = (profile.kvBytesPerToken / (3.35e12 * profile.gpuCount)) * 1000
  const w = loop(hbm)
  const ratio = r.outputTokensPerSecond / p.published
  lines.push(
    `| ${p.profile} | ${p.isl} / ${p.osl} | ${p.kind} | ${p.published.toLocaleString("en-US")} | ${r.outputTokensPerSecond.toFixed(0)} | ` +
      `${ratio.toFixed(2)} | ${r.meanRunning.toFixed(0)} | ${r.meanItlMs.toFixed(1)} ms | ${w.outputTokensPerSecond.toFixed(0)} (c_kv ${(hbm * 1e6).toFixed(1)} ns) | ` +
      `${(w.outputTokensPerSecond / p.published).toFixed(2)} |`
  )
  console.error(`${p.profile} ${p.isl}/${p.osl}: ${r.outputTokensPerSecond.toFixed(0)} tok/s (published ${p.published}), c=${concurrency}`)
}
lines.push("", `Closed loop, virtual time, jitter 0.05, distinct prompts; wall time ${((performance.now() - started) / 1000).toFixed(0)} s.`)
mkdirSync("bench/planner/results", { recursive: true })
writeFileSync("bench/planner/results/stepmodel.md", lines.join("\n") + "\n")
console.log(lines.join("\n"))

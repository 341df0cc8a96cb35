/**
 * `tsx bench/planner/fleet16.ts [--loads 4,8,12] [--workloads sharegpt,bursty] [--policies …] [--seed 1]`:
 * the routing table at 16 engines, produced by the virtual-time planner (issue 15): the routing bench's
 * heterogeneous fleet scaled up (6 × H100 and 5 × A100-80GB on the 8B model, 5 × 2×H100 on the 70B: the
 * 6-engine fleet's mix), the bench's gateway settings, workloads and phases, at loads the real-time
 * bench cannot reach on this host (load L = L × the workload's base rate).
 *
 * Writes bench/planner/results/fleet16.{md,json}. Must never: start engines or a gateway.
 */
import { Effect } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import * as Load from "../../src/config/Load.ts"
import type { Plan } from "../../src/config/Plan.ts"
import type { Report } from "../../src/planner/Planner.ts"
import { type Engine, MODEL_70B, MODEL_8B } from "../routing/fleet.ts"
import { WORKLOADS, type WorkloadName } from "../routing/workloads.ts"
import * as Workloads from "./workloads.ts"

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

const engines = (count: number, id: string, e: Omit<Engine, "id">): Array<Engine> =>
  Array.from({ length: count }, (_, i) => ({ ...e, id: `${id}-${i + 1}` }))

export const ENGINES_16: ReadonlyArray<Engine> = [
  ...engines(6, "h100-8b", { model: MODEL_8B, profile: "llama-3.1-8b-bf16-h100", gpu: "H100", quantization: "bf16", cost: 1 }),
  ...engines(5, "a100-8b", { model: MODEL_8B, profile: "llama-3.1-8b-bf16-a100", gpu: "A100-80GB", quantization: "bf16", cost: 0.6 }),
  ...engines(5, "h100x2-70b", { model: MODEL_70B, profile: "llama-3.3-70b-fp8-2xh100", gpu: "2xH100", quantization: "fp8", cost: 2 })
]

/** The routing bench's gateway config (bench/routing/fleet.ts gatewayYaml), for any engine list. */
export const fleetPlan = (list: ReadonlyArray<Engine>, seed: number): Plan =>
  Effect.runSync(Load.parse(
    `
models:
  - { name: ${MODEL_8B}, default_max_tokens: 256, tokenizer: cl100k }
  - { name: ${MODEL_70B}, default_max_tokens: 256, tokenizer: cl100k }
backends:
${list.map((e) => `  - { id: ${e.id}, url: "http://planner.invalid/v1", models: [${e.model}], gpu: ${e.gpu}, quantization: ${e.quantization}, profile: ${e.profile}, cost_per_gpu_second: ${e.cost}, metrics: vllm, kv_events: false, max_concurrency: 4096, connections: 4096 }`).join("\n")}
routing: { policy: inference, picker: max_score, seed: ${seed} }
health: { probe_interval: 1h, scrape_interval: 500ms, min_tokens_per_second: 0 }
breakers: { min_requests: 1000000 }
`,
    "fleet16",
    {}
  ))

/** The routing bench's phases (simulated seconds). */
const PHASES: Readonly<Record<WorkloadName, Workloads.Phases>> = {
  "shared-prefix": { warmup: 20, duration: 60, drain: 10 },
  "multi-turn": { warmup: 15, duration: 60, drain: 10 },
  sharegpt: { warmup: 5, duration: 35, drain: 20 },
  bursty: { warmup: 5, duration: 35, drain: 20 }
}

const seed = Number(arg("seed", "1"))
const loads = arg("loads", "4,8,12").split(",").map(Number)
const isWorkload = (w: string): w is WorkloadName => Object.hasOwn(WORKLOADS, w)
const names = arg("workloads", "sharegpt,bursty").split(",").filter((w) => {
  if (!isWorkload(w)) throw new Error(`unknown workload ${w} (${Object.keys(WORKLOADS).join(", ")})`)
  return true
}).filter(isWorkload)
const policies = arg("policies", "inference,least_outstanding,round_robin").split(",")
const plan = fleetPlan(ENGINES_16, seed)

const ms = (x: number) => (Number.isNaN(x) ? "–" : x >= 1000 ? `${(x / 1000).toFixed(x >= 10_000 ? 1 : 2)} s` : `${x.toFixed(0)} ms`)
const lines = [
  "| workload | load | policy | reqs | TTFT p50 | TTFT p90 | TTFT p99 | ITL p50 | ITL p99 | out tok/s | goodput req/s (share) | preempt | unfinished | GPU-s | cost / M out tok |",
  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
]
const json: Array<{ workload: string; load: number; report: Report }> = []
const started = performance.now()
for (const name of names) {
  for (const load of loads) {
    const workload = WORKLOADS[name]({ durationMs: PHASES[name].duration * 1000, seed, load })
    for (const policy of policies) {
      const t0 = performance.now()
      const [base, picker] = policy.split("/")
      const r = Workloads.run(plan, workload, PHASES[name], {
        policy: base === "inference" || base === "round_robin" || base === "least_outstanding" || base === "random" ? base : "inference",
        picker,
        seed,
        jitter: 0.05
      })
      json.push({ workload: name, load, report: r })
      lines.push(
        `| ${name} | ×${load} | ${policy === "inference" ? "**inference**" : policy} | ${r.requests} | ${ms(r.ttft.p50)} | ${ms(r.ttft.p90)} | ${ms(r.ttft.p99)} | ` +
          `${ms(r.itl.p50)} | ${ms(r.itl.p99)} | ${r.outputTokensPerS.toFixed(0)} | ${r.goodput.toFixed(2)} (${(r.goodputShare * 100).toFixed(0)}%) | ` +
          `${r.preemptions} | ${r.unfinished} | ${r.gpuSeconds.toFixed(0)} | ${r.costPerMTokens.toFixed(0)} |`
      )
      console.error(`${name} ×${load} ${policy}: p90 ${ms(r.ttft.p90)}, ${r.outputTokensPerS.toFixed(0)} tok/s, ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    }
  }
}
lines.push("", `16 engines, seed ${seed}, engine jitter 0.05; planner wall time ${((performance.now() - started) / 1000).toFixed(0)} s.`)
mkdirSync("bench/planner/results", { recursive: true })
writeFileSync("bench/planner/results/fleet16.md", lines.join("\n") + "\n")
writeFileSync("bench/planner/results/fleet16.json", JSON.stringify({ seed, engines: ENGINES_16, rows: json }, null, 2) + "\n")
console.log(lines.join("\n"))

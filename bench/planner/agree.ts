/**
 * `tsx bench/planner/agree.ts [--results bench/routing/results/latest.json] [--workloads …] [--policies …] [--name agree]`:
 * issue 15's agreement check. Runs the routing bench's workloads, at its six-engine fleet, phases, seed
 * and gateway config, through the virtual-time planner, and compares p90 TTFT and output tokens/s with
 * the real-time bench's latest results: the ratio planner ÷ bench per (workload, policy), target within
 * 15% (0.87–1.15). Also prints the real-time run's engine lag (simulated seconds the slowest engine fell
 * behind the wall clock on this host), the first suspect when a row disagrees.
 *
 * The run's quick phases, load and KV-cache size are the results file's; `inference+kv` runs the precise
 * (KV-event) index. Writes bench/planner/results/<name>.{md,json}. Must never: start engines or a gateway (the planner
 * does no I/O); the bench's numbers are read, not rerun.
 */
import { Effect } from "effect"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import * as Load from "../../src/config/Load.ts"
import type { Report } from "../../src/planner/Planner.ts"
import { gatewayYaml } from "../routing/fleet.ts"
import { ENGINES } from "../routing/fleet.ts"
import { WORKLOADS, type WorkloadName } from "../routing/workloads.ts"
import * as Workloads from "./workloads.ts"

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

interface BenchRow {
  readonly workload: string
  readonly policy: string
  readonly requests: number
  readonly ttft: { readonly p50: number; readonly p90: number; readonly p99: number }
  readonly outputTokensPerS: number
  readonly goodput: number
  readonly hitRate: number
  readonly unfinished: number
  readonly lagSeconds: number
}
interface BenchResults {
  readonly phases: Readonly<Record<string, Workloads.Phases>>
  readonly seed: number
  readonly load: number
  /** `--quick` halved the warm-up and the arrival window. */
  readonly quick?: boolean
  /** `--kv-blocks`: every engine's KV cache (cache-churn runs). */
  readonly kvBlocks?: number | null
  readonly rows: ReadonlyArray<BenchRow>
}

const resultsPath = arg("results", "bench/routing/results/latest.json")
// The bench's JSON is our own file, written by bench/routing/run.ts.
const bench = JSON.parse(readFileSync(resultsPath, "utf8")) as BenchResults
const isWorkload = (w: string): w is WorkloadName => Object.hasOwn(WORKLOADS, w)
const workloads = arg("workloads", "shared-prefix,multi-turn,sharegpt,bursty").split(",").filter((w) => {
  if (!isWorkload(w)) throw new Error(`unknown workload ${w} (${Object.keys(WORKLOADS).join(", ")})`)
  return true
}).filter(isWorkload)
const policies = arg("policies", "inference,round_robin,least_outstanding,random").split(",")
const name = arg("name", "agree")
const urls = new Map(ENGINES.map((e) => [e.id, "http://planner.invalid"]))
const shrink = bench.quick === true ? 0.5 : 1
const kvBlocks = bench.kvBlocks ?? undefined

const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`)
const within = (r: number) => r >= 1 / 1.15 && r <= 1.15

interface AgreeRow {
  readonly workload: string
  readonly policy: string
  readonly bench: BenchRow
  readonly planner: Report
  readonly ttftRatio: number
  readonly tpsRatio: number
  readonly wallMs: number
}
const rows: Array<AgreeRow> = []
const lines = [
  `Planner vs real-time routing bench (${resultsPath}), six engines, seed ${bench.seed}, load ×${bench.load}` +
    `${bench.quick === true ? ", quick phases" : ""}${kvBlocks === undefined ? "" : `, ${kvBlocks}-block KV caches`}. Ratio = planner ÷ bench; target 0.87–1.15.`,
  "",
  "| workload | policy | bench TTFT p50 | planner TTFT p50 | bench TTFT p90 | planner TTFT p90 | ratio | bench tok/s | planner tok/s | ratio | bench hit | planner hit | bench unfinished | planner unfinished | bench engine lag |",
  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
]
const started = performance.now()
for (const wl of workloads) {
  const full = bench.phases[wl]
  if (full === undefined) throw new Error(`no phases for ${wl} in ${resultsPath}`)
  const phases = { warmup: full.warmup * shrink, duration: full.duration * shrink, drain: full.drain }
  for (const policy of policies) {
    const b = bench.rows.find((r) => r.workload === wl && r.policy === policy)
    if (b === undefined) continue
    const base = policy.split("+")[0]
    const plan = Effect.runSync(Load.parse(gatewayYaml(base === "round_robin" || base === "least_outstanding" || base === "random" ? base : "inference", urls, bench.seed), "bench", {}))
    const workload = WORKLOADS[wl]({ durationMs: phases.duration * 1000, seed: bench.seed, load: bench.load })
    const t0 = performance.now()
    const p = Workloads.run(plan, workload, phases, { policy: plan.routing.policy, seed: bench.seed, jitter: 0.05, kvEvents: policy === "inference+kv", kvBlocks })
    const ttftRatio = p.ttft.p90 / b.ttft.p90
    const tpsRatio = p.outputTokensPerS / b.outputTokensPerS
    rows.push({ workload: wl, policy, bench: b, planner: p, ttftRatio, tpsRatio, wallMs: performance.now() - t0 })
    lines.push(
      `| ${wl} | ${policy} | ${fmt(b.ttft.p50)} | ${fmt(p.ttft.p50)} | ${fmt(b.ttft.p90)} | ${fmt(p.ttft.p90)} | ${ttftRatio.toFixed(2)}${within(ttftRatio) ? "" : " ✗"} | ` +
        `${b.outputTokensPerS.toFixed(0)} | ${p.outputTokensPerS.toFixed(0)} | ${tpsRatio.toFixed(2)}${within(tpsRatio) ? "" : " ✗"} | ` +
        `${(b.hitRate * 100).toFixed(0)}% | ${(p.hitRate * 100).toFixed(0)}% | ${b.unfinished} | ${p.unfinished} | ${b.lagSeconds.toFixed(2)} s |`
    )
    console.error(`${wl} ${policy}: ttft p90 ${fmt(p.ttft.p90)} (bench ${fmt(b.ttft.p90)}), tok/s ${p.outputTokensPerS.toFixed(0)} (bench ${b.outputTokensPerS.toFixed(0)}), ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  }
}
// The real-time path adds a per-request latency the planner does not model (client → gateway → engine →
// gateway → client over HTTP, tokenization at both ends, timer granularity, × the time scale): estimate it
// as the median p50 difference over the uncongested rows, and show p90 agreement with that one constant.
const uncongested = rows.filter((r) => r.bench.unfinished === 0)
const diffs = uncongested.map((r) => r.bench.ttft.p50 - r.planner.ttft.p50).sort((a, b) => a - b)
const offset = diffs.length === 0 ? 0 : diffs[Math.floor(diffs.length / 2)]!
const shifted = rows.map((r) => (r.planner.ttft.p90 + offset) / r.bench.ttft.p90)
lines.push(
  "",
  `Per-request host latency of the real-time path, estimated as the median (bench p50 − planner p50) over the ${uncongested.length} rows without unfinished requests: ${offset.toFixed(0)} ms simulated. ` +
    `With it added to every planner TTFT, the p90 ratios are: ${rows.map((r, i) => `${r.workload}/${r.policy} ${shifted[i]!.toFixed(2)}`).join(", ")} ` +
    `(${shifted.filter(within).length}/${rows.length} within 15%).`
)
const agreeTtft = rows.filter((r) => within(r.ttftRatio)).length
const agreeTps = rows.filter((r) => within(r.tpsRatio)).length
lines.push("", `Within 15%: TTFT p90 ${agreeTtft}/${rows.length}, tokens/s ${agreeTps}/${rows.length}. Planner wall time ${((performance.now() - started) / 1000).toFixed(0)} s.`)
mkdirSync("bench/planner/results", { recursive: true })
writeFileSync(`bench/planner/results/${name}.md`, lines.join("\n") + "\n")
writeFileSync(`bench/planner/results/${name}.json`, JSON.stringify({ results: resultsPath, offsetMs: offset, rows }, null, 2) + "\n")
console.log(lines.join("\n"))

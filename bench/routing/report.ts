/**
 * Turns one run's outcomes and the engines' counters into the figures of the routing table,
 * in simulated time (wall × time scale), and renders the tables (Markdown).
 *
 * Definitions (vLLM's benchmark_serving where it has one, backends.md §7):
 * - TTFT: scheduled send → first token, over requests that got one.
 * - ITL: every gap between consecutive tokens of a stream (one token per SSE chunk).
 * - TPOT: per request, (last token − first token) / (tokens − 1).
 * - output tok/s: tokens received in the measured window (after warm-up, while requests still arrive) ÷ its length.
 * - goodput: requests that completed with TTFT ≤ 2 s and TPOT ≤ 100 ms, ÷ the arrival window.
 * - hit rate: prefix-cache hit tokens ÷ prompt tokens looked up, summed over engines (`vllm:prefix_cache_*`).
 * - failed: an HTTP error or an error event; unfinished: still streaming at the cut-off.
 * - engine lag: simulated seconds the slowest engine skipped because the host fell behind the time
 *   scale (validity: should be small against the measured window).
 */
import type { Outcome } from "./client.ts"

export interface EngineDelta {
  readonly hitTokens: number
  readonly queryTokens: number
  readonly preemptions: number
  readonly lagSeconds: number
}

export interface Row {
  readonly workload: string
  readonly policy: string
  readonly requests: number
  readonly ttft: { readonly p50: number; readonly p90: number; readonly p99: number }
  readonly itl: { readonly p50: number; readonly p99: number }
  readonly outputTokensPerS: number
  readonly goodput: number
  readonly goodputShare: number
  readonly hitRate: number
  readonly preemptions: number
  readonly failed: number
  /** Failed requests by reason: HTTP status (or `stream` for an error event) and the envelope's code or type. */
  readonly failures: Readonly<Record<string, number>>
  readonly unfinished: number
  readonly lagSeconds: number
  /** Share of requests per backend (first choice that served them). */
  readonly spread: Readonly<Record<string, number>>
}

export const SLO = { ttftMs: 2000, tpotMs: 100 }

/**
 * A failure's reason, short enough to count: `HTTP 503 no_backend_available`, `stream
 * upstream_error`, `request ECONNRESET`. The code (else the type, else the message's start)
 * comes from the OpenAI error envelope when there is one.
 */
export const failureReason = (error: string): string => {
  const status = /^HTTP (\d+)/.exec(error)?.[1]
  const head = status !== undefined ? `HTTP ${status}` : error.startsWith("request:") ? "request" : error.startsWith("stream:") ? "stream" : "event"
  const code = /"code":"([^"]+)"/.exec(error)?.[1] ?? /"type":"([^"]+)"/.exec(error)?.[1]
  if (code !== undefined) return `${head} ${code}`
  const rest = error.replace(/^(HTTP \d+:|request:|stream:)\s*/, "")
  return `${head} ${rest.slice(0, 40)}`
}

const quantile = (sorted: ArrayLike<number>, q: number): number => {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i]!
}

export const summarize = (
  workload: string,
  policy: string,
  outcomes: ReadonlyArray<Outcome>,
  engines: EngineDelta,
  timeScale: number,
  startWall: number,
  windowWallMs: number,
  /** Every request of the run, warm-up included: tokens streamed inside the window count toward throughput. */
  all: ReadonlyArray<Outcome> = outcomes
): Row => {
  const ttfts = Float64Array.from(outcomes.filter((o) => o.ttftMs !== undefined).map((o) => o.ttftMs! * timeScale)).sort()
  let gapCount = 0
  for (const o of outcomes) gapCount += o.gaps.length
  const gaps = new Float64Array(gapCount)
  let k = 0
  for (const o of outcomes) for (const g of o.gaps) gaps[k++] = g * timeScale
  gaps.sort()
  const windowEnd = startWall + windowWallMs
  let windowTokens = 0
  for (const o of all) for (const t of o.tokenTimes) if (t >= startWall && t <= windowEnd) windowTokens++
  let good = 0
  const spread: Record<string, number> = {}
  for (const o of outcomes) {
    if (o.backend !== undefined) spread[o.backend] = (spread[o.backend] ?? 0) + 1
    if (o.status !== "ok" || o.ttftMs === undefined) continue
    const tpot = o.outputTokens > 1 ? ((o.tokenTimes.at(-1)! - o.tokenTimes[0]!) / (o.outputTokens - 1)) * timeScale : 0
    if (o.ttftMs * timeScale <= SLO.ttftMs && tpot <= SLO.tpotMs) good++
  }
  for (const key of Object.keys(spread)) spread[key] = spread[key]! / outcomes.length
  const windowSimS = (windowWallMs * timeScale) / 1000
  return {
    workload,
    policy,
    requests: outcomes.length,
    ttft: { p50: quantile(ttfts, 0.5), p90: quantile(ttfts, 0.9), p99: quantile(ttfts, 0.99) },
    itl: { p50: quantile(gaps, 0.5), p99: quantile(gaps, 0.99) },
    outputTokensPerS: windowTokens / windowSimS,
    goodput: good / windowSimS,
    goodputShare: outcomes.length === 0 ? 0 : good / outcomes.length,
    hitRate: engines.queryTokens === 0 ? 0 : engines.hitTokens / engines.queryTokens,
    preemptions: engines.preemptions,
    failed: outcomes.filter((o) => o.status === "failed").length,
    failures: countFailures(outcomes),
    unfinished: outcomes.filter((o) => o.status === "unfinished").length,
    lagSeconds: engines.lagSeconds,
    spread
  }
}

const countFailures = (outcomes: ReadonlyArray<Outcome>): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const o of outcomes) {
    if (o.status !== "failed") continue
    const reason = failureReason(o.error ?? "unknown")
    out[reason] = (out[reason] ?? 0) + 1
  }
  return out
}

const ms = (x: number) => (Number.isNaN(x) ? "–" : x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`)

export const table = (rows: ReadonlyArray<Row>): string => {
  const head = "| workload | policy | reqs | TTFT p50 | TTFT p90 | TTFT p99 | ITL p50 | ITL p99 | out tok/s | goodput req/s (share) | prefix hit | preempt | failed | unfinished | engine lag |"
  const sep = "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  const lines = rows.map((r) =>
    `| ${r.workload} | ${r.policy.startsWith("inference") ? `**${r.policy}**` : r.policy} | ${r.requests} | ${ms(r.ttft.p50)} | ${ms(r.ttft.p90)} | ${ms(r.ttft.p99)} | ` +
    `${ms(r.itl.p50)} | ${ms(r.itl.p99)} | ${Math.round(r.outputTokensPerS)} | ${r.goodput.toFixed(2)} (${Math.round(r.goodputShare * 100)}%) | ` +
    `${Math.round(r.hitRate * 100)}% | ${r.preemptions} | ${r.failed} | ${r.unfinished} | ${r.lagSeconds.toFixed(1)} s |`
  )
  return [head, sep, ...lines].join("\n")
}

export interface Verdict {
  readonly check: string
  readonly ok: boolean
  readonly detail: string
}

/** The issue's targets, checked against the rows of one run. */
export const verdicts = (rows: ReadonlyArray<Row>): Array<Verdict> => {
  const out: Array<Verdict> = []
  const by = (w: string, p: string) => rows.find((r) => r.workload === w && r.policy === p)
  const inf = by("shared-prefix", "inference")
  const rr = by("shared-prefix", "round_robin")
  if (inf !== undefined && rr !== undefined) {
    out.push({
      check: "shared-prefix: TTFT p90 ≤ 1/5 of round-robin's",
      ok: inf.ttft.p90 * 5 <= rr.ttft.p90,
      detail: `${ms(inf.ttft.p90)} vs ${ms(rr.ttft.p90)} (${(rr.ttft.p90 / inf.ttft.p90).toFixed(1)}×)`
    })
    out.push({
      check: "shared-prefix: output tok/s ≥ 1.5× round-robin's",
      ok: inf.outputTokensPerS >= 1.5 * rr.outputTokensPerS,
      detail: `${Math.round(inf.outputTokensPerS)} vs ${Math.round(rr.outputTokensPerS)} (${(inf.outputTokensPerS / rr.outputTokensPerS).toFixed(2)}×)`
    })
    out.push({
      check: "shared-prefix: no more failed requests than round-robin",
      ok: inf.failed <= rr.failed,
      detail: `${inf.failed} vs ${rr.failed}`
    })
  }
  const precise = by("shared-prefix", "inference+kv")
  if (inf !== undefined && precise !== undefined) {
    out.push({
      check: "shared-prefix: precise (KV events) TTFT p90 ≤ approximate's",
      ok: precise.ttft.p90 <= inf.ttft.p90,
      detail: `${ms(precise.ttft.p90)} vs ${ms(inf.ttft.p90)} (${(inf.ttft.p90 / precise.ttft.p90).toFixed(2)}×)`
    })
  }
  for (const w of new Set(rows.map((r) => r.workload))) {
    const mine = by(w, "inference")
    const baselines = rows.filter((r) => r.workload === w && !r.policy.startsWith("inference"))
    if (mine === undefined || baselines.length === 0) continue
    const best = baselines.reduce((a, b) => (b.goodput > a.goodput ? b : a))
    out.push({
      check: `${w}: goodput ≥ best baseline (${best.policy})`,
      ok: mine.goodput >= best.goodput,
      detail: `${mine.goodput.toFixed(2)} vs ${best.goodput.toFixed(2)} req/s`
    })
    const fewest = baselines.reduce((a, b) => (b.failed < a.failed ? b : a))
    out.push({
      check: `${w}: failed ≤ best baseline's (${fewest.policy})`,
      ok: mine.failed <= fewest.failed,
      detail: `${mine.failed} vs ${fewest.failed}` +
        (mine.failed > 0 ? ` (${Object.entries(mine.failures).map(([k, v]) => `${k}: ${v}`).join(", ")})` : "")
    })
  }
  return out
}

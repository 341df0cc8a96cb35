/**
 * Prometheus metrics built for tokens: requests by outcome, time to first token,
 * inter-token latency, tokens by kind, attempt failures by reason, attempt waste, and the
 * state of every backend and breaker. Label values are closed sets or config-defined
 * names (models and backends from the plan, `FailureTag`, `RequestOutcome`): a client can
 * never create a series. Per-request updates happen once, when the request's log line is
 * written; gauges are refreshed from the actors' state when Prometheus scrapes.
 */
import { Clock, Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import type { AccountingSnapshot } from "../accounting/Accounting.ts"
import type { BudgetSnapshot } from "../admission/Budget.ts"
import type { Backend } from "../backends/Backend.ts"
import type { RequestOutcome } from "../domain/Outcome.ts"
import type { BreakerState } from "../routing/Contract.ts"

const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
const tokenGapBuckets = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5]

const requests = Metric.counter("sluice_requests_total", { description: "Finished requests by model and outcome", incremental: true })
const duration = Metric.histogram("sluice_request_duration_seconds", { description: "Request duration", boundaries: latencyBuckets })
const ttft = Metric.histogram("sluice_time_to_first_token_seconds", { description: "Time to first token", boundaries: latencyBuckets })
const itl = Metric.histogram("sluice_inter_token_latency_seconds", {
  description: "Mean gap between tokens per stream",
  boundaries: tokenGapBuckets
})
const tokens = Metric.counter("sluice_tokens_total", { description: "Tokens by kind (prompt, completion, cached)", incremental: true })
const failures = Metric.counter("sluice_backend_attempt_failures_total", { description: "Failed attempts by backend and reason", incremental: true })
const waste = Metric.counter("sluice_attempt_waste_prompt_tokens_total", {
  description: "Prompt tokens processed by attempts that failed (not charged to tenants)",
  incremental: true
})

const backendHealth = Metric.gauge("sluice_backend_health", { description: "1 for the backend's current health state" })
const breakerState = Metric.gauge("sluice_breaker_state", { description: "1 for the (model, GPU SKU) breaker's current state" })
const inFlight = Metric.gauge("sluice_backend_in_flight", { description: "Requests holding a slot on the backend" })
const queueDepth = Metric.gauge("sluice_backend_queue_depth", { description: "Engine waiting queue (scraped)" })
const kvUsage = Metric.gauge("sluice_backend_kv_cache_usage", { description: "Engine KV-cache use 0..1 (scraped)" })
const tokensPerSecond = Metric.gauge("sluice_backend_tokens_per_second", { description: "Output tokens/s per stream (EWMA)" })
const loopRestarts = Metric.gauge("sluice_backend_loop_restarts", { description: "Supervised loop restarts" })
const reserved = Metric.gauge("sluice_reserved_tokens", { description: "Tokens held by open reservations" })
const charged = Metric.gauge("sluice_charged_tokens", { description: "Tokens charged to tenants since start" })
const records = Metric.gauge("sluice_accounting_records", { description: "Accounting records written since start" })
const ledgerQueued = Metric.gauge("sluice_ledger_queued_records", { description: "Ledger records held in memory for the store" })
const ledgerPending = Metric.gauge("sluice_ledger_pending_records", {
  description: "Ledger records not yet in the store (in memory or only in the journal)"
})
const ledgerFailedWrites = Metric.gauge("sluice_ledger_failed_writes", { description: "Failed store writes since start (retried)" })
const journalSegments = Metric.gauge("sluice_ledger_journal_segments", { description: "Live ledger journal segments" })
const journalBytes = Metric.gauge("sluice_ledger_journal_bytes", { description: "Bytes in live ledger journal segments" })
const recoveredInterrupted = Metric.gauge("sluice_ledger_recovered_interrupted", {
  description: "Admissions a previous process left unsettled, recorded as interrupted at start"
})
const budgetDegraded = Metric.gauge("sluice_budget_store_degraded", { description: "1 while the shared budget store (Redis) does not answer" })
const budgetPending = Metric.gauge("sluice_budget_pending_settlements", { description: "Budget settlements waiting for Redis" })
const budgetDropped = Metric.gauge("sluice_budget_dropped_settlements", {
  description: "Budget settlements given up (window expired or queue full)"
})
const budgetLocal = Metric.gauge("sluice_budget_local_reserved_tokens", {
  description: "Tokens reserved from the local share while Redis was down, since start"
})

/**
 * `Metric.withAttributes` builds a new metric whose series key (a sorted JSON of its
 * attributes) is computed on every update; the per-request path instead reuses one tagged
 * metric per label set. Label sets are bounded (plan names × closed unions), so is the cache.
 */
const taggedCache = new WeakMap<object, Map<string, unknown>>()
const tagged = <M extends Metric.Metric<number, unknown>>(metric: M, labels: Readonly<Record<string, string>>): M => {
  let byLabels = taggedCache.get(metric) as Map<string, M> | undefined
  if (byLabels === undefined) {
    byLabels = new Map()
    taggedCache.set(metric, byLabels)
  }
  let key = ""
  for (const k in labels) key += `${labels[k]}\u0000`
  let m = byLabels.get(key)
  if (m === undefined) {
    m = Metric.withAttributes(metric, labels) as M
    byLabels.set(key, m)
  }
  return m
}

export interface RequestSample {
  readonly model: string
  readonly backend: string | undefined
  readonly outcome: RequestOutcome
  readonly durationMs: number
  readonly ttftMs: number | undefined
  readonly interTokenMs: number | undefined
  readonly promptTokens: number
  readonly completionTokens: number
  readonly cachedTokens: number
  readonly failedAttempts: ReadonlyArray<{ readonly backend: string; readonly reason: string; readonly wasted: number }>
}

/**
 * Records one finished request: a single effect (the updates themselves are synchronous),
 * since this runs for every request.
 */
export const recordRequest = (s: RequestSample): Effect.Effect<void> =>
  Effect.contextWith((context) => {
    const backend = s.backend ?? "none"
    tagged(requests, { model: s.model, outcome: s.outcome }).updateUnsafe(1, context)
    tagged(duration, { model: s.model }).updateUnsafe(s.durationMs / 1000, context)
    if (s.ttftMs !== undefined) tagged(ttft, { model: s.model, backend }).updateUnsafe(s.ttftMs / 1000, context)
    if (s.interTokenMs !== undefined) tagged(itl, { model: s.model, backend }).updateUnsafe(s.interTokenMs / 1000, context)
    if (s.promptTokens > 0) tagged(tokens, { model: s.model, backend, kind: "prompt" }).updateUnsafe(s.promptTokens, context)
    if (s.completionTokens > 0) {
      tagged(tokens, { model: s.model, backend, kind: "completion" }).updateUnsafe(s.completionTokens, context)
    }
    if (s.cachedTokens > 0) tagged(tokens, { model: s.model, backend, kind: "cached" }).updateUnsafe(s.cachedTokens, context)
    for (const f of s.failedAttempts) {
      tagged(failures, { backend: f.backend, reason: f.reason }).updateUnsafe(1, context)
      if (f.wasted > 0) tagged(waste, { backend: f.backend }).updateUnsafe(f.wasted, context)
    }
    return Effect.void
  })

const HEALTH = ["cold", "healthy", "degraded", "unhealthy"] as const
const BREAKER: ReadonlyArray<BreakerState> = ["closed", "degraded", "open", "half_open"]

/** Refreshes the gauges from the actors' state and renders the exposition text. */
export const render = (state: {
  readonly backends: ReadonlyArray<Backend>
  readonly breakers: (now: number) => ReadonlyArray<{ readonly key: string; readonly state: BreakerState }>
  readonly budget: BudgetSnapshot
  readonly accounting: AccountingSnapshot
}): Effect.Effect<string> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    for (const b of state.backends) {
      const id = { backend: b.id }
      for (const h of HEALTH) yield* Metric.update(Metric.withAttributes(backendHealth, { ...id, state: h }), b.health === h ? 1 : 0)
      yield* Metric.update(Metric.withAttributes(inFlight, id), b.slots.inUse)
      yield* Metric.update(Metric.withAttributes(loopRestarts, id), b.loopRestarts)
      if (b.signals !== undefined) {
        yield* Metric.update(Metric.withAttributes(queueDepth, id), b.signals.waiting)
        if (b.signals.kvUsage !== undefined) yield* Metric.update(Metric.withAttributes(kvUsage, id), b.signals.kvUsage)
      }
      const rate = b.stats.tokensPerSecond.value
      if (rate !== undefined) yield* Metric.update(Metric.withAttributes(tokensPerSecond, id), rate)
    }
    for (const { key, state: s } of state.breakers(now)) {
      const [model, gpu] = key.split("|")
      for (const st of BREAKER) {
        yield* Metric.update(Metric.withAttributes(breakerState, { model: model ?? "", gpu: gpu ?? "", state: st }), s === st ? 1 : 0)
      }
    }
    yield* Metric.update(reserved, state.budget.reservedTokens)
    yield* Metric.update(charged, state.budget.chargedTokens)
    yield* Metric.update(records, state.accounting.records)
    const ledger = state.accounting.ledger
    if (ledger !== undefined) {
      yield* Metric.update(ledgerQueued, ledger.queued)
      yield* Metric.update(ledgerPending, ledger.pending)
      yield* Metric.update(ledgerFailedWrites, ledger.failedWrites)
      yield* Metric.update(journalSegments, ledger.journalSegments)
      yield* Metric.update(journalBytes, ledger.journalBytes)
      yield* Metric.update(recoveredInterrupted, ledger.recoveredInterrupted)
    }
    const shared = state.budget.shared
    if (shared !== undefined) {
      yield* Metric.update(budgetDegraded, shared.degraded ? 1 : 0)
      yield* Metric.update(budgetPending, shared.pendingSettlements)
      yield* Metric.update(budgetDropped, shared.droppedSettlements)
      yield* Metric.update(budgetLocal, shared.localReservedTokens)
    }
    return yield* PrometheusMetrics.format()
  })

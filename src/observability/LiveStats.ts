/**
 * What the live dashboard shows of finished requests: a ring of the last requests (their
 * time, model, backend, tenant, outcome, first-token and inter-token latency, tokens, error),
 * tokens per tenant since start, and the last failures. The request pipeline records each
 * request once, when its log line is written; the dashboard reads a summary (percentiles and
 * rates over a window, top tenants, recent failures).
 *
 * Bounded whatever the traffic: the ring holds `RING` requests, the tenant table `TENANTS`
 * tenants (later ones are counted under `(other)`), the failure list `FAILURES` entries, and
 * every string kept is cut to `CHARS`. Must never: hold a prompt, a completion or a key, or
 * do work per request beyond a few field writes.
 */
import { Context, Layer } from "effect"

const RING = 4096
const TENANTS = 10_000
const FAILURES = 50
const CHARS = 128
const OTHER = "(other)"
const NONE: Finished["failedAttempts"] = []

/** One finished request, as the release phase records it. */
export interface Finished {
  readonly atMs: number
  readonly requestId: string
  readonly model: string
  readonly backend: string | undefined
  readonly tenant: string | undefined
  readonly outcome: string
  readonly status: number
  readonly ttftMs: number | undefined
  readonly interTokenMs: number | undefined
  readonly promptTokens: number
  readonly completionTokens: number
  readonly error: string | undefined
  readonly failedAttempts: ReadonlyArray<{ readonly backend: string; readonly reason: string }>
}

export interface Percentiles {
  readonly p50: number | undefined
  readonly p90: number | undefined
  readonly p99: number | undefined
}

/** What the dashboard shows of the window. */
export interface Summary {
  /** The seconds the rates are over: the window, or less while the gateway is younger. */
  readonly windowSeconds: number
  readonly requests: number
  readonly requestsPerSecond: number
  /** Completion tokens per second over the window (prompt tokens beside). */
  readonly tokensPerSecond: number
  readonly promptTokensPerSecond: number
  readonly ttftMs: Percentiles
  readonly interTokenMs: Percentiles
  readonly outcomes: Readonly<Record<string, number>>
  /** Failures in the window by reason: request errors and failed attempts. */
  readonly errors: ReadonlyArray<{ readonly reason: string; readonly count: number }>
  /** Per backend, completion tokens per second over the window. */
  readonly backendTokensPerSecond: Readonly<Record<string, number>>
  readonly topTenants: ReadonlyArray<{ readonly tenant: string; readonly requests: number; readonly tokens: number }>
  readonly recentFailures: ReadonlyArray<{
    readonly at: string
    readonly requestId: string
    readonly model: string
    readonly backend: string | null
    readonly tenant: string | null
    readonly outcome: string
    readonly status: number
    readonly error: string | null
  }>
}

const cut = (s: string): string => s.length > CHARS ? `${s.slice(0, CHARS)}…` : s

/** The q-quantile (0..1) of sorted values, nearest rank. */
export const quantile = (sorted: ReadonlyArray<number>, q: number): number | undefined => {
  if (sorted.length === 0) return undefined
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]
}

const percentiles = (values: Array<number>): Percentiles => {
  values.sort((a, b) => a - b)
  return { p50: quantile(values, 0.5), p90: quantile(values, 0.9), p99: quantile(values, 0.99) }
}

const isFailure = (f: Finished): boolean => f.outcome !== "completed" || f.failedAttempts.length > 0

/** The recorder's state: plain fields, written once per request. */
export class Recorder {
  private readonly ring: Array<Finished | undefined> = new Array(RING)
  private next = 0
  private readonly tenants = new Map<string, { requests: number; tokens: number }>()
  private readonly failures: Array<Finished> = []
  private firstAtMs: number | undefined = undefined

  record(f: Finished): void {
    if (this.firstAtMs === undefined) this.firstAtMs = f.atMs
    const kept: Finished = {
      ...f,
      model: cut(f.model),
      tenant: f.tenant === undefined ? undefined : cut(f.tenant),
      error: f.error === undefined ? undefined : cut(f.error),
      // Only what the summary reads (never the attempt's message), at most a few.
      failedAttempts: f.failedAttempts.length === 0
        ? NONE
        : f.failedAttempts.slice(0, 8).map((a) => ({ backend: cut(a.backend), reason: cut(a.reason) }))
    }
    this.ring[this.next] = kept
    this.next = (this.next + 1) % RING
    const name = kept.tenant ?? "(none)"
    let t = this.tenants.get(name)
    if (t === undefined) {
      t = this.tenants.size < TENANTS ? { requests: 0, tokens: 0 } : this.tenants.get(OTHER) ?? { requests: 0, tokens: 0 }
      this.tenants.set(this.tenants.size < TENANTS ? name : OTHER, t)
    }
    t.requests++
    t.tokens += kept.promptTokens + kept.completionTokens
    if (isFailure(kept)) {
      this.failures.push(kept)
      if (this.failures.length > FAILURES) this.failures.shift()
    }
  }

  /** The summary over the last `windowMs` at `nowMs`. */
  summary(nowMs: number, windowMs: number): Summary {
    const since = nowMs - windowMs
    const ttft: Array<number> = []
    const itl: Array<number> = []
    const outcomes: Record<string, number> = {}
    const errors = new Map<string, number>()
    const perBackend: Record<string, number> = {}
    let requests = 0
    let completion = 0
    let prompt = 0
    for (const f of this.ring) {
      if (f === undefined || f.atMs < since) continue
      requests++
      completion += f.completionTokens
      prompt += f.promptTokens
      outcomes[f.outcome] = (outcomes[f.outcome] ?? 0) + 1
      if (f.ttftMs !== undefined) ttft.push(f.ttftMs)
      if (f.interTokenMs !== undefined) itl.push(f.interTokenMs)
      if (f.backend !== undefined) perBackend[f.backend] = (perBackend[f.backend] ?? 0) + f.completionTokens
      if (f.outcome !== "completed") {
        const reason = f.error ?? f.outcome
        errors.set(reason, (errors.get(reason) ?? 0) + 1)
      }
      for (const a of f.failedAttempts) errors.set(`attempt: ${a.reason}`, (errors.get(`attempt: ${a.reason}`) ?? 0) + 1)
    }
    // Rates over the part of the window the recorder has seen (a gateway up for 10 s is not
    // averaged over a minute), at least one second.
    const seconds = Math.max(1, Math.min(windowMs, this.firstAtMs === undefined ? windowMs : nowMs - this.firstAtMs)) / 1000
    for (const b of Object.keys(perBackend)) perBackend[b] = perBackend[b]! / seconds
    return {
      windowSeconds: seconds,
      requests,
      requestsPerSecond: requests / seconds,
      tokensPerSecond: completion / seconds,
      promptTokensPerSecond: prompt / seconds,
      ttftMs: percentiles(ttft),
      interTokenMs: percentiles(itl),
      outcomes,
      errors: [...errors].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count).slice(0, 20),
      backendTokensPerSecond: perBackend,
      topTenants: [...this.tenants]
        .map(([tenant, t]) => ({ tenant, requests: t.requests, tokens: t.tokens }))
        .sort((a, b) => b.tokens - a.tokens)
        .slice(0, 10),
      recentFailures: this.failures.slice(-20).reverse().map((f) => ({
        at: new Date(f.atMs).toISOString(),
        requestId: cut(f.requestId),
        model: f.model,
        backend: f.backend ?? null,
        tenant: f.tenant ?? null,
        outcome: f.outcome,
        status: f.status,
        error: f.error ?? (f.failedAttempts.length > 0 ? f.failedAttempts.map((a) => `${a.backend}: ${a.reason}`).join(", ") : null)
      }))
    }
  }
}

export class LiveStats extends Context.Service<LiveStats, Recorder>()("sluice/observability/LiveStats") {
  static readonly layer = Layer.sync(LiveStats, () => new Recorder())
}

/**
 * The read side of the audit ledger: what a usage query asks (a tenant or everyone, a time
 * range), the rows a ledger store answers with (requests and charged tokens per UTC day,
 * tenant and model), the in-memory aggregate the embedded stores keep, and the report the
 * usage API and the command line print (totals, by model, by day).
 *
 * The charged tokens of the ledger rows are the figures: the same settled usage the request
 * log and the token metrics carry. Cost is not a ledger column yet, so reports are in tokens.
 *
 * Pure values and arithmetic; owns the query's bounds (`from`/`to` decoded, span at most
 * MAX_SPAN_DAYS, groups at most MAX_GROUPS). Must never: do I/O, or widen a tenant's query
 * to another tenant (the caller decides the tenant; the query only filters by it).
 */
import { Data } from "effect"
import type { TenantId } from "../domain/Ids.ts"
import type { Usage } from "../domain/Usage.ts"

const DAY_MS = 86_400_000
/** A query spans at most this many days. */
export const MAX_SPAN_DAYS = 366
/** Without `from`, a query covers this many days up to `to`. */
export const DEFAULT_SPAN_DAYS = 30
/** A report holds at most this many (day, tenant, model) groups; beyond it says `truncated`. */
export const MAX_GROUPS = 10_000

export interface UsageQuery {
  /** Only this tenant's rows; undefined: every tenant (the admin's query). */
  readonly tenant: TenantId | undefined
  /** Settled at or after (ms since the epoch). */
  readonly fromMs: number
  /** Settled before (ms since the epoch). */
  readonly toMs: number
}

/** One (UTC day, tenant, model) group of ledger rows. */
export interface UsageGroup {
  /** `YYYY-MM-DD`, UTC. */
  readonly day: string
  readonly tenant: string
  readonly model: string
  readonly requests: number
  readonly promptTokens: number
  readonly cachedTokens: number
  readonly completionTokens: number
}

/** A query the caller got wrong: 400 naming the parameter. */
export class InvalidUsageQuery extends Data.TaggedError("InvalidUsageQuery")<{
  readonly message: string
  readonly param: string
}> {}

/** The ledger store did not answer: 503, retry later. */
export class UsageUnavailable extends Data.TaggedError("UsageUnavailable")<{ readonly cause: unknown }> {}

export const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10)

const DATE = /^\d{4}-\d{2}-\d{2}$/
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/

/** `2026-12-01` (that day's start, UTC) or an ISO 8601 time with a zone; undefined otherwise. */
export const parseTime = (text: string): number | undefined => {
  if (text.length > 40) return undefined
  const iso = DATE.test(text) ? `${text}T00:00:00Z` : DATE_TIME.test(text) ? text : undefined
  if (iso === undefined) return undefined
  const ms = Date.parse(iso)
  return Number.isFinite(ms) ? ms : undefined
}

/**
 * The query from URL parameters (`from`, `to`, and `tenant` where `allowed` has it): a date
 * (`to` as a date means through that day) or an ISO time; no `to`: now; no `from`: 30 days
 * before `to`. Unknown or repeated parameters are refused, as is a span over 366 days.
 */
export const decodeQuery = (
  params: URLSearchParams,
  nowMs: number,
  allowed: ReadonlyArray<"from" | "to" | "tenant">
): { readonly fromMs: number; readonly toMs: number; readonly tenant: string | undefined } | InvalidUsageQuery => {
  const seen = new Set<string>()
  for (const name of params.keys()) {
    if (!(allowed as ReadonlyArray<string>).includes(name)) {
      return new InvalidUsageQuery({
        message: `Unknown query parameter \`${name.slice(0, 64)}\`; expected ${allowed.join(", ")}.`,
        param: name.slice(0, 64)
      })
    }
    if (seen.has(name)) return new InvalidUsageQuery({ message: `\`${name}\` is given more than once.`, param: name })
    seen.add(name)
  }
  const time = (name: "from" | "to", endOfDay: boolean) => {
    const raw = params.get(name)
    if (raw === null) return undefined
    const ms = parseTime(raw)
    if (ms === undefined) {
      return new InvalidUsageQuery({ message: `\`${name}\` is a date (2026-12-01) or an ISO 8601 time with a zone.`, param: name })
    }
    return endOfDay && DATE.test(raw) ? ms + DAY_MS : ms
  }
  const to = time("to", true)
  if (to instanceof InvalidUsageQuery) return to
  const from = time("from", false)
  if (from instanceof InvalidUsageQuery) return from
  const toMs = to ?? nowMs
  const fromMs = from ?? toMs - DEFAULT_SPAN_DAYS * DAY_MS
  if (fromMs >= toMs) return new InvalidUsageQuery({ message: "`from` must be before `to`.", param: "from" })
  if (toMs - fromMs > MAX_SPAN_DAYS * DAY_MS) {
    return new InvalidUsageQuery({ message: `A query spans at most ${MAX_SPAN_DAYS} days.`, param: "from" })
  }
  const tenant = params.get("tenant") ?? undefined
  if (tenant !== undefined && (tenant === "" || tenant.length > 128)) {
    return new InvalidUsageQuery({ message: "`tenant` is a tenant id.", param: "tenant" })
  }
  return { fromMs, toMs, tenant }
}

/** Hour buckets older than this behind the newest one are dropped (no query reaches them). */
const RETAIN_MS = (MAX_SPAN_DAYS + 1) * DAY_MS
/** At most this many buckets; beyond it the oldest hour goes first. */
export const MAX_BUCKETS = 200_000

/**
 * Requests and charged tokens per (tenant, model, UTC hour), for the stores that keep the
 * ledger in memory or in files. Hour buckets (not days) so that a query's bounds cut at the
 * hour; grouped by day when read. Bounded by the data (tenants × models × hours), not by
 * requests, and by age and count: buckets more than 367 days older than the newest are
 * dropped, and past MAX_BUCKETS the oldest hour goes (its figures are then missing from
 * reports, which the store's own files or rows still hold).
 */
export class Aggregate {
  private newestHourMs = 0
  private oldestHourMs = Number.POSITIVE_INFINITY
  private readonly buckets = new Map<string, {
    readonly hourMs: number
    readonly tenant: string
    readonly model: string
    requests: number
    promptTokens: number
    cachedTokens: number
    completionTokens: number
  }>()

  add(tenant: string, model: string, atMs: number, charged: Usage): void {
    const hourMs = atMs - (atMs % 3_600_000)
    const key = `${hourMs}\u0000${tenant}\u0000${model}`
    let b = this.buckets.get(key)
    if (b === undefined) {
      if (hourMs < this.newestHourMs - RETAIN_MS) return
      b = { hourMs, tenant, model, requests: 0, promptTokens: 0, cachedTokens: 0, completionTokens: 0 }
      this.buckets.set(key, b)
      if (hourMs > this.newestHourMs) this.newestHourMs = hourMs
      if (hourMs < this.oldestHourMs) this.oldestHourMs = hourMs
      if (this.buckets.size > MAX_BUCKETS || this.oldestHourMs < this.newestHourMs - RETAIN_MS) this.prune()
    }
    b.requests++
    b.promptTokens += charged.promptTokens
    b.cachedTokens += charged.cachedTokens
    b.completionTokens += charged.completionTokens
  }

  get size(): number {
    return this.buckets.size
  }

  /** Drops buckets past the retention, then, over MAX_BUCKETS, the oldest hours down to 99% of it (so pruning is amortised). */
  private prune(): void {
    let floor = this.newestHourMs - RETAIN_MS
    if (this.buckets.size > MAX_BUCKETS) {
      const perHour = new Map<number, number>()
      for (const b of this.buckets.values()) if (b.hourMs >= floor) perHour.set(b.hourMs, (perHour.get(b.hourMs) ?? 0) + 1)
      let left = [...perHour.values()].reduce((a, n) => a + n, 0)
      for (const hour of [...perHour.keys()].sort((a, b) => a - b)) {
        if (left <= Math.floor(MAX_BUCKETS * 0.99)) break
        left -= perHour.get(hour)!
        floor = hour + 1
      }
    }
    let oldest = Number.POSITIVE_INFINITY
    for (const [key, b] of this.buckets) {
      if (b.hourMs < floor) this.buckets.delete(key)
      else if (b.hourMs < oldest) oldest = b.hourMs
    }
    this.oldestHourMs = oldest
  }

  /** The groups of `query` (hours that start inside the range). */
  read(query: UsageQuery): ReadonlyArray<UsageGroup> {
    const groups = new Map<string, { -readonly [K in keyof UsageGroup]: UsageGroup[K] }>()
    for (const b of this.buckets.values()) {
      if (b.hourMs < query.fromMs - (query.fromMs % 3_600_000) || b.hourMs >= query.toMs) continue
      if (query.tenant !== undefined && b.tenant !== query.tenant) continue
      const day = dayOf(b.hourMs)
      const key = `${day}\u0000${b.tenant}\u0000${b.model}`
      const g = groups.get(key)
      if (g === undefined) {
        groups.set(key, { day, tenant: b.tenant, model: b.model, requests: b.requests, promptTokens: b.promptTokens, cachedTokens: b.cachedTokens, completionTokens: b.completionTokens })
      } else {
        g.requests += b.requests
        g.promptTokens += b.promptTokens
        g.cachedTokens += b.cachedTokens
        g.completionTokens += b.completionTokens
      }
    }
    return [...groups.values()]
  }
}

interface Sums {
  requests: number
  prompt_tokens: number
  cached_tokens: number
  completion_tokens: number
  total_tokens: number
}

const empty = (): Sums => ({ requests: 0, prompt_tokens: 0, cached_tokens: 0, completion_tokens: 0, total_tokens: 0 })

const addTo = (s: Sums, g: UsageGroup) => {
  s.requests += g.requests
  s.prompt_tokens += g.promptTokens
  s.cached_tokens += g.cachedTokens
  s.completion_tokens += g.completionTokens
  s.total_tokens += g.promptTokens + g.completionTokens
}

const byKey = (groups: ReadonlyArray<UsageGroup>, key: (g: UsageGroup) => string) => {
  const out = new Map<string, Sums>()
  for (const g of groups) {
    const k = key(g)
    let s = out.get(k)
    if (s === undefined) out.set(k, s = empty())
    addTo(s, g)
  }
  return [...out.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
}

/**
 * The report as the usage API and `sluice usage --json` print it: totals, then by model, by
 * day (and by tenant for the admin's all-tenant query), then every (day, model) group.
 */
export const report = (query: UsageQuery, rows: ReadonlyArray<UsageGroup>) => {
  const truncated = rows.length > MAX_GROUPS
  const groups = [...rows].sort((a, b) =>
    a.day < b.day ? -1 : a.day > b.day ? 1 : a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : a.model < b.model ? -1 : a.model > b.model ? 1 : 0
  ).slice(0, MAX_GROUPS)
  const totals = empty()
  for (const g of groups) addTo(totals, g)
  return {
    object: "usage" as const,
    tenant: query.tenant ?? null,
    from: new Date(query.fromMs).toISOString(),
    to: new Date(query.toMs).toISOString(),
    totals,
    by_model: byKey(groups, (g) => g.model).map(([model, s]) => ({ model, ...s })),
    by_day: byKey(groups, (g) => g.day).map(([day, s]) => ({ day, ...s })),
    ...(query.tenant === undefined ? { by_tenant: byKey(groups, (g) => g.tenant).map(([tenant, s]) => ({ tenant, ...s })) } : {}),
    data: groups.map((g) => ({
      day: g.day,
      ...(query.tenant === undefined ? { tenant: g.tenant } : {}),
      model: g.model,
      requests: g.requests,
      prompt_tokens: g.promptTokens,
      cached_tokens: g.cachedTokens,
      completion_tokens: g.completionTokens,
      total_tokens: g.promptTokens + g.completionTokens
    })),
    truncated
  }
}

export type UsageReportJson = ReturnType<typeof report>

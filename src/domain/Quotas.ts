/**
 * Limits (quotas) and prices as values: which limit fields exist, the windows they count
 * in, the rules one request is held to, and the cost of a request's tokens. Pure: no I/O,
 * no clocks (callers pass the time), no knowledge of where limits are stored.
 *
 * Money is counted in integer micro-dollars (1e-6 USD) wherever it is added up, so that
 * counters in Redis (HINCRBY) and ledger sums agree exactly; prices are USD per million
 * tokens, so a token at price p costs p micro-dollars.
 */

/** What a limit counts. `tokens` is input + output; `concurrent` is open requests (no window). */
export type Metric = "requests" | "input_tokens" | "output_tokens" | "tokens" | "spend" | "concurrent"

/** The counting window of a limit: a sliding minute, fixed UTC days and calendar months, or none. */
export type Period = "sliding_minute" | "minute" | "day" | "month" | "none"

/** Every limit field, as the config file, the database and the admin API spell it. */
export const LIMIT_FIELDS = {
  requests_per_minute: { metric: "requests", period: "sliding_minute" },
  input_tokens_per_minute: { metric: "input_tokens", period: "minute" },
  input_tokens_per_day: { metric: "input_tokens", period: "day" },
  input_tokens_per_month: { metric: "input_tokens", period: "month" },
  output_tokens_per_minute: { metric: "output_tokens", period: "minute" },
  output_tokens_per_day: { metric: "output_tokens", period: "day" },
  output_tokens_per_month: { metric: "output_tokens", period: "month" },
  tokens_per_minute: { metric: "tokens", period: "minute" },
  tokens_per_day: { metric: "tokens", period: "day" },
  tokens_per_month: { metric: "tokens", period: "month" },
  spend_per_day: { metric: "spend", period: "day" },
  spend_per_month: { metric: "spend", period: "month" },
  concurrent_requests: { metric: "concurrent", period: "none" }
} as const satisfies Record<string, { readonly metric: Metric; readonly period: Period }>

export type LimitField = keyof typeof LIMIT_FIELDS
export const LIMIT_FIELD_NAMES = Object.keys(LIMIT_FIELDS) as ReadonlyArray<LimitField>

/** Limits of one subject; spend in USD; an absent field is no limit. */
export type LimitSet = { readonly [F in LimitField]?: number }

/** A window of an explicit length (the legacy `budgets.window`). */
export interface FixedWindow {
  readonly kind: "fixed"
  readonly ms: number
}

/** One limit one request is held to: a counter (its `base` key plus the window's bucket) and a ceiling. */
export interface Rule {
  /** Who the limit is on, for the client: `tenant acme`, `key abc`, `tenant acme, model m`. */
  readonly subject: string
  /** The limit's field (`requests_per_minute`, ... or `tokens_per_window` for the legacy budget). */
  readonly field: string
  /** The counter's key without its bucket (unique per subject and field). */
  readonly base: string
  readonly metric: Metric
  readonly window: Period | FixedWindow
  /** The ceiling, in the metric's unit (spend: micro-dollars). */
  readonly limit: number
}

const MINUTE = 60_000
const DAY = 86_400_000

/** The bucket `nowMs` falls in (months: UTC year × 12 + month; `none`: 0). */
export const bucketOf = (window: Rule["window"], nowMs: number): number => {
  if (typeof window === "object") return Math.floor(nowMs / window.ms)
  switch (window) {
    case "sliding_minute":
    case "minute":
      return Math.floor(nowMs / MINUTE)
    case "day":
      return Math.floor(nowMs / DAY)
    case "month": {
      const d = new Date(nowMs)
      return d.getUTCFullYear() * 12 + d.getUTCMonth()
    }
    case "none":
      return 0
  }
}

/** When `bucket` ends (ms since the epoch); `none` never does. */
export const bucketEndMs = (window: Rule["window"], bucket: number): number => {
  if (typeof window === "object") return (bucket + 1) * window.ms
  switch (window) {
    case "sliding_minute":
    case "minute":
      return (bucket + 1) * MINUTE
    case "day":
      return (bucket + 1) * DAY
    case "month":
      return Date.UTC(Math.floor(bucket / 12), (bucket % 12) + 1, 1)
    case "none":
      return Number.POSITIVE_INFINITY
  }
}

/** How long a counter must outlive its bucket's end (the sliding minute reads the previous bucket). */
export const ttlMs = (window: Rule["window"], bucket: number, nowMs: number): number =>
  window === "none" ? 6 * 3_600_000 : Math.max(1000, bucketEndMs(window, bucket) - nowMs) + (
    typeof window === "object" ? window.ms : window === "sliding_minute" || window === "minute" ? MINUTE : 60_000
  )

/**
 * The weight of the previous bucket's count in a sliding window at `nowMs` (the rest of the
 * window still overlaps it); 0 for fixed windows.
 */
export const previousWeight = (window: Rule["window"], nowMs: number): number =>
  window === "sliding_minute" ? 1 - (nowMs % MINUTE) / MINUTE : 0

/** What a request counts against each metric: reserved (estimate) or settled (actual). */
export interface Quantities {
  readonly requests: number
  readonly inputTokens: number
  readonly outputTokens: number
  readonly costMicros: number
  /** 1 while the request is open (reserved), 0 once settled. */
  readonly concurrent: number
}

export const amountOf = (metric: Metric, q: Quantities): number => {
  switch (metric) {
    case "requests":
      return q.requests
    case "input_tokens":
      return q.inputTokens
    case "output_tokens":
      return q.outputTokens
    case "tokens":
      return q.inputTokens + q.outputTokens
    case "spend":
      return q.costMicros
    case "concurrent":
      return q.concurrent
  }
}

/** The rules of one limit set on one subject (spend converted to micro-dollars). */
export const rulesOf = (subject: string, base: string, set: LimitSet | undefined): Array<Rule> => {
  const rules: Array<Rule> = []
  if (set === undefined) return rules
  for (const field of LIMIT_FIELD_NAMES) {
    const value = set[field]
    if (value === undefined) continue
    const { metric, period } = LIMIT_FIELDS[field]
    rules.push({
      subject,
      field,
      base: `${base}:${field}`,
      metric,
      window: period,
      limit: metric === "spend" ? Math.round(value * 1e6) : Math.floor(value)
    })
  }
  return rules
}

/** Field-wise overlay: `over`'s fields win, a `null` in `over` removes the field. */
export const overlay = (
  base: LimitSet | undefined,
  over: { readonly [F in LimitField]?: number | null } | undefined
): LimitSet | undefined => {
  if (over === undefined) return base
  const merged: { [F in LimitField]?: number } = { ...base }
  for (const field of LIMIT_FIELD_NAMES) {
    const v = over[field]
    if (v === null) delete merged[field]
    else if (v !== undefined) merged[field] = v
  }
  return merged
}

/** A model's prices, USD per million tokens. */
export interface Price {
  readonly input: number
  /** Prompt tokens served from the prefix cache (default: the input price). */
  readonly cachedInput: number
  readonly output: number
}

/** Micro-dollars of a request's tokens at `price` (0 without a price). */
export const costMicros = (
  price: Price | undefined,
  usage: { readonly promptTokens: number; readonly completionTokens: number; readonly cachedTokens: number }
): number => {
  if (price === undefined) return 0
  const cached = Math.min(usage.cachedTokens, usage.promptTokens)
  return Math.round((usage.promptTokens - cached) * price.input + cached * price.cachedInput + usage.completionTokens * price.output)
}

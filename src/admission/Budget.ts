/**
 * The limit engine: every limit on a request (per key, per tenant, per tenant and model:
 * requests per sliding minute, input/output/total tokens per minute, day and month, spend
 * per day and month, concurrent requests; and the legacy `budgets:` token window) is a
 * counter checked and reserved together before dispatch, and settled to actual usage
 * exactly once whatever ends the request; the remainder is refunded.
 *
 * This is the interface every store implements (in memory here; Redis in RedisBudget.ts).
 * A counter holds `used` (settled in its bucket) and `reserved` (outstanding); a request
 * is admitted only if, for every rule, used + reserved (+ the previous bucket's weighted
 * use, for the sliding minute) + its own amount stays within the limit. Which rules apply
 * is decided by the `rules` function the engine is built with (admission/Quotas.ts); the
 * engine never reads configuration or a database. It never charges twice: a second
 * settlement of the same reservation is refused and counted as a defect.
 */
import { Clock, Context, Data, Effect, Layer } from "effect"
import type { ModelId, TenantId } from "../domain/Ids.ts"
import {
  amountOf,
  bucketEndMs,
  bucketOf,
  type Metric,
  previousWeight,
  type Quantities,
  type Rule
} from "../domain/Quotas.ts"

/** What admission asks for: who, which model, and the estimate to reserve. */
export interface Claim {
  readonly tenant: TenantId
  readonly keyId: string | undefined
  readonly model: ModelId
  /** Prompt tokens (estimated). */
  readonly inputTokens: number
  /** Output tokens the request may produce (n × output cap). */
  readonly outputTokens: number
  /** The estimate's cost at the model's highest price, micro-dollars. */
  readonly costMicros: number
}

/** What a request actually used, as settlement charges it. */
export interface Actual {
  readonly inputTokens: number
  readonly outputTokens: number
  readonly costMicros: number
}

/** One counter a reservation holds an amount on. */
export interface Hold {
  readonly rule: Rule
  readonly bucket: number
  readonly amount: number
}

export interface Reservation {
  readonly id: number
  readonly tenant: TenantId
  /** Tokens reserved (input + output estimate). */
  readonly tokens: number
  readonly holds: ReadonlyArray<Hold>
  /** The tightest request and token limits after this reservation (the `x-ratelimit-*` headers). */
  readonly requests?: RateLimitState | undefined
  readonly tokensLimit?: RateLimitState | undefined
  /**
   * How far the request's spend limits are used up after this reservation, 0..1: the
   * largest `(used + reserved) ÷ limit` over its `spend_per_day`/`spend_per_month` rules (0
   * without one). Routing weighs cost by it (routing/plugins/cost).
   */
  readonly spendPressure?: number | undefined
}

/** A limit's state as OpenAI's `x-ratelimit-*` headers show it. */
export interface RateLimitState {
  readonly limit: number
  readonly remaining: number
  readonly resetMs: number
}

export class BudgetExceeded extends Data.TaggedError("BudgetExceeded")<{
  readonly tenant: TenantId
  /** Who the exceeded limit is on (`tenant acme`, `key abc`, `tenant acme, model m`). */
  readonly subject: string
  /** The exceeded limit's field (`requests_per_minute`, ..., `tokens_per_window`). */
  readonly field: string
  readonly limit: number
  readonly requested: number
  readonly remaining: number
  readonly retryAfterMs: number
  /** The tightest request and token limits, for the `x-ratelimit-*` headers. */
  readonly requests?: RateLimitState | undefined
  readonly tokens?: RateLimitState | undefined
}> {}

/** The shared budget store cannot be reached and the policy is `fail_closed` (a 503, not the tenant's fault). */
export class BudgetUnavailable extends Data.TaggedError("BudgetUnavailable")<{
  readonly tenant: TenantId
  readonly retryAfterMs: number
}> {}

/** The state of a shared budget store (absent for the in-memory one). */
export interface SharedBudgetState {
  /** The store did not answer; reservations follow the `redis_down` policy. */
  readonly degraded: boolean
  /** Settlements waiting for the store to come back. */
  readonly pendingSettlements: number
  /** Settlements given up (their window had expired, or the queue was full). */
  readonly droppedSettlements: number
  /** Tokens reserved from the local share since start. */
  readonly localReservedTokens: number
}

export interface BudgetSnapshot {
  /** Tokens held by open reservations, all tenants. */
  readonly reservedTokens: number
  readonly openReservations: number
  readonly settlements: number
  /** Settlements refused because the reservation was already settled (must stay 0). */
  readonly doubleSettlements: number
  /** Tokens charged, all tenants, all windows. */
  readonly chargedTokens: number
  /** Micro-dollars charged, all tenants. */
  readonly chargedMicros: number
  readonly shared?: SharedBudgetState | undefined
}

/** The rules a claim is held to (the engine's only view of configuration). */
export type RulesOf = (claim: Claim) => ReadonlyArray<Rule>

export class TokenBudget extends Context.Service<TokenBudget, {
  readonly reserve: (claim: Claim) => Effect.Effect<Reservation, BudgetExceeded | BudgetUnavailable>
  /** Settles to actual usage (may exceed the reservation: the overage is charged too). */
  readonly settle: (reservation: Reservation, actual: Actual) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<BudgetSnapshot>
}>()("sluice/admission/TokenBudget") {
  /** In memory, with the given rules (tests; the gateway builds it in Stores.ts). */
  static readonly layerOf = (rules: RulesOf) => Layer.sync(TokenBudget, () => makeInMemory(rules))
}

/** What a claim reserves on each metric. */
export const reserved = (claim: Claim): Quantities => ({
  requests: 1,
  inputTokens: claim.inputTokens,
  outputTokens: claim.outputTokens,
  costMicros: claim.costMicros,
  concurrent: 1
})

/** What a settlement charges on each metric (a request counts once; it is no longer open). */
export const settled = (actual: Actual): Quantities => ({
  requests: 1,
  inputTokens: actual.inputTokens,
  outputTokens: actual.outputTokens,
  costMicros: actual.costMicros,
  concurrent: 0
})

const TOKEN_METRICS: ReadonlySet<Metric> = new Set(["tokens", "input_tokens", "output_tokens"])

/**
 * How long until `amount` more fits under `rule`, whose level is `level` (of which
 * `previous` is the sliding window's share of the previous bucket).
 */
export const retryAfterMs = (rule: Rule, bucket: number, level: number, previous: number, amount: number, nowMs: number): number => {
  if (rule.window === "none") return 1000
  const end = bucketEndMs(rule.window, bucket) - nowMs
  if (rule.window === "sliding_minute" && previous > 0) {
    // The previous bucket's share decays linearly over the minute.
    const excess = level + amount - rule.limit
    const perMs = previous / Math.max(1, end)
    if (excess <= previous) return Math.max(1, Math.ceil(excess / perMs))
  }
  return Math.max(1, end)
}

/** The tightest limit of one family (request-counting or token-counting rules) after this request. */
export const tightest = (
  rules: ReadonlyArray<Rule>,
  levels: ReadonlyArray<number>,
  amounts: ReadonlyArray<number>,
  buckets: ReadonlyArray<number>,
  family: (m: Metric) => boolean,
  nowMs: number
): RateLimitState | undefined => {
  let best: RateLimitState | undefined
  rules.forEach((rule, i) => {
    if (!family(rule.metric)) return
    const remaining = Math.max(0, Math.floor(rule.limit - levels[i]! - amounts[i]!))
    if (best !== undefined && best.remaining <= remaining) return
    const end = bucketEndMs(rule.window, buckets[i]!)
    best = { limit: rule.limit, remaining, resetMs: Number.isFinite(end) ? Math.max(0, end - nowMs) : 0 }
  })
  return best
}

/**
 * The verdict on a claim given each rule's current level: the first rule it would exceed
 * (as the error), or none. Shared by the in-memory and the Redis engines.
 */
export const verdict = (
  claim: Claim,
  rules: ReadonlyArray<Rule>,
  buckets: ReadonlyArray<number>,
  levels: ReadonlyArray<number>,
  previous: ReadonlyArray<number>,
  nowMs: number,
  /** The rule the store already found exceeded (0-based), if it decided. */
  decided?: number
): BudgetExceeded | undefined => {
  const q = reserved(claim)
  const amounts = rules.map((r) => amountOf(r.metric, q))
  const failing = decided ?? rules.findIndex((r, i) => levels[i]! + amounts[i]! > r.limit)
  if (failing < 0) return undefined
  const rule = rules[failing]!
  const refusedAmounts = amounts.map(() => 0)
  return new BudgetExceeded({
    tenant: claim.tenant,
    subject: rule.subject,
    field: rule.field,
    limit: rule.limit,
    requested: amounts[failing]!,
    remaining: Math.max(0, Math.floor(rule.limit - levels[failing]!)),
    retryAfterMs: retryAfterMs(rule, buckets[failing]!, levels[failing]!, previous[failing]!, amounts[failing]!, nowMs),
    ...families(rules, levels, refusedAmounts, buckets, nowMs)
  })
}

/** The largest share of a spend limit used after this request (levels include its amounts), 0..1. */
export const spendPressure = (
  rules: ReadonlyArray<Rule>,
  levels: ReadonlyArray<number>,
  amounts: ReadonlyArray<number>
): number => {
  let p = 0
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!
    if (rule.metric !== "spend") continue
    const share = rule.limit > 0 ? (levels[i]! + amounts[i]!) / rule.limit : 1
    if (share > p) p = share
  }
  return p > 1 ? 1 : p
}

/** The tightest request and token limits given each rule's level and this request's amounts. */
export const families = (
  rules: ReadonlyArray<Rule>,
  levels: ReadonlyArray<number>,
  amounts: ReadonlyArray<number>,
  buckets: ReadonlyArray<number>,
  nowMs: number
) => ({
  requests: tightest(rules, levels, amounts, buckets, (m) => m === "requests" || m === "concurrent", nowMs),
  tokens: tightest(rules, levels, amounts, buckets, (m) => TOKEN_METRICS.has(m), nowMs)
})

/**
 * The reservation a claim holds once its amounts are counted: the tightest request and token
 * limits and the spend pressure after it (`levels` are each rule's level before this claim).
 * One shape for the in-memory and the Redis engine.
 */
export const reservationOf = (
  id: number,
  claim: Claim,
  tokens: number,
  holds: ReadonlyArray<Hold>,
  rules: ReadonlyArray<Rule>,
  levels: ReadonlyArray<number>,
  buckets: ReadonlyArray<number>,
  nowMs: number
): Reservation => {
  const amounts = holds.map((h) => h.amount)
  const state = families(rules, levels, amounts, buckets, nowMs)
  return {
    id,
    tenant: claim.tenant,
    tokens,
    holds,
    requests: state.requests,
    tokensLimit: state.tokens,
    spendPressure: spendPressure(rules, levels, amounts)
  }
}

interface Counter {
  bucket: number
  used: number
  reserved: number
  /** The previous bucket's settled use (the sliding minute reads it). */
  previous: number
}

export const makeInMemory = (rulesOf: RulesOf): TokenBudget["Service"] => {
  const counters = new Map<string, Counter>()
  const open = new Map<number, Reservation>()
  let nextId = 1
  let reservedTokens = 0
  let settlements = 0
  let doubleSettlements = 0
  let chargedTokens = 0
  let chargedMicros = 0

  /** The counter of `base`, rolled forward to `bucket` (outstanding reservations carry over). */
  const counterOf = (base: string, bucket: number): Counter => {
    let c = counters.get(base)
    if (c === undefined) {
      c = { bucket, used: 0, reserved: 0, previous: 0 }
      counters.set(base, c)
    } else if (c.bucket < bucket) {
      c.previous = c.bucket === bucket - 1 ? c.used : 0
      c.used = 0
      c.bucket = bucket
    }
    return c
  }

  return TokenBudget.of({
    reserve: (claim) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const rules = rulesOf(claim)
        const buckets = rules.map((r) => bucketOf(r.window, now))
        const cs = rules.map((r, i) => counterOf(r.base, buckets[i]!))
        const previous = rules.map((r, i) => cs[i]!.previous * previousWeight(r.window, now))
        const levels = cs.map((c, i) => c.used + c.reserved + previous[i]!)
        const refused = verdict(claim, rules, buckets, levels, previous, now)
        if (refused !== undefined) return Effect.fail(refused)
        const q = reserved(claim)
        const holds = rules.map((rule, i): Hold => {
          const amount = amountOf(rule.metric, q)
          cs[i]!.reserved += amount
          return { rule, bucket: buckets[i]!, amount }
        })
        const tokens = claim.inputTokens + claim.outputTokens
        reservedTokens += tokens
        const reservation = reservationOf(nextId++, claim, tokens, holds, rules, levels, buckets, now)
        open.set(reservation.id, reservation)
        return Effect.succeed(reservation)
      }),
    settle: (reservation, actual) =>
      Effect.sync(() => {
        if (!open.delete(reservation.id)) {
          doubleSettlements++
          return
        }
        settlements++
        reservedTokens -= reservation.tokens
        chargedTokens += actual.inputTokens + actual.outputTokens
        chargedMicros += actual.costMicros
        const q = settled(actual)
        for (const { rule, bucket, amount } of reservation.holds) {
          const c = counters.get(rule.base)
          if (c === undefined) continue
          c.reserved -= amount
          const used = amountOf(rule.metric, q)
          if (c.bucket === bucket) c.used += used
          else if (c.bucket === bucket + 1) c.previous += used
        }
      }),
    snapshot: Effect.sync(() => ({
      reservedTokens,
      openReservations: open.size,
      settlements,
      doubleSettlements,
      chargedTokens,
      chargedMicros
    }))
  })
}

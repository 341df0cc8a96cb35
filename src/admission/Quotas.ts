/**
 * The limits and prices in force: the config file's (`quotas:`, `prices:`, the legacy
 * `budgets:` window) overlaid with the database's (set through the admin API or the CLI),
 * kept in memory and re-read every `REFRESH_MS` (and at once after an admin write on this
 * replica), so the request path never waits for the database.
 *
 * Gives the limit engine (Budget.ts) the rules one claim is held to (its key's, its
 * tenant's and its tenant's on its model), and accounting the price of a model on a
 * backend. Owns the merge of the two sources. Must never: count or reserve (the engine
 * does), or fail a request because the database is down (the last copy stays in force).
 */
import { Context, Effect, Layer, Schedule, Stream, SubscriptionRef } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { Plan } from "../config/Plan.ts"
import type { BackendId, ModelId } from "../domain/Ids.ts"
import { type LimitSet, overlay, type Price, type Rule, rulesOf } from "../domain/Quotas.ts"
import { type LimitRow, type PriceRow, QuotaStore } from "../stores/QuotaStore.ts"
import type { Claim } from "./Budget.ts"

const REFRESH_MS = 5000
/** Rule lists kept per (tenant, key, model); the cache is dropped when it grows past this. */
const MAX_CACHED = 10_000

export interface QuotaState {
  readonly rows: ReadonlyArray<LimitRow>
  readonly prices: ReadonlyArray<PriceRow>
}

export class QuotaTable extends Context.Service<QuotaTable, {
  /** The rules a claim is held to (the legacy budget's first, then tenant, model and key limits). */
  readonly rules: (claim: Claim) => ReadonlyArray<Rule>
  /** The price of `model` on `backend` (its own, else the model's), or none. */
  readonly price: (model: ModelId, backend: BackendId | undefined) => Price | undefined
  /** The highest price of `model` on any backend (what an estimate is reserved at). */
  readonly maxPrice: (model: ModelId) => Price | undefined
  /** The limits in force on a subject, config and database merged (the admin API shows them). */
  readonly limitsOf: (scope: LimitRow["scope"], subject: string, model: string) => LimitSet | undefined
  /** Re-reads the database now (after an admin write). */
  readonly reload: Effect.Effect<void>
}>()("sluice/admission/QuotaTable") {
  /** Config and database, refreshed in the background. */
  static readonly layer: Layer.Layer<QuotaTable, never, GatewayConfig | QuotaStore> = Layer.effect(
    QuotaTable,
    Effect.gen(function*() {
      const config = yield* GatewayConfig
      const { initial } = config
      const store = yield* QuotaStore
      const table = make(initial, { rows: [], prices: [] })
      const read = Effect.gen(function*() {
        const rows = yield* store.limits
        const prices = yield* store.prices
        table.replace({ rows, prices })
      }).pipe(
        Effect.catch((e) => Effect.logWarning("limits and prices could not be read; the last copy stays in force", { operation: e.operation }))
      )
      yield* read
      yield* Effect.forkScoped(Effect.repeat(read, Schedule.spaced(REFRESH_MS)))
      // A reload's limits and prices apply to the next request, as its routes and timeouts do.
      yield* Effect.forkScoped(Stream.runForEach(SubscriptionRef.changes(config.ref), (plan) => Effect.sync(() => table.usePlan(plan))))
      return QuotaTable.of({ ...table, reload: read })
    })
  )

  /** The config file's only (tests, embedded graphs without a database). */
  static readonly fromPlan = (plan: Plan) => {
    const table = make(plan, { rows: [], prices: [] })
    return QuotaTable.of({ ...table, reload: Effect.void })
  }
}

const priceKey = (model: string, backend: string) => `${model}\u0000${backend}`

/** The merged table over one plan; `replace` swaps in a new database copy. */
export const make = (plan: Plan, initial: QuotaState) => {
  // The config file's part follows reloads (`usePlan`); the legacy budget window stays the
  // start's (its store is built once: a reload reports `budgets` as needing a restart).
  let source = plan
  let state = initial
  let tenants = new Map<string, LimitSet | undefined>()
  let keys = new Map<string, LimitSet | undefined>()
  let models = new Map<string, LimitSet | undefined>()
  let prices = new Map<string, Price>()
  let maxPrices = new Map<string, Price>()
  let cache = new Map<string, ReadonlyArray<Rule>>()

  const replace = (next: QuotaState) => {
    state = next
    const plan = source
    const t = new Map<string, LimitSet | undefined>()
    const k = new Map<string, LimitSet | undefined>()
    const m = new Map<string, LimitSet | undefined>()
    for (const [id, set] of plan.quotas.tenants) t.set(id, set)
    for (const [id, set] of plan.quotas.keys) k.set(id, set)
    for (const [tenant, byModel] of plan.quotas.models) {
      for (const [model, set] of byModel) m.set(`${tenant}\u0000${model}`, set)
    }
    for (const row of next.rows) {
      const [map, id] = row.scope === "tenant"
        ? [t, row.subject]
        : row.scope === "key"
        ? [k, row.subject]
        : [m, `${row.subject}\u0000${row.model}`]
      map.set(id, overlay(map.get(id), row.limits))
    }
    const p = new Map<string, Price>()
    for (const [model, price] of plan.prices) {
      p.set(priceKey(model, ""), price)
      for (const [backend, own] of price.backends) p.set(priceKey(model, backend), own)
    }
    for (const row of next.prices) p.set(priceKey(row.model, row.backend), row.price)
    const max = new Map<string, Price>()
    for (const [key, price] of p) {
      const model = key.slice(0, key.indexOf("\u0000"))
      const known = max.get(model)
      max.set(
        model,
        known === undefined ? price : {
          input: Math.max(known.input, price.input),
          cachedInput: Math.max(known.cachedInput, price.cachedInput),
          output: Math.max(known.output, price.output)
        }
      )
    }
    tenants = t
    keys = k
    models = m
    prices = p
    maxPrices = max
    cache = new Map()
  }
  replace(initial)
  /** A reloaded plan: its `quotas:` and `prices:` apply to requests that start from now on. */
  const usePlan = (next: Plan) => {
    if (next === source) return
    source = next
    replace(state)
  }

  const budget = plan.budgets
  const rules = (claim: Claim): ReadonlyArray<Rule> => {
    const id = `${claim.tenant}\u0000${claim.keyId ?? ""}\u0000${claim.model}`
    const known = cache.get(id)
    if (known !== undefined) return known
    const list: Array<Rule> = []
    if (budget.tokensPerWindow !== undefined) {
      // The legacy per-tenant token window keeps its Redis key (`sluice:budget:<tenant>:<window>`).
      list.push({
        subject: `tenant ${claim.tenant}`,
        field: "tokens_per_window",
        base: `sluice:budget:${claim.tenant}`,
        metric: "tokens",
        window: { kind: "fixed", ms: budget.windowMs },
        limit: budget.tokensPerWindow
      })
    }
    // Names may hold ':' (the key separator): each part is escaped so no two subjects share a counter.
    const tenant = encodeURIComponent(claim.tenant)
    list.push(...rulesOf(`tenant ${claim.tenant}`, `sluice:limit:t:${tenant}`, tenants.get(claim.tenant)))
    list.push(
      ...rulesOf(
        `tenant ${claim.tenant}, model ${claim.model}`,
        `sluice:limit:tm:${tenant}:${encodeURIComponent(claim.model)}`,
        models.get(`${claim.tenant}\u0000${claim.model}`)
      )
    )
    if (claim.keyId !== undefined) {
      list.push(...rulesOf(`key ${claim.keyId}`, `sluice:limit:k:${encodeURIComponent(claim.keyId)}`, keys.get(claim.keyId)))
    }
    if (cache.size >= MAX_CACHED) cache = new Map()
    cache.set(id, list)
    return list
  }

  return {
    replace,
    usePlan,
    rules,
    // The router asks once per candidate per request: no key is built while no price is set.
    price: (model: ModelId, backend: BackendId | undefined): Price | undefined =>
      prices.size === 0
        ? undefined
        : (backend === undefined ? undefined : prices.get(priceKey(model, backend))) ?? prices.get(priceKey(model, "")),
    maxPrice: (model: ModelId): Price | undefined => maxPrices.get(model),
    /** The limits in force on a subject (for the admin API). */
    limitsOf: (scope: LimitRow["scope"], subject: string, model: string): LimitSet | undefined =>
      scope === "tenant" ? tenants.get(subject) : scope === "key" ? keys.get(subject) : models.get(`${subject}\u0000${model}`)
  }
}


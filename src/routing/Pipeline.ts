/**
 * The `inference` policy as a pure function: filter → score → pick over the views of one
 * request, with the plugins the routing plan names (compiled once per plan and cached).
 *
 * The hard filters (and the health gates) run first, in config order; a hard filter that
 * would exclude every candidate fails the request with its name. The soft (fail-open)
 * filters, saturation, run after them on what they kept, so a soft filter can never leave a
 * hard one nothing to keep (a tenant whose allowed backends are all busy is served by a busy
 * one, not refused). Soft filters never fail a request and never drop a candidate: the ones
 * they exclude are *saturated* and ranked after the others (the failover order still reaches
 * them), and when every candidate is saturated they are all ranked by score, least bad
 * first (`overload`). Scores are combined as `weight(b) · Σ wₛ·scoreₛ(b) / Σ wₛ`, every
 * `scoreₛ` clamped to [0, 1]. The picker orders the candidates: the first is tried first,
 * the rest are the failover order. A backend a hard filter excludes never appears in the
 * result.
 *
 * Spend pressure: a request whose tenant is near a spend limit (`req.spendPressure` p > 0,
 * from admission) adds the `cost` scorer with weight `p² · routing.spend_pressure_weight · Σ wₛ`
 * (Σ wₛ = 1 without scorers), so the cheaper eligible backend wins as the budget runs out
 * while a tenant with room (p = 0) is ranked exactly as configured.
 *
 * Panic (Envoy's panic threshold): let E be the candidates the other hard filters keep and
 * A ⊆ E those the health gates (health, breaker) keep too. When |A| < panic_threshold·|E|,
 * the gates are skipped for this request: every candidate of E is ranked, the ones outside
 * A after the others (each group in the picker's order), and the result says `panic`. So
 * a model whose backends all look bad is served by the least bad rather than refused.
 * Plain TypeScript, no Effect: the router calls it once per request inside one step.
 */
import type { RoutingPlan } from "../config/Plan.ts"
import type { BackendView, Filter, Picker, RoutingContext, Scored, Scorer } from "./Contract.ts"
import { unit } from "./plugins/support.ts"
import type { NameTable } from "../domain/NameTable.ts"
import type { RoutingPluginsShape } from "./Registry.ts"

export interface WeightedScorer {
  readonly scorer: Scorer
  readonly weight: number
}

export interface Compiled {
  readonly filters: ReadonlyArray<Filter>
  /** Filters judging health evidence (they decide panic routing). */
  readonly gates: ReadonlyArray<Filter>
  /** The other filters that may fail a request (not gates, not fail-open: those are soft). */
  readonly hard: ReadonlyArray<Filter>
  readonly scorers: ReadonlyArray<WeightedScorer>
  readonly totalWeight: number
  readonly picker: Picker
  /** The scorers that matter for a prefill-only leg (P/D): prefix reuse and prefill queueing. */
  readonly prefillScorers: ReadonlyArray<WeightedScorer>
  readonly prefillWeight: number
  /** The `cost` scorer, weighted in by the request's spend pressure (undefined: not registered). */
  readonly spend: Scorer | undefined
}

const PREFILL_SCORERS: ReadonlySet<string> = new Set(["prefix_cache", "queue_depth", "predicted_ttft", "kv_usage"])

/**
 * A compiler from routing plans to plugin instances, over one registry: each plan is
 * compiled once and cached (plans are immutable; a reload brings a new one). Names were
 * checked against the registry at start (Registry.check); an unknown one here is a defect.
 */
export const compiler = (registry: RoutingPluginsShape): (plan: RoutingPlan) => Compiled => {
  const cache = new WeakMap<RoutingPlan, Compiled>()
  const get = <F>(table: NameTable<F>, kind: string, name: string): F => {
    const factory = table.get(name)
    if (factory === undefined) throw new Error(`routing ${kind} "${name}" is not registered`)
    return factory
  }
  return (plan) => {
    const hit = cache.get(plan)
    if (hit !== undefined) return hit
    const filters = plan.filters.map((name) => get(registry.filters, "filter", name)(plan))
    const scorers: Array<WeightedScorer> = []
    for (const [name, weight] of Object.entries(plan.scorers)) {
      if (weight > 0) scorers.push({ scorer: get(registry.scorers, "scorer", name)(plan), weight })
    }
    const prefillScorers = scorers.filter((s) => s.scorer.prefill === true || PREFILL_SCORERS.has(s.scorer.name))
    const compiled: Compiled = {
      filters,
      gates: filters.filter((f) => f.healthGate === true),
      hard: filters.filter((f) => f.healthGate !== true && !f.failOpen),
      scorers,
      totalWeight: scorers.reduce((n, s) => n + s.weight, 0),
      picker: get(registry.pickers, "picker", plan.picker)(plan),
      prefillScorers,
      prefillWeight: prefillScorers.reduce((n, s) => n + s.weight, 0),
      spend: scorers.find((s) => s.scorer.name === "cost")?.scorer ?? registry.scorers.get("cost")?.(plan)
    }
    cache.set(plan, compiled)
    return compiled
  }
}

export type Filtered =
  | {
    readonly ok: true
    readonly views: ReadonlyArray<BackendView>
    /** Routed in panic: the health gates were ignored. */
    readonly panic: boolean
    /** In panic, the candidates the health gates would have excluded (ranked last). */
    readonly excluded: ReadonlySet<BackendView> | undefined
    /** Candidates a soft filter excluded (saturated): ranked after the others, before `excluded`. */
    readonly saturated?: ReadonlySet<BackendView> | undefined
    /**
     * How saturation shaped the result: `least_bad` when every candidate was saturated (all
     * ranked by score), `saturated_last` when some were (ranked last); undefined otherwise.
     */
    readonly overload?: "least_bad" | "saturated_last" | undefined
  }
  | { readonly ok: false; readonly filter: string }

/**
 * In panic, the candidates (kept by the other hard filters) that the health gates exclude;
 * undefined when the share the gates keep is at or above the threshold.
 */
const panicExclusions = (
  compiled: Compiled,
  ctx: RoutingContext,
  views: ReadonlyArray<BackendView>,
  skip: string | undefined
): ReadonlySet<BackendView> | undefined => {
  const threshold = ctx.plan.panicThreshold
  if (threshold <= 0 || compiled.gates.length === 0) return undefined
  // The common path: every candidate passes every gate (`keep` returns the same array).
  let kept = views
  for (const g of compiled.gates) if (g.name !== skip) kept = g.apply(ctx, kept)
  if (kept === views) return undefined
  let eligible = views
  for (const f of compiled.hard) {
    if (f.name === skip) continue
    eligible = f.apply(ctx, eligible)
    if (eligible.length === 0) return undefined
  }
  let available = eligible
  for (const g of compiled.gates) if (g.name !== skip) available = g.apply(ctx, available)
  if (available.length >= threshold * eligible.length) return undefined
  const ok = new Set(available)
  return new Set(eligible.filter((v) => !ok.has(v)))
}

/** Runs the filters; `skip` names filters not to run (baselines skip `saturation`). */
export const filter = (
  compiled: Compiled,
  ctx: RoutingContext,
  views: ReadonlyArray<BackendView>,
  skip?: string
): Filtered => {
  let excluded = panicExclusions(compiled, ctx, views, skip)
  let current = views
  for (const f of compiled.filters) {
    if (f.failOpen || f.name === skip || (excluded !== undefined && f.healthGate === true)) continue
    const next = f.apply(ctx, current)
    if (next.length === 0) {
      // Defensive: panicExclusions already saw this case (the gates leave none of the eligible).
      if (f.healthGate === true && ctx.plan.panicThreshold > 0) {
        excluded = new Set([...(excluded ?? []), ...current])
        continue
      }
      return { ok: false, filter: f.name }
    }
    current = next
  }
  // Soft filters: what they exclude stays a candidate, ranked after the others.
  const candidates = current
  let saturated: Set<BackendView> | undefined
  let leastBad = false
  for (const f of compiled.filters) {
    if (!f.failOpen || f.name === skip) continue
    const next = f.apply(ctx, current)
    if (next === current || next.length === current.length) continue
    if (next.length === 0) {
      leastBad = true
      continue
    }
    saturated ??= new Set()
    const kept = new Set(next)
    for (const v of current) if (!kept.has(v)) saturated.add(v)
    current = next
  }
  return {
    ok: true,
    views: candidates,
    panic: excluded !== undefined,
    excluded,
    saturated,
    overload: leastBad ? "least_bad" : saturated !== undefined ? "saturated_last" : undefined
  }
}

/**
 * Stable demotion: the candidates neither saturated nor gate-excluded first, then the
 * saturated, then (in panic) the ones the health gates would have excluded.
 */
export const excludedLast = (views: ReadonlyArray<BackendView>, filtered: Filtered): ReadonlyArray<BackendView> => {
  if (!filtered.ok) return views
  const excluded = filtered.excluded !== undefined && filtered.excluded.size > 0 ? filtered.excluded : undefined
  const saturated = filtered.saturated !== undefined && filtered.saturated.size > 0 ? filtered.saturated : undefined
  if (excluded === undefined && saturated === undefined) return views
  const first: Array<BackendView> = []
  const busy: Array<BackendView> = []
  const last: Array<BackendView> = []
  for (const v of views) {
    if (excluded?.has(v) === true) last.push(v)
    else if (saturated?.has(v) === true) busy.push(v)
    else first.push(v)
  }
  return [...first, ...busy, ...last]
}

/** Combined score of every view, in [0, weight(b)]. */
export const score = (
  ctx: RoutingContext,
  views: ReadonlyArray<BackendView>,
  scorers: ReadonlyArray<WeightedScorer>,
  totalWeight: number
): Array<Scored> => {
  const out = new Array<Scored>(views.length)
  for (let i = 0; i < views.length; i++) {
    const v = views[i]!
    let sum = 0
    if (totalWeight > 0 && views.length > 1) {
      for (const { scorer, weight } of scorers) sum += weight * unit(scorer.score(ctx, v, views))
      sum /= totalWeight
    } else {
      sum = 1
    }
    out[i] = { view: v, score: sum * v.weight }
  }
  return out
}

/** The weight spend pressure adds to the `cost` scorer for this request (0: none). */
export const spendWeight = (compiled: Compiled, ctx: RoutingContext): number => {
  const p = ctx.req.spendPressure
  if (p === undefined || !(p > 0) || compiled.spend === undefined) return 0
  const pressure = p < 1 ? p : 1
  return pressure * pressure * ctx.plan.spendPressureWeight * (compiled.totalWeight > 0 ? compiled.totalWeight : 1)
}

/** Filter → score → pick. */
export const run = (
  compiled: Compiled,
  ctx: RoutingContext,
  views: ReadonlyArray<BackendView>,
  random: () => number
): Filtered => {
  const filtered = filter(compiled, ctx, views)
  if (!filtered.ok) return filtered
  if (filtered.views.length <= 1) return filtered
  const extra = spendWeight(compiled, ctx)
  const scored = extra > 0
    ? score(ctx, filtered.views, [...compiled.scorers, { scorer: compiled.spend!, weight: extra }], compiled.totalWeight + extra)
    : score(ctx, filtered.views, compiled.scorers, compiled.totalWeight)
  return { ...filtered, views: excludedLast(compiled.picker.order(ctx, scored, random), filtered) }
}

/** Orders the prefill pool of a disaggregated request (prefill-relevant scorers, highest first). */
export const rankPrefill = (
  compiled: Compiled,
  ctx: RoutingContext,
  views: ReadonlyArray<BackendView>
): Filtered => {
  const filtered = filter(compiled, ctx, views)
  if (!filtered.ok || filtered.views.length <= 1) return filtered
  const scored = score(ctx, filtered.views, compiled.prefillScorers, compiled.prefillWeight)
  const ranked = scored.sort((a, b) => b.score - a.score || a.view.index - b.view.index).map((s) => s.view)
  return { ...filtered, views: excludedLast(ranked, filtered) }
}

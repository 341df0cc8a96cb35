/**
 * The `inference` policy as a pure function: filter → score → pick over the views of one
 * request, with the plugins the routing plan names (compiled once per plan and cached).
 *
 * Filters run in config order; a filter that would exclude every candidate fails the
 * request with its name, unless it fails open (saturation). Scores are combined as
 * `weight(b) · Σ wₛ·scoreₛ(b) / Σ wₛ`, every `scoreₛ` clamped to [0, 1]. The picker orders
 * all surviving candidates: the first is tried first, the rest are the failover order.
 * A filtered-out backend never appears in the result. Plain TypeScript, no Effect: the
 * router calls it once per request inside one `Effect` step.
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
  readonly scorers: ReadonlyArray<WeightedScorer>
  readonly totalWeight: number
  readonly picker: Picker
  /** The scorers that matter for a prefill-only leg (P/D): prefix reuse and prefill queueing. */
  readonly prefillScorers: ReadonlyArray<WeightedScorer>
  readonly prefillWeight: number
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
      scorers,
      totalWeight: scorers.reduce((n, s) => n + s.weight, 0),
      picker: get(registry.pickers, "picker", plan.picker)(plan),
      prefillScorers,
      prefillWeight: prefillScorers.reduce((n, s) => n + s.weight, 0)
    }
    cache.set(plan, compiled)
    return compiled
  }
}

export type Filtered =
  | { readonly ok: true; readonly views: ReadonlyArray<BackendView> }
  | { readonly ok: false; readonly filter: string }

/** Runs the filters; `skip` names filters not to run (baselines skip `saturation`). */
export const filter = (
  compiled: Compiled,
  ctx: RoutingContext,
  views: ReadonlyArray<BackendView>,
  skip?: string
): Filtered => {
  let current = views
  for (const f of compiled.filters) {
    if (f.name === skip) continue
    const next = f.apply(ctx, current)
    if (next.length === 0) {
      if (f.failOpen) continue
      return { ok: false, filter: f.name }
    }
    current = next
  }
  return { ok: true, views: current }
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
  const scored = score(ctx, filtered.views, compiled.scorers, compiled.totalWeight)
  return { ok: true, views: compiled.picker.order(ctx, scored, random) }
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
  return { ok: true, views: scored.sort((a, b) => b.score - a.score || a.view.index - b.view.index).map((s) => s.view) }
}

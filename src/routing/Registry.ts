/**
 * The routing plugin registry: every filter, scorer and picker the config may name
 * (`routing.filters`, `routing.scorers`, `routing.picker`), as a service of the gateway's
 * graph. It starts with the built-ins (plugins/<name>/) and extension layers add entries
 * (`RoutingPlugins.addScorer("region", ...)`); a factory may depend on other services, which
 * its layer resolves when the graph is built. The registry is sealed the first time the
 * router reads it, so an entry added later is a defect, never a silently ignored plugin.
 *
 * Owns the names and factories only. Must never: run a plugin (the router does), or be a
 * process-wide global (each graph has its own).
 */
import { Context, Data, Effect, Layer } from "effect"
import * as NameTable from "../domain/NameTable.ts"
import { PlanChecks } from "../config/Checks.ts"
import type { RoutingPlan } from "../config/Plan.ts"
import type { FilterFactory, PickerFactory, ScorerFactory } from "./Contract.ts"
import { builtinFilters, builtinPickers, builtinScorers } from "./plugins/index.ts"

export type PluginKind = "filter" | "scorer" | "picker"

/** A name in the config that no registered plugin answers to. */
export class UnknownPlugin extends Data.TaggedError("UnknownPlugin")<{
  readonly path: string
  readonly kind: PluginKind
  readonly name: string
  readonly known: ReadonlyArray<string>
}> {
  override get message() {
    return `unknown ${this.kind} "${this.name}" (known: ${this.known.join(", ")})`
  }
}

export interface RoutingPluginsShape {
  readonly filters: NameTable.NameTable<FilterFactory>
  readonly scorers: NameTable.NameTable<ScorerFactory>
  readonly pickers: NameTable.NameTable<PickerFactory>
  /** Seals every table (the router does this when it is built). */
  readonly seal: () => void
}

export class RoutingPlugins extends Context.Service<RoutingPlugins, RoutingPluginsShape>()("sluice/routing/RoutingPlugins") {
  /**
   * The built-in plugins; extension layers built before the router add to it. Every plugin
   * name a plan uses is checked against it (at start, before anything is built, and on reload).
   */
  static readonly layer: Layer.Layer<RoutingPlugins, never, PlanChecks> = Layer.effect(
    RoutingPlugins,
    Effect.map(PlanChecks, (checks) => {
      const registry = make()
      checks.add((plan) => check(registry, plan.routing).map((u) => ({ path: u.path, message: u.message })))
      return registry
    })
  )

  /** A layer that registers a filter (its factory may need services: `factory` is an Effect). */
  static addFilter<E, R>(name: string, factory: Effect.Effect<FilterFactory, E, R>) {
    return register((r) => r.filters, name, factory)
  }
  static addScorer<E, R>(name: string, factory: Effect.Effect<ScorerFactory, E, R>) {
    return register((r) => r.scorers, name, factory)
  }
  static addPicker<E, R>(name: string, factory: Effect.Effect<PickerFactory, E, R>) {
    return register((r) => r.pickers, name, factory)
  }
}

const register = <F, E, R>(
  table: (registry: RoutingPluginsShape) => NameTable.NameTable<F>,
  name: string,
  factory: Effect.Effect<F, E, R>
): Layer.Layer<never, E, R | RoutingPlugins> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const registry = yield* RoutingPlugins
    table(registry).add(name, yield* factory)
  }))

export const make = (): RoutingPluginsShape => {
  const filters = NameTable.make<FilterFactory>("routing filter", Object.entries(builtinFilters))
  const scorers = NameTable.make<ScorerFactory>("routing scorer", Object.entries(builtinScorers))
  const pickers = NameTable.make<PickerFactory>("routing picker", Object.entries(builtinPickers))
  return {
    filters,
    scorers,
    pickers,
    seal: () => {
      filters.seal()
      scorers.seal()
      pickers.seal()
    }
  }
}

/** Every name the routing plan uses that the registry does not know, with its config path. */
export const check = (registry: RoutingPluginsShape, plan: RoutingPlan): ReadonlyArray<UnknownPlugin> => {
  const out: Array<UnknownPlugin> = []
  const known = (t: { readonly names: () => ReadonlyArray<string> }) => t.names()
  plan.filters.forEach((name, i) => {
    if (!registry.filters.has(name)) {
      out.push(new UnknownPlugin({ path: `routing.filters[${i}]`, kind: "filter", name, known: known(registry.filters) }))
    }
  })
  for (const name of Object.keys(plan.scorers)) {
    if (!registry.scorers.has(name)) {
      out.push(new UnknownPlugin({ path: `routing.scorers.${name}`, kind: "scorer", name, known: known(registry.scorers) }))
    }
  }
  if (!registry.pickers.has(plan.picker)) {
    out.push(new UnknownPlugin({ path: "routing.picker", kind: "picker", name: plan.picker, known: known(registry.pickers) }))
  }
  return out
}

/**
 * The router: for an admitted request, the ordered list of backends to try (the first is
 * tried first; the rest are the dispatcher's failover order).
 *
 * Policies (`routing.policy`):
 * - `inference` (default): filter → score → pick (Pipeline.ts) over per-candidate views
 *   (Views.ts). When the model is served by a prefill/decode pool and the prompt is long
 *   enough, the request gets a two-leg plan: decode backends are the candidates and the
 *   ranked prefill backends travel in the route, for dispatch to run the prefill leg.
 * - baselines: `ordered`, `round_robin`, `least_outstanding`, `random` (Baselines.ts).
 *
 * Runs once per request, synchronously inside one Effect step; reads the fleet, the
 * breakers, the affinity index and the routing state, and changes none of them (the
 * dispatcher records placements). Plugins are compiled once per plan.
 *
 * Panic: when the health and breaker filters would leave less than `routing.panic_threshold`
 * of a model's candidates (Pipeline.ts), the route ranks all of them (the excluded ones
 * last) and says `panic`, so the dispatcher also admits candidates behind an open breaker.
 * Each such request is counted (`sluice_routing_panic_total{model}`); a model entering and
 * leaving panic is logged once each way.
 *
 * Overload: saturation never refuses a request (Pipeline.ts). A route whose candidates were
 * all saturated ranks them least bad first; one where some were ranks those last; each such
 * request is counted (`sluice_routing_overload_total{model,decision}`, decision `least_bad`
 * or `saturated_last`). A request is refused only when a hard filter leaves nothing.
 */
import { Clock, Context, Effect, Layer, Option } from "effect"
import type { Backend } from "../backends/Backend.ts"
import { Fleet } from "../backends/Fleet.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { Plan } from "../config/Plan.ts"
import { QuotaTable } from "../admission/Quotas.ts"
import type { GatewayRequest } from "../admission/Request.ts"
import * as Metrics from "../observability/Metrics.ts"
import { NoBackendAvailable } from "./Errors.ts"
import { Breakers } from "../resilience/Breakers.ts"
import { Affinity } from "./Affinity.ts"
import * as Baselines from "./Baselines.ts"
import type { BackendView, RoutingContext } from "./Contract.ts"
import { supportsTransfer } from "./Disaggregation.ts"
import * as Pipeline from "./Pipeline.ts"
import { RoutingPlugins } from "./Registry.ts"
import { Placement } from "./Placement.ts"
import * as Views from "./Views.ts"

/** Signals older than this many scrape intervals are ignored (GIE treats stale metrics as unknown). */
const SIGNAL_AGE_INTERVALS = 2

/** The backends to try, in order, whether they were ranked in panic, and a prefill plan. */
export interface Route {
  readonly backends: ReadonlyArray<Backend>
  /** Health and breaker exclusions were ignored: every candidate looked bad. */
  readonly panic: boolean
  /**
   * A disaggregated request's prefill engines, best first: dispatch runs the prefill leg on
   * one of them before a decode candidate (undefined: one engine does everything).
   */
  readonly prefill?: ReadonlyArray<Backend> | undefined
  /** Saturation shaped the order (Pipeline.ts `overload`): every candidate busy, or some. */
  readonly overload?: "least_bad" | "saturated_last" | undefined
}

export class Router extends Context.Service<Router, {
  readonly candidates: (req: GatewayRequest) => Effect.Effect<Route, NoBackendAvailable>
}>()("sluice/routing/Router") {
  static readonly layer = Layer.effect(
    Router,
    Effect.gen(function*() {
      const fleet = yield* Fleet
      const affinity = yield* Affinity
      const breakers = yield* Breakers
      const state = yield* Placement
      const config = yield* GatewayConfig
      const plugins = yield* RoutingPlugins
      // Token prices for the cost scorer (an in-memory table; absent in graphs without one).
      const quotas = Option.getOrUndefined(yield* Effect.serviceOption(QuotaTable))
      const price = quotas?.price
      plugins.seal()
      const compile = Pipeline.compiler(plugins)
      const random = Baselines.rng(config.initial.routing.seed ?? Math.floor(Math.random() * 2 ** 32))
      const turns = new Map<string, number>()
      /** Models routing in panic right now (for logging the transitions only). */
      const panicking = new Set<string>()

      const route = (req: GatewayRequest, now: number, plan: Plan): Route | NoBackendAvailable => {
        const serving = fleet.forModel(req.model.id)
        const none = (message: string) => new NoBackendAvailable({ model: req.model.id, message })
        if (serving.length === 0) return none(`no backend serves ${req.model.id}`)
        const routing = plan.routing
        const hinted = req.sessionKey === undefined ? undefined : affinity.peek(req.sessionKey, now)
        if (routing.policy === "ordered") {
          // No filters here: the breakers (which the dispatcher asks) are the only gate, so
          // panic is the share of backends whose breaker is not open; those go last in panic.
          const backends = Baselines.ordered(serving, now, hinted)
          const open = (b: Backend) => breakers.state(req.model.id, b.plan.gpu, now) === "open"
          let usable = 0
          for (const b of serving) if (!open(b)) usable++
          const panic = routing.panicThreshold > 0 && usable < routing.panicThreshold * serving.length
          return { backends: panic ? [...backends.filter((b) => !open(b)), ...backends.filter(open)] : backends, panic }
        }

        const deps: Views.ViewDeps = {
          breakers,
          state,
          degradedWeight: plan.breakers.degradedWeight,
          maxSignalAgeMs: SIGNAL_AGE_INTERVALS * plan.health.scrapeIntervalMs,
          price
        }
        const ctx: RoutingContext = { req, nowMs: now, plan: routing }
        const compiled = compile(routing)
        const rejected = (filter: string) => none(`every backend for ${req.model.id} was excluded by the ${filter} filter`)
        const toBackends = (views: ReadonlyArray<BackendView>) => views.map((v) => v.backend)

        if (routing.policy !== "inference") {
          const filtered = Pipeline.filter(compiled, ctx, Views.views(req, serving, now, hinted, deps), "saturation")
          if (!filtered.ok) return rejected(filtered.filter)
          const turn = turns.get(req.model.id) ?? 0
          turns.set(req.model.id, turn + 1)
          const ordered = routing.policy === "round_robin"
            ? Baselines.roundRobin(filtered.views, turn)
            : routing.policy === "least_outstanding"
            ? Baselines.leastOutstanding(filtered.views, turn)
            : Baselines.random(filtered.views, random)
          return { backends: toBackends(Pipeline.excludedLast(ordered, filtered)), panic: filtered.panic, overload: filtered.overload }
        }

        // inference: one pool, or a prefill/decode plan when the model has a P/D pool.
        const decode: Array<Backend> = []
        const prefill: Array<Backend> = []
        const mixed: Array<Backend> = []
        for (const b of serving) {
          if (b.plan.role === "mixed") mixed.push(b)
          else if (b.plan.role === "prefill") prefill.push(b)
          else decode.push(b)
        }
        const disaggregate = prefill.length > 0 && decode.length > 0 && req.kind !== "embedding" && req.kind !== "rerank" &&
          req.estimate.promptTokens >= routing.pdMinPromptTokens && decode.every(supportsTransfer) &&
          prefill.every(supportsTransfer)
        if (disaggregate) {
          const decodeOrder = Pipeline.run(compiled, ctx, Views.views(req, decode, now, hinted, deps), random)
          const prefillOrder = Pipeline.rankPrefill(compiled, ctx, Views.views(req, prefill, now, undefined, deps))
          if (decodeOrder.ok && prefillOrder.ok) {
            const prefill = toBackends(prefillOrder.views)
            const rest = mixed.length === 0 ? undefined : Pipeline.run(compiled, ctx, Views.views(req, mixed, now, hinted, deps), random)
            return rest !== undefined && rest.ok
              ? {
                backends: [...toBackends(decodeOrder.views), ...toBackends(rest.views)],
                panic: decodeOrder.panic || rest.panic,
                prefill,
                overload: decodeOrder.overload
              }
              : { backends: toBackends(decodeOrder.views), panic: decodeOrder.panic, prefill, overload: decodeOrder.overload }
          }
        }
        // One engine per request: mixed and decode backends (a decode engine can prefill locally);
        // dedicated prefill engines only when nothing else can take it.
        const pool = mixed.length + decode.length > 0 ? (prefill.length === 0 ? serving : [...mixed, ...decode]) : prefill
        const result = Pipeline.run(compiled, ctx, Views.views(req, pool, now, hinted, deps), random)
        return result.ok
          ? { backends: toBackends(result.views), panic: result.panic, overload: result.overload }
          : rejected(result.filter)
      }

      /** Counts a request routed in panic; logs a model entering or leaving panic. */
      const observe = (req: GatewayRequest, route: Route): Effect.Effect<void> => {
        const model = req.model.id
        if (route.panic) {
          const entered = !panicking.has(model)
          if (entered) panicking.add(model)
          const counted = Metrics.recordPanic(model)
          return entered
            ? Effect.andThen(
              Effect.logWarning("routing in panic: every candidate looks bad; health and breaker exclusions ignored").pipe(
                Effect.annotateLogs({ model, candidates: route.backends.map((b) => `${b.id}:${b.health}`).join(",") })
              ),
              counted
            )
            : counted
        }
        if (!panicking.has(model)) return Effect.void
        panicking.delete(model)
        return Effect.logInfo("routing out of panic").pipe(Effect.annotateLogs({ model }))
      }

      return Router.of({
        candidates: (req) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.flatMap(config.current, (plan) => {
              const result = route(req, now, plan)
              if (result instanceof NoBackendAvailable) return Effect.fail(result)
              const counted = result.overload === undefined
                ? Effect.succeed(result)
                : Effect.as(Metrics.recordOverload(req.model.id, result.overload), result)
              // The common path: no model in panic, nothing to count or log.
              return !result.panic && panicking.size === 0 ? counted : Effect.andThen(observe(req, result), counted)
            }))
      })
    })
  )
}

/**
 * The router: for an admitted request, the ordered list of backends to try (the first is
 * tried first; the rest are the dispatcher's failover order).
 *
 * Policies (`routing.policy`):
 * - `inference` (default): filter → score → pick (Pipeline.ts) over per-candidate views
 *   (Views.ts). When the model is served by a prefill/decode pool and the prompt is long
 *   enough, the request gets a two-leg plan: decode backends are the candidates and the
 *   ranked prefill backends are handed to dispatch through `Placement` (Disaggregation.ts).
 * - baselines: `ordered`, `round_robin`, `least_outstanding`, `random` (Baselines.ts).
 *
 * Runs once per request, synchronously inside one Effect step; reads the fleet, the
 * breakers, the affinity index and the routing state, and changes none of them (the
 * dispatcher records placements). Plugins are compiled once per plan.
 */
import { Clock, Context, Effect, Layer } from "effect"
import type { Backend } from "../backends/Backend.ts"
import { Fleet } from "../backends/Fleet.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { Plan } from "../config/Plan.ts"
import type { GatewayRequest } from "../domain/Request.ts"
import { NoBackendAvailable } from "../dispatch/Errors.ts"
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

export class Router extends Context.Service<Router, {
  readonly candidates: (req: GatewayRequest) => Effect.Effect<ReadonlyArray<Backend>, NoBackendAvailable>
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
      plugins.seal()
      const compile = Pipeline.compiler(plugins)
      const random = Baselines.rng(config.initial.routing.seed ?? Math.floor(Math.random() * 2 ** 32))
      const turns = new Map<string, number>()

      const route = (req: GatewayRequest, now: number, plan: Plan): ReadonlyArray<Backend> | NoBackendAvailable => {
        const serving = fleet.forModel(req.model.id)
        const none = (message: string) => new NoBackendAvailable({ model: req.model.id, message })
        if (serving.length === 0) return none(`no backend serves ${req.model.id}`)
        const routing = plan.routing
        const hinted = req.sessionKey === undefined ? undefined : affinity.peek(req.sessionKey, now)
        if (routing.policy === "ordered") return Baselines.ordered(serving, now, hinted)

        const deps: Views.ViewDeps = {
          breakers,
          state,
          degradedWeight: plan.breakers.degradedWeight,
          maxSignalAgeMs: SIGNAL_AGE_INTERVALS * plan.health.scrapeIntervalMs
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
          switch (routing.policy) {
            case "round_robin":
              return toBackends(Baselines.roundRobin(filtered.views, turn))
            case "least_outstanding":
              return toBackends(Baselines.leastOutstanding(filtered.views, turn))
            case "random":
              return toBackends(Baselines.random(filtered.views, random))
          }
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
            state.setPrefillPlan(req, toBackends(prefillOrder.views))
            const rest = mixed.length === 0 ? undefined : Pipeline.run(compiled, ctx, Views.views(req, mixed, now, hinted, deps), random)
            return rest !== undefined && rest.ok
              ? [...toBackends(decodeOrder.views), ...toBackends(rest.views)]
              : toBackends(decodeOrder.views)
          }
        }
        // One engine per request: mixed and decode backends (a decode engine can prefill locally);
        // dedicated prefill engines only when nothing else can take it.
        const pool = mixed.length + decode.length > 0 ? (prefill.length === 0 ? serving : [...mixed, ...decode]) : prefill
        const result = Pipeline.run(compiled, ctx, Views.views(req, pool, now, hinted, deps), random)
        return result.ok ? toBackends(result.views) : rejected(result.filter)
      }

      return Router.of({
        candidates: (req) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.flatMap(config.current, (plan) => {
              const result = route(req, now, plan)
              return result instanceof NoBackendAvailable ? Effect.fail(result) : Effect.succeed(result)
            }))
      })
    })
  )
}

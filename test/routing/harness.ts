/**
 * The Router service over a fake fleet (backends with stub adapters), with the real
 * affinity index, breakers and routing state, for policy and property tests.
 */
import { Effect, Exit, Layer, ManagedRuntime, Scope } from "effect"
import type { Backend } from "../../src/backends/Backend.ts"
import { Fleet } from "../../src/backends/Fleet.ts"
import { GatewayConfig } from "../../src/config/GatewayConfig.ts"
import type { Plan, RoutingPlan } from "../../src/config/Plan.ts"
import type { GatewayRequest } from "../../src/admission/Request.ts"
import { Breakers } from "../../src/resilience/Breakers.ts"
import { Affinity } from "../../src/routing/Affinity.ts"
import { Placement } from "../../src/routing/Placement.ts"
import { RoutingPlugins } from "../../src/routing/Registry.ts"
import { PlanChecks } from "../../src/config/Checks.ts"
import { Router } from "../../src/routing/Router.ts"
import { planFromYaml } from "../support/Gateway.ts"
import { MODEL } from "./support.ts"

let base: Plan | undefined
const basePlan = async (): Promise<Plan> => {
  base ??= await planFromYaml(`
backends:
  - { id: x, url: "http://127.0.0.1:1/v1", models: [m] }
`)
  return base
}

export const routerFor = async (backends: ReadonlyArray<Backend>, routing: Partial<RoutingPlan> = {}) => {
  const plan0 = await basePlan()
  const plan: Plan = { ...plan0, routing: { ...plan0.routing, seed: 7, ...routing } }
  const fleet = Layer.succeed(Fleet, Fleet.of({
    all: backends,
    byId: (id) => backends.find((b) => b.id === id),
    forModel: (model) => (model === MODEL ? backends : []),
    draining: () => [],
    apply: () => Effect.die("the router tests never reload")
  }))
  const stores = Layer.mergeAll(Affinity.layer, Breakers.layer, Placement.layer, fleet)
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(Router.layer).pipe(
      Layer.provideMerge(stores),
      Layer.provideMerge(RoutingPlugins.layer.pipe(Layer.provideMerge(PlanChecks.layer))),
      Layer.provideMerge(GatewayConfig.fromPlan(plan))
    )
  )
  const services = await runtime.runPromise(Effect.gen(function*() {
    return { router: yield* Router, affinity: yield* Affinity, placement: yield* Placement, breakers: yield* Breakers }
  }))
  const run = <A, E>(effect: Effect.Effect<A, E>) => runtime.runPromise(effect)
  /** The backends in the router's order (ids). */
  const order = async (req: GatewayRequest): Promise<Array<string>> =>
    (await run(services.router.candidates(req))).backends.map((b) => b.id)
  /**
   * Dispatches `req` to `backend` as the dispatcher would (session pin + routing state),
   * returning a function that ends the attempt (committed: the request completed there).
   */
  const dispatch = async (req: GatewayRequest, backend: Backend, firstToken = true) => {
    const scope = await run(Scope.make())
    const progress: { served: boolean; cachedTokens: number | undefined } = {
      served: false,
      cachedTokens: undefined
    }
    const placed = await run(Effect.gen(function*() {
      if (req.sessionKey !== undefined) yield* services.affinity.pin(req.sessionKey, backend.id)
      return yield* services.placement.dispatched(req, backend, progress)
    }).pipe(Scope.provide(scope)))
    if (firstToken) placed.started()
    return {
      progress,
      placed,
      end: async (cachedTokens?: number) => {
        progress.served = true
        progress.cachedTokens = cachedTokens
        await run(Scope.close(scope, Exit.void))
      }
    }
  }
  return { ...services, run, order, dispatch, plan, close: () => runtime.dispose() }
}

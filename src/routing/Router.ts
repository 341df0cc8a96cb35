/**
 * The router: for an admitted request, the ordered list of backends to try.
 *
 * Policy `ordered` (the foundation's policy): config order, with the backend the
 * session is pinned to first, backends asking for time (retry-after) and backends with
 * no free slot moved behind the others. It reads the fleet and the affinity index and
 * changes neither.
 */
import { Clock, Context, Effect, Layer } from "effect"
import type { Backend } from "../backends/Backend.ts"
import { Fleet } from "../backends/Fleet.ts"
import type { GatewayRequest } from "../domain/Request.ts"
import { NoBackendAvailable } from "../dispatch/Errors.ts"
import { Affinity } from "./Affinity.ts"

export class Router extends Context.Service<Router, {
  readonly candidates: (req: GatewayRequest) => Effect.Effect<ReadonlyArray<Backend>, NoBackendAvailable>
}>()("sluice/routing/Router") {
  static readonly layer = Layer.effect(
    Router,
    Effect.gen(function*() {
      const fleet = yield* Fleet
      const affinity = yield* Affinity
      return Router.of({
        candidates: (req) =>
          Effect.gen(function*() {
            const serving = fleet.forModel(req.model.id)
            if (serving.length === 0) {
              return yield* new NoBackendAvailable({ model: req.model.id, message: `no backend serves ${req.model.id}` })
            }
            const now = yield* Clock.currentTimeMillis
            const pinned = req.sessionKey === undefined ? undefined : yield* affinity.lookup(req.sessionKey)
            const rank = (b: Backend) =>
              (b.id === pinned ? 0 : 4) + (b.coolDownUntilMs > now ? 2 : 0) + (b.slots.free === 0 ? 1 : 0)
            return serving.length === 1 ? serving : [...serving].sort((a, b) => rank(a) - rank(b))
          })
      })
    })
  )
}

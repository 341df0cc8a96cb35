/**
 * Gateway lifecycle state shared by the routes: whether the gateway is draining (new
 * requests get 503 and readiness fails while in-flight streams finish), how many
 * requests are in flight, and how many were accepted since start (the idle memory reducer,
 * observability/IdleMemory.ts, compares it between polls). Plain fields: read on every request.
 */
import { Context, Layer } from "effect"

export class Lifecycle extends Context.Service<Lifecycle, {
  readonly state: { draining: boolean; inFlight: number; accepted: number }
}>()("sluice/request/Lifecycle") {
  static readonly layer = Layer.sync(Lifecycle, () => Lifecycle.of({ state: { draining: false, inFlight: 0, accepted: 0 } }))
}

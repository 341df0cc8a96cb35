/**
 * Gateway lifecycle state shared by the routes: whether the gateway is draining (new
 * requests get 503 and readiness fails while in-flight streams finish), and how many
 * requests are in flight. Plain fields: read on every request.
 */
import { Context, Layer } from "effect"

export class Lifecycle extends Context.Service<Lifecycle, {
  readonly state: { draining: boolean; inFlight: number }
}>()("sluice/request/Lifecycle") {
  static readonly layer = Layer.sync(Lifecycle, () => Lifecycle.of({ state: { draining: false, inFlight: 0 } }))
}

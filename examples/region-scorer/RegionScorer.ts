/**
 * Example extension: a routing scorer that prefers backends in the client's region. The
 * client (or the edge proxy in front of Sluice) names its region in a header
 * (`x-client-region: eu-west-1`); each backend names its own in the config's free labels
 * (`labels: { region: eu-west-1 }`). Same region scores 1, same area (the part before the
 * first `-`: `eu`) 0.5, anything else 0; with no header, or a backend without the label, every
 * candidate scores the same 0.5 and the other scorers decide.
 *
 * Register it with `RegionScorer.layer()` and give it a weight in `routing.scorers`
 * (`{ region: 5, queue_depth: 2, ... }`): it is one scorer among the others, so a far backend
 * still serves when the near ones are down, saturated or their breaker is open.
 *
 * Pure: reads the request's headers and the backends' labels, never does I/O (routing's rule).
 */
import { Effect } from "effect"
import { RoutingPlugins, type Routing } from "sluice"

export interface RegionOptions {
  /** The request header naming the client's region (lower case). Default `x-client-region`. */
  readonly header?: string
  /** The backend label naming its region. Default `region`. */
  readonly label?: string
}

const area = (region: string) => {
  const dash = region.indexOf("-")
  return dash < 0 ? region : region.slice(0, dash)
}

export const regionScorer = (options: RegionOptions = {}): Routing.ScorerFactory => () => {
  const header = options.header ?? "x-client-region"
  const label = options.label ?? "region"
  return {
    name: "region",
    score: (ctx, view) => {
      const wanted = ctx.req.headers[header]?.trim().toLowerCase()
      const region = view.backend.plan.labels[label]?.toLowerCase()
      if (wanted === undefined || wanted === "" || region === undefined) return 0.5
      if (region === wanted) return 1
      return area(region) === area(wanted) ? 0.5 : 0
    }
  }
}

/** The extension layer: registers the `region` scorer. */
export const layer = (options: RegionOptions = {}) => RoutingPlugins.addScorer("region", Effect.succeed(regionScorer(options)))

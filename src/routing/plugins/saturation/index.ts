/**
 * Filter `saturation`: drops backends that cannot take work now: queue or KV use over the
 * configured thresholds, no free slot, or cooling down after a retry-after. Soft (`failOpen`):
 * the pipeline runs it after the hard filters and ranks what it drops last instead of
 * dropping it; when every candidate is saturated they all stay (the engines' queues absorb
 * the burst; the scorers still prefer the least loaded). See README.md.
 */
import type { FilterFactory } from "../../Contract.ts"
import { keep } from "../support.ts"

export const saturation: FilterFactory = (plan) => ({
  name: "saturation",
  failOpen: true,
  apply: (_ctx, views) =>
    keep(views, (v) =>
      !v.coolingDown &&
      v.slotsFree > 0 &&
      v.pendingRequests <= plan.maxQueue &&
      v.kvUsage < plan.maxKvUsage)
})

/**
 * Filter `breaker`: excludes backends whose (model, GPU SKU) circuit breaker is open.
 * Half-open and degraded breakers stay, at a lower weight (Views.ts). A health gate:
 * ignored when the model routes in panic. See README.md.
 */
import type { FilterFactory } from "../../Contract.ts"
import { keep } from "../support.ts"

export const breaker: FilterFactory = () => ({
  name: "breaker",
  failOpen: false,
  healthGate: true,
  apply: (_ctx, views) => keep(views, (v) => v.breaker !== "open")
})

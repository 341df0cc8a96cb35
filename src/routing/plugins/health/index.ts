/**
 * Filter `health`: excludes backends the backend actor judged `unhealthy` (a failure rate
 * over enough recent requests, or failed probes in a row). `degraded` backends stay, at a
 * lower weight (Views.ts). A health gate: ignored when the model routes in panic. See README.md.
 */
import type { FilterFactory } from "../../Contract.ts"
import { keep } from "../support.ts"

export const health: FilterFactory = () => ({
  name: "health",
  failOpen: false,
  healthGate: true,
  apply: (_ctx, views) => keep(views, (v) => v.health !== "unhealthy")
})

/**
 * Filter `health`: excludes backends the backend actor judged `unhealthy` (failed probes or
 * repeatedly bad streams). `degraded` backends stay, at a lower weight (Views.ts). See README.md.
 */
import type { FilterFactory } from "../../Contract.ts"
import { keep } from "../support.ts"

export const health: FilterFactory = () => ({
  name: "health",
  failOpen: false,
  apply: (_ctx, views) => keep(views, (v) => v.health !== "unhealthy")
})

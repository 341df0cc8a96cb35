/**
 * Filter `model_served`: the backend serves the request's model (the fleet's per-model list
 * guarantees that), has it loaded (a `cold` backend is loading it and stays excluded until
 * a probe finds it ready) and its adapter supports the call kind. See README.md.
 */
import type { FilterFactory } from "../../Contract.ts"
import { keep } from "../support.ts"

export const modelServed: FilterFactory = () => ({
  name: "model_served",
  failOpen: false,
  apply: (ctx, views) => keep(views, (v) => v.health !== "cold" && v.backend.adapter.capabilities[ctx.req.kind])
})

/**
 * Filter `quantization`: keeps backends whose weight quantization the model allows
 * (`models[].allowed_quantizations`, its latency/quality target); all when unset. See README.md.
 */
import type { FilterFactory } from "../../Contract.ts"
import { keep } from "../support.ts"

export const quantization: FilterFactory = () => ({
  name: "quantization",
  failOpen: false,
  apply: (ctx, views) => {
    const allowed = ctx.req.model.allowedQuantizations
    return allowed === undefined ? views : keep(views, (v) => allowed.includes(v.backend.plan.quantization))
  }
})

/**
 * Filter `sku`: keeps backends on a GPU SKU the model allows (`models[].allowed_gpus`);
 * all when unset. See README.md.
 */
import type { FilterFactory } from "../../Contract.ts"
import { keep } from "../support.ts"

export const sku: FilterFactory = () => ({
  name: "sku",
  failOpen: false,
  apply: (ctx, views) => {
    const allowed = ctx.req.model.allowedGpus
    return allowed === undefined ? views : keep(views, (v) => allowed.includes(v.backend.plan.gpu))
  }
})

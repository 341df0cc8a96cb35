/**
 * Filter `tenant`: the tenant policy hook. `routing.tenants.<id>` may list the backends a
 * tenant may use (`allowed_backends`) and must not use (`denied_backends`); a tenant not
 * listed (today: "default") may use every backend. See README.md.
 */
import type { FilterFactory } from "../../Contract.ts"
import { keep } from "../support.ts"

export const tenant: FilterFactory = (plan) => ({
  name: "tenant",
  failOpen: false,
  apply: (ctx, views) => {
    const policy = plan.tenants.get(ctx.req.tenant)
    if (policy === undefined) return views
    const { allowedBackends, deniedBackends } = policy
    return keep(views, (v) =>
      !deniedBackends.has(v.backend.id) && (allowedBackends === undefined || allowedBackends.has(v.backend.id)))
  }
})

/**
 * Scorer `cost`: prefers the backend where the request costs least: at the configured token
 * prices of the model on each backend when every candidate has one, else estimated
 * GPU-seconds times the backend's price per GPU-second. The policy weighs it more as the
 * tenant's spend pressure grows (routing/Pipeline.ts). See README.md. Must never: read a
 * price table or a budget itself (the view carries the price, the request the pressure).
 */
import type { BackendView, ScorerFactory } from "../../Contract.ts"
import { unit } from "../support.ts"

const gpuCostOf = (v: BackendView) => (v.prefillGpuSeconds + v.decodeGpuSeconds) * v.profile.costPerGpuSecond

/**
 * The cost basis of one request's candidates: token prices when every candidate has one (a
 * candidate without a price would otherwise look free or incomparable), else GPU-seconds.
 */
const basisOf = (all: ReadonlyArray<BackendView>): (v: BackendView) => number => {
  for (let i = 0; i < all.length; i++) if (all[i]!.priceMicros === undefined) return gpuCostOf
  return (v) => v.priceMicros!
}

export const cost: ScorerFactory = () => {
  // Memoised on the candidates array (routing is synchronous: the last array is the current request's).
  let lastAll: ReadonlyArray<BackendView> | undefined
  let basis: (v: BackendView) => number = gpuCostOf
  let cheapest = 0
  return {
    name: "cost",
    score: (_ctx, v, all) => {
      if (all !== lastAll) {
        basis = basisOf(all)
        cheapest = Infinity
        for (let i = 0; i < all.length; i++) cheapest = Math.min(cheapest, basis(all[i]!))
        lastAll = all
      }
      const c = basis(v)
      return c <= 0 ? 1 : unit(cheapest / c)
    }
  }
}

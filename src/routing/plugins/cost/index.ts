/**
 * Scorer `cost`: prefers the backend where the request costs least: estimated GPU-seconds
 * times the backend's price per GPU-second. See README.md.
 */
import type { ScorerFactory } from "../../Contract.ts"
import { minOver, unit } from "../support.ts"

const costOf = (v: { prefillGpuSeconds: number; decodeGpuSeconds: number; profile: { costPerGpuSecond: number } }) =>
  (v.prefillGpuSeconds + v.decodeGpuSeconds) * v.profile.costPerGpuSecond

export const cost: ScorerFactory = () => {
  const cheapest = minOver(costOf)
  return {
    name: "cost",
    score: (_ctx, v, all) => {
      const c = costOf(v)
      return c <= 0 ? 1 : unit(cheapest(all) / c)
    }
  }
}

/**
 * Scorer `headroom`: prefers backends whose streams would stay fastest if the request
 * joined: predicted inter-token latency against the model's target. See README.md.
 */
import type { ScorerFactory } from "../../Contract.ts"
import { unit } from "../support.ts"

const DEFAULT_ITL_TARGET_MS = 100

export const headroom: ScorerFactory = () => {
  let lastAll: ReadonlyArray<unknown> | undefined
  let bestRate = 0
  return {
    name: "headroom",
    score: (ctx, v, all) => {
      if (v.profile.known) {
        const target = ctx.req.model.itlTargetMs ?? DEFAULT_ITL_TARGET_MS
        return unit(1 - v.predictedItlMs / target)
      }
      // No engine profile: measured tokens/s per stream, relative to the best candidate.
      if (v.tokensPerSecond === undefined) return 1
      if (all !== lastAll) {
        lastAll = all
        bestRate = 0
        for (const o of all) bestRate = Math.max(bestRate, o.tokensPerSecond ?? 0)
      }
      return bestRate > 0 ? unit(v.tokensPerSecond / bestRate) : 1
    }
  }
}

/**
 * Scorer `predicted_ttft`: prefers the backend predicted to produce the first token soonest:
 * queued prefill + this prompt's uncached part, on that backend's GPU. See README.md.
 */
import type { ScorerFactory } from "../../Contract.ts"
import { minOver, unit } from "../support.ts"

const DEFAULT_TTFT_TARGET_MS = 2000
/** Slack as a share of the target: differences far below the target matter little. */
const SLACK = 0.05

export const predictedTtft: ScorerFactory = () => {
  const best = minOver((v) => v.predictedTtftMs)
  return {
    name: "predicted_ttft",
    score: (ctx, v, all) => {
      const slack = SLACK * (ctx.req.model.ttftTargetMs ?? DEFAULT_TTFT_TARGET_MS)
      return unit((best(all) + slack) / (v.predictedTtftMs + slack))
    }
  }
}

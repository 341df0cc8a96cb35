/**
 * Scorer `queue_depth`: prefers backends with fewer requests waiting for their first token,
 * relative to the least-queued candidate. See README.md.
 */
import type { ScorerFactory } from "../../Contract.ts"
import { minOver, unit } from "../support.ts"

export const queueDepth: ScorerFactory = () => {
  const minQueue = minOver((v) => v.pendingRequests)
  return {
    name: "queue_depth",
    score: (_ctx, v, all) => unit((minQueue(all) + 1) / (v.pendingRequests + 1))
  }
}

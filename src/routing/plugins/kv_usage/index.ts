/**
 * Scorer `kv_usage`: prefers backends with free KV cache. See README.md.
 */
import type { ScorerFactory } from "../../Contract.ts"
import { unit } from "../support.ts"

export const kvUsage: ScorerFactory = () => ({
  name: "kv_usage",
  score: (_ctx, v) => unit(1 - v.kvUsage)
})

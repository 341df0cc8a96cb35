/**
 * Scorer `prefix_cache`: prefers the backend that probably holds the longest prefix of the
 * prompt in its KV cache, from the approximate prefix index. See README.md.
 */
import type { ScorerFactory } from "../../Contract.ts"
import { unit } from "../support.ts"

export const prefixCache: ScorerFactory = () => ({
  name: "prefix_cache",
  score: (_ctx, v) => (v.prefixTotalBlocks === 0 ? 0 : unit((v.prefixTrust * v.prefixMatchedBlocks) / v.prefixTotalBlocks))
})

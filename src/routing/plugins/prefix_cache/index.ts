/**
 * Scorer `prefix_cache`: prefers the backend that holds (precise index, from the engine's KV
 * events) or probably holds (approximate index) the longest prefix of the prompt in its KV cache.
 * See README.md.
 */
import type { ScorerFactory } from "../../Contract.ts"
import { unit } from "../support.ts"

export const prefixCache: ScorerFactory = () => ({
  name: "prefix_cache",
  score: (_ctx, v) => (v.prefixTotalBlocks === 0 ? 0 : unit((v.prefixTrust * v.prefixMatchedBlocks) / v.prefixTotalBlocks))
})

/**
 * Seeded randomness and fast non-cryptographic hashing for the simulator.
 *
 * Owns: the PRNG every random choice in the simulator draws from (jitter, faults, output lengths), and the
 * 53-bit chained block hash used by the prefix cache.
 * Must never: read ambient randomness (Math.random, crypto) or the clock: everything here is a pure function of
 * its seed, so a run is reproducible.
 */

/** The PRNG (mulberry32) lives with the domain; the simulator draws from it too. */
export { makeRng, type Rng } from "../../domain/Random.ts"

/** The block hash and its helpers live with the domain: the gateway computes the same hashes (precise prefix routing). */
export { chainHash, fmix32, hashString, mix32 } from "../../domain/KvBlocks.ts"
import { fmix32, mix32 } from "../../domain/KvBlocks.ts"

/** A 32-bit hash of a whole token sequence (used to seed per-request choices). */
export const hashTokens = (tokens: ArrayLike<number>, seed: number): number => {
  let h = mix32(seed, tokens.length)
  for (let i = 0; i < tokens.length; i++) h = Math.imul(h ^ (tokens[i]! >>> 0), 0x01000193)
  return fmix32(h)
}

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

/** 32-bit finaliser (murmur3 fmix32). */
const fmix32 = (h0: number): number => {
  let h = h0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Mixes two 32-bit values into one (order-sensitive). */
export const mix32 = (a: number, b: number): number => fmix32(Math.imul(a ^ 0x9e3779b9, 0x01000193) ^ (b >>> 0))

const TWO_POW_21 = 2097152

/**
 * Chained block hash: `h_i = H(h_{i-1}, tokens[start..end))`, returned as a non-negative integer below 2^53 so
 * it can key a `Map<number, …>` exactly. Two independent 32-bit lanes keep collisions negligible at the scale of
 * a KV cache (≈1e5 blocks ⇒ collision probability ≈ 1e10 / 2^54).
 */
export const chainHash = (parent: number, tokens: ArrayLike<number>, start: number, end: number): number => {
  const parentHi = Math.floor(parent / TWO_POW_21)
  const parentLo = parent - parentHi * TWO_POW_21
  let a = mix32(parentHi, 0x243f6a88) ^ parentLo
  let b = mix32(parentLo, 0x85a308d3) ^ parentHi
  for (let i = start; i < end; i++) {
    const t = tokens[i]! >>> 0
    a = Math.imul(a ^ t, 0x01000193)
    a = (a << 13) | (a >>> 19)
    b = Math.imul(b + t, 0x5bd1e995)
    b ^= b >>> 15
  }
  const hi = fmix32(a ^ (end - start)) // 32 bits
  const lo = fmix32(b ^ hi) >>> 11 // 21 bits
  return hi * TWO_POW_21 + lo
}

/** A 32-bit hash of a whole token sequence (used to seed per-request choices). */
export const hashTokens = (tokens: ArrayLike<number>, seed: number): number => {
  let h = mix32(seed, tokens.length)
  for (let i = 0; i < tokens.length; i++) h = Math.imul(h ^ (tokens[i]! >>> 0), 0x01000193)
  return fmix32(h)
}

/** A 32-bit hash of a string (FNV-1a then fmix). */
export const hashString = (s: string, seed = 0): number => {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return fmix32(h)
}

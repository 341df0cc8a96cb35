/**
 * The one seeded PRNG of the project (mulberry32): reproducible routing picks, simulator
 * draws and benchmark workloads. Tiny and fast; not for cryptography. Pure.
 */

/** A PRNG returning uniforms in [0, 1). */
export type Rng = () => number

export const makeRng = (seed: number): Rng => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

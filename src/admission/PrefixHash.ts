/**
 * Chained hashes of a prompt's leading blocks, the key of the approximate prefix index
 * (GIE proposal 0602, anchors.md §4): the prompt text is cut into `blockChars`-character
 * blocks and `h_i = FNV-1a(block_i, seeded with h_{i−1})`, `h_{−1} = FNV-1a(salt)` (the model
 * id), so equal hashes at position i imply (up to collisions) equal prompts up to the end
 * of block i. Only full blocks are hashed (engines cache full blocks only), at most
 * `maxBlocks` of them: the bound on work per request and on what one request can record.
 *
 * Computed once per request at admission (Estimate.ts) and carried on the request.
 * Plain TypeScript on purpose: a tight loop over char codes, no allocation but the result.
 * FNV-1a 32-bit is not collision-resistant; a false match costs a misrouted request, not
 * correctness, and at index sizes of ~10^5 entries per backend the chance is ~10^-5 per lookup.
 */

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

const fnv = (h: number, text: string, start: number, end: number): number => {
  for (let i = start; i < end; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, FNV_PRIME)
  }
  return h >>> 0
}

/** The chain's seed for a salt (the model id): prompts of different models never match. */
export const seed = (salt: string): number => fnv(FNV_OFFSET, salt, 0, salt.length)

/** Hashes of the leading full blocks of `text`, chained; at most `maxBlocks`. */
export const chain = (text: string, blockChars: number, maxBlocks: number, salt: string): Uint32Array => {
  const n = Math.max(0, Math.min(maxBlocks, Math.floor(text.length / blockChars)))
  const out = new Uint32Array(n)
  let h = seed(salt)
  for (let b = 0; b < n; b++) {
    h = fnv(h, text, b * blockChars, (b + 1) * blockChars)
    out[b] = h
  }
  return out
}

export const empty: Uint32Array = new Uint32Array(0)

/**
 * Precise prefix matching: how many of a request's leading KV blocks a backend's engine holds, from the
 * backend's precise index (backends/KvBlockIndex.ts, fed by the engine's KV events), when that index is live
 * and the request carries its prompt's token ids (admission/KvTokens.ts). Undefined otherwise: the caller
 * falls back to the approximate index (PrefixIndex.ts).
 *
 * The block hashes depend on the engine's block size and cache salt (the model name the backend serves it
 * under), so they are computed per (block size, salt) and memoised on the request's estimate (a request meets
 * the same few engines once per candidate). Pure: no I/O, no clock.
 */
import type { Estimate, GatewayRequest } from "../admission/Request.ts"
import type { Backend } from "../backends/Backend.ts"
import { blockHashes, rootHash } from "../domain/KvBlocks.ts"

export interface PreciseMatch {
  /** Leading blocks the engine holds. */
  readonly matched: number
  /** Full blocks of the (bounded) prompt. */
  readonly total: number
  /** Prompt tokens those blocks cover (at most all but one, as engines cap hits). */
  readonly cachedTokens: number
}

const memo = new WeakMap<Estimate, Map<string, Float64Array>>()

const hashesFor = (e: Estimate, tokens: Uint32Array, blockSize: number, salt: string): Float64Array => {
  let byKey = memo.get(e)
  if (byKey === undefined) {
    byKey = new Map()
    memo.set(e, byKey)
  }
  const key = `${blockSize}\u0000${salt}`
  let hashes = byKey.get(key)
  if (hashes === undefined) {
    hashes = blockHashes(tokens, blockSize, Number.MAX_SAFE_INTEGER, rootHash(salt))
    byKey.set(key, hashes)
  }
  return hashes
}

export const preciseMatch = (req: GatewayRequest, backend: Backend): PreciseMatch | undefined => {
  const index = backend.kvBlocks
  const tokens = req.estimate.kvPromptTokens
  if (index === undefined || tokens === undefined || !index.live) return undefined
  const blockSize = index.blockSizeTokens!
  const salt = backend.plan.models.get(req.model.id) ?? req.model.id
  const hashes = hashesFor(req.estimate, tokens, blockSize, salt)
  const matched = index.match(hashes)
  const cachedTokens = Math.max(0, Math.min(req.estimate.promptTokens - 1, matched * blockSize))
  return { matched, total: hashes.length, cachedTokens }
}

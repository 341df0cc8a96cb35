/**
 * Precise prefix matching: how many of a request's leading KV blocks a backend's engine holds, from the
 * backend's precise index (backends/KvBlockIndex.ts, fed by the engine's KV events), when that index is live
 * and the request carries its prompt's token ids (admission/KvTokens.ts). Undefined otherwise: the caller
 * falls back to the approximate index (PrefixIndex.ts).
 *
 * The block hashes depend on the engine's block size and cache salt (the model name the backend serves it
 * under), so they are computed per (block size, salt) and memoised on the request's estimate (a request meets
 * the same few engines once per candidate).
 *
 * In flight: an engine reports a block once it has computed it, so a prompt sent there is not in its
 * events while its prefill runs. The leading blocks shared with a request placed there that has not had
 * its first token yet (`pendingMatched`, Placement.ts) count too, so a burst of one group's requests is
 * not spread over engines that would each prefill the same prefix. Pure: no I/O, no clock.
 */
import type { Estimate, GatewayRequest } from "../admission/Request.ts"
import type { Backend } from "../backends/Backend.ts"
import { blockHashes, rootHash } from "../domain/KvBlocks.ts"
import * as Predict from "./Predict.ts"

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

export const preciseMatch = (
  req: GatewayRequest,
  backend: Backend,
  /** Leading prompt blocks (the approximate index's units) shared with a request there still in prefill. */
  pendingMatched: () => number
): PreciseMatch | undefined => {
  const index = backend.kvBlocks
  const tokens = req.estimate.kvPromptTokens
  if (index === undefined || tokens === undefined || !index.live) return undefined
  const blockSize = index.blockSizeTokens!
  const salt = backend.plan.models.get(req.model.id) ?? req.model.id
  const hashes = hashesFor(req.estimate, tokens, blockSize, salt)
  const matched = index.match(hashes)
  const cachedTokens = Math.max(0, Math.min(req.estimate.promptTokens - 1, matched * blockSize))
  const e = req.estimate
  const recent = matched === hashes.length ? 0 : pendingMatched()
  if (hashes.length > 0 && recent * hashes.length > matched * e.prefixHashes.length) {
    // A request in prefill there covers more of the prompt than the events do yet: use its share.
    const share = recent / e.prefixHashes.length
    return { matched: Math.floor(share * hashes.length), total: hashes.length, cachedTokens: Math.max(cachedTokens, Predict.cachedTokens(e, recent)) }
  }
  return { matched, total: hashes.length, cachedTokens }
}

/**
 * Per-candidate predictions the router derives from the admission estimate and a backend's
 * GPU profile (backends.md §5.4): cached prefix tokens, prefill and decode GPU-seconds, the
 * predicted time to first token (queue + prefill − cached prefix) and inter-token latency.
 * They depend on the candidate's live load, so the router evaluates them once per request
 * per candidate, from the numbers fixed at admission. Pure functions; no clocks, no I/O.
 */
import type { Estimate } from "../admission/Request.ts"
import type { GpuProfile } from "./Contract.ts"

/** Prompt tokens covered by `matchedBlocks` leading blocks (at most all but one token, as engines cap hits). */
export const cachedTokens = (e: Estimate, matchedBlocks: number): number => {
  if (matchedBlocks <= 0 || e.promptChars === 0) return 0
  const share = Math.min(1, (matchedBlocks * e.prefixBlockChars) / e.promptChars)
  return Math.min(e.promptTokens - 1, Math.floor(share * e.promptTokens))
}

/** A candidate's load as the predictions need it (gateway-local numbers or fresh engine signals). */
export interface CandidateLoad {
  /** Prompt tokens queued or being prefilled ahead of this request. */
  readonly pendingPrefillTokens: number
  /** Sequences decoding. */
  readonly decoding: number
  /** Context tokens of the resident sequences (KV read per step). */
  readonly contextTokens: number
}

/** Engine ms to prefill `tokens` with `load` in the batch: prefill cost plus every step's overhead. */
const prefillMs = (p: GpuProfile, tokens: number, load: CandidateLoad): number => {
  if (tokens <= 0) return 0
  const budget = Math.max(256, p.maxBatchedTokens - load.decoding)
  const steps = Math.ceil(tokens / budget)
  const perStep = p.stepMs + p.decodeMsPerSeq * load.decoding + p.kvMsPerContextToken * load.contextTokens
  return tokens * p.prefillMsPerToken + steps * perStep
}

/**
 * Predicted time to first token, engine ms: the prefill work queued ahead (FCFS, chunked)
 * plus this request's uncached prompt, then the step that emits the first token.
 */
export const predictTtftMs = (e: Estimate, p: GpuProfile, cached: number, load: CandidateLoad): number => {
  const own = Math.max(1, e.promptTokens - cached)
  const firstStep = p.stepMs + p.decodeMsPerSeq * (load.decoding + 1) +
    p.kvMsPerContextToken * (load.contextTokens + e.promptTokens)
  return prefillMs(p, load.pendingPrefillTokens + own, load) + firstStep
}

/**
 * Predicted decode step time if the request joins, engine ms: one more sequence and its
 * context in the batch, plus a full prefill chunk while prefill work is queued (chunked
 * prefill co-schedules it with every decode: the cause of ITL spikes).
 */
export const predictItlMs = (e: Estimate, p: GpuProfile, load: CandidateLoad): number => {
  const chunk = Math.min(load.pendingPrefillTokens, p.maxBatchedTokens)
  return p.stepMs + p.decodeMsPerSeq * (load.decoding + 1) +
    p.kvMsPerContextToken * (load.contextTokens + e.promptTokens + e.maxOutputTokens / 2) +
    p.prefillMsPerToken * chunk
}

/**
 * GPU-seconds this request costs on a candidate: the uncached prefill, and its decode share
 * (its own per-sequence and KV-read cost per token plus its share of each step's fixed cost
 * in a batch of `decoding + 1`), times the GPUs the engine spans.
 */
export const gpuSeconds = (
  e: Estimate,
  p: GpuProfile,
  cached: number,
  load: CandidateLoad
): { readonly prefill: number; readonly decode: number } => {
  const prefill = Math.max(0, e.promptTokens - cached) * p.prefillMsPerToken
  const perToken = p.decodeMsPerSeq + p.kvMsPerContextToken * (e.promptTokens + e.maxOutputTokens / 2) +
    p.stepMs / (load.decoding + 1)
  return { prefill: (prefill * p.gpuCount) / 1000, decode: (e.maxOutputTokens * perToken * p.gpuCount) / 1000 }
}

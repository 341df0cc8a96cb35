/**
 * One request inside the simulated engine: its tokens, its progress and its KV blocks.
 *
 * Owns: per-sequence state that the scheduler and the block manager mutate (computed tokens, output count,
 * block table, block hashes, timings).
 * Must never: be mutated from outside `src/simulator/engine/` (the wire reads it, the engine writes it), or hold
 * I/O handles other than the opaque `sink` the driver attached.
 */

export type SequenceStatus = "waiting" | "running" | "finished" | "aborted" | "failed"

/** What the engine reports when a sequence reaches its target output length. */
export type FinishKind = "stop" | "length"

export interface SequenceSpec {
  /** Prompt token ids (after the chat template). Block hashes are computed over these. */
  readonly prompt: ArrayLike<number>
  /** Exact number of tokens to generate (≥ 1). */
  readonly outputTokens: number
  /** Ids of the tokens that will be generated; when present, full output blocks join the prefix cache too. */
  readonly outputIds?: ArrayLike<number> | undefined
  /** Reported when `outputTokens` is reached: "length" if max_tokens was the limit, else "stop". */
  readonly finish: FinishKind
  /**
   * Prompt tokens whose KV arrived from a prefill engine (P/D disaggregation): at first admission they are
   * placed in fresh blocks as already computed, without prefill cost. Lost on preemption (recomputed).
   */
  readonly transferredTokens?: number | undefined
}

export class Sequence<S> {
  status: SequenceStatus = "waiting"
  /** Tokens generated so far (== tokens delivered to the client). */
  outputCount = 0
  /** Tokens whose KV is computed (prompt and output). */
  numComputed = 0
  /** Block table: ids of the KV blocks this sequence holds, in token order. */
  readonly blocks: Array<number> = []
  /** Chained hashes of this sequence's full blocks (computed lazily, as far as token ids are known). */
  readonly hashes: Float64Array
  hashedCount = 0
  /** How many leading blocks of `blocks` are registered in the prefix cache (or were prefix hits). */
  cachedBlocks = 0
  /** Prompt tokens served from the prefix cache at first admission (reported as cached_tokens). */
  cachedPromptTokens = -1
  /** True until the first admission consumed `spec.transferredTokens`. */
  transferPending: boolean
  preemptions = 0
  firstTokenMs = -1
  lastTokenMs = -1
  finishMs = -1
  readonly promptLength: number

  constructor(
    readonly id: number,
    readonly spec: SequenceSpec,
    readonly sink: S,
    readonly arrivalMs: number
  ) {
    this.promptLength = spec.prompt.length
    this.transferPending = (spec.transferredTokens ?? 0) > 0
    this.hashes = new Float64Array(Math.ceil((spec.prompt.length + spec.outputTokens) / 16) + 1)
  }

  /** Tokens that exist now (prompt + generated); the KV of all but the newest must be computed to decode. */
  get numTokens(): number {
    return this.promptLength + this.outputCount
  }

  /** Token ids known to the engine (for hashing): the prompt plus generated tokens whose ids were supplied. */
  get knownIds(): number {
    const out = this.spec.outputIds
    return this.promptLength + (out === undefined ? 0 : Math.min(out.length, this.outputCount))
  }

  tokenAt(i: number): number {
    return i < this.promptLength ? this.spec.prompt[i]! : this.spec.outputIds![i - this.promptLength]!
  }

  get done(): boolean {
    return this.status === "finished" || this.status === "aborted" || this.status === "failed"
  }
}

/**
 * A decoded, admitted request as it travels through the phases. Immutable: what changes
 * while the request runs lives in its `RequestTracker` (accounting/Tracker.ts).
 */
import type { CallKind } from "../backends/Contract.ts"
import type { ModelPlan } from "../config/Plan.ts"
import type { RequestId, TenantId } from "./Ids.ts"

/** Token estimates computed once at admission and carried on the request. */
export interface Estimate {
  /** Prompt tokens from the tokenizer (exact for OpenAI encodings, approximate otherwise). */
  readonly promptTokens: number
  /** Output tokens the request may produce: the cap times the sequences decoded (`n`, `best_of`, a prompt batch). */
  readonly maxOutputTokens: number
  /** The output cap of one sequence: `max_tokens` or the model's default (0 for embeddings and rerank). */
  readonly outputCap: number
  /** Tokens reserved against the tenant's budget. */
  readonly reservationTokens: number
  /** Characters of prompt text the token count and the prefix hashes were computed from. */
  readonly promptChars: number
  /**
   * Chained hashes of the prompt's leading text blocks (admission/PrefixHash.ts), computed once
   * here and read by the router's prefix index. Bounded by `routing.prefix_max_blocks`.
   */
  readonly prefixHashes: Uint32Array
  /** Characters per hashed block (`routing.prefix_block_chars`). */
  readonly prefixBlockChars: number
}

export interface GatewayRequest {
  readonly id: RequestId
  readonly kind: CallKind
  readonly model: ModelPlan
  /** The name the client used (may be an alias). */
  readonly requestedModel: string
  readonly body: Readonly<Record<string, unknown>>
  readonly rawBody: Uint8Array
  readonly stream: boolean
  readonly clientWantsUsage: boolean
  /** `max_tokens` / `max_completion_tokens` as sent, if any. */
  readonly requestedMaxTokens: number | undefined
  readonly estimate: Estimate
  readonly tenant: TenantId
  /** Session affinity key (`x-session-id` header or the `user` field). */
  readonly sessionKey: string | undefined
  /** Prompt text the estimate and the prefix key were computed from (bounded). */
  readonly promptPrefix: string
  readonly receivedAtMs: number
}

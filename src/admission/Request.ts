/**
 * The admitted request, as it travels from admission through routing, dispatch and
 * accounting: the decoded call exactly as the wire schema typed it (its `kind` and `body`,
 * after the request policies), who sent it, the model it resolved to and the token
 * estimate computed once at admission. Immutable: what happens while the request runs is
 * recorded by the phase that owns it (dispatch's attempt log, the stream's tally).
 */
import type { InferenceCall } from "../api/openai/Calls.ts"
import type { NativeBody } from "../backends/Contract.ts"
import type { ModelPlan } from "../config/Plan.ts"
import type { RequestId, TenantId } from "../domain/Ids.ts"
import type { Identity } from "../domain/Identity.ts"

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
  /**
   * The prompt's leading token ids as the engine sees them (admission/KvTokens.ts), for the precise
   * prefix index; only when a backend of the model publishes KV events. At most
   * `routing.prefix_max_blocks × 16` ids.
   */
  readonly kvPromptTokens?: Uint32Array | undefined
  /**
   * `promptTokens` is an upper bound (the prompt's UTF-8 bytes, Tokenizer.upperBound), not a
   * count: the model's tokenizer tables were still loading when the request was admitted.
   */
  readonly promptBound?: true | undefined
}

/** What an admitted request carries beside its call (`kind` and the typed `body`). */
export interface Admitted {
  readonly id: RequestId
  readonly model: ModelPlan
  /** The name the client used (may be an alias). */
  readonly requestedModel: string
  /**
   * The client's body bytes while the call is unchanged (forwarded untouched when nothing
   * needs rewriting); undefined once a request policy rewrote the call.
   */
  readonly rawBody: Uint8Array | undefined
  /** The client's body in a backend dialect's own API, while unchanged (Contract.ts `NativeBody`). */
  readonly native?: NativeBody | undefined
  readonly stream: boolean
  readonly clientWantsUsage: boolean
  /** `max_tokens` / `max_completion_tokens` as sent, if any. */
  readonly requestedMaxTokens: number | undefined
  readonly estimate: Estimate
  readonly identity: Identity
  /** The identity's tenant (the owner of the reservation, the ledger row and the limits). */
  readonly tenant: TenantId
  /**
   * The request's headers (names in lower case), for extensions that route or judge by them
   * (a region hint, a priority). Read-only; the gateway itself reads the few it knows at decode.
   */
  readonly headers: Readonly<Record<string, string | undefined>>
  /** Session affinity key (`x-session-id` header or the `user` field). */
  readonly sessionKey: string | undefined
  /** Prompt text the estimate and the prefix key were computed from (bounded). */
  readonly promptPrefix: string
  readonly receivedAtMs: number
  /**
   * How far the tenant's (or key's) spend limits are used up, 0..1, as its reservation left
   * them (Budget.ts `spendPressure`); absent: 0 (no spend limit, or not yet reserved). The
   * router weighs cost by it (routing/plugins/cost).
   */
  readonly spendPressure?: number | undefined
}

/** The decoded call, typed by its endpoint's schema, plus what admission added. */
export type GatewayRequest = InferenceCall & Admitted

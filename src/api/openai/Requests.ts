/**
 * Wire schemas of the public OpenAI-compatible API (requests).
 *
 * Request schemas keep fields they don't know (`StructWithRest` with an open record),
 * and the gateway forwards the client's own parsed object, so vendor extensions
 * (`top_k`, `guided_json`, `chat_template_kwargs`, ...) reach the backend untouched.
 * Validation here is for clear 400s naming the field; it must never drop data.
 */
import { Schema } from "effect"

const Rest = [Schema.Record(Schema.String, Schema.Unknown)] as const
const open = <F extends Schema.Struct.Fields>(fields: F) => Schema.StructWithRest(Schema.Struct(fields), Rest)

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
/**
 * An output cap: at most 2^31 − 1. Larger values are no real request, and a reservation of
 * 2^53 tokens makes the ledger's sums lose integer precision (a float residue that never
 * returns to zero).
 */
const TokenCap = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 2_147_483_647 }))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const opt = <S extends Schema.Top>(s: S) => Schema.optionalKey(Schema.NullOr(s))

export const StreamOptions = open({
  include_usage: opt(Schema.Boolean)
})

const Role = Schema.Literals(["system", "developer", "user", "assistant", "tool", "function"])

export const ChatMessage = open({
  role: Role,
  content: Schema.optionalKey(Schema.NullOr(Schema.Union([Schema.String, Schema.Array(Schema.Unknown)]))),
  name: Schema.optionalKey(Schema.String),
  tool_call_id: Schema.optionalKey(Schema.String),
  tool_calls: Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.Unknown)))
})

const Stop = Schema.NullOr(Schema.Union([Schema.String, Schema.Array(Schema.String)]))

export const Tool = open({
  type: Schema.String,
  function: Schema.optionalKey(open({ name: Schema.String }))
})

const Sampling = {
  stream: opt(Schema.Boolean),
  stream_options: opt(StreamOptions),
  max_tokens: opt(TokenCap),
  temperature: opt(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 2 }))),
  top_p: opt(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))),
  n: opt(PositiveInt),
  stop: Schema.optionalKey(Stop),
  seed: opt(Schema.Int),
  user: opt(Schema.String),
  /** vLLM: generate `best_of` sequences, return the best `n` (the engine's work is `best_of`). */
  best_of: opt(PositiveInt)
}

export const ChatCompletionRequest = open({
  model: Schema.String,
  messages: Schema.Array(ChatMessage).check(Schema.isMinLength(1)),
  max_completion_tokens: opt(TokenCap),
  tools: opt(Schema.Array(Tool)),
  tool_choice: Schema.optionalKey(Schema.Unknown),
  ...Sampling
})
export type ChatCompletionRequest = typeof ChatCompletionRequest.Type

const TokenArray = Schema.Array(NonNegativeInt)
export const Prompt = Schema.Union([
  Schema.String,
  Schema.Array(Schema.String),
  TokenArray,
  Schema.Array(TokenArray)
])

export const CompletionRequest = open({
  model: Schema.String,
  prompt: Prompt,
  echo: opt(Schema.Boolean),
  ...Sampling
})
export type CompletionRequest = typeof CompletionRequest.Type

export const EmbeddingRequest = open({
  model: Schema.String,
  input: Prompt,
  encoding_format: opt(Schema.Literals(["float", "base64"])),
  dimensions: opt(PositiveInt),
  user: opt(Schema.String)
})
export type EmbeddingRequest = typeof EmbeddingRequest.Type

/** Rerank (Jina/Cohere style, as vLLM, SGLang and llama.cpp serve it): passed through. */
export const RerankRequest = open({
  model: Schema.String,
  query: Schema.String,
  documents: Schema.Array(Schema.Union([Schema.String, Schema.Record(Schema.String, Schema.Unknown)])).check(
    Schema.isMinLength(1)
  ),
  top_n: opt(PositiveInt),
  return_documents: opt(Schema.Boolean)
})
export type RerankRequest = typeof RerankRequest.Type

/**
 * Top-level request fields the gateway owns: routing and dialect code write them into
 * upstream bodies, or engines act on them with the gateway's authority. A client body
 * carrying one is refused with 400 (never forwarded, never silently dropped):
 *
 * - `kv_transfer_params` (vLLM prefill/decode disaggregation, written by
 *   routing/Disaggregation.ts): tells a decode engine where to pull KV blocks from;
 *   forwarded, a client picks the URL an engine calls (request forgery through the fleet).
 * - `bootstrap_host`, `bootstrap_port`, `bootstrap_room` (SGLang's disaggregation
 *   handshake): the same, in SGLang's spelling.
 * - `rid` (SGLang's request id, written by dialects/sglang/openai_sglang.ts and named in
 *   `/abort_request`) and `request_id` (vLLM's): engine request ids; a client's own could
 *   collide with another request's and abort or break it.
 */
export const GATEWAY_OWNED_FIELDS: ReadonlyArray<string> = [
  "kv_transfer_params",
  "bootstrap_host",
  "bootstrap_port",
  "bootstrap_room",
  "rid",
  "request_id"
]

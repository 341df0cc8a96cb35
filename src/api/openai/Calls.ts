/**
 * The decoded inference call: which endpoint it came through and its body as the wire
 * schema typed it (Requests.ts). This is the value that flows from decode to dispatch:
 * fields are read through the schema's type, never re-read from an untyped record, and
 * fields the gateway does not know stay on the body (the schemas keep them) so they reach
 * the backend untouched. Pure: no I/O, no clocks.
 */
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest, RerankRequest } from "./Requests.ts"

export type CallKind = "chat" | "completion" | "embedding" | "rerank"

export type InferenceCall =
  | { readonly kind: "chat"; readonly body: ChatCompletionRequest }
  | { readonly kind: "completion"; readonly body: CompletionRequest }
  | { readonly kind: "embedding"; readonly body: EmbeddingRequest }
  | { readonly kind: "rerank"; readonly body: RerankRequest }

/** Whether the client asked for a stream (only chat and completions stream). */
export const isStream = (call: InferenceCall): boolean =>
  (call.kind === "chat" || call.kind === "completion") && call.body.stream === true

/** Whether a streaming client asked for the usage chunk (`stream_options.include_usage`). */
export const wantsUsage = (call: InferenceCall): boolean =>
  (call.kind === "chat" || call.kind === "completion") && call.body.stream_options?.include_usage === true

/** The output cap the client asked for, if any (`max_completion_tokens` wins over `max_tokens`). */
export const requestedMaxTokens = (call: InferenceCall): number | undefined => {
  switch (call.kind) {
    case "chat":
      return call.body.max_completion_tokens ?? call.body.max_tokens ?? undefined
    case "completion":
      return call.body.max_tokens ?? undefined
    default:
      return undefined
  }
}

/** The name of the field that set the output cap (for a 400 that names it). */
export const maxTokensParam = (call: InferenceCall): "max_completion_tokens" | "max_tokens" =>
  call.kind === "chat" && call.body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens"

/** The `user` field, when the endpoint has one and it is a non-empty string. */
export const user = (call: InferenceCall): string | undefined => {
  const u = call.kind === "rerank" ? undefined : call.body.user
  return typeof u === "string" && u !== "" ? u : undefined
}

/** Whether the call generates tokens (chat, completions) or only reads the prompt (embeddings, rerank). */
export const generates = (call: InferenceCall): boolean => call.kind === "chat" || call.kind === "completion"

/**
 * The call with `fields` set on its body (the model name a backend knows, a gateway-owned
 * field such as SGLang's `rid` or vLLM's `kv_transfer_params`); every other field stays.
 */
export const withFields = (call: InferenceCall, fields: { readonly [key: string]: unknown }): InferenceCall => {
  switch (call.kind) {
    case "chat":
      return { kind: "chat", body: { ...call.body, ...fields } }
    case "completion":
      return { kind: "completion", body: { ...call.body, ...fields } }
    case "embedding":
      return { kind: "embedding", body: { ...call.body, ...fields } }
    case "rerank":
      return { kind: "rerank", body: { ...call.body, ...fields } }
  }
}

/** The call without the listed body fields. */
export const withoutFields = (call: InferenceCall, names: ReadonlyArray<string>): InferenceCall => {
  const strip = <B extends { readonly [key: string]: unknown }>(body: B): B => {
    const out: { [key: string]: unknown } & B = { ...body }
    for (const name of names) delete out[name]
    return out
  }
  switch (call.kind) {
    case "chat":
      return { kind: "chat", body: strip(call.body) }
    case "completion":
      return { kind: "completion", body: strip(call.body) }
    case "embedding":
      return { kind: "embedding", body: strip(call.body) }
    case "rerank":
      return { kind: "rerank", body: strip(call.body) }
  }
}

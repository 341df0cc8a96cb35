/**
 * Translation OpenAI (client) → OpenAI-compatible (backend): the identity, except the
 * model name becomes the backend's own and streaming requests always ask for the usage
 * chunk (the gateway settles on reported usage; the chunk is hidden from clients that
 * did not ask for it). When neither change is needed the client's bytes go out untouched.
 */
import { bodyBytes, type UpstreamCall } from "../../Contract.ts"

export const requestBody = (call: UpstreamCall): Uint8Array | string => {
  const body = call.body
  const sameModel = body.model === call.upstreamModel
  if (!call.stream) {
    return sameModel ? bodyBytes(call) : JSON.stringify({ ...body, model: call.upstreamModel })
  }
  if (sameModel && call.clientWantsUsage) return bodyBytes(call)
  // Only chat and completions stream; their schema types `stream_options` (unknown keys kept).
  const options = call.kind === "chat" || call.kind === "completion" ? call.body.stream_options : undefined
  const streamOptions = options == null ? { include_usage: true } : { ...options, include_usage: true }
  return JSON.stringify({ ...body, model: call.upstreamModel, stream_options: streamOptions })
}

export const path = (kind: UpstreamCall["kind"]): string => {
  switch (kind) {
    case "chat":
      return "/chat/completions"
    case "completion":
      return "/completions"
    case "embedding":
      return "/embeddings"
    case "rerank":
      return "/rerank"
  }
}

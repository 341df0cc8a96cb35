/**
 * Translation OpenAI (client) → SGLang's OpenAI-compatible API: the OpenAI rules
 * (openai_openai.ts), plus the generation body carries `rid` = the gateway's request id,
 * so the gateway can name the request in `POST /abort_request {"rid"}` (backends.md §3).
 * Embeddings are left as they are (nothing to abort). Pure: no I/O.
 */
import type { UpstreamCall } from "../../Contract.ts"

const encoder = new TextEncoder()

/** The call with `rid` set in its body (and its raw bytes re-encoded to match). */
export const withRid = (call: UpstreamCall): UpstreamCall => {
  if (call.kind === "embedding" || call.kind === "rerank") return call
  const body = { ...call.body, rid: call.requestId }
  return { ...call, body, rawBody: encoder.encode(JSON.stringify(body)) }
}

export const abortBody = (rid: string): string => JSON.stringify({ rid })

export const ABORT_PATH = "/abort_request"

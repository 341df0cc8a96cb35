/**
 * Translation OpenAI (client) → SGLang's OpenAI-compatible API: the OpenAI rules
 * (openai_openai.ts), plus the generation body carries `rid` = the gateway's request id,
 * so the gateway can name the request in `POST /abort_request {"rid"}` (backends.md §3).
 * Embeddings are left as they are (nothing to abort). Pure: no I/O.
 */
import { type UpstreamCall, withBodyFields } from "../../Contract.ts"

/** The call with `rid` set in its body (the raw bytes no longer match: the body is serialized). */
export const withRid = (call: UpstreamCall): UpstreamCall =>
  call.kind === "embedding" || call.kind === "rerank" ? call : withBodyFields(call, { rid: call.requestId })

export const abortBody = (rid: string): string => JSON.stringify({ rid })

export const ABORT_PATH = "/abort_request"

/**
 * OpenAI-compatible error answers → typed failure reasons. Covers the envelopes of
 * OpenAI, vLLM, SGLang, llama.cpp, NIM and TGI (`{error: {message, type, param, code}}`,
 * `{error: "text", error_type}`, `{object: "error", message}`, `{detail}`).
 * Reading a message to find "context length" happens here, at the boundary, once.
 */
import {
  ContextLengthExceeded,
  type FailureReason,
  fromStatus,
  parseRetryAfter,
  UpstreamError
} from "../../Failure.ts"

interface Parsed {
  readonly message: string
  readonly param: string | null
  readonly code: string | null
}

const asString = (v: unknown): string | null => typeof v === "string" ? v : typeof v === "number" ? String(v) : null

export const parseErrorBody = (text: string): Parsed => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { message: text.slice(0, 500) || "(empty body)", param: null, code: null }
  }
  if (typeof json !== "object" || json === null) return { message: text.slice(0, 500), param: null, code: null }
  const o = json as Record<string, unknown>
  const err = o["error"]
  if (typeof err === "object" && err !== null) {
    const e = err as Record<string, unknown>
    return {
      message: asString(e["message"]) ?? JSON.stringify(err).slice(0, 500),
      param: asString(e["param"]),
      code: asString(e["code"]) ?? asString(e["type"])
    }
  }
  if (typeof err === "string") return { message: err, param: null, code: asString(o["error_type"]) }
  const message = asString(o["message"]) ?? asString(o["detail"]) ?? JSON.stringify(o["detail"] ?? o).slice(0, 500)
  return { message, param: null, code: asString(o["code"]) ?? asString(o["type"]) }
}

/**
 * Engine quirks the status alone misreads: llama.cpp's `exceed_context_size_error` ("the
 * request exceeds the available context size") and TGI's validation wording ("`inputs`
 * tokens + `max_new_tokens` must be <= N") are context-length errors; TGI's 424
 * `error_type: generation` is the engine failing, not the client's request.
 */
const quirk = (status: number, parsed: Parsed): FailureReason | undefined => {
  if (
    parsed.code === "exceed_context_size_error" ||
    /exceeds the available context size|`inputs` tokens \+ `max_new_tokens` must be/.test(parsed.message)
  ) {
    return new ContextLengthExceeded({ message: parsed.message })
  }
  if (status === 424 || parsed.code === "generation") return new UpstreamError({ status, message: parsed.message })
  return undefined
}

export const fromResponse = (
  status: number,
  retryAfter: string | undefined,
  bodyText: string,
  nowMs: number
): FailureReason => {
  const parsed = parseErrorBody(bodyText)
  const special = quirk(status, parsed)
  if (special !== undefined) return special
  return fromStatus(status, parsed.message, {
    retryAfterMs: parseRetryAfter(retryAfter, nowMs),
    param: parsed.param,
    code: parsed.code
  })
}

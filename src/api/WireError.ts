/**
 * The canonical wire error: what the one error mapping (http/ErrorResponse.ts) decides for a
 * failure — status, OpenAI error type, code, message, param, retry-after — as a plain value,
 * so that the encoders of every inbound API (OpenAI, Anthropic, Responses) can render it
 * without depending on http/. Owns the shape only; it never decides which failure gets
 * which status.
 */
import type { ErrorBody, ErrorType } from "./openai/ErrorEnvelope.ts"

export interface WireError {
  readonly status: number
  readonly type: ErrorType
  readonly code: string | null
  readonly message: string
  readonly param: string | null
  readonly retryAfterMs: number | undefined
}

/** From the envelope-plus-status form http/ErrorResponse.ts produces today. */
export const fromEnvelope = (status: number, body: ErrorBody, retryAfterMs: number | undefined): WireError => ({
  status,
  type: body.type,
  code: body.code,
  message: body.message,
  param: body.param,
  retryAfterMs
})

/** The OpenAI envelope body of a canonical error. */
export const toEnvelope = (error: WireError): ErrorBody => ({
  message: error.message,
  type: error.type,
  param: error.param,
  code: error.code
})

/** The `retry-after` header value (whole seconds, at least 1), when the error carries one. */
export const retryAfterHeader = (error: WireError): string | undefined =>
  error.retryAfterMs === undefined ? undefined : String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)))

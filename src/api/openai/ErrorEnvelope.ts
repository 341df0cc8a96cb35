/**
 * The OpenAI error envelope `{error: {message, type, param, code}}`, as bytes for an
 * HTTP body and as an SSE error event. Owns the shape only; which error gets which
 * status and type is decided in http/ErrorResponse.ts and nowhere else.
 */

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "insufficient_quota"
  | "server_error"
  | "timeout_error"
  | "overloaded_error"

export interface ErrorBody {
  readonly message: string
  readonly type: ErrorType
  readonly param: string | null
  readonly code: string | null
}

export const envelope = (body: ErrorBody): string => JSON.stringify({ error: body })

/** An SSE event carrying the envelope; the OpenAI SDK raises APIError on it even after HTTP 200. */
export const sseEvent = (body: ErrorBody): string => `data: ${envelope(body)}\n\n`

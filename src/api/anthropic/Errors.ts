/**
 * The canonical wire error → Anthropic's error answer: the body
 * `{"type":"error","error":{"type","message"},"request_id"?}`, its status and headers, and the
 * `event: error` SSE event that ends a stream already under way.
 *
 * Type by status, as Anthropic's API documents them: 400 invalid_request_error,
 * 401 authentication_error, 402 billing_error, 403 permission_error, 404 not_found_error,
 * 413 request_too_large, 429 rate_limit_error, 504 timeout_error, other 5xx api_error; an
 * overloaded backend (`overloaded_error`, whatever its status) is **529** overloaded_error,
 * as Anthropic signals overload. Other 4xx keep their status as invalid_request_error.
 * Pure: it never decides which failure gets which canonical error (http/ErrorResponse.ts does).
 */
import { namedEvent, bytes } from "../Inbound.ts"
import { retryAfterHeader, type WireError } from "../WireError.ts"

export type AnthropicErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "billing_error"
  | "permission_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "timeout_error"
  | "api_error"
  | "overloaded_error"

export const classify = (error: WireError): { readonly status: number; readonly type: AnthropicErrorType } => {
  if (error.type === "overloaded_error") return { status: 529, type: "overloaded_error" }
  switch (error.status) {
    case 400:
      return { status: 400, type: "invalid_request_error" }
    case 401:
      return { status: 401, type: "authentication_error" }
    case 402:
      return { status: 402, type: "billing_error" }
    case 403:
      return { status: 403, type: "permission_error" }
    case 404:
      return { status: 404, type: "not_found_error" }
    case 413:
      return { status: 413, type: "request_too_large" }
    case 429:
      return { status: 429, type: "rate_limit_error" }
    case 504:
      return { status: 504, type: "timeout_error" }
  }
  if (error.status >= 500) return { status: error.status, type: "api_error" }
  if (error.status >= 400) return { status: error.status, type: "invalid_request_error" }
  // A canonical error is never below 400; should one arrive, it is the gateway's fault.
  return { status: 500, type: "api_error" }
}

const errorJson = (error: WireError, requestId: string | undefined) => {
  const out: Record<string, unknown> = { type: "error", error: { type: classify(error).type, message: error.message } }
  if (requestId !== undefined) out["request_id"] = requestId
  return out
}

export interface ErrorAnswer {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
}

/** A non-2xx answer in Anthropic's shape (phase 2 adds the `request-id` header it owns). */
export const errorAnswer = (error: WireError, requestId?: string): ErrorAnswer => {
  const retryAfter = retryAfterHeader(error)
  return {
    status: classify(error).status,
    body: JSON.stringify(errorJson(error, requestId)),
    headers: retryAfter === undefined ? { "content-type": "application/json" } : { "content-type": "application/json", "retry-after": retryAfter }
  }
}

/** The `event: error` SSE event that ends a committed stream. */
export const errorEvent = (error: WireError): string => namedEvent("error", errorJson(error, undefined))

export const errorEventBytes = (error: WireError): Uint8Array => bytes(errorEvent(error))

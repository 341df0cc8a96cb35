/**
 * Anthropic error answers → typed failure reasons (backends.md §2.4).
 *
 * Body `{"type":"error","error":{"type","message"},"request_id"?}`. The status decides,
 * through the shared `fromStatus` (429 rate_limit_error and 529 overloaded_error →
 * Overloaded with retry-after, 401/403 → Unauthorized, 500 api_error → UpstreamError,
 * 504 → Unavailable, other 4xx → InvalidRequest), with two Anthropic specifics first:
 * 402 billing_error is the gateway's account, not the client's request (Unauthorized, so
 * another backend may serve), and "prompt is too long" / "exceed context limit" is a
 * context-length error. The error type is kept as the code. Never matches on messages
 * anywhere else.
 */
import { ContextLengthExceeded, type FailureReason, fromStatus, parseRetryAfter, Unauthorized } from "../../Failure.ts"
import { parseErrorBody } from "../openai/Errors.ts"

const CONTEXT = /prompt is too long|exceed context limit|context window/i

export const fromResponse = (
  status: number,
  retryAfter: string | undefined,
  bodyText: string,
  nowMs: number
): FailureReason => {
  // `{error: {type, message}}` is the shape the OpenAI parser already reads (type → code).
  const parsed = parseErrorBody(bodyText)
  if (status === 402) return new Unauthorized({ status, message: parsed.message })
  if (status === 400 && CONTEXT.test(parsed.message)) return new ContextLengthExceeded({ message: parsed.message })
  return fromStatus(status, parsed.message, {
    retryAfterMs: parseRetryAfter(retryAfter, nowMs),
    param: parsed.param,
    code: parsed.code
  })
}

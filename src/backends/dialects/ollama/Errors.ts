/**
 * Ollama error answers → typed failure reasons (backends.md §1.6, §2.5).
 *
 * Native bodies are `{"error": "text"}` (the OpenAI parser reads that shape). The status
 * decides through the shared `fromStatus` (404 model not found → InvalidRequest 404,
 * 500 → UpstreamError or OutOfMemory), with one Ollama specific first: a 503 "server
 * busy ... maximum pending requests exceeded" is its queue being full, i.e. Overloaded,
 * not an engine that is down. Never matches on messages anywhere else.
 */
import { type FailureReason, fromStatus, Overloaded, parseRetryAfter } from "../../Failure.ts"
import { parseErrorBody } from "../openai/Errors.ts"

const BUSY = /server busy|maximum pending requests/i

export const fromResponse = (
  status: number,
  retryAfter: string | undefined,
  bodyText: string,
  nowMs: number
): FailureReason => {
  const parsed = parseErrorBody(bodyText)
  const retryAfterMs = parseRetryAfter(retryAfter, nowMs)
  if (status === 503 && BUSY.test(parsed.message)) return new Overloaded({ status, retryAfterMs, message: parsed.message })
  return fromStatus(status, parsed.message, { retryAfterMs, param: parsed.param, code: parsed.code })
}

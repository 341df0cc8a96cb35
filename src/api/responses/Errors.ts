/**
 * The canonical wire error → the Responses API's error answer: the OpenAI envelope
 * (`{"error":{"message","type","param","code"}}`, openai/ErrorEnvelope.ts) with the canonical
 * status and a `retry-after` header where one applies. Failures after the stream started are
 * `response.failed` events (Stream.ts). Pure: it never decides which failure gets which status.
 */
import { envelope } from "../openai/ErrorEnvelope.ts"
import { retryAfterHeader, toEnvelope, type WireError } from "../WireError.ts"

export interface ErrorAnswer {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
}

export const errorAnswer = (error: WireError): ErrorAnswer => {
  const retryAfter = retryAfterHeader(error)
  return {
    status: error.status,
    body: envelope(toEnvelope(error)),
    headers: retryAfter === undefined ? { "content-type": "application/json" } : { "content-type": "application/json", "retry-after": retryAfter }
  }
}

/**
 * The closed, typed union of reasons a backend attempt can fail (ARCHITECTURE.md §3).
 *
 * Each reason knows whether it is retryable (safe to try the next candidate, which is
 * only ever done before the first token) and whether it counts against the
 * (model, GPU SKU) circuit breaker. A client's own 4xx never trips a breaker; a
 * client abort is not a failure at all. Never match on message strings: match on `_tag`.
 */
import { Data } from "effect"

/** 429 / 529 / engine queue full. */
export class Overloaded extends Data.TaggedError("Overloaded")<{
  readonly status: number
  readonly retryAfterMs: number | undefined
  readonly message: string
}> {
  get isRetryable() { return true }
  /** With retry-after it is backpressure (a cool-down), not a failure of the backend. */
  get tripsBreaker() { return this.retryAfterMs === undefined }
}

/** Connection refused or reset before the first byte, 502/503, engine loading. */
export class Unavailable extends Data.TaggedError("Unavailable")<{
  readonly status: number | undefined
  readonly retryAfterMs?: number | undefined
  readonly message: string
  /** The engine said it is still loading the model (a cold start, not a fault). */
  readonly loading?: boolean | undefined
}> {
  get isRetryable() { return true }
  /** A 503 with retry-after is backpressure (a cool-down); without it, evidence of unavailability. */
  get tripsBreaker() { return this.retryAfterMs === undefined }
}

/** 500-class answer before any token that is not one of the more precise reasons. */
export class UpstreamError extends Data.TaggedError("UpstreamError")<{
  readonly status: number
  readonly message: string
}> {
  get isRetryable() { return true }
  get tripsBreaker() { return true }
}

/** No TCP connection within the connect deadline. */
export class ConnectTimeout extends Data.TaggedError("ConnectTimeout")<{ readonly afterMs: number }> {
  get isRetryable() { return true }
  get tripsBreaker() { return true }
  override get message() { return `no connection within ${this.afterMs} ms` }
}

/** No first token within the time-to-first-token deadline. */
export class TimeToFirstTokenExceeded extends Data.TaggedError("TimeToFirstTokenExceeded")<{
  readonly afterMs: number
}> {
  get isRetryable() { return true }
  get tripsBreaker() { return true }
  override get message() { return `no first token within ${this.afterMs} ms` }
}

/** The gap between two chunks exceeded the idle deadline. */
export class StreamStalled extends Data.TaggedError("StreamStalled")<{ readonly afterMs: number }> {
  get isRetryable() { return true }
  get tripsBreaker() { return true }
  override get message() { return `no bytes from the backend for ${this.afterMs} ms` }
}

/** The whole request exceeded its total deadline. */
export class TotalTimeout extends Data.TaggedError("TotalTimeout")<{ readonly afterMs: number }> {
  get isRetryable() { return false }
  get tripsBreaker() { return false }
  override get message() { return `request exceeded its total deadline of ${this.afterMs} ms` }
}

/** An error event after HTTP 200 (vLLM `data: {"error": ...}`, Anthropic `event: error`). */
export class MidStreamError extends Data.TaggedError("MidStreamError")<{
  readonly message: string
  readonly code: string | undefined
}> {
  get isRetryable() { return true }
  get tripsBreaker() { return true }
}

/** A chunk that is not valid for the dialect (bad JSON, oversized event). */
export class MalformedChunk extends Data.TaggedError("MalformedChunk")<{ readonly message: string }> {
  get isRetryable() { return true }
  get tripsBreaker() { return true }
}

/** The engine ran out of GPU memory. */
export class OutOfMemory extends Data.TaggedError("OutOfMemory")<{ readonly message: string }> {
  get isRetryable() { return true }
  get tripsBreaker() { return true }
}

/** The token stream is looping (repetition detector). */
export class DegenerateOutput extends Data.TaggedError("DegenerateOutput")<{ readonly message: string }> {
  get isRetryable() { return false }
  get tripsBreaker() { return true }
}

/** `finish_reason: length` well below the requested maximum. */
export class Truncated extends Data.TaggedError("Truncated")<{
  readonly completionTokens: number
  readonly requestedMax: number
}> {
  get isRetryable() { return false }
  get tripsBreaker() { return true }
  override get message() { return `output truncated at ${this.completionTokens} of ${this.requestedMax} tokens` }
}

/**
 * A non-streaming answer larger than `limits.max_response_bytes` (read under that cap and
 * abandoned). Not retried: the size follows from the request (an embeddings batch, a huge
 * `max_tokens`), so another backend would generate it again; and it says nothing about the
 * backend's health, so it trips no breaker (a client could otherwise open breakers by
 * asking for large answers).
 */
export class ResponseTooLarge extends Data.TaggedError("ResponseTooLarge")<{ readonly limit: number }> {
  get isRetryable() { return false }
  get tripsBreaker() { return false }
  override get message() { return `the backend's answer exceeded the gateway's limit of ${this.limit} bytes` }
}

/** The prompt does not fit the model's context: the client's fault. */
export class ContextLengthExceeded extends Data.TaggedError("ContextLengthExceeded")<{ readonly message: string }> {
  get isRetryable() { return false }
  get tripsBreaker() { return false }
}

/** The backend rejected the request as invalid (4xx other than auth/limits): the client's fault. */
export class InvalidRequest extends Data.TaggedError("InvalidRequest")<{
  readonly status: number
  readonly message: string
  readonly param: string | null
  readonly code: string | null
}> {
  get isRetryable() { return false }
  get tripsBreaker() { return false }
}

/** 401/403 from the backend: the gateway is misconfigured (wrong key). */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{ readonly status: number; readonly message: string }> {
  // Another backend may hold a valid key.
  get isRetryable() { return true }
  get tripsBreaker() { return true }
}

/** The breaker for this (model, SKU) is open: the attempt was never sent. */
export class BreakerOpen extends Data.TaggedError("BreakerOpen")<{ readonly key: string }> {
  get isRetryable() { return true }
  get tripsBreaker() { return false }
  override get message() { return `circuit breaker ${this.key} is open` }
}

/** Every slot of the backend stayed busy past the queue deadline. */
export class SlotsExhausted extends Data.TaggedError("SlotsExhausted")<{ readonly afterMs: number }> {
  get isRetryable() { return true }
  get tripsBreaker() { return false }
  override get message() { return `no free slot within ${this.afterMs} ms` }
}

export type FailureReason =
  | Overloaded
  | Unavailable
  | UpstreamError
  | ConnectTimeout
  | TimeToFirstTokenExceeded
  | StreamStalled
  | TotalTimeout
  | MidStreamError
  | MalformedChunk
  | OutOfMemory
  | DegenerateOutput
  | Truncated
  | ResponseTooLarge
  | ContextLengthExceeded
  | InvalidRequest
  | Unauthorized
  | BreakerOpen
  | SlotsExhausted

export type FailureTag = FailureReason["_tag"]

/**
 * Backpressure: the backend asked for no new work until `retryAfterMs` (429/529/503 with
 * `retry-after`). It earns a cool-down of that backend, and counts neither against its
 * health nor against its breaker.
 */
export const isBackpressure = (reason: FailureReason): boolean =>
  (reason._tag === "Overloaded" || reason._tag === "Unavailable") && reason.retryAfterMs !== undefined

/** Every tag, for metric label pre-registration. */
export const FailureTags: ReadonlyArray<FailureTag> = [
  "Overloaded",
  "Unavailable",
  "UpstreamError",
  "ConnectTimeout",
  "TimeToFirstTokenExceeded",
  "StreamStalled",
  "TotalTimeout",
  "MidStreamError",
  "MalformedChunk",
  "OutOfMemory",
  "DegenerateOutput",
  "Truncated",
  "ResponseTooLarge",
  "ContextLengthExceeded",
  "InvalidRequest",
  "Unauthorized",
  "BreakerOpen",
  "SlotsExhausted"
]

/** Classifies an HTTP error answer given before any token (shared by every dialect's Errors file). */
export const fromStatus = (
  status: number,
  message: string,
  options: { readonly retryAfterMs?: number | undefined; readonly param?: string | null; readonly code?: string | null } = {}
): FailureReason => {
  if (status === 429 || status === 529) {
    return new Overloaded({ status, retryAfterMs: options.retryAfterMs, message })
  }
  if (status === 401 || status === 403) return new Unauthorized({ status, message })
  if (status === 502 || status === 503 || status === 504) {
    return new Unavailable({ status, retryAfterMs: options.retryAfterMs, message, loading: /\bloading\b/i.test(message) })
  }
  if (status >= 500) {
    return /out of memory|OOM/i.test(message) ? new OutOfMemory({ message }) : new UpstreamError({ status, message })
  }
  if (/maximum context length|context length|too many tokens|context window/i.test(message)) {
    return new ContextLengthExceeded({ message })
  }
  return new InvalidRequest({ status, message, param: options.param ?? null, code: options.code ?? null })
}

/** Parses a `retry-after` header (seconds or an HTTP date) into milliseconds. */
export const parseRetryAfter = (value: string | undefined, nowMs: number): number | undefined => {
  if (value === undefined || value === "") return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs)
}

/**
 * The attributes of Sluice's spans, to the OpenTelemetry GenAI semantic conventions
 * (`gen_ai.*`, `server.address`), beside Sluice's own (`sluice.*`). The request span (the
 * server span of one inference request, open until the request's scope closes, so a stream
 * is inside it) gets the operation, the requested and served model, the usage, the finish
 * reasons and the backend that answered; each dispatch attempt is a child span with its
 * backend, attempt number and outcome.
 *
 * Owns only the names and the mapping of plain values to attributes. Must never read a
 * request body or write a prompt, a completion, a key or a tenant's secret into a span.
 */
import type { Tracer } from "effect"

/** `gen_ai.operation.name` of each kind of inference call. */
export const operationName = (kind: string): string => {
  switch (kind) {
    case "chat":
      return "chat"
    case "completion":
      return "text_completion"
    case "embedding":
      return "embeddings"
    default:
      return kind
  }
}

/** `server.address` and `server.port` of a backend's base URL (nothing when it has none). */
export const serverOf = (url: string | undefined): Readonly<Record<string, string | number>> => {
  if (url === undefined) return {}
  const parsed = URL.parse(url)
  if (parsed === null) return {}
  const port = parsed.port === "" ? (parsed.protocol === "https:" ? 443 : 80) : Number(parsed.port)
  return { "server.address": parsed.hostname, "server.port": port }
}

/** The request span's opening attributes. */
export const requestStart = (kind: string): Record<string, unknown> => ({
  "gen_ai.operation.name": operationName(kind)
})

/** What the request came to, as the release phase knows it. */
export interface RequestEnd {
  readonly requestModel: string | undefined
  /** The name the serving backend knows the model by. */
  readonly responseModel: string | undefined
  readonly backend: string | undefined
  readonly backendUrl: string | undefined
  readonly outcome: string
  readonly status: number
  readonly inputTokens: number
  readonly outputTokens: number
  readonly cachedTokens: number
  readonly finishReason: string | undefined
  readonly ttftMs: number | undefined
  readonly attempts: number
  readonly errorType: string | undefined
}

/** Annotates the request span when the request's scope closes (before the span ends). */
export const requestEnd = (span: Tracer.Span, end: RequestEnd): void => {
  if (end.requestModel !== undefined) span.attribute("gen_ai.request.model", end.requestModel)
  if (end.responseModel !== undefined) span.attribute("gen_ai.response.model", end.responseModel)
  if (end.backend !== undefined) {
    span.attribute("sluice.backend", end.backend)
    for (const [k, v] of Object.entries(serverOf(end.backendUrl))) span.attribute(k, v)
  }
  span.attribute("gen_ai.usage.input_tokens", end.inputTokens)
  span.attribute("gen_ai.usage.output_tokens", end.outputTokens)
  if (end.cachedTokens > 0) span.attribute("gen_ai.usage.cache_read.input_tokens", end.cachedTokens)
  if (end.finishReason !== undefined) span.attribute("gen_ai.response.finish_reasons", [end.finishReason])
  if (end.ttftMs !== undefined) span.attribute("sluice.ttft_ms", end.ttftMs)
  span.attribute("sluice.outcome", end.outcome)
  span.attribute("sluice.attempts", end.attempts)
  span.attribute("http.response.status_code", end.status)
  if (end.errorType !== undefined) span.attribute("error.type", end.errorType)
}

/** An attempt span's opening attributes. */
export const attemptStart = (
  backend: { readonly id: string; readonly gpu: string; readonly dialect: string; readonly url: string | undefined },
  attempt: number,
  kind: string,
  requestModel: string,
  backendModel: string | undefined
): Record<string, unknown> => ({
  "gen_ai.operation.name": operationName(kind),
  "sluice.backend": backend.id,
  "sluice.gpu": backend.gpu,
  "sluice.attempt": attempt,
  "gen_ai.provider.name": backend.dialect,
  "gen_ai.request.model": requestModel,
  ...(backendModel === undefined ? {} : { "gen_ai.response.model": backendModel }),
  ...serverOf(backend.url)
})

/** An attempt's outcome: `committed`, or the failure reason's tag (also `error.type`). */
export const attemptEnd = (span: Tracer.Span, outcome: { readonly committed: true } | { readonly reason: string }): void => {
  if ("committed" in outcome) {
    span.attribute("sluice.attempt.outcome", "committed")
    return
  }
  span.attribute("sluice.attempt.outcome", outcome.reason)
  span.attribute("error.type", outcome.reason)
}

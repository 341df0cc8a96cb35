/**
 * The one place where a failure is classified for the wire: which HTTP status, OpenAI error
 * type, code, message, param and `retry-after` each error of the gateway gets, before the
 * first byte (an error answer) or after it (a stream's last event). Every inbound API renders
 * the same classification in its own envelope (http/ErrorResponse.ts renders OpenAI's);
 * anything not listed here is a defect: an opaque 500 whose details go to the log with the
 * request id, never to the client.
 */
import type { InvalidUsageQuery, UsageUnavailable } from "../accounting/UsageReport.ts"
import type { BudgetExceeded, BudgetUnavailable, RateLimitState } from "../admission/Budget.ts"
import type { ErrorBody } from "../api/openai/ErrorEnvelope.ts"
import type {
  AdminDisabled,
  AdminUnauthorized,
  AuthUnavailable,
  DashboardBusy,
  InvalidAdminRequest,
  KeyNotFound,
  ModelNotAllowed,
  TenantNotFound,
  Unauthenticated
} from "../auth/Errors.ts"
import type { FailureReason } from "../backends/Failure.ts"
import type { BackendFailed, BackendsExhausted } from "../dispatch/Errors.ts"
import type { FlowRefused } from "../dispatch/FlowControl.ts"
import type { NoBackendAvailable } from "../routing/Errors.ts"
import type { StoreError, TenantExists } from "../stores/KeyStore.ts"
import type { ContentBlocked, ExtensionFailed, PolicyRejected, RequestError } from "./Errors.ts"

export type AuthError = Unauthenticated | ModelNotAllowed | AuthUnavailable

export type AdminError =
  | AdminUnauthorized
  | AdminDisabled
  | DashboardBusy
  | TenantNotFound
  | KeyNotFound
  | TenantExists
  | InvalidAdminRequest
  | StoreError
  | UsageError

/** What a usage query (the tenant's or the admin's) can fail with besides authentication. */
export type UsageError = InvalidUsageQuery | UsageUnavailable

/** What the request pipeline can fail with before the first byte. */
export type PipelineError =
  | RequestError
  | AuthError
  | PolicyRejected
  | ExtensionFailed
  | ContentBlocked
  | BudgetExceeded
  | BudgetUnavailable
  | BackendFailed
  | BackendsExhausted
  | NoBackendAvailable
  | FlowRefused

/** Every failure with a wire answer: the pipeline's, and the admin API's. */
export type GatewayError = PipelineError | AdminError

export interface WireError {
  readonly status: number
  readonly body: ErrorBody
  readonly retryAfterMs: number | undefined
  /** Headers the answer carries besides `retry-after` (a 429's `x-ratelimit-*`). */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** OpenAI's reset format: `1s`, `6m0s`, `250ms`. */
export const resetText = (ms: number): string => {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`
  const seconds = Math.ceil(ms / 1000)
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`
}

/** OpenAI's `x-ratelimit-*` headers of the tightest request and token limits (none without limits). */
export const rateLimitHeaders = (
  limits: { readonly requests?: RateLimitState | undefined; readonly tokens?: RateLimitState | undefined }
): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const [family, state] of [["requests", limits.requests], ["tokens", limits.tokens]] as const) {
    if (state === undefined) continue
    headers[`x-ratelimit-limit-${family}`] = String(state.limit)
    headers[`x-ratelimit-remaining-${family}`] = String(state.remaining)
    headers[`x-ratelimit-reset-${family}`] = resetText(state.resetMs)
  }
  return headers
}

const limitText = (error: BudgetExceeded): string =>
  error.field.startsWith("spend_") ? `$${(error.limit / 1e6).toFixed(2)}` : String(error.limit)

export const err = (
  status: number,
  type: ErrorBody["type"],
  message: string,
  code: string | null = null,
  param: string | null = null,
  retryAfterMs?: number
): WireError => ({ status, body: { message, type, param, code }, retryAfterMs })

/** A backend reason as the client sees it (used both before and after the first token). */
export const reasonToWire = (reason: FailureReason): WireError => {
  switch (reason._tag) {
    case "ContextLengthExceeded":
      return err(400, "invalid_request_error", reason.message, "context_length_exceeded")
    case "InvalidRequest":
      return err(
        reason.status >= 400 && reason.status < 500 ? reason.status : 400,
        reason.status === 404 ? "not_found_error" : "invalid_request_error",
        reason.message,
        reason.code,
        reason.param
      )
    case "Overloaded":
      return err(503, "overloaded_error", `the backend is overloaded: ${reason.message}`, "backend_overloaded", null, reason.retryAfterMs)
    case "SlotsExhausted":
    case "BreakerOpen":
      return err(503, "overloaded_error", reason.message, "backend_overloaded")
    case "Unavailable":
      return err(503, "server_error", `the backend is unavailable: ${reason.message}`, "backend_unavailable", null, reason.retryAfterMs)
    case "ConnectTimeout":
    case "TimeToFirstTokenExceeded":
    case "TotalTimeout":
    case "StreamStalled":
      return err(504, "timeout_error", reason.message, "backend_timeout")
    case "ResponseTooLarge":
      return err(502, "server_error", reason.message, "backend_response_too_large")
    case "Unauthorized":
      return err(502, "server_error", "the gateway's credentials were rejected by the backend", "backend_unauthorized")
    case "MidStreamError":
    case "MalformedChunk":
    case "OutOfMemory":
    case "DegenerateOutput":
    case "Truncated":
    case "UpstreamError":
      return err(502, "server_error", `the backend failed: ${reason.message}`, "backend_error")
  }
}

/** An extension that failed, died or ran past its deadline: the gateway's fault, named. */
export const extensionToWire = (error: ExtensionFailed): WireError =>
  err(
    error.reason === "timeout" ? 504 : 500,
    "server_error",
    `The ${error.phase} policy "${error.extension}" ${error.reason === "timeout" ? "did not answer within its deadline" : "failed"}.`,
    "extension_failed"
  )

/** A response policy stopped the answer (a stream's last event, or a unary refusal). */
export const blockedToWire = (message: string): WireError => err(400, "invalid_request_error", message, "content_blocked")

const busy = new Set(["Overloaded", "SlotsExhausted", "BreakerOpen", "Unavailable"])
const slow = new Set(["ConnectTimeout", "TimeToFirstTokenExceeded", "TotalTimeout", "StreamStalled"])

export const toWire = (error: GatewayError): WireError => {
  switch (error._tag) {
    case "InvalidJson":
      return err(400, "invalid_request_error", `We could not parse the JSON body of your request: ${error.message}`, "invalid_json")
    case "InvalidBody":
      return err(400, "invalid_request_error", error.message, "invalid_value", error.param)
    case "ContextWindowExceeded":
      return err(400, "invalid_request_error", error.message, "invalid_value", "messages")
    case "UnknownModel":
      return err(404, "invalid_request_error", `The model \`${error.model}\` does not exist or is not served here.`, "model_not_found", "model")
    case "BodyTooLarge":
      return err(413, "invalid_request_error", `The request body exceeds the limit of ${error.limit} bytes.`, "request_too_large")
    case "UnsupportedOperation":
      return err(400, "invalid_request_error", error.message, "unsupported")
    case "Unauthenticated":
      // One answer for missing, malformed, unknown, revoked and expired keys: it never says which.
      return err(
        401,
        "invalid_request_error",
        "Invalid or missing API key. Send a valid key as `Authorization: Bearer <key>` or `x-api-key: <key>`.",
        "invalid_api_key"
      )
    case "ModelNotAllowed":
      return err(403, "permission_error", `This API key may not use the model \`${error.model}\`.`, "model_not_allowed", "model")
    case "AuthUnavailable":
      return err(503, "server_error", "API keys cannot be checked right now; retry shortly.", "auth_unavailable", null, 1000)
    case "AdminUnauthorized":
      return err(401, "invalid_request_error", "Invalid or missing admin token (`Authorization: Bearer <SLUICE_ADMIN_TOKEN>`).", "invalid_admin_token")
    case "AdminDisabled":
      return err(404, "invalid_request_error", `Unknown request URL: ${error.path}.`, "unknown_url")
    case "DashboardBusy":
      return err(429, "rate_limit_error", `All ${error.max} dashboard streams are open; retry later.`, "dashboard_busy", null, 5000)
    case "TenantNotFound":
      return err(404, "not_found_error", `No tenant \`${error.tenant}\`.`, "tenant_not_found", "tenant")
    case "KeyNotFound":
      return err(404, "not_found_error", `No API key \`${error.key}\`.`, "key_not_found", "key")
    case "TenantExists":
      return err(409, "invalid_request_error", `Tenant \`${error.tenant}\` already exists.`, "tenant_exists", "id")
    case "InvalidAdminRequest":
      return err(400, "invalid_request_error", error.message, "invalid_value", error.param)
    case "StoreError":
      return err(503, "server_error", "The key store is unavailable; retry shortly.", "store_unavailable", null, 1000)
    case "InvalidUsageQuery":
      return err(400, "invalid_request_error", error.message, "invalid_value", error.param)
    case "UsageUnavailable":
      return err(503, "server_error", "The usage ledger is unavailable; retry shortly.", "usage_unavailable", null, 1000)
    case "Draining":
      return err(503, "server_error", "The gateway is shutting down; retry on another instance.", "draining", null, 1000)
    case "LimitExceeded":
      return err(400, "invalid_request_error", error.message, error.code, error.param)
    case "GatewayOwnedField":
      return err(
        400,
        "invalid_request_error",
        `The field '${error.field}' is set by the gateway and may not be sent by clients.`,
        "gateway_owned_field",
        error.field
      )
    case "UnsupportedMediaType":
      return err(
        415,
        "invalid_request_error",
        `Unsupported Content-Type ${error.contentType === undefined ? "(none)" : `'${error.contentType.slice(0, 100)}'`}: send the body as application/json.`,
        "unsupported_media_type"
      )
    case "BudgetExceeded":
      return {
        ...err(
          429,
          "rate_limit_error",
          error.field === "tokens_per_window"
            ? `Token budget exceeded for tenant ${error.tenant}: requested ${error.requested}, remaining ${error.remaining} in this window.`
            : `Rate limit exceeded: ${error.field} of ${error.subject} is ${limitText(error)}; this request needs ${
              error.field.startsWith("spend_") ? `$${(error.requested / 1e6).toFixed(6)}` : error.requested
            } and ${error.field.startsWith("spend_") ? `$${(error.remaining / 1e6).toFixed(6)}` : error.remaining} remain. Retry in ${
              resetText(error.retryAfterMs)
            }.`,
          error.field === "tokens_per_window" ? "token_budget_exceeded" : "rate_limit_exceeded",
          null,
          error.retryAfterMs
        ),
        headers: rateLimitHeaders(error)
      }
    case "BudgetUnavailable":
      return err(
        503,
        "server_error",
        "Token budgets cannot be checked right now (the budget store is unreachable); retry shortly.",
        "budget_store_unavailable",
        null,
        error.retryAfterMs
      )
    case "PolicyRejected":
      return err(400, "invalid_request_error", error.message, error.code, null)
    case "ContentBlocked":
      return err(400, "invalid_request_error", error.message, "content_blocked", null)
    case "ExtensionFailed":
      return extensionToWire(error)
    case "BackendFailed":
      return reasonToWire(error.reason)
    case "NoBackendAvailable":
      return err(503, "server_error", error.message, "no_backend_available")
    case "FlowRefused": {
      const why = error.reason === "timeout"
        ? "it waited the longest allowed for a free backend"
        : error.reason === "shed"
        ? "it was pushed out of the queue by higher-priority or fairer requests"
        : error.reason === "full"
        ? "the queue for it is full"
        : "every backend is saturated and the model rejects instead of queueing"
      return err(429, "rate_limit_error", `Model ${error.model} is saturated: ${why}. Retry later.`, `saturated_${error.reason}`, null, error.retryAfterMs)
    }
    case "BackendsExhausted": {
      const tags = error.attempts.map((a) => a.reason)
      const detail = error.attempts.map((a) => `${a.backend}: ${a.reason} (${a.message})`).join("; ")
      const why = error.stoppedBy === "retry_budget"
        ? " The gateway retry budget is spent."
        : error.stoppedBy === "max_attempts"
        ? " The attempt limit was reached."
        : ""
      const message = `All ${error.attempts.length} attempt(s) for model ${error.model} failed before the first token: ${detail}.${why}`
      if (tags.length > 0 && tags.every((t) => busy.has(t))) {
        return err(503, "overloaded_error", message, "backends_overloaded", null, error.retryAfterMs ?? 1000)
      }
      if (tags.length > 0 && tags.every((t) => slow.has(t))) return err(504, "timeout_error", message, "backends_timeout")
      return err(502, "server_error", message, "backends_exhausted", null, error.retryAfterMs)
    }
  }
}

const TAGS: ReadonlySet<string> = new Set([
  "InvalidJson", "InvalidBody", "ContextWindowExceeded", "UnknownModel", "BodyTooLarge", "UnsupportedOperation", "Draining",
  "Unauthenticated", "ModelNotAllowed", "AuthUnavailable", "AdminUnauthorized", "AdminDisabled", "DashboardBusy", "TenantNotFound",
  "KeyNotFound", "TenantExists", "InvalidAdminRequest", "StoreError", "InvalidUsageQuery", "UsageUnavailable", "BudgetExceeded", "BudgetUnavailable", "BackendFailed",
  "NoBackendAvailable", "BackendsExhausted", "LimitExceeded", "GatewayOwnedField", "UnsupportedMediaType", "PolicyRejected",
  "ExtensionFailed", "ContentBlocked", "FlowRefused"
])

/** Whether `error` is one of the tagged errors this module maps (by its tag). */
const isGatewayError = (error: unknown): error is GatewayError =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string" && TAGS.has(error._tag)

/** The wire answer of an error this module knows (the command line prints its message), else undefined. */
export const toWireIfKnown = (error: unknown): WireError | undefined => isGatewayError(error) ? toWire(error) : undefined


/**
 * The request lifecycle of the public inference endpoints, phase by phase:
 *
 *   accept → authenticate → decode → admit → route → dispatch → stream → account → release
 *
 * Decode and admit bound what one request costs before anything is reserved: the media
 * type, the body size, the depth/values/keys pre-scan, item counts, gateway-owned fields
 * and `n` (Body.ts, RequestLimits.ts), then a token count that yields to the event loop
 * (admission/Tokenizer.ts); each refusal is a 4xx naming the field.
 *
 * Everything the request holds is acquired in the server-provided request scope (never a
 * nested `Effect.scoped`, which would release before the body is written): the log line
 * (accept), the reservation whose release settles it (admit), and, through dispatch, the
 * slot, the KV pin and the upstream request. Closing that scope (end of body, client
 * disconnect, shutdown) releases all of it, in reverse order, with the `Exit`.
 */
import { Cause, Clock, Effect, Exit, Option, References } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHash } from "node:crypto"
import { Accounting } from "../accounting/Accounting.ts"
import { RequestTracker } from "../accounting/Tracker.ts"
import { TokenBudget } from "../admission/Budget.ts"
import * as Estimate from "../admission/Estimate.ts"
import * as Tokenizer from "../admission/Tokenizer.ts"
import { Authentication, mayUse } from "../auth/Authentication.ts"
import { ModelNotAllowed } from "../auth/Errors.ts"
import type { CallKind } from "../backends/Contract.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import { RequestId } from "../domain/Ids.ts"
import type { GatewayRequest } from "../domain/Request.ts"
import { Dispatcher } from "../dispatch/Dispatch.ts"
import { relay } from "../dispatch/Relay.ts"
import * as Metrics from "../observability/Metrics.ts"
import { RequestLog } from "../observability/RequestLog.ts"
import { Breakers } from "../resilience/Breakers.ts"
import { HealthReports } from "../backends/Actor.ts"
import { Router } from "../routing/Router.ts"
import { checkContentType, parseJson, readBody, validate } from "./Body.ts"
import * as ErrorResponse from "./ErrorResponse.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { Draining, InvalidBody, UnknownModel } from "./RequestErrors.ts"
import * as RequestLimits from "./RequestLimits.ts"

const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/
const PREFIX_CHARS = 4096
/** A model name longer than this is cut in logs and error messages (the client chose it). */
const MODEL_CHARS = 256

export const requestIdOf = (request: HttpServerRequest.HttpServerRequest): RequestId => {
  const given = request.headers["x-request-id"]
  return RequestId(given !== undefined && REQUEST_ID.test(given) ? given : crypto.randomUUID())
}

/**
 * A session key as the affinity index stores it: a client-chosen `user` or `x-session-id`
 * longer than this is stored as its hash, so 100k remembered sessions stay small.
 */
const SESSION_KEY_CHARS = 256
const boundedKey = (key: string): string =>
  key.length <= SESSION_KEY_CHARS ? key : `h:${createHash("sha256").update(key).digest("base64url")}`

const positiveInt = (v: unknown): number | undefined => typeof v === "number" && Number.isInteger(v) && v > 0 ? v : undefined

export const makeHandler = (kind: CallKind) =>
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const budget = yield* TokenBudget
    const accounting = yield* Accounting
    const router = yield* Router
    const dispatcher = yield* Dispatcher
    const log = yield* RequestLog
    const breakers = yield* Breakers
    const reports = yield* HealthReports
    const { state } = yield* Lifecycle
    const tracing = yield* References.TracerEnabled
    const authentication = yield* Authentication

    const spanName = `Gateway.${kind}`
    // The request span is opened without capturing a stack trace: an Error per request
    // costs more than the rest of the span.
    const handle = Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest) {
      // accept
      const receivedAtMs = yield* Clock.currentTimeMillis
      const requestId = requestIdOf(request)
      yield* Effect.annotateCurrentSpan("sluice.request_id", requestId)
      const tracker = new RequestTracker(receivedAtMs)
      let model: string | undefined
      let admitted = false
      state.inFlight++
      let modelLabel = "unknown"
      let tenant: string | undefined
      let keyId: string | undefined
      yield* Effect.addFinalizer((exit) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          state.inFlight--
          const outcome = tracker.outcome ?? (Exit.hasInterrupts(exit) ? "client_aborted" : "completed")
          const usage = tracker.reported
          const first = tracker.firstTokenAtMs
          const last = tracker.lastTokenAtMs
          const n = tracker.deltaChunks + tracker.toolCallDeltas
          const metrics = Metrics.recordRequest({
            model: modelLabel,
            backend: tracker.backend,
            outcome,
            durationMs: now - receivedAtMs,
            ttftMs: tracker.ttftMs,
            interTokenMs: first !== undefined && last !== undefined && n > 1 ? (last - first) / (n - 1) : undefined,
            promptTokens: usage?.promptTokens ?? 0,
            completionTokens: usage?.completionTokens ?? tracker.countedCompletionTokens,
            cachedTokens: usage?.cachedTokens ?? 0,
            failedAttempts: tracker.attempts.map((a) => ({
              backend: a.backend,
              reason: a.reason,
              wasted: a.wastedPromptTokens,
              wastedCompletion: a.wastedCompletionTokens
            }))
          })
          if (!log.enabled) return metrics
          log.write({
            ts: new Date(now).toISOString(),
            level: outcome === "error" ? "error" : tracker.status >= 500 || outcome === "partial" ? "warn" : "info",
            msg: "request",
            pid: process.pid,
            request_id: requestId,
            method: request.method,
            path: request.url,
            model,
            backend: tracker.backend,
            status: Exit.hasInterrupts(exit) && tracker.status === 0 ? 499 : tracker.status,
            outcome,
            prompt_tokens: usage?.promptTokens ?? 0,
            completion_tokens: usage?.completionTokens ?? tracker.countedCompletionTokens,
            cached_tokens: usage?.cachedTokens ?? 0,
            ttft_ms: tracker.ttftMs,
            duration_ms: now - receivedAtMs,
            attempts: tracker.attempts.map((a) => ({ backend: a.backend, reason: a.reason })),
            error: tracker.failureAfterCommit?._tag ?? tracker.errorType,
            tenant,
            key_id: keyId
          })
          return metrics
        })
      )

      const serve = Effect.gen(function*() {
        if (state.draining) return yield* new Draining()
        const plan = yield* config.current

        // authenticate: the identity's tenant owns the reservation, the ledger row and the log line
        const identity = yield* authentication.authenticate(
          { headers: request.headers, remoteAddress: Option.getOrUndefined(request.remoteAddress) },
          plan
        )
        tenant = identity.tenant
        keyId = identity.keyId
        yield* Effect.annotateCurrentSpan(keyId === undefined
          ? { "sluice.tenant": tenant }
          : { "sluice.tenant": tenant, "sluice.key_id": keyId })

        // decode
        const limits = plan.limits
        yield* checkContentType(request)
        const rawBody = yield* readBody(request, limits.maxBodyBytes)
        const body = yield* parseJson(rawBody, {
          maxDepth: limits.maxJsonDepth,
          maxValues: limits.maxJsonValues,
          maxKeys: limits.maxJsonKeys
        })
        const refused = RequestLimits.check(kind, body, limits)
        if (refused !== undefined) return yield* refused
        yield* validate(kind, body)
        const requested = body["model"] as string
        model = requested.length > MODEL_CHARS ? `${requested.slice(0, MODEL_CHARS)}…` : requested
        const modelId = plan.modelNames.get(requested)
        if (modelId === undefined) return yield* new UnknownModel({ model })
        model = modelId
        const modelPlan = plan.models.get(modelId)!
        if (!mayUse(identity, modelPlan, requested)) return yield* new ModelNotAllowed({ model: requested })
        modelLabel = modelId
        yield* Effect.annotateCurrentSpan("sluice.model", modelId)
        const stream = (kind === "chat" || kind === "completion") && body["stream"] === true
        const options = body["stream_options"]
        const clientWantsUsage = typeof options === "object" && options !== null &&
          (options as Record<string, unknown>)["include_usage"] === true
        // `max_completion_tokens` is a chat field (validated there); elsewhere it is not ours to read.
        const requestedMaxTokens = (kind === "chat" ? positiveInt(body["max_completion_tokens"]) : undefined) ??
          positiveInt(body["max_tokens"])
        if (requestedMaxTokens !== undefined && modelPlan.maxOutputTokens !== undefined && requestedMaxTokens > modelPlan.maxOutputTokens) {
          return yield* new InvalidBody({
            message: `max_tokens is too large: ${requestedMaxTokens}. This model supports at most ${modelPlan.maxOutputTokens} completion tokens.`,
            param: body["max_completion_tokens"] !== undefined ? "max_completion_tokens" : "max_tokens"
          })
        }
        // n, best_of and a prompt batch multiply the output the engine decodes (and is reserved).
        const sequences = RequestLimits.sequences(kind, body, modelPlan)
        if (typeof sequences !== "number") return yield* sequences
        // The model's tokenizer tables load on first use (tens of MB the gateway does not
        // carry until a request needs them); only the first request waits for them.
        if (!Tokenizer.isLoaded(modelPlan.tokenizer)) yield* Tokenizer.load(modelPlan.tokenizer)
        // Counted in windows with the event loop free between them, and no further than the
        // context window allows (a longer prompt is refused however long it is).
        const window = modelPlan.contextWindow
        const { estimate, prompt } = yield* Estimate.estimateYielding(
          kind,
          body,
          modelPlan.tokenizer,
          requestedMaxTokens ?? modelPlan.defaultMaxTokens,
          { blockChars: plan.routing.prefixBlockChars, maxBlocks: plan.routing.prefixMaxBlocks, salt: modelId },
          sequences,
          window === undefined ? undefined : window - (requestedMaxTokens ?? 0)
        )
        if (window !== undefined && estimate.promptTokens + (requestedMaxTokens ?? 0) > window) {
          return yield* new InvalidBody({
            message: `This model's maximum context length is ${window} tokens. However, you requested at least ${estimate.promptTokens + (requestedMaxTokens ?? 0)} tokens (at least ${estimate.promptTokens} in the messages, ${requestedMaxTokens ?? 0} in the completion).`,
            param: "messages"
          })
        }
        const sessionHeader = request.headers["x-session-id"]
        const user = body["user"]
        const req: GatewayRequest = {
          id: requestId,
          kind,
          model: modelPlan,
          requestedModel: requested,
          body,
          rawBody,
          stream,
          clientWantsUsage,
          requestedMaxTokens,
          estimate,
          tenant: identity.tenant,
          sessionKey: sessionHeader !== undefined && sessionHeader !== ""
            ? boundedKey(`s:${sessionHeader}`)
            : typeof user === "string" && user !== "" ? boundedKey(`u:${user}`) : undefined,
          promptPrefix: prompt.text.slice(0, PREFIX_CHARS),
          receivedAtMs
        }

        // admit: the reservation's release is the settlement (exactly once, with the Exit);
        // the admission is journaled, so even a crash leaves the request accounted
        yield* Effect.acquireRelease(
          Effect.flatMap(budget.reserve(req.tenant, estimate.reservationTokens), (reservation) => accounting.admit(req, reservation)),
          (admission, exit) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) => accounting.settle(req, admission, tracker, exit, now))
        )
        admitted = true

        // route
        const route = yield* router.candidates(req)

        // dispatch → stream
        if (stream) {
          const committed = yield* dispatcher.stream(req, route, plan, tracker)
          tracker.status = 200
          return HttpServerResponse.stream(relay(req, committed, plan, tracker, { breakers, reports }), {
            contentType: "text/event-stream",
            headers: {
              "x-request-id": requestId,
              "cache-control": "no-cache",
              "x-sluice-backend": committed.backend.id
            }
          })
        }
        const { backend, result } = yield* dispatcher.unary(req, route, plan, tracker)
        const now = yield* Clock.currentTimeMillis
        tracker.firstTokenAtMs = now
        tracker.reported = result.usage
        tracker.finish = result.finish
        tracker.outcome = "completed"
        tracker.status = result.status
        return HttpServerResponse.uint8Array(result.body, {
          status: result.status,
          contentType: result.contentType,
          headers: { "x-request-id": requestId, "x-sluice-backend": backend.id }
        })
      })

      return yield* serve.pipe(
        Effect.catch((error) =>
          Effect.sync(() => {
            const wire = ErrorResponse.toWire(error)
            tracker.status = wire.status
            tracker.errorType = error._tag
            tracker.outcome = admitted ? "failed" : "rejected"
            return ErrorResponse.response(wire, requestId)
          })
        ),
        Effect.catchCause((cause) => {
          // A client abort (interruption) propagates; anything else is a defect: opaque 500.
          if (Cause.hasInterrupts(cause)) return Effect.failCause(cause)
          tracker.status = 500
          tracker.outcome = "error"
          tracker.errorType = "Defect"
          return Effect.as(
            Effect.logError("request defect", { requestId, cause: Cause.pretty(cause) }),
            ErrorResponse.defect(requestId)
          )
        })
      )
    })
    // Without a trace exporter there is no request span at all (not even a no-op one).
    return tracing
      ? (request: HttpServerRequest.HttpServerRequest) =>
        Effect.withSpan(handle(request), spanName, { kind: "server", captureStackTrace: false })
      : handle
  })

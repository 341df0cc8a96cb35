/**
 * The request pipeline: one inference request, phase by phase, read top to bottom.
 *
 *   accept → authenticate → decode → guard → admit → route → dispatch → stream → account → release
 *
 * Each phase takes and returns typed values: the credentials give an `Identity`, the body
 * the schema's `InferenceCall` (never re-read as an untyped record), the guard the call the
 * request policies leave, admission the `GatewayRequest` with its estimate and reservation,
 * routing a `Route`, dispatch a committed stream or unary answer, and the stream phase the
 * bytes the client gets. What happens while the request runs is recorded by the phase that
 * owns it (dispatch's AttemptLog, the answer's Tally, the response's Reply); the outcome is
 * derived from those and the scope's `Exit` in one place (Outcome.ts).
 *
 * Everything the request holds is acquired in the server-provided request scope (never a
 * nested `Effect.scoped`, which would release before the body is written): the log line and
 * metrics (accept), the reservation whose release is the settlement (admit: exactly once,
 * whatever ends the request), and, through dispatch, each attempt's slot, in-flight tokens,
 * KV pin, placement ticket and upstream request. Closing that scope (end of body, client
 * disconnect, shutdown) releases all of it, in reverse order, with the `Exit`: the
 * settlement before accept's finalizer, which logs and counts the usage it settled, so the
 * ledger row, the log line and the token metrics carry one value.
 *
 * admit → route → dispatch run as a model's leg, in a child of the request scope: when the
 * model cannot answer before its first token for a typed reason (`fallbackReason`) and it
 * has `fallbacks`, the leg's scope is closed at once (its reservation settles as failed,
 * charged nothing) and the next model's leg is admitted afresh, under the retry budget. The
 * leg that answers stays open until the request scope closes, as before.
 *
 * Every phase bounds the work one request can cause: decode pre-scans and limits the body
 * before parsing, admission counts tokens in windows with the event loop free between them,
 * extensions run under `extensions.timeout`, dispatch under the first-token and total
 * deadlines, the stream under the idle-gap deadline.
 */
import { Cause, Clock, Effect, Exit, Option, References, Scope, type Tracer } from "effect"
import type { HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHash } from "node:crypto"
import { Accounting, type Admitted, type SettledRequest, settlementView } from "../accounting/Accounting.ts"
import * as Calls from "../api/openai/Calls.ts"
import type { InferenceCall } from "../api/openai/Calls.ts"
import { type BudgetExceeded, type BudgetUnavailable, TokenBudget } from "../admission/Budget.ts"
import { QuotaTable } from "../admission/Quotas.ts"
import * as Estimate from "../admission/Estimate.ts"
import * as KvTokens from "../admission/KvTokens.ts"
import * as Scoped from "../domain/Scoped.ts"
import type { GatewayRequest } from "../admission/Request.ts"
import * as Tokenizer from "../admission/Tokenizer.ts"
import { Authentication, mayUse } from "../auth/Authentication.ts"
import { ModelNotAllowed } from "../auth/Errors.ts"
import { HealthReports } from "../backends/Actor.ts"
import type { Backend } from "../backends/Backend.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { ModelPlan, Plan } from "../config/Plan.ts"
import { AttemptLog } from "../dispatch/Attempts.ts"
import { type CommittedStream, type CommittedUnary, Dispatcher } from "../dispatch/Dispatch.ts"
import { bandOf, FlowControl, FlowRefused } from "../dispatch/FlowControl.ts"
import { relay } from "../dispatch/Relay.ts"
import { Tally } from "../dispatch/Tally.ts"
import type { Identity } from "../domain/Identity.ts"
import * as Usage from "../domain/Usage.ts"
import { type ModelId, RequestId } from "../domain/Ids.ts"
import { costMicros } from "../domain/Quotas.ts"
import type { PolicyContext } from "../extensions/Contract.ts"
import { RequestPolicies, ResponsePolicies, selected } from "../extensions/Registries.ts"
import * as GenAiSpans from "../observability/GenAiSpans.ts"
import * as Metrics from "../observability/Metrics.ts"
import { LiveStats } from "../observability/LiveStats.ts"
import { RequestLog, type RequestLine } from "../observability/RequestLog.ts"
import { Breakers } from "../resilience/Breakers.ts"
import { RetryBudget } from "../resilience/RetryBudget.ts"
import type { FailureReason } from "../backends/Failure.ts"
import { Router } from "../routing/Router.ts"
import * as Decode from "./Decode.ts"
import { ContentBlocked, ContextWindowExceeded, Draining, InvalidBody, type LimitExceeded, UnknownModel } from "./Errors.ts"
import type { Inbound, ReplyContext } from "./Inbound.ts"
import * as Limits from "./Limits.ts"
import { Lifecycle } from "./Lifecycle.ts"
import * as Outcome from "./Outcome.ts"
import type { RequestOutcome } from "../domain/Outcome.ts"
import * as Policies from "./Policies.ts"
import * as Respond from "./Respond.ts"
import { type PipelineError, rateLimitHeaders, toWire } from "./WireErrors.ts"

const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/
const PREFIX_CHARS = 4096
/** Tokens per KV block assumed when bounding the ids hashed for the precise prefix index (vLLM's default). */
const KV_BLOCK_TOKENS = 16
/** A model name longer than this is cut in logs and error messages (the client chose it). */
const MODEL_CHARS = 256
/**
 * A session key as the affinity index stores it: a client-chosen `user` or `x-session-id`
 * longer than this is stored as its hash, so 100k remembered sessions stay small.
 */
const SESSION_KEY_CHARS = 256

export const requestIdOf = (request: HttpServerRequest.HttpServerRequest): RequestId => {
  const given = request.headers["x-request-id"]
  return RequestId(given !== undefined && REQUEST_ID.test(given) ? given : crypto.randomUUID())
}

const boundedKey = (key: string): string =>
  key.length <= SESSION_KEY_CHARS ? key : `h:${createHash("sha256").update(key).digest("base64url")}`

/** Session affinity: the `x-session-id` header, else the body's `user`. */
const sessionKeyOf = (request: HttpServerRequest.HttpServerRequest, call: InferenceCall): string | undefined => {
  const header = request.headers["x-session-id"]
  if (header !== undefined && header !== "") return boundedKey(`s:${header}`)
  const user = Calls.user(call)
  return user === undefined ? undefined : boundedKey(`u:${user}`)
}

/**
 * What the phases learned about one request, each part written by the phase that owns it
 * (and only once): accept the id and time, authenticate the identity, decode the model,
 * admit the request, dispatch the attempt log and the tally, the stream phase the reply.
 * The finalizers read it when the scope closes.
 */
class Facts {
  /** The plan the request was served under (its declared tenants bound the metric labels). */
  plan: Plan | undefined = undefined
  identity: Identity | undefined = undefined
  /** The model as the client named it (cut to MODEL_CHARS), then the resolved model id. */
  model: string | undefined = undefined
  modelId: ModelId | undefined = undefined
  admitted = false
  /** The `x-ratelimit-*` headers of the reservation (empty without limits). */
  rateLimits: Record<string, string> = {}
  /**
   * What the settlement charged (admit's release writes it; it runs before accept's): the
   * one usage value the ledger row, the log line and the token metrics all carry.
   */
  settled: Usage.Usage | undefined = undefined
  served: Outcome.Served = { _tag: "Pending" }
  error: string | undefined = undefined
  attempts = new AttemptLog()
  tally: Tally
  /** Attempts of the models a fallback left (the log line and metrics count them too). */
  readonly earlierAttempts: Array<AttemptLog["failed"][number]> = []
  readonly reply = new Respond.Reply()
  constructor(readonly requestId: RequestId, readonly receivedAtMs: number) {
    this.tally = new Tally(receivedAtMs)
  }

  /** A fallback to `model`: the next leg gets its own attempt log and tally. */
  fallBack(model: ModelId) {
    this.earlierAttempts.push(...this.attempts.failed)
    this.attempts = new AttemptLog()
    this.tally = new Tally(this.receivedAtMs)
    this.modelId = model
  }

  /** The status the client got: 499 when it left before any reply was written. */
  status(exit: Exit.Exit<unknown, unknown>) {
    return this.reply.status === 0 && Exit.hasInterrupts(exit) ? 499 : this.reply.status
  }

  outcome(exit: Exit.Exit<unknown, unknown>) {
    return Outcome.derive({
      admitted: this.admitted,
      served: this.served,
      interrupted: Exit.hasInterrupts(exit),
      failedAfterCommit: this.reply.failedAfterCommit !== undefined
    })
  }
}

/** The request log line: what every request's line carries, then what its kind adds. */
const requestLine = (
  request: HttpServerRequest.HttpServerRequest,
  facts: Facts,
  nowMs: number,
  line: Pick<
    RequestLine,
    | "level"
    | "backend"
    | "status"
    | "outcome"
    | "prompt_tokens"
    | "completion_tokens"
    | "cached_tokens"
    | "ttft_ms"
    | "attempts"
    | "error"
    | "counted_tokens"
  >
): RequestLine => ({
  ts: new Date(nowMs).toISOString(),
  level: line.level,
  msg: "request",
  pid: process.pid,
  request_id: facts.requestId,
  method: request.method,
  path: request.url,
  model: facts.modelId ?? facts.model,
  backend: line.backend,
  status: line.status,
  outcome: line.outcome,
  prompt_tokens: line.prompt_tokens,
  completion_tokens: line.completion_tokens,
  cached_tokens: line.cached_tokens,
  ttft_ms: line.ttft_ms,
  duration_ms: nowMs - facts.receivedAtMs,
  attempts: line.attempts,
  error: line.error,
  tenant: facts.identity?.tenant,
  key_id: facts.identity?.keyId,
  ...(line.counted_tokens === undefined ? {} : { counted_tokens: line.counted_tokens })
})

/** decode: the body, bounded, as the endpoint's typed call; the model it names, resolved. */
const decodePhase = <M>(
  inbound: Inbound<M>,
  request: HttpServerRequest.HttpServerRequest,
  plan: Plan,
  identity: Identity,
  facts: Facts
) =>
  Effect.gen(function*() {
    const limits = plan.limits
    yield* Decode.checkContentType(request)
    const rawBody = yield* Decode.readBody(request, limits.maxBodyBytes)
    const json = yield* Decode.parseJson(rawBody, {
      maxDepth: limits.maxJsonDepth,
      maxValues: limits.maxJsonValues,
      maxKeys: limits.maxJsonKeys
    })
    const refused = Limits.check(inbound.limits, json, limits)
    if (refused !== undefined) return yield* Effect.fail(refused)
    const { call, forwardRaw, meta } = yield* inbound.decode(json)
    const requested = call.body.model
    facts.model = requested.length > MODEL_CHARS ? `${requested.slice(0, MODEL_CHARS)}…` : requested
    const modelId = plan.modelNames.get(requested)
    if (modelId === undefined) return yield* new UnknownModel({ model: facts.model })
    const model = plan.models.get(modelId)
    if (model === undefined) return yield* new UnknownModel({ model: facts.model })
    facts.modelId = modelId
    if (!mayUse(identity, model, requested)) return yield* new ModelNotAllowed({ model: requested })
    yield* Effect.annotateCurrentSpan("sluice.model", modelId)
    return { call, rawBody, forwardRaw, model, requested, meta }
  })

/** What a model's leg produced: the admitted request and its committed stream or unary answer. */
type Leg =
  | { readonly _tag: "Stream"; readonly req: GatewayRequest; readonly model: ModelPlan; readonly committed: CommittedStream }
  | { readonly _tag: "Unary"; readonly req: GatewayRequest; readonly model: ModelPlan; readonly committed: CommittedUnary }

/**
 * Why a request may leave its model for the next of `models[].fallbacks`, before its first
 * token: the prompt does not fit (the gateway's window check or the backend's), or every
 * backend was busy (rate limited: backpressure with a retry-after), overloaded or unavailable.
 * Anything else (the client's own fault, a timeout) is answered as it is.
 */
export type FallbackReason = "context_length" | "rate_limited" | "overloaded" | "unavailable"

const reasonOf = (reason: FailureReason): FallbackReason | undefined => {
  switch (reason._tag) {
    case "ContextLengthExceeded":
      return "context_length"
    case "Overloaded":
      return reason.status === 429 || reason.retryAfterMs !== undefined ? "rate_limited" : "overloaded"
    case "SlotsExhausted":
    case "BreakerOpen":
      return "overloaded"
    case "Unavailable":
      return "unavailable"
    default:
      return undefined
  }
}

const BUSY: ReadonlySet<string> = new Set(["Overloaded", "SlotsExhausted", "BreakerOpen", "Unavailable"])

export const fallbackReason = (error: PipelineError): FallbackReason | undefined => {
  switch (error._tag) {
    case "ContextWindowExceeded":
      return "context_length"
    case "BackendFailed":
      return reasonOf(error.reason)
    case "NoBackendAvailable":
      return "unavailable"
    case "BackendsExhausted": {
      const tags = error.attempts.map((a) => a.reason)
      if (tags.includes("ContextLengthExceeded")) return "context_length"
      if (tags.length === 0 || !tags.every((t) => BUSY.has(t))) return undefined
      if (tags.every((t) => t === "Unavailable")) return "unavailable"
      return error.retryAfterMs !== undefined ? "rate_limited" : "overloaded"
    }
    default:
      return undefined
  }
}


/** The handler of one inbound API's endpoint (the routes bind it to a path). */
export const handler = <M>(inbound: Inbound<M>) =>
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const authentication = yield* Authentication
    const budget = yield* TokenBudget
    const quotas = yield* QuotaTable
    const accounting = yield* Accounting
    const router = yield* Router
    const dispatcher = yield* Dispatcher
    const flow = yield* FlowControl
    const log = yield* RequestLog
    const live = yield* LiveStats
    const breakers = yield* Breakers
    const reports = yield* HealthReports
    const requestPolicies = yield* RequestPolicies
    const responsePolicies = yield* ResponsePolicies
    const { state } = yield* Lifecycle
    const retryBudget = yield* RetryBudget
    const tracing = yield* References.TracerEnabled
    requestPolicies.seal()
    responsePolicies.seal()
    const kind = inbound.kind

    /** release (accept's finalizer): the request's log line and metrics, from what the phases recorded. */
    const release = (
      request: HttpServerRequest.HttpServerRequest,
      facts: Facts,
      exit: Exit.Exit<unknown, unknown>,
      span: Tracer.Span | undefined
    ) => Effect.andThen(freeTurn(facts), finish(request, facts, exit, span))

    /** A request that held a backend ended: the next request waiting in flow control for its model gets a turn. */
    const freeTurn = (facts: Facts): Effect.Effect<void> =>
      facts.modelId !== undefined && (facts.attempts.backend !== undefined || facts.attempts.failed.length > 0)
        ? flow.release(facts.modelId)
        : Effect.void

    const finish = (
      request: HttpServerRequest.HttpServerRequest,
      facts: Facts,
      exit: Exit.Exit<unknown, unknown>,
      span: Tracer.Span | undefined
    ) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        state.inFlight--
        const outcome = facts.outcome(exit)
        const { tally, attempts, reply } = facts
        // The settled usage (a request never admitted is charged nothing and produced nothing).
        const usage = facts.settled ?? Usage.zero
        if (span !== undefined) traceEnd(span, facts, outcome, exit, usage.promptTokens, usage.completionTokens, usage.cachedTokens)
        const metrics = Metrics.recordRequest({
          model: facts.modelId ?? "unknown",
          tenant: Metrics.tenantLabel(Metrics.configuredTenants(facts.plan), facts.identity?.tenant),
          backend: attempts.backend,
          outcome,
          durationMs: now - facts.receivedAtMs,
          ttftMs: tally.ttftMs,
          interTokenMs: tally.interTokenMs,
          promptTokens: usage.promptTokens,
          completionTokens: usage.completionTokens,
          cachedTokens: usage.cachedTokens,
          failedAttempts: [...facts.earlierAttempts, ...attempts.failed].map((a) => ({
            backend: a.backend,
            reason: a.reason,
            wasted: a.wastedPromptTokens,
            wastedCompletion: a.wastedCompletionTokens
          }))
        })
        const status = facts.status(exit)
        live.record({
          atMs: now,
          requestId: facts.requestId,
          model: facts.modelId ?? facts.model ?? "unknown",
          backend: attempts.backend,
          tenant: facts.identity?.tenant,
          outcome,
          status,
          ttftMs: tally.ttftMs,
          interTokenMs: tally.interTokenMs,
          promptTokens: usage.promptTokens,
          completionTokens: usage.completionTokens,
          error: reply.failedAfterCommit ?? tally.failure?._tag ?? tally.note ?? facts.error,
          failedAttempts: attempts.failed
        })
        if (!log.enabled) return metrics
        log.write(requestLine(request, facts, now, {
          level: outcome === "error" ? "error" : status >= 500 || outcome === "partial" ? "warn" : "info",
          backend: attempts.backend,
          status,
          outcome,
          prompt_tokens: usage.promptTokens,
          completion_tokens: usage.completionTokens,
          cached_tokens: usage.cachedTokens,
          ttft_ms: tally.ttftMs,
          attempts: [...facts.earlierAttempts, ...attempts.failed].map((a) => ({ backend: a.backend, reason: a.reason })),
          error: reply.failedAfterCommit ?? tally.failure?._tag ?? tally.note ?? facts.error
        }))
        return metrics
      })

    /** The request span's GenAI attributes, from what the phases recorded (as the log line). */
    const traceEnd = (
      span: Tracer.Span,
      facts: Facts,
      outcome: string,
      exit: Exit.Exit<unknown, unknown>,
      inputTokens: number,
      outputTokens: number,
      cachedTokens: number
    ): void => {
      const backendId = facts.attempts.backend
      const backend = backendId === undefined ? undefined : facts.plan?.backends.find((b) => b.id === backendId)
      GenAiSpans.requestEnd(span, {
        requestModel: facts.modelId ?? facts.model,
        responseModel: backend === undefined || facts.modelId === undefined ? undefined : backend.models.get(facts.modelId),
        backend: backendId,
        backendUrl: backend?.url,
        outcome,
        status: facts.status(exit),
        inputTokens,
        outputTokens,
        cachedTokens,
        finishReason: facts.tally.finish,
        ttftMs: facts.tally.ttftMs,
        attempts: facts.attempts.failed.length + (backendId === undefined ? 0 : 1),
        errorType: facts.reply.failedAfterCommit ?? facts.tally.failure?._tag ?? facts.error
      })
    }

    /**
     * The release of a leg's reservation. Built here, outside `admit`, so that the finalizer,
     * which lives as long as the request (a stream's last byte), closes over what settlement
     * reads and not over admit's scope (the decoded call, its raw bytes, the HTTP request).
     */
    const settlement = (req: SettledRequest, facts: Facts, abandoned: { readonly fellBack: boolean }) =>
          (admission: Admitted, exit: Exit.Exit<unknown, unknown>) =>
            Effect.flatMap(Clock.currentTimeMillis, (nowMs) =>
              Effect.map(accounting.settle(req, admission, {
                outcome: abandoned.fellBack ? "failed" : facts.outcome(exit),
                attempts: facts.attempts,
                tally: facts.tally,
                nowMs
              }), (charged) => {
                // The answered leg's charge is the request's (an abandoned leg is charged nothing).
                if (!abandoned.fellBack) facts.settled = charged
              }))

    /** admit: the estimate, and the reservation whose release is the settlement. */
    const admit = (
      request: HttpServerRequest.HttpServerRequest,
      plan: Plan,
      identity: Identity,
      decoded: { readonly call: InferenceCall; readonly rawBody: Uint8Array | undefined; readonly model: ModelPlan; readonly requested: string },
      facts: Facts,
      abandoned: { readonly fellBack: boolean },
      exact = false
    ): Effect.Effect<GatewayRequest, InvalidBody | LimitExceeded | ContextWindowExceeded | BudgetExceeded | BudgetUnavailable, Scope.Scope> =>
      Effect.gen(function*() {
        const { call, model } = decoded
        const requestedMaxTokens = Calls.requestedMaxTokens(call)
        if (requestedMaxTokens !== undefined && requestedMaxTokens > (model.maxOutputTokens ?? Infinity)) {
          return yield* new InvalidBody({
            message: `max_tokens is too large: ${requestedMaxTokens}. This model supports at most ${model.maxOutputTokens} completion tokens.`,
            param: Calls.maxTokensParam(call)
          })
        }
        // n, best_of and a prompt batch multiply the output the engine decodes (and is reserved).
        const sequences = Limits.sequences(call, model)
        if (typeof sequences !== "number") return yield* Effect.fail(sequences)
        const window = model.contextWindow
        const prefix = { blockChars: plan.routing.prefixBlockChars, maxBlocks: plan.routing.prefixMaxBlocks, salt: model.id }
        // Until the model's tokenizer tables have loaded (the gateway loads them once it has
        // answered its first requests, Gateway.ts), the prompt's upper bound (its UTF-8 bytes)
        // stands in for its count, so the first requests after a start do not wait for ~80 ms
        // of table building. A refusal is decided on the count: a bound that does not fit the
        // context window waits for the tables here, a reservation refused on it below.
        const bound = exact || Tokenizer.isLoaded(model.tokenizer)
          ? undefined
          : Estimate.estimateBound(call, requestedMaxTokens ?? model.defaultMaxTokens, prefix, sequences)
        const bounded = bound !== undefined && (window === undefined || bound.estimate.promptTokens + (requestedMaxTokens ?? 0) <= window)
        if (bounded) Tokenizer.loadSoon(model.tokenizer)
        else if (!Tokenizer.isLoaded(model.tokenizer)) yield* Tokenizer.load(model.tokenizer)
        // Counted in windows with the event loop free between them, and no further than the
        // context window allows (a longer prompt is refused however long it is).
        const counted = bounded ? bound : yield* Estimate.estimateYielding(
          call,
          model.tokenizer,
          requestedMaxTokens ?? model.defaultMaxTokens,
          prefix,
          sequences,
          window === undefined ? undefined : window - (requestedMaxTokens ?? 0)
        )
        const { prompt } = counted
        const promptTokens = counted.estimate.promptTokens
        if (window !== undefined && promptTokens + (requestedMaxTokens ?? 0) > window) {
          return yield* new ContextWindowExceeded({
            message: `This model's maximum context length is ${window} tokens. However, you requested at least ${promptTokens + (requestedMaxTokens ?? 0)} tokens (at least ${promptTokens} in the messages, ${requestedMaxTokens ?? 0} in the completion).`
          })
        }
        // Engines that publish KV events name cached blocks by token ids: the precise prefix
        // index needs the prompt's leading ids (only computed when a backend of the model publishes).
        const estimate = Calls.generates(call) && plan.backends.some((b) => b.kvEvents && b.models.has(model.id))
          ? {
            ...counted.estimate,
            kvPromptTokens: yield* KvTokens.promptTokenIds(call, plan.routing.prefixMaxBlocks * KV_BLOCK_TOKENS)
          }
          : counted.estimate
        const req: GatewayRequest = {
          ...call,
          id: facts.requestId,
          model,
          requestedModel: decoded.requested,
          rawBody: decoded.rawBody,
          stream: Calls.isStream(call),
          clientWantsUsage: Calls.wantsUsage(call),
          requestedMaxTokens,
          estimate,
          identity,
          tenant: identity.tenant,
          headers: request.headers,
          sessionKey: sessionKeyOf(request, call),
          promptPrefix: prompt.text.slice(0, PREFIX_CHARS),
          receivedAtMs: facts.receivedAtMs
        }
        // Every limit on the request (key, tenant, tenant and model) reserves the estimate:
        // prompt tokens, n × the output cap, and their cost at the model's highest price.
        const claim = {
          tenant: req.tenant,
          keyId: identity.keyId,
          model: model.id,
          inputTokens: estimate.promptTokens,
          outputTokens: estimate.maxOutputTokens,
          costMicros: costMicros(quotas.maxPrice(model.id), {
            promptTokens: estimate.promptTokens,
            completionTokens: estimate.maxOutputTokens,
            cachedTokens: 0
          })
        }
        // The reservation's release is the settlement: exactly once, with the Exit. The
        // admission is journaled, so even a crash leaves the request accounted. A leg a
        // fallback abandoned settles with its own attempts as failed (it produced no token).
        const settling = settlementView(req)
        const reserving = Scoped.acquireRelease(
          Effect.flatMap(budget.reserve(claim), (reservation) => accounting.admit(settling, reservation)),
          settlement(settling, facts, abandoned)
        )
        const admission = bounded
          ? yield* Effect.catchTag(reserving, "BudgetExceeded", () => Effect.succeed(undefined))
          : yield* reserving
        // Refused on the bound: admitted again on the count, which decides.
        if (admission === undefined) return yield* admit(request, plan, identity, decoded, facts, abandoned, true)
        facts.admitted = true
        const { requests, tokensLimit, spendPressure } = admission.reservation
        if (requests !== undefined || tokensLimit !== undefined) facts.rateLimits = rateLimitHeaders({ requests, tokens: tokensLimit })
        // A tenant near its spend limit is routed by cost too (routing/plugins/cost).
        return spendPressure !== undefined && spendPressure > 0 ? { ...req, spendPressure } : req
      })

    /** The phases that build the response; a typed failure becomes an error answer. */
    const serve = (request: HttpServerRequest.HttpServerRequest, facts: Facts) =>
      Effect.gen(function*() {
        if (state.draining) return yield* new Draining()
        const plan = yield* config.current
        facts.plan = plan

        // authenticate: the identity's tenant owns the reservation, the ledger row and the log line
        const identity = yield* authentication.authenticate(
          { headers: request.headers, remoteAddress: Option.getOrUndefined(request.remoteAddress) },
          plan
        )
        facts.identity = identity
        yield* Effect.annotateCurrentSpan(identity.keyId === undefined
          ? { "sluice.tenant": identity.tenant }
          : { "sluice.tenant": identity.tenant, "sluice.key_id": identity.keyId })

        // decode
        const decoded = yield* decodePhase(inbound, request, plan, identity, facts)
        const policyContext: PolicyContext = {
          requestId: facts.requestId,
          identity,
          model: decoded.model.id,
          headers: request.headers
        }

        // guard: request policies (guardrails and transforms), in order, under the deadline
        const own = decoded.model.extensions
        const guarded = yield* Policies.guard(
          selected(requestPolicies, own?.request, plan.extensions.request),
          decoded.call,
          policyContext,
          plan.extensions.timeoutMs
        )
        // A rewritten call is serialized again; the client's bytes go out only while unchanged,
        // and a translating API's bytes are not the call's body (they go out only natively).
        const call = guarded.call
        const rawBody = guarded.rewritten || !decoded.forwardRaw ? undefined : decoded.rawBody
        const responseSelected = selected(responsePolicies, own?.response, plan.extensions.response)
        const native = inbound.native !== undefined && !guarded.rewritten && responseSelected.length === 0
          ? { dialect: inbound.native, bytes: decoded.rawBody, model: decoded.requested }
          : undefined

        // admit → route → dispatch, for the model, then (before any token) for its fallbacks
        const requestScope = yield* Scope.Scope
        const fallbacks = decoded.model.fallbacks.flatMap((id) => {
          const m = plan.models.get(id)
          return m !== undefined && mayUse(identity, m, m.id) ? [m] : []
        })
        /**
         * One model's leg in a scope of its own, so that its settlement runs when a fallback
         * abandons it. The last leg (a model without fallbacks: nearly every request) is never
         * abandoned and runs in the request's scope, which closes it the same way and in the same
         * order, without a child scope and its handler.
         */
        const leg = (model: ModelPlan, index: number): Effect.Effect<Leg, PipelineError, Scope.Scope> =>
          Effect.gen(function*() {
            const abandoned = { fellBack: false }
            // A fallback's call names its own model; the client's bytes no longer match it.
            const legCall = index === 0 ? call : Calls.withFields(call, { model: model.id })
            const legDecoded = { call: legCall, rawBody: index === 0 ? rawBody : undefined, model, requested: index === 0 ? decoded.requested : model.id }
            const run = Effect.gen(function*() {
              // admit
              const admitted = yield* admit(request, plan, identity, legDecoded, facts, abandoned)
              const req: GatewayRequest = native === undefined ? admitted : { ...admitted, native }
              // route; when every candidate is saturated, the model's `on_saturation` decides:
              // the least bad takes it (route), it waits for a turn in flow control (queue), or 429.
              let route = yield* router.candidates(req)
              if (route.overload === "least_bad" && model.onSaturation !== undefined && model.onSaturation !== "route") {
                const fc = plan.flowControl
                const band = bandOf(fc, req.tenant, request.headers["x-sluice-priority"])
                if (model.onSaturation === "reject") {
                  return yield* new FlowRefused({ model: model.id, tenant: req.tenant, band, reason: "reject", retryAfterMs: 1000 })
                }
                // A turn re-routes; while every candidate is still saturated (a nudge found nothing
                // freed) the request waits again, all of it within one `max_wait`.
                const deadline = (yield* Clock.currentTimeMillis) + fc.maxWaitMs
                while (route.overload === "least_bad") {
                  yield* flow.wait({
                    model: model.id,
                    tenant: req.tenant,
                    band,
                    cost: req.estimate.promptTokens + req.estimate.outputCap,
                    maxWaitMs: Math.max(0, deadline - (yield* Clock.currentTimeMillis))
                  })
                  route = yield* router.candidates(req)
                }
              }
              // dispatch
              return req.stream
                ? { _tag: "Stream" as const, req, model, committed: yield* dispatcher.stream(req, route, plan, facts.attempts, facts.tally) }
                : { _tag: "Unary" as const, req, model, committed: yield* dispatcher.unary(req, route, plan, facts.attempts, facts.tally) }
            })
            if (fallbacks[index] === undefined) return yield* run
            const scope = yield* Scope.fork(requestScope, "sequential")
            return yield* run.pipe(
              Scope.provide(scope),
              Effect.catch((error: PipelineError) =>
                Effect.gen(function*() {
                  const reason = fallbackReason(error)
                  const next = fallbacks[index]
                  if (reason === undefined || next === undefined || !(yield* retryBudget.tryWithdraw)) return yield* Effect.fail(error)
                  // Settled now, as failed before its first token (charged nothing), then the next model.
                  abandoned.fellBack = true
                  yield* Scope.close(scope, Exit.fail(error))
                  yield* Metrics.recordFallback(model.id, next.id, reason)
                  facts.fallBack(next.id)
                  return yield* leg(next, index + 1)
                })
              )
            )
          })
        const answered = yield* leg(decoded.model, 0)
        const req = answered.req

        // stream (response policies on the typed token events)
        const filters = Policies.startFilters(
          responseSelected,
          policyContext,
          plan.extensions.timeoutMs
        )
        const headers = { ...facts.rateLimits, "x-request-id": facts.requestId, "x-sluice-model": answered.model.id }
        const reply = (backend: Backend): ReplyContext<M> => ({
          requestId: facts.requestId,
          model: answered.model === decoded.model ? decoded.requested : answered.model.id,
          meta: decoded.meta,
          passthrough: native !== undefined && backend.adapter.dialect === native.dialect
        })
        if (answered._tag === "Stream") {
          const committed = answered.committed
          const chain = yield* filters
          const frames = relay(req, committed, plan, facts.tally, { breakers, reports })
          facts.reply.status = 200
          return Respond.byIdentity(inbound.streamResponse(Respond.streamBody(frames, inbound.encoder(reply(committed.backend)), chain, facts.reply), {
            ...headers,
            "cache-control": "no-cache",
            "x-sluice-backend": committed.backend.id
          }))
        }
        const { backend, result } = answered.committed
        const filtered = yield* Respond.unaryTexts(result, filters)
        if (filtered._tag === "Block") {
          // The answer exists (and is charged): it is withheld, as a stream would be cut.
          facts.reply.failedAfterCommit = "content_blocked"
          return yield* new ContentBlocked({ policy: filtered.policy, message: filtered.message })
        }
        facts.reply.status = result.status
        return inbound.unaryResponse(result, inbound.unary(result, filtered.texts, reply(backend)), {
          ...headers,
          "x-sluice-backend": backend.id
        })
      })

    // The request span is opened without capturing a stack trace: an Error per request
    // costs more than the rest of the span.
    const handle = Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest, span: Tracer.Span | undefined) {
      // accept
      const facts = new Facts(requestIdOf(request), yield* Clock.currentTimeMillis)
      span?.attribute("sluice.request_id", facts.requestId)
      state.inFlight++
      state.accepted++
      yield* Scoped.addFinalizer((exit) => release(request, facts, exit, span))

      return yield* serve(request, facts).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            facts.served = { _tag: "Replied" }
          })
        ),
        answerFailures(inbound, facts)
      )
    })
    // Without a trace exporter there is no request span at all (not even a no-op one). With
    // one, the span lives in the request's scope (opened before the release finalizer, so it
    // ends after it): a stream's span ends with its last byte, annotated by the release phase.
    return tracing
      ? (request: HttpServerRequest.HttpServerRequest) =>
        Effect.flatMap(
          Effect.makeSpanScoped(`Gateway.${kind}`, { kind: "server", attributes: GenAiSpans.requestStart(kind) }),
          (span) => Effect.withParentSpan(handle(request, span), span)
        )
      : (request: HttpServerRequest.HttpServerRequest) => handle(request, undefined)
  })

/**
 * How a request's failures are answered, recorded on its facts: a typed failure in the
 * inbound API's own envelope, a defect as an opaque 500 (logged); a client abort
 * (interruption) propagates.
 */
const answerFailures = <M>(inbound: Inbound<M>, facts: Facts) =>
<R>(
  self: Effect.Effect<HttpServerResponse.HttpServerResponse, PipelineError, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  self.pipe(
    Effect.catch((error: PipelineError) =>
      Effect.sync((): HttpServerResponse.HttpServerResponse => {
        const wire = toWire(error)
        facts.served = { _tag: "Refused" }
        facts.error = error._tag
        facts.reply.status = wire.status
        return inbound.error(wire, facts.requestId)
      })
    ),
    Effect.catchCause((cause) => {
      if (Cause.hasInterrupts(cause)) return Effect.failCause(cause)
      facts.served = { _tag: "Defect" }
      facts.error = "Defect"
      facts.reply.status = 500
      return Effect.as(
        Effect.logError("request defect", { requestId: facts.requestId, cause: Cause.pretty(cause) }),
        inbound.error(toDefect(facts.requestId), facts.requestId)
      )
    })
  )

/** The opaque 500 of a defect: the request id, nothing else. */
const toDefect = (requestId: string) => ({
  status: 500,
  body: {
    message: `Internal gateway error (request ${requestId}).`,
    type: "server_error" as const,
    param: null,
    code: "internal_error"
  },
  retryAfterMs: undefined
})

/**
 * A token-counting endpoint (Anthropic's `/v1/messages/count_tokens`): accept → authenticate
 * → decode → count, with the same decode and the same estimator as admission, so the count
 * is the prompt part of the reservation a real request would make. Nothing is reserved,
 * routed or charged (no ledger row); the count stops at the model's context window (a longer
 * prompt counts as that much: the answer says it would not fit, without tokenizing the rest).
 * Like every request it ends with a log line (its outcome and `counted_tokens`; no tokens
 * consumed) and is counted in `sluice_token_count_requests_total`, not in the inference
 * request metrics.
 */
export const tokenCounter = <M>(
  inbound: Inbound<M>,
  answer: (inputTokens: number, requestId: string) => HttpServerResponse.HttpServerResponse
) =>
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const authentication = yield* Authentication
    const { state } = yield* Lifecycle
    const log = yield* RequestLog
    /** The request's log line and metric, from what the phases recorded (accept's finalizer). */
    const finish = (
      request: HttpServerRequest.HttpServerRequest,
      facts: Facts,
      counted: number | undefined,
      exit: Exit.Exit<unknown, unknown>
    ) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const status = facts.status(exit)
        const outcome: RequestOutcome = facts.served._tag === "Defect"
          ? "error"
          : status === 499
          ? "client_aborted"
          : counted !== undefined && status === 200
          ? "completed"
          : "rejected"
        const metric = Metrics.recordTokenCount(
          facts.modelId ?? "unknown",
          outcome,
          Metrics.tenantLabel(Metrics.configuredTenants(facts.plan), facts.identity?.tenant)
        )
        if (!log.enabled) return metric
        log.write(requestLine(request, facts, now, {
          level: outcome === "error" ? "error" : "info",
          backend: undefined,
          status,
          outcome,
          prompt_tokens: 0,
          completion_tokens: 0,
          cached_tokens: 0,
          ttft_ms: undefined,
          attempts: [],
          error: facts.error,
          counted_tokens: counted
        }))
        return metric
      })
    return Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest) {
      const facts = new Facts(requestIdOf(request), yield* Clock.currentTimeMillis)
      let counted: number | undefined
      yield* Effect.addFinalizer((exit) => finish(request, facts, counted, exit))
      const count = Effect.gen(function*() {
        if (state.draining) return yield* new Draining()
        const plan = yield* config.current
        facts.plan = plan
        const identity = yield* authentication.authenticate(
          { headers: request.headers, remoteAddress: Option.getOrUndefined(request.remoteAddress) },
          plan
        )
        facts.identity = identity
        const { call, model } = yield* decodePhase(inbound, request, plan, identity, facts)
        if (!Tokenizer.isLoaded(model.tokenizer)) yield* Tokenizer.load(model.tokenizer)
        const { estimate } = yield* Estimate.estimateYielding(
          call,
          model.tokenizer,
          0,
          { blockChars: plan.routing.prefixBlockChars, maxBlocks: plan.routing.prefixMaxBlocks, salt: model.id },
          0,
          model.contextWindow
        )
        counted = estimate.promptTokens
        facts.reply.status = 200
        return answer(estimate.promptTokens, facts.requestId)
      })
      return yield* answerFailures(inbound, facts)(count)
    })
  })

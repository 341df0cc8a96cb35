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
 * disconnect, shutdown) releases all of it, in reverse order, with the `Exit`.
 *
 * Every phase bounds the work one request can cause: decode pre-scans and limits the body
 * before parsing, admission counts tokens in windows with the event loop free between them,
 * extensions run under `extensions.timeout`, dispatch under the first-token and total
 * deadlines, the stream under the idle-gap deadline.
 */
import { Cause, Clock, Effect, Exit, Option, References } from "effect"
import type { HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHash } from "node:crypto"
import { Accounting } from "../accounting/Accounting.ts"
import * as Calls from "../api/openai/Calls.ts"
import type { InferenceCall } from "../api/openai/Calls.ts"
import { TokenBudget } from "../admission/Budget.ts"
import * as Estimate from "../admission/Estimate.ts"
import * as KvTokens from "../admission/KvTokens.ts"
import type { GatewayRequest } from "../admission/Request.ts"
import * as Tokenizer from "../admission/Tokenizer.ts"
import { Authentication, mayUse } from "../auth/Authentication.ts"
import { ModelNotAllowed } from "../auth/Errors.ts"
import { HealthReports } from "../backends/Actor.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { ModelPlan, Plan } from "../config/Plan.ts"
import { AttemptLog } from "../dispatch/Attempts.ts"
import { Dispatcher } from "../dispatch/Dispatch.ts"
import { relay } from "../dispatch/Relay.ts"
import { Tally } from "../dispatch/Tally.ts"
import type { Identity } from "../domain/Identity.ts"
import { type ModelId, RequestId } from "../domain/Ids.ts"
import type { PolicyContext } from "../extensions/Contract.ts"
import { RequestPolicies, ResponsePolicies, selected } from "../extensions/Registries.ts"
import * as Metrics from "../observability/Metrics.ts"
import { RequestLog } from "../observability/RequestLog.ts"
import { Breakers } from "../resilience/Breakers.ts"
import { Router } from "../routing/Router.ts"
import * as Decode from "./Decode.ts"
import { ContentBlocked, Draining, InvalidBody, UnknownModel } from "./Errors.ts"
import type { Inbound } from "./Inbound.ts"
import * as Limits from "./Limits.ts"
import { Lifecycle } from "./Lifecycle.ts"
import * as Outcome from "./Outcome.ts"
import * as Policies from "./Policies.ts"
import * as Respond from "./Respond.ts"
import { type PipelineError, toWire } from "./WireErrors.ts"

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
  identity: Identity | undefined = undefined
  /** The model as the client named it (cut to MODEL_CHARS), then the resolved model id. */
  model: string | undefined = undefined
  modelId: ModelId | undefined = undefined
  admitted = false
  served: Outcome.Served = { _tag: "Pending" }
  error: string | undefined = undefined
  readonly attempts = new AttemptLog()
  readonly tally: Tally
  readonly reply = new Respond.Reply()
  constructor(readonly requestId: RequestId, readonly receivedAtMs: number) {
    this.tally = new Tally(receivedAtMs)
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

/** The handler of one inbound API's endpoint (the routes bind it to a path). */
export const handler = (inbound: Inbound) =>
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const authentication = yield* Authentication
    const budget = yield* TokenBudget
    const accounting = yield* Accounting
    const router = yield* Router
    const dispatcher = yield* Dispatcher
    const log = yield* RequestLog
    const breakers = yield* Breakers
    const reports = yield* HealthReports
    const requestPolicies = yield* RequestPolicies
    const responsePolicies = yield* ResponsePolicies
    const { state } = yield* Lifecycle
    const tracing = yield* References.TracerEnabled
    requestPolicies.seal()
    responsePolicies.seal()
    const kind = inbound.kind

    /** release (accept's finalizer): the request's log line and metrics, from what the phases recorded. */
    const release = (request: HttpServerRequest.HttpServerRequest, facts: Facts, exit: Exit.Exit<unknown, unknown>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        state.inFlight--
        const outcome = facts.outcome(exit)
        const { tally, attempts, reply } = facts
        const usage = tally.reported
        const completion = usage?.completionTokens ?? tally.countedCompletionTokens
        const metrics = Metrics.recordRequest({
          model: facts.modelId ?? "unknown",
          backend: attempts.backend,
          outcome,
          durationMs: now - facts.receivedAtMs,
          ttftMs: tally.ttftMs,
          interTokenMs: tally.interTokenMs,
          promptTokens: usage?.promptTokens ?? 0,
          completionTokens: completion,
          cachedTokens: usage?.cachedTokens ?? 0,
          failedAttempts: attempts.failed.map((a) => ({
            backend: a.backend,
            reason: a.reason,
            wasted: a.wastedPromptTokens,
            wastedCompletion: a.wastedCompletionTokens
          }))
        })
        if (!log.enabled) return metrics
        const status = reply.status === 0 && Exit.hasInterrupts(exit) ? 499 : reply.status
        log.write({
          ts: new Date(now).toISOString(),
          level: outcome === "error" ? "error" : status >= 500 || outcome === "partial" ? "warn" : "info",
          msg: "request",
          pid: process.pid,
          request_id: facts.requestId,
          method: request.method,
          path: request.url,
          model: facts.modelId ?? facts.model,
          backend: attempts.backend,
          status,
          outcome,
          prompt_tokens: usage?.promptTokens ?? 0,
          completion_tokens: completion,
          cached_tokens: usage?.cachedTokens ?? 0,
          ttft_ms: tally.ttftMs,
          duration_ms: now - facts.receivedAtMs,
          attempts: attempts.failed.map((a) => ({ backend: a.backend, reason: a.reason })),
          error: reply.failedAfterCommit ?? tally.failure?._tag ?? tally.note ?? facts.error,
          tenant: facts.identity?.tenant,
          key_id: facts.identity?.keyId
        })
        return metrics
      })

    /** decode: the body, bounded, as the endpoint's typed call; the model it names, resolved. */
    const decode = (request: HttpServerRequest.HttpServerRequest, plan: Plan, identity: Identity, facts: Facts) =>
      Effect.gen(function*() {
        const limits = plan.limits
        yield* Decode.checkContentType(request)
        const rawBody = yield* Decode.readBody(request, limits.maxBodyBytes)
        const json = yield* Decode.parseJson(rawBody, {
          maxDepth: limits.maxJsonDepth,
          maxValues: limits.maxJsonValues,
          maxKeys: limits.maxJsonKeys
        })
        const refused = Limits.check(kind, json, limits)
        if (refused !== undefined) return yield* Effect.fail(refused)
        const call = yield* inbound.decode(json)
        const requested = call.body.model
        facts.model = requested.length > MODEL_CHARS ? `${requested.slice(0, MODEL_CHARS)}…` : requested
        const modelId = plan.modelNames.get(requested)
        if (modelId === undefined) return yield* new UnknownModel({ model: facts.model })
        const model = plan.models.get(modelId)
        if (model === undefined) return yield* new UnknownModel({ model: facts.model })
        facts.modelId = modelId
        if (!mayUse(identity, model, requested)) return yield* new ModelNotAllowed({ model: requested })
        yield* Effect.annotateCurrentSpan("sluice.model", modelId)
        return { call, rawBody, model, requested }
      })

    /** admit: the estimate, and the reservation whose release is the settlement. */
    const admit = (
      request: HttpServerRequest.HttpServerRequest,
      plan: Plan,
      identity: Identity,
      decoded: { readonly call: InferenceCall; readonly rawBody: Uint8Array | undefined; readonly model: ModelPlan; readonly requested: string },
      facts: Facts
    ) =>
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
        // The model's tokenizer tables load on first use (tens of MB the gateway does not
        // carry until a request needs them); only the first request waits for them.
        if (!Tokenizer.isLoaded(model.tokenizer)) yield* Tokenizer.load(model.tokenizer)
        // Counted in windows with the event loop free between them, and no further than the
        // context window allows (a longer prompt is refused however long it is).
        const window = model.contextWindow
        const counted = yield* Estimate.estimateYielding(
          call,
          model.tokenizer,
          requestedMaxTokens ?? model.defaultMaxTokens,
          { blockChars: plan.routing.prefixBlockChars, maxBlocks: plan.routing.prefixMaxBlocks, salt: model.id },
          sequences,
          window === undefined ? undefined : window - (requestedMaxTokens ?? 0)
        )
        const { prompt } = counted
        const promptTokens = counted.estimate.promptTokens
        if (window !== undefined && promptTokens + (requestedMaxTokens ?? 0) > window) {
          return yield* new InvalidBody({
            message: `This model's maximum context length is ${window} tokens. However, you requested at least ${promptTokens + (requestedMaxTokens ?? 0)} tokens (at least ${promptTokens} in the messages, ${requestedMaxTokens ?? 0} in the completion).`,
            param: "messages"
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
        // The reservation's release is the settlement: exactly once, with the Exit. The
        // admission is journaled, so even a crash leaves the request accounted.
        yield* Effect.acquireRelease(
          Effect.flatMap(budget.reserve(req.tenant, estimate.reservationTokens), (reservation) => accounting.admit(req, reservation)),
          (admission, exit) =>
            Effect.flatMap(Clock.currentTimeMillis, (nowMs) =>
              Effect.asVoid(accounting.settle(req, admission, {
                outcome: facts.outcome(exit),
                attempts: facts.attempts,
                tally: facts.tally,
                nowMs
              })))
        )
        facts.admitted = true
        return req
      })

    /** The phases that build the response; a typed failure becomes an error answer. */
    const serve = (request: HttpServerRequest.HttpServerRequest, facts: Facts) =>
      Effect.gen(function*() {
        if (state.draining) return yield* new Draining()
        const plan = yield* config.current

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
        const decoded = yield* decode(request, plan, identity, facts)
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
        // A rewritten call is serialized again; the client's bytes go out only while unchanged.
        const call = guarded.call
        const rawBody = guarded.rewritten ? undefined : decoded.rawBody

        // admit
        const req = yield* admit(request, plan, identity, { ...decoded, call, rawBody }, facts)

        // route
        const route = yield* router.candidates(req)

        // dispatch → stream (response policies on the typed token events)
        const filters = Policies.startFilters(
          selected(responsePolicies, own?.response, plan.extensions.response),
          policyContext,
          plan.extensions.timeoutMs
        )
        const headers = { "x-request-id": facts.requestId }
        if (req.stream) {
          const committed = yield* dispatcher.stream(req, route, plan, facts.attempts, facts.tally)
          const chain = yield* filters
          const frames = relay(req, committed, plan, facts.tally, { breakers, reports })
          facts.reply.status = 200
          return inbound.streamResponse(Respond.streamBody(frames, inbound.encoder(), chain, facts.reply), {
            ...headers,
            "cache-control": "no-cache",
            "x-sluice-backend": committed.backend.id
          })
        }
        const { backend, result } = yield* dispatcher.unary(req, route, plan, facts.attempts, facts.tally)
        const filtered = yield* Respond.unaryTexts(result, filters)
        if (filtered._tag === "Block") {
          // The answer exists (and is charged): it is withheld, as a stream would be cut.
          facts.reply.failedAfterCommit = "content_blocked"
          return yield* new ContentBlocked({ policy: filtered.policy, message: filtered.message })
        }
        facts.reply.status = result.status
        return inbound.unaryResponse(result, Respond.unaryBody(inbound, result, filtered.texts), {
          ...headers,
          "x-sluice-backend": backend.id
        })
      })

    // The request span is opened without capturing a stack trace: an Error per request
    // costs more than the rest of the span.
    const handle = Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest) {
      // accept
      const facts = new Facts(requestIdOf(request), yield* Clock.currentTimeMillis)
      yield* Effect.annotateCurrentSpan("sluice.request_id", facts.requestId)
      state.inFlight++
      yield* Effect.addFinalizer((exit) => release(request, facts, exit))

      return yield* serve(request, facts).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            facts.served = { _tag: "Replied" }
          })
        ),
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
          // A client abort (interruption) propagates; anything else is a defect: opaque 500.
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
    })
    // Without a trace exporter there is no request span at all (not even a no-op one).
    return tracing
      ? (request: HttpServerRequest.HttpServerRequest) =>
        Effect.withSpan(handle(request), `Gateway.${kind}`, { kind: "server", captureStackTrace: false })
      : handle
  })

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

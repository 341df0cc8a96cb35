/**
 * Dispatch: try the route's candidates in order until one commits.
 *
 * Each attempt runs in a child scope of the request's scope that owns its model slot, its
 * in-flight tokens, its KV pin, its placement ticket and its upstream request. A failed
 * attempt's scope is closed at once (slot returned, socket closed) before the next
 * candidate is tried; the committed attempt's scope stays open until the request's scope
 * closes. A stream commits at its first token, awaited under the time-to-first-token
 * deadline; after that nothing here runs again for this request: a later failure belongs
 * to the relay and ends the stream. Every attempt is written to the request's AttemptLog
 * (dispatch is its only writer).
 *
 * A unary attempt is committed to the GPU work once the backend answers 2xx (engines send
 * the headers when the generation is done): a failure after that (`AfterResponse`: a
 * broken or malformed body, an error inside a 200, a looping answer under `end_stream`) is
 * not retried unless the model sets `retry_unary_after_response`, and the prompt and the
 * completion (when known) are recorded as attempt waste. A retry-after answer cools the
 * backend down (and is neither breaker nor health evidence). A route ranked in panic
 * admits candidates behind an open breaker. A disaggregated route runs its prefill leg
 * (PrefillLeg.ts) inside the decode attempt, under its first-token deadline.
 */
import { type Cause, Clock, Context, Data, Effect, Exit, identity, Layer, References, Scope } from "effect"
import type { GatewayRequest } from "../admission/Request.ts"
import { HealthReports } from "../backends/Actor.ts"
import type { Backend } from "../backends/Backend.ts"
import type { Frame, FrameSource, UnaryResult, UpstreamCall } from "../backends/Contract.ts"
import { BreakerOpen, DegenerateOutput, type FailureReason, TimeToFirstTokenExceeded, TotalTimeout } from "../backends/Failure.ts"
import type { Plan } from "../config/Plan.ts"
import * as Deadline from "../domain/Deadline.ts"
import * as Metrics from "../observability/Metrics.ts"
import * as GenAiSpans from "../observability/GenAiSpans.ts"
import { Breakers, keyOf } from "../resilience/Breakers.ts"
import * as Repetition from "../resilience/Repetition.ts"
import { RetryBudget } from "../resilience/RetryBudget.ts"
import { Affinity } from "../routing/Affinity.ts"
import type { AttemptProgress } from "../routing/Contract.ts"
import { Placement } from "../routing/Placement.ts"
import type { Route } from "../routing/Router.ts"
import type { AttemptLog } from "./Attempts.ts"
import { BackendFailed, BackendsExhausted } from "./Errors.ts"
import * as Hold from "./Hold.ts"
import { decodeLeg } from "./PrefillLeg.ts"
import type { Tally } from "./Tally.ts"

/**
 * How an attempt ended, as routing reads it when the attempt's scope closes (a stream's last
 * byte): a small object over the attempt log and the tally, so the finalizer that reads it does
 * not keep the request (or the closures of the attempt that made it) alive for the stream.
 */
class Progress implements AttemptProgress {
  constructor(
    private readonly log: AttemptLog,
    private readonly backendId: Backend["id"],
    private readonly tally: Tally
  ) {}
  get served(): boolean {
    return this.log.backend === this.backendId
  }
  get cachedTokens(): number | undefined {
    return this.tally.reported?.cachedTokens
  }
}

export interface CommittedStream {
  readonly backend: Backend
  /** Frames read up to the first token (and any that arrived with it), not yet observed. */
  readonly head: ReadonlyArray<Frame>
  readonly source: FrameSource
  /** When the first token arrived (the head's frames were read by then). */
  readonly committedAtMs: number
}

export interface CommittedUnary {
  readonly backend: Backend
  readonly result: UnaryResult
}

/** Failures after which the backend may already have run the prefill (their cost is waste). */
const processedPrompt = (reason: FailureReason): boolean => {
  switch (reason._tag) {
    case "TimeToFirstTokenExceeded":
    case "MidStreamError":
    case "MalformedChunk":
    case "OutOfMemory":
    case "StreamStalled":
    case "UpstreamError":
    case "DegenerateOutput":
    case "Truncated":
    case "ResponseTooLarge":
    case "TotalTimeout":
      return true
    default:
      return false
  }
}

/**
 * A unary attempt that failed after the backend answered 2xx: the engine already did the
 * whole generation, so another attempt would redo it (and the tokens are waste).
 */
class AfterResponse extends Data.TaggedError("AfterResponse")<{
  readonly reason: FailureReason
  /** Completion tokens the backend reported for the failed answer, when it could be read. */
  readonly completionTokens: number | undefined
}> {}

/** A frame that proves generation started: a token, a finish, or usage. */
const isCommitting = (frame: Frame): boolean => frame.events.some((e) => e._tag !== "Error")

/** The attempt's call: the request's typed call, named as the backend knows the model. */
const callFor = (req: GatewayRequest, backend: Backend): UpstreamCall => {
  const info = {
    requestId: req.id,
    rawBody: req.rawBody,
    native: req.native,
    upstreamModel: backend.plan.models.get(req.model.id) ?? req.model.id,
    stream: req.stream,
    clientWantsUsage: req.clientWantsUsage,
    maxOutputTokens: req.estimate.outputCap
  }
  switch (req.kind) {
    case "chat":
      return { kind: "chat", body: req.body, ...info }
    case "completion":
      return { kind: "completion", body: req.body, ...info }
    case "embedding":
      return { kind: "embedding", body: req.body, ...info }
    case "rerank":
      return { kind: "rerank", body: req.body, ...info }
  }
}

/** The bounded number of pre-token frames held (role chunks, comments) before committing anyway. */
const MAX_HEAD_FRAMES = 64

export class Dispatcher extends Context.Service<Dispatcher, {
  readonly stream: (
    req: GatewayRequest,
    route: Route,
    plan: Plan,
    log: AttemptLog,
    tally: Tally
  ) => Effect.Effect<CommittedStream, BackendFailed | BackendsExhausted, Scope.Scope>
  readonly unary: (
    req: GatewayRequest,
    route: Route,
    plan: Plan,
    log: AttemptLog,
    tally: Tally
  ) => Effect.Effect<CommittedUnary, BackendFailed | BackendsExhausted, Scope.Scope>
}>()("sluice/dispatch/Dispatcher") {
  static readonly layer = Layer.effect(
    Dispatcher,
    Effect.gen(function*() {
      const retryBudget = yield* RetryBudget
      const affinity = yield* Affinity
      const breakers = yield* Breakers
      const tracing = yield* References.TracerEnabled
      const reports = yield* HealthReports
      const placement = yield* Placement

      /** Runs `attempt` on each candidate in turn, each in its own child scope. */
      const loop = <A>(
        req: GatewayRequest,
        route: Route,
        plan: Plan,
        log: AttemptLog,
        attempt: (backend: Backend) => Effect.Effect<A, FailureReason | AfterResponse, Scope.Scope>
      ): Effect.Effect<{ readonly backend: Backend; readonly value: A }, BackendFailed | BackendsExhausted, Scope.Scope> =>
        Effect.gen(function*() {
          const requestScope = yield* Effect.scope
          let stoppedBy: "candidates" | "max_attempts" | "retry_budget" = "candidates"
          let retryAfterMs: number | undefined
          yield* retryBudget.deposit
          let made = 0
          for (const backend of route.backends) {
            if (made >= plan.retries.maxAttempts) {
              stoppedBy = "max_attempts"
              break
            }
            const attemptScope = yield* Scope.fork(requestScope, "sequential")
            // An open breaker (or a half-open one with no probe permit left) skips the
            // candidate without spending an attempt or the retry budget, unless the route was
            // ranked in panic (every candidate looked bad); a probe permit, when taken, lives
            // in the attempt's scope.
            const admitted = yield* breakers.admit(req.model.id, backend.plan.gpu).pipe(Scope.provide(attemptScope))
            if (!admitted && !route.panic) {
              yield* Scope.close(attemptScope, Exit.void)
              const open = new BreakerOpen({ key: keyOf(req.model.id, backend.plan.gpu) })
              log.fail({
                backend: backend.id,
                reason: open._tag,
                message: open.message,
                wastedPromptTokens: 0,
                wastedCompletionTokens: 0,
                afterResponse: false
              })
              continue
            }
            if (made > 0 && !(yield* retryBudget.tryWithdraw)) {
              yield* Scope.close(attemptScope, Exit.void)
              stoppedBy = "retry_budget"
              break
            }
            made++
            backend.attempted()
            const started = yield* Clock.currentTimeMillis
            // The attempt's span lives in the attempt's scope: it ends when the attempt fails,
            // or, once committed, when the request ends (a stream's span covers the stream).
            const span = tracing
              ? yield* Effect.makeSpanScoped("Dispatch.attempt", {
                // The GenAI client call: the gateway is the engine's client.
                kind: "client",
                attributes: GenAiSpans.attemptStart(
                  { id: backend.id, gpu: backend.plan.gpu, dialect: backend.plan.dialect, url: backend.plan.url },
                  made,
                  req.kind,
                  req.model.id,
                  backend.plan.models.get(req.model.id)
                )
              }).pipe(Scope.provide(attemptScope))
              : undefined
            const exit = yield* attempt(backend).pipe(
              Scope.provide(attemptScope),
              span === undefined ? identity : Effect.withParentSpan(span),
              Effect.exit
            )
            if (span !== undefined) {
              const failed = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
              GenAiSpans.attemptEnd(
                span,
                Exit.isSuccess(exit)
                  ? { committed: true }
                  : failed !== undefined && failed._tag === "Fail"
                  ? { reason: failed.error._tag === "AfterResponse" ? failed.error.reason._tag : failed.error._tag }
                  : { reason: Exit.hasInterrupts(exit) ? "Interrupted" : "Defect" }
              )
            }
            if (Exit.isSuccess(exit)) {
              const now = yield* Clock.currentTimeMillis
              log.commit(backend.id, now)
              backend.succeeded(now)
              // A stream's first token slower than `breakers.slow_ttft` is a slow outcome (a unary
              // answer's time is the whole generation: not a first-token figure).
              const slow = req.stream && now - started > plan.breakers.slowTtftMs
              yield* breakers.record(req.model.id, backend.plan.gpu, slow ? "slow" : "ok")
              return { backend, value: exit.value }
            }
            yield* Scope.close(attemptScope, exit)
            const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
            // No typed failure: a defect or an interruption, which propagates unchanged.
            if (failure === undefined || failure._tag !== "Fail") return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
            const failed = failure.error
            const afterResponse = failed._tag === "AfterResponse"
            const reason = afterResponse ? failed.reason : failed
            const now = yield* Clock.currentTimeMillis
            const wasted = afterResponse || processedPrompt(reason) ? req.estimate.promptTokens : 0
            const wastedCompletion = afterResponse ? failed.completionTokens ?? 0 : 0
            backend.failed(reason._tag, wasted, wastedCompletion)
            // Backpressure (retry-after) does not trip breakers (`tripsBreaker` says so).
            if (reason.tripsBreaker) yield* breakers.record(req.model.id, backend.plan.gpu, "failure")
            yield* reports.failure(backend, reason)
            log.fail({
              backend: backend.id,
              reason: reason._tag,
              message: reason.message,
              wastedPromptTokens: wasted,
              wastedCompletionTokens: wastedCompletion,
              afterResponse
            })
            if ("retryAfterMs" in reason && reason.retryAfterMs !== undefined) {
              backend.coolDown(now + reason.retryAfterMs)
              retryAfterMs = retryAfterMs === undefined ? reason.retryAfterMs : Math.min(retryAfterMs, reason.retryAfterMs)
            }
            if (!reason.isRetryable) return yield* new BackendFailed({ backend: backend.id, reason })
            // The backend already answered (and generated): another attempt would do it all again.
            if (afterResponse && !req.model.retryUnaryAfterResponse) {
              return yield* new BackendFailed({ backend: backend.id, reason })
            }
          }
          return yield* new BackendsExhausted({ model: req.model.id, attempts: log.failed, stoppedBy, retryAfterMs })
        })

      /**
       * What the attempt on `backend` holds until its scope closes; the attempt reports its
       * first token (its commit) to routing through the handle returned.
       */
      const hold = (req: GatewayRequest, backend: Backend, plan: Plan, log: AttemptLog, tally: Tally) =>
        Hold.hold(affinity, placement, req, backend, plan.timeouts.queueMs, new Progress(log, backend.id, tally))

      /** The call to send: the request's own, or after a prefill leg, the decode leg's. */
      const upstreamCall = (req: GatewayRequest, route: Route, backend: Backend, plan: Plan) => {
        const call = callFor(req, backend)
        return route.prefill !== undefined && route.prefill.length > 0 && backend.plan.role === "decode"
          ? decodeLeg(req, route.prefill, call, plan, placement)
          : Effect.succeed(call)
      }

      const streamAttempt = (req: GatewayRequest, route: Route, plan: Plan, log: AttemptLog, tally: Tally) =>
      (backend: Backend) =>
        Effect.gen(function*() {
          const started = yield* Clock.currentTimeMillis
          const placed = yield* hold(req, backend, plan, log, tally)
          const deadline = started + plan.timeouts.firstTokenMs
          const ttft = () => new TimeToFirstTokenExceeded({ afterMs: plan.timeouts.firstTokenMs })
          // The wait for the response headers is bounded by the pool's headers timeout (set to
          // the first-token deadline); a disaggregated request also runs its prefill leg first,
          // so only then does the whole of it race the deadline (a race forks a fiber).
          const twoLegs = route.prefill !== undefined && backend.plan.role === "decode"
          const upstream = Effect.flatMap(upstreamCall(req, route, backend, plan), (call) => backend.adapter.stream(call))
          const source = yield* (twoLegs
            ? upstream.pipe(Effect.timeoutOrElse({ duration: plan.timeouts.firstTokenMs, orElse: () => Effect.fail(ttft()) }))
            : upstream)
          const head: Array<Frame> = []
          while (true) {
            const remaining = Math.max(0, deadline - (yield* Clock.currentTimeMillis))
            const frames = yield* source.next({ ms: remaining, onTimeout: ttft })
            if (frames === null) break
            let committed = false
            for (const frame of frames) {
              // Frames after the first token belong to the committed stream, errors included:
              // the relay reads them in order.
              if (!committed) {
                for (const e of frame.events) if (e._tag === "Error") return yield* Effect.fail(e.failure)
                if (isCommitting(frame)) committed = true
              }
              head.push(frame)
            }
            if (committed || head.length >= MAX_HEAD_FRAMES) break
          }
          const committedAtMs = yield* Clock.currentTimeMillis
          placed.started()
          backend.firstToken(committedAtMs - started)
          return { head, source, committedAtMs }
        })

      // The request's total deadline bounds the whole answer, body included: the pool's
      // headers timeout alone let an answer whose headers came but whose body never did
      // hold the request (slot, reservation, socket) until the client gave up.
      const unaryAttempt = (req: GatewayRequest, route: Route, plan: Plan, log: AttemptLog, tally: Tally) =>
      (backend: Backend) =>
        Effect.gen(function*() {
          const placed = yield* hold(req, backend, plan, log, tally)
          const call = yield* upstreamCall(req, route, backend, plan)
          const deadline = req.receivedAtMs + plan.timeouts.totalMs
          const overTime = () => new TotalTimeout({ afterMs: plan.timeouts.totalMs })
          const left = () => Effect.map(Clock.currentTimeMillis, (now) => Math.max(0, deadline - now))
          const adapter = backend.adapter
          // The built-in adapters bound the headers and the body themselves, with the upstream's
          // own timers (no fiber); another adapter's two waits are each raced here
          // (domain/Deadline.ts: one fiber and one timer each).
          const response = adapter.boundsUnary === true
            ? yield* adapter.unary(call, yield* left())
            : yield* Deadline.within(adapter.unary(call), yield* left(), () => Effect.fail(overTime()))
          const result = yield* (adapter.boundsUnary === true
            ? response.read
            : Deadline.within(response.read, yield* left(), () => Effect.fail(overTime()))).pipe(
              Effect.mapError((reason) => new AfterResponse({ reason, completionTokens: undefined }))
            )
          // The stream phase of a unary answer: its text goes through the repetition detector.
          const mode = req.model.repetition
          const repetition = mode === "off" ? undefined : Repetition.fromHealthPlan(plan.health)
          if (repetition !== undefined && result.texts.some((text) => Repetition.isDegenerate(text, repetition))) {
            yield* Metrics.recordDegenerate(req.model.id, backend.id)
            yield* Effect.logWarning("degenerate output: the answer repeats itself").pipe(
              Effect.annotateLogs({ request_id: req.id, model: req.model.id, backend: backend.id, mode, stream: false })
            )
            if (mode === "end_stream") {
              return yield* new AfterResponse({
                reason: new DegenerateOutput({ message: "the answer repeats itself" }),
                completionTokens: result.usage?.completionTokens
              })
            }
            yield* reports.report(backend, { _tag: "StreamBad" })
          } else {
            yield* reports.report(backend, { _tag: "StreamOk", tokensPerSecond: undefined })
          }
          tally.answered(result.usage, result.finish, yield* Clock.currentTimeMillis)
          placed.started()
          return result
        })

      return Dispatcher.of({
        stream: (req, route, plan, log, tally) =>
          Effect.map(
            loop(req, route, plan, log, streamAttempt(req, route, plan, log, tally)),
            ({ backend, value }) => ({ backend, head: value.head, source: value.source, committedAtMs: value.committedAtMs })
          ),
        unary: (req, route, plan, log, tally) =>
          Effect.map(
            loop(req, route, plan, log, unaryAttempt(req, route, plan, log, tally)),
            ({ backend, value }) => ({ backend, result: value })
          )
      })
    })
  )
}

/**
 * The backend actor's behaviour: health evidence in, supervised background loops out.
 *
 * `HealthReports` is the one way to change a backend's health (probes, request outcomes);
 * it stamps each piece of evidence with the clock's time, logs every transition (the
 * router ignores session hints to a cold or unhealthy backend). What a failed attempt is evidence of
 * is decided here: backpressure (retry-after) is none (the dispatcher cools the backend
 * down), load shedding without retry-after says nothing about health, and every other
 * reason that trips breakers is a bad outcome (a probe alone marks an engine cold).
 * `runLoops` forks, into the fleet's scope, the loops each backend owns: scraping the
 * engine's metrics (queue depth, running, KV use, prefix hit rate) and probing with a
 * 1-token generation (an engine can answer 200 on /health while hung) on a ProbeSchedule:
 * every probe interval while healthy, and on a short doubling backoff while unhealthy or
 * cold so that recovery follows the fault clearing within about a second; and, for a backend
 * with `kv_events`, the subscription to the engine's KV-cache events (KvEvents.ts). A loop that dies
 * is restarted with exponential backoff, logged and counted; closing the scope (reload,
 * shutdown) interrupts them all.
 */
import { Cause, Clock, Context, Duration, Effect, Layer } from "effect"
import type { Plan } from "../config/Plan.ts"
import { RequestId } from "../domain/Ids.ts"
import type { Backend } from "./Backend.ts"
import * as EngineMetrics from "./EngineMetrics.ts"
import * as KvEvents from "./KvEvents.ts"
import { unaryAll } from "./Contract.ts"
import { type FailureReason, isBackpressure, Unavailable } from "./Failure.ts"
import { type Evidence, ProbeSchedule } from "./Health.ts"
import { readAll } from "./Upstream.ts"

export class HealthReports extends Context.Service<HealthReports, {
  readonly report: (backend: Backend, evidence: Evidence) => Effect.Effect<void>
  /** Evidence from a failed attempt (before or after the first token). */
  readonly failure: (backend: Backend, reason: FailureReason) => Effect.Effect<void>
}>()("sluice/backends/HealthReports") {
  static readonly layer = Layer.effect(
    HealthReports,
    Effect.gen(function*() {
      const report = (backend: Backend, evidence: Evidence): Effect.Effect<void> =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const before = backend.health
          const after = backend.observeHealth(evidence, now)
          if (after === undefined) return Effect.void
          return Effect.logWarning("backend health changed").pipe(
            Effect.annotateLogs({ backend: backend.id, from: before, to: after, evidence: evidence._tag })
          )
        })
      return HealthReports.of({
        report,
        failure: (backend, reason) =>
          // Backpressure (a loading engine's retry-after included) is a cool-down set by the
          // dispatcher; load shedding (429/529) and the gateway's own limits say nothing about
          // health. Only probes mark an engine cold: traffic never reaches a cold backend, so
          // a probe must be there to bring it back.
          isBackpressure(reason) || reason._tag === "Overloaded" || !reason.tripsBreaker
            ? Effect.void
            : report(backend, { _tag: "StreamBad" })
      })
    })
  )
}

/** Runs `loop` forever; a crash is logged, counted and followed by a restart after a backoff. */
export const supervise = (backend: Backend, name: string, loop: Effect.Effect<void>): Effect.Effect<never> =>
  Effect.suspend(function restart(): Effect.Effect<never> {
    return Effect.forever(loop).pipe(
      Effect.catchCause((cause) => {
        if (Cause.hasInterrupts(cause)) return Effect.failCause(cause)
        const restarts = backend.loopRestarted()
        const delay = Math.min(30_000, 200 * 2 ** Math.min(8, restarts - 1))
        return Effect.logError("backend loop crashed; restarting").pipe(
          Effect.annotateLogs({ backend: backend.id, loop: name, restarts, delay_ms: delay, cause: Cause.pretty(cause) }),
          Effect.andThen(Effect.sleep(Duration.millis(delay))),
          Effect.andThen(restart)
        )
      })
    )
  })

/** One scrape of the engine's metrics endpoint into `backend.signals`. */
const scrapeOnce = (backend: Backend, plan: Plan, previous: { counters: EngineMetrics.Counters | undefined }) =>
  Effect.gen(function*() {
    const flavour = backend.plan.metrics ?? "none"
    if (flavour === "none") return
    const path = EngineMetrics.metricsPath(flavour)!
    const text = yield* Effect.scoped(
      Effect.flatMap(
        backend.pool.getFromOrigin(path, plan.health.probeTimeoutMs),
        (res) =>
          res.status === 200
            ? readAll(res.body, 4 * 1024 * 1024, (e) => new Unavailable({ status: undefined, message: String(e) }))
            : Effect.succeed(undefined)
      )
    ).pipe(Effect.map((b) => b?.toString("utf8")), Effect.orElseSucceed(() => undefined))
    if (text === undefined) return
    const now = yield* Clock.currentTimeMillis
    const result = EngineMetrics.signals(flavour, text, previous.counters, now)
    previous.counters = result.counters
    backend.observeSignals(result.signals)
  })

/** One active probe: a 1-token generation, unless real traffic proved the backend recently. */
const probeOnce = (backend: Backend, plan: Plan, reports: HealthReports["Service"]) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    if (backend.health === "healthy" && now - backend.lastSuccessAtMs < plan.health.probeIntervalMs) return
    if (!backend.adapter.capabilities.chat) return
    const model = [...backend.plan.models.values()][0]
    if (model === undefined) return
    const outcome = yield* Effect.scoped(unaryAll(backend.adapter, {
      kind: "chat",
      requestId: RequestId(`probe-${backend.id}-${now}`),
      body: { model, messages: [{ role: "user", content: "ping" }], max_tokens: 1, stream: false },
      rawBody: undefined,
      upstreamModel: model,
      stream: false,
      clientWantsUsage: false,
      maxOutputTokens: 1
    })).pipe(
      Effect.timeout(Duration.millis(plan.health.probeTimeoutMs)),
      Effect.match({
        onSuccess: (): Evidence | undefined => ({ _tag: "ProbeOk" }),
        onFailure: (e): Evidence | undefined => {
          if (e._tag === "Unavailable" && e.loading === true) return { _tag: "Loading" }
          // An engine shedding load is alive: its answer is neither a pass nor a failure.
          if (e._tag === "Overloaded" || (e._tag !== "TimeoutError" && isBackpressure(e))) return undefined
          return { _tag: "ProbeFailed" }
        }
      })
    )
    if (outcome === undefined) return
    if (outcome._tag === "ProbeOk") backend.proved(yield* Clock.currentTimeMillis)
    yield* reports.report(backend, outcome)
  })

/** Forks the backend's loops into the current scope. */
export const runLoops = (backend: Backend, plan: Plan, reports: HealthReports["Service"]) =>
  Effect.gen(function*() {
    const previous: { counters: EngineMetrics.Counters | undefined } = { counters: undefined }
    if ((backend.plan.metrics ?? "none") !== "none") {
      yield* Effect.forkScoped(supervise(
        backend,
        "scrape",
        Effect.andThen(scrapeOnce(backend, plan, previous), Effect.sleep(Duration.millis(plan.health.scrapeIntervalMs)))
      ))
    }
    const kvBlocks = backend.kvBlocks
    if (kvBlocks !== undefined) {
      yield* Effect.forkScoped(supervise(backend, "kv_events", KvEvents.subscription(backend, kvBlocks, plan)))
    }
    if (plan.health.probeIntervalMs > 0) {
      const schedule = new ProbeSchedule({
        intervalMs: plan.health.probeIntervalMs,
        backoffMs: plan.health.probeBackoffMs,
        backoffMaxMs: plan.health.probeBackoffMaxMs
      })
      const tick = Duration.millis(schedule.tickMs)
      yield* Effect.forkScoped(supervise(
        backend,
        "probe",
        Effect.gen(function*() {
          if (schedule.due(yield* Clock.currentTimeMillis, backend.health)) {
            yield* probeOnce(backend, plan, reports)
            schedule.probed(yield* Clock.currentTimeMillis, backend.health)
          }
          yield* Effect.sleep(tick)
        })
      ))
    }
  })

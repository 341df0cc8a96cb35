/**
 * The stream phase: relay a committed stream to the client, pull by pull.
 *
 * Pull-based end to end: the next upstream read happens only when the HTTP writer asks for
 * more, so a slow client slows the backend read and memory stays at the frames of one
 * upstream read plus the scanner's bounded carry-over. Each pull waits under the idle-gap
 * deadline (and the total deadline). Once committed the gateway never switches backends:
 * a failure ends the stream with an OpenAI error event, marks the request partial and
 * counts against the (model, SKU) breaker. A clean end feeds the backend's token-rate
 * statistics (a stream below the health floor counts as a slow outcome).
 *
 * Every text delta goes through the repetition detector (resilience/Repetition.ts) as the
 * model's `repetition` setting says: `observe` (default) counts a loop once
 * (`sluice_degenerate_output_total`), logs it and reports the stream to health as a bad
 * outcome, but serves it whole; `end_stream` ends it with a DegenerateOutput error event;
 * `off` skips the detector.
 */
import { Cause, Clock, Effect, Stream } from "effect"
import type { RequestTracker } from "../accounting/Tracker.ts"
import type { Frame } from "../backends/Contract.ts"
import { DegenerateOutput, type FailureReason, StreamStalled, TotalTimeout, Truncated } from "../backends/Failure.ts"
import type { Plan } from "../config/Plan.ts"
import type { GatewayRequest } from "../domain/Request.ts"
import { streamErrorEvent } from "../http/ErrorResponse.ts"
import type { HealthReports } from "../backends/Actor.ts"
import * as Metrics from "../observability/Metrics.ts"
import type { Breakers } from "../resilience/Breakers.ts"
import * as Repetition from "../resilience/Repetition.ts"
import type { CommittedStream } from "./Dispatch.ts"

type Chunk = readonly [Uint8Array, ...Array<Uint8Array>]

/** The detector of one stream and what a loop does (undefined: `repetition: off`). */
interface Loops {
  readonly detector: Repetition.RepetitionDetector
  readonly endStream: boolean
  /** The loop was found in this stream (observed once). */
  found: boolean
}

const collect = (frames: ReadonlyArray<Frame>, tracker: RequestTracker, now: number, loops: Loops | undefined) => {
  const out: Array<Uint8Array> = []
  let failure: FailureReason | undefined
  let looped = false
  for (const frame of frames) {
    tracker.observe(frame.events, now)
    for (const e of frame.events) {
      if (e._tag === "Error") failure ??= e.failure
      else if (e._tag === "Delta" && loops !== undefined && !loops.found && loops.detector.push(e.text)) {
        loops.found = true
        looped = true
        if (loops.endStream) {
          failure ??= new DegenerateOutput({ message: `the output repeats itself (after ${tracker.deltaChunks} tokens)` })
        }
      }
    }
    if (failure !== undefined) break
    if (frame.bytes !== undefined) out.push(frame.bytes)
  }
  return { out, failure, looped }
}

export const relay = (
  req: GatewayRequest,
  committed: CommittedStream,
  plan: Plan,
  tracker: RequestTracker,
  observers: { readonly breakers: Breakers["Service"]; readonly reports: HealthReports["Service"] }
): Stream.Stream<Uint8Array> => {
  const { breakers, reports } = observers
  const { source, backend } = committed
  const totalDeadline = req.receivedAtMs + plan.timeouts.totalMs
  let pending: Array<Uint8Array> = []
  let started = false
  let ended = false
  const mode = req.model.repetition
  const loops: Loops | undefined = mode === "off"
    ? undefined
    : { detector: new Repetition.RepetitionDetector(Repetition.fromHealthPlan(plan.health)), endStream: mode === "end_stream", found: false }
  const stalled = (): FailureReason => new StreamStalled({ afterMs: plan.timeouts.idleMs })
  const overTime = (): FailureReason => new TotalTimeout({ afterMs: plan.timeouts.totalMs })

  /** Ends the stream with an error event after `out`. */
  const fail = (failure: FailureReason, out: Array<Uint8Array>): Effect.Effect<Chunk> => {
    ended = true
    tracker.failureAfterCommit = failure
    tracker.outcome = "partial"
    backend.stats.recordFailure(failure._tag)
    out.push(streamErrorEvent(failure))
    pending = out
    const chunk: Chunk = [pending.shift()!]
    const health = reports.failure(backend, failure)
    return failure.tripsBreaker
      ? Effect.as(Effect.andThen(breakers.record(req.model.id, backend.plan.gpu, "failure"), health), chunk)
      : Effect.as(health, chunk)
  }

  /**
   * A clean end: token-rate statistics, and a slow outcome when below the health floor.
   * `finish_reason: length` well below the requested maximum is a silent truncation: the
   * client has its answer, but the backend is charged for it with the breaker.
   */
  const finish = (): Effect.Effect<void> => {
    ended = true
    tracker.outcome ??= "completed"
    const completion = tracker.reported?.completionTokens ?? tracker.countedCompletionTokens
    if (
      tracker.finish === "length" && req.requestedMaxTokens !== undefined && completion < req.requestedMaxTokens * 0.9
    ) {
      const truncated = new Truncated({ completionTokens: completion, requestedMax: req.requestedMaxTokens })
      tracker.errorType = truncated._tag
      backend.stats.recordFailure(truncated._tag)
      return Effect.andThen(breakers.record(req.model.id, backend.plan.gpu, "failure"), reports.failure(backend, truncated))
    }
    const first = tracker.firstTokenAtMs
    const last = tracker.lastTokenAtMs
    const tokens = completion
    // An observed loop was served, but it is evidence against the backend.
    const served = (tokensPerSecond: number | undefined) =>
      reports.report(backend, loops?.found === true ? { _tag: "StreamBad" } : { _tag: "StreamOk", tokensPerSecond })
    if (first === undefined || last === undefined || tokens < 2 || last <= first) return served(undefined)
    const perToken = (last - first) / (tokens - 1)
    const rate = 1000 / perToken
    backend.stats.interTokenMs.observe(perToken)
    backend.stats.tokensPerSecond.observe(rate)
    const health = served(rate)
    return rate < plan.health.minTokensPerSecond
      ? Effect.andThen(breakers.record(req.model.id, backend.plan.gpu, "slow"), health)
      : health
  }

  /** A loop found: counted and logged once per stream (whatever the mode). */
  const looped = (): Effect.Effect<void> =>
    Effect.andThen(
      Metrics.recordDegenerate(req.model.id, backend.id),
      Effect.logWarning("degenerate output: the stream repeats itself").pipe(
        Effect.annotateLogs({
          request_id: req.id,
          model: req.model.id,
          backend: backend.id,
          mode,
          tokens: tracker.deltaChunks,
          period_units: loops?.detector.period ?? 0
        })
      )
    )

  /** After a loop was logged: the frames' bytes (and the failure, under end_stream) go on. */
  const then = (out: Array<Uint8Array>, failure: FailureReason | undefined): Effect.Effect<Chunk, Cause.Done> =>
    failure !== undefined ? fail(failure, out) : Effect.suspend(() => {
      pending = out
      return pull
    })

  const pull: Effect.Effect<Chunk, Cause.Done> = Effect.suspend(function loop(): Effect.Effect<Chunk, Cause.Done> {
    if (!started) {
      // The frames read while waiting for the first token go out first, through the same rules.
      started = true
      const head = collect(committed.head, tracker, tracker.committedAtMs ?? req.receivedAtMs, loops)
      if (head.looped) return Effect.andThen(looped(), then(head.out, head.failure))
      if (head.failure !== undefined) return fail(head.failure, head.out)
      pending = head.out
    }
    // One event per pull, so one write per event: events that arrived in one upstream read
    // still leave as separate writes (the client sees the engine's pacing, not ours).
    if (pending.length > 0) return Effect.succeed([pending.shift()!] as const)
    if (ended) return Effect.fail(Cause.Done())
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const untilTotal = totalDeadline - now
      if (untilTotal <= 0) return fail(new TotalTimeout({ afterMs: plan.timeouts.totalMs }), [])
      const idle = plan.timeouts.idleMs
      const wait = Math.min(idle, untilTotal)
      return source.next({ ms: wait, onTimeout: wait === idle ? stalled : overTime }).pipe(
        Effect.flatMap((frames): Effect.Effect<Chunk, Cause.Done> => {
          if (frames === null) return Effect.flatMap(finish(), loop)
          return Effect.flatMap(Clock.currentTimeMillis, (at) => {
            const { out, failure, looped: found } = collect(frames, tracker, at, loops)
            if (found) return Effect.andThen(looped(), then(out, failure))
            if (failure !== undefined) return fail(failure, out)
            pending = out
            return loop()
          })
        }),
        Effect.catch((failure: FailureReason | Cause.Done) =>
          Cause.isDone(failure) ? Effect.fail(failure) : fail(failure, [])
        )
      )
    })
  })

  return Stream.fromPull(Effect.succeed(pull))
}

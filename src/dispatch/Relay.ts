/**
 * The relay: a committed stream, read frame by frame as the client pulls.
 *
 * Pull-based end to end: the next upstream read happens only when the stream phase asks
 * for the next frame (and it asks only when the HTTP writer wants more), so a slow client
 * slows the backend read and memory stays at the frames of one upstream read plus the
 * scanner's bounded carry-over. Each read waits under the idle-gap deadline (and the total
 * deadline). Once committed the gateway never switches backends: a failure ends the relay
 * with a last frame carrying the `Error` event, recorded in the tally (the request is
 * partial), and counted against the (model, SKU) breaker. A clean end feeds the backend's
 * token-rate statistics (a stream below the health floor counts as a slow outcome).
 *
 * Every text delta goes through the repetition detector (resilience/Repetition.ts) as the
 * model's `repetition` setting says: `observe` (default) counts a loop once
 * (`sluice_degenerate_output_total`), logs it and reports the stream to health as a bad
 * outcome, but serves it whole; `end_stream` ends it with a DegenerateOutput error; `off`
 * skips the detector.
 *
 * The relay only reads and judges: it never encodes for the client (the stream phase,
 * request/Respond.ts, does) and it is the tally's only writer while the stream runs.
 */
import { Cause, Clock, Effect } from "effect"
import type { GatewayRequest } from "../admission/Request.ts"
import type { HealthReports } from "../backends/Actor.ts"
import type { Frame } from "../backends/Contract.ts"
import { DegenerateOutput, type FailureReason, StreamStalled, TotalTimeout, Truncated } from "../backends/Failure.ts"
import type { Plan } from "../config/Plan.ts"
import * as Metrics from "../observability/Metrics.ts"
import type { Breakers } from "../resilience/Breakers.ts"
import * as Repetition from "../resilience/Repetition.ts"
import type { CommittedStream } from "./Dispatch.ts"
import type { Tally } from "./Tally.ts"

/** The next frame of the stream, or `Done` after its last one. */
export type FramePull = Effect.Effect<Frame, Cause.Done>

/** The frame that ends a stream with `failure` (its encoder writes the error event). */
export const failureFrame = (failure: FailureReason): Frame => ({ bytes: undefined, events: [{ _tag: "Error", failure }] })

/** The detector of one stream and what a loop does (undefined: `repetition: off`). */
interface Loops {
  readonly detector: Repetition.RepetitionDetector
  readonly endStream: boolean
  /** The loop was found in this stream (observed once). */
  found: boolean
}

/** Observes `frames` into the tally; stops at the first failure (or a loop under `end_stream`). */
const collect = (frames: ReadonlyArray<Frame>, tally: Tally, now: number, loops: Loops | undefined) => {
  const out: Array<Frame> = []
  let failure: FailureReason | undefined
  let looped = false
  for (const frame of frames) {
    tally.observe(frame.events, now)
    for (const e of frame.events) {
      if (e._tag === "Error") failure ??= e.failure
      else if (e._tag === "Delta" && loops !== undefined && !loops.found && loops.detector.push(e.text)) {
        loops.found = true
        looped = true
        if (loops.endStream) {
          failure ??= new DegenerateOutput({ message: `the output repeats itself (after ${tally.deltaChunks} tokens)` })
        }
      }
    }
    if (failure !== undefined) break
    out.push(frame)
  }
  return { out, failure, looped }
}

export const relay = (
  req: GatewayRequest,
  committed: CommittedStream,
  plan: Plan,
  tally: Tally,
  observers: { readonly breakers: Breakers["Service"]; readonly reports: HealthReports["Service"] }
): FramePull => {
  const { breakers, reports } = observers
  // The closures below live as long as the stream: they keep only what they read later, not
  // the request (its decoded body, raw bytes, prompt prefix, prefix hashes) nor the committed
  // attempt (its head frames, released once relayed).
  const { source, backend, committedAtMs } = committed
  let head: ReadonlyArray<Frame> | undefined = committed.head
  const { id: requestId, model, requestedMaxTokens } = req
  const timeouts = plan.timeouts
  const totalDeadline = req.receivedAtMs + timeouts.totalMs
  const minTokensPerSecond = plan.health.minTokensPerSecond
  let pending: Array<Frame> = []
  let ended = false
  const mode = model.repetition
  const loops: Loops | undefined = mode === "off"
    ? undefined
    : { detector: new Repetition.RepetitionDetector(Repetition.fromHealthPlan(plan.health)), endStream: mode === "end_stream", found: false }
  const stalled = (): FailureReason => new StreamStalled({ afterMs: timeouts.idleMs })
  const overTime = (): FailureReason => new TotalTimeout({ afterMs: timeouts.totalMs })

  /** Ends the stream: `out` first, then the failure's frame. */
  const fail = (failure: FailureReason, out: Array<Frame>): Effect.Effect<Frame> => {
    ended = true
    tally.failure = failure
    backend.failed(failure._tag)
    out.push(failureFrame(failure))
    pending = out
    const frame = pending.shift()!
    const health = reports.failure(backend, failure)
    return failure.tripsBreaker
      ? Effect.as(Effect.andThen(breakers.record(model.id, backend.plan.gpu, "failure"), health), frame)
      : Effect.as(health, frame)
  }

  /**
   * A clean end: token-rate statistics, and a slow outcome when below the health floor.
   * `finish_reason: length` well below the requested maximum is a silent truncation: the
   * client has its answer, but the backend is charged for it with the breaker.
   */
  const finish = (): Effect.Effect<void> => {
    ended = true
    const completion = tally.reported?.completionTokens ?? tally.countedCompletionTokens
    if (
      tally.finish === "length" && requestedMaxTokens !== undefined && completion < requestedMaxTokens * 0.9
    ) {
      const truncated = new Truncated({ completionTokens: completion, requestedMax: requestedMaxTokens })
      tally.note = truncated._tag
      backend.failed(truncated._tag)
      return Effect.andThen(breakers.record(model.id, backend.plan.gpu, "failure"), reports.failure(backend, truncated))
    }
    const first = tally.firstTokenAtMs
    const last = tally.lastTokenAtMs
    // An observed loop was served, but it is evidence against the backend.
    const served = (tokensPerSecond: number | undefined) =>
      reports.report(backend, loops?.found === true ? { _tag: "StreamBad" } : { _tag: "StreamOk", tokensPerSecond })
    if (first === undefined || last === undefined || completion < 2 || last <= first) return served(undefined)
    const perToken = (last - first) / (completion - 1)
    const rate = 1000 / perToken
    backend.streamed(perToken)
    const health = served(rate)
    return rate < minTokensPerSecond
      ? Effect.andThen(breakers.record(model.id, backend.plan.gpu, "slow"), health)
      : health
  }

  /** A loop found: counted and logged once per stream (whatever the mode). */
  const looped = (): Effect.Effect<void> =>
    Effect.andThen(
      Metrics.recordDegenerate(model.id, backend.id),
      Effect.logWarning("degenerate output: the stream repeats itself").pipe(
        Effect.annotateLogs({
          request_id: requestId,
          model: model.id,
          backend: backend.id,
          mode,
          tokens: tally.deltaChunks,
          period_units: loops?.detector.period ?? 0
        })
      )
    )

  /** After a loop was logged: the frames (and the failure, under end_stream) go on. */
  const then = (out: Array<Frame>, failure: FailureReason | undefined): FramePull =>
    failure !== undefined ? fail(failure, out) : Effect.suspend(() => {
      pending = out
      return pull
    })

  function loop(): FramePull {
    if (head !== undefined) {
      // The frames read while waiting for the first token go out first, through the same rules.
      const first = collect(head, tally, committedAtMs, loops)
      head = undefined
      if (first.looped) return Effect.andThen(looped(), then(first.out, first.failure))
      if (first.failure !== undefined) return fail(first.failure, first.out)
      pending = first.out
    }
    // One frame per pull, so one write per event: events that arrived in one upstream read
    // still leave as separate writes (the client sees the engine's pacing, not ours).
    if (pending.length > 0) return Effect.succeed(pending.shift()!)
    if (ended) return Effect.fail(Cause.Done())
    return read(clock!.currentTimeMillisUnsafe())
  }

  // The steps of one upstream read, built once (a read allocates no handlers of its own).
  const read = (now: number): FramePull => {
    const untilTotal = totalDeadline - now
    if (untilTotal <= 0) return fail(overTime(), [])
    const idle = timeouts.idleMs
    const wait = Math.min(idle, untilTotal)
    return Effect.catch(
      Effect.flatMap(source.next({ ms: wait, onTimeout: wait === idle ? stalled : overTime }), onFrames),
      onReadFailure
    )
  }
  const onFrames = (frames: ReadonlyArray<Frame> | null): FramePull => {
    if (frames === null) return Effect.flatMap(finish(), loop)
    const { out, failure, looped: found } = collect(frames, tally, clock!.currentTimeMillisUnsafe(), loops)
    if (found) return Effect.andThen(looped(), then(out, failure))
    if (failure !== undefined) return fail(failure, out)
    pending = out
    return loop()
  }
  const onReadFailure = (failure: FailureReason | Cause.Done): FramePull =>
    Cause.isDone(failure) ? Effect.fail(failure) : fail(failure, [])

  // The fiber's clock, read once at the first pull: each read then takes the time without an
  // effect of its own (two per upstream read before).
  let clock: Clock.Clock | undefined
  const pull: FramePull = Effect.suspend(() =>
    clock === undefined
      ? Clock.clockWith((c) => {
        clock = c
        return loop()
      })
      : loop()
  )

  return pull
}

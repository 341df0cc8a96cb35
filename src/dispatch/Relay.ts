/**
 * The stream phase: relay a committed stream to the client, pull by pull.
 *
 * Pull-based end to end: the next upstream read happens only when the HTTP writer asks for
 * more, so a slow client slows the backend read and memory stays at the frames of one
 * upstream read plus the scanner's bounded carry-over. Each pull waits under the idle-gap
 * deadline (and the total deadline). Once committed the gateway never switches backends:
 * a failure ends the stream with an OpenAI error event and marks the request partial.
 */
import { Cause, Clock, Effect, Stream } from "effect"
import type { RequestTracker } from "../accounting/Tracker.ts"
import type { Frame } from "../backends/Contract.ts"
import { type FailureReason, StreamStalled, TotalTimeout } from "../backends/Failure.ts"
import type { Plan } from "../config/Plan.ts"
import type { GatewayRequest } from "../domain/Request.ts"
import type { CommittedStream } from "./Dispatch.ts"
import { streamErrorEvent } from "../http/ErrorResponse.ts"

type Chunk = readonly [Uint8Array, ...Array<Uint8Array>]

const collect = (frames: ReadonlyArray<Frame>, tracker: RequestTracker, now: number) => {
  const out: Array<Uint8Array> = []
  let failure: FailureReason | undefined
  for (const frame of frames) {
    tracker.observe(frame.events, now)
    for (const e of frame.events) if (e._tag === "Error") failure ??= e.failure
    if (failure !== undefined) break
    if (frame.bytes !== undefined) out.push(frame.bytes)
  }
  return { out, failure }
}

export const relay = (
  req: GatewayRequest,
  committed: CommittedStream,
  plan: Plan,
  tracker: RequestTracker
): Stream.Stream<Uint8Array> => {
  const source = committed.source
  const totalDeadline = req.receivedAtMs + plan.timeouts.totalMs
  let ended = false
  const fail = (failure: FailureReason): Effect.Effect<Chunk> => {
    ended = true
    tracker.failureAfterCommit = failure
    tracker.outcome = "partial"
    committed.backend.stats.recordFailure(failure._tag)
    return Effect.succeed([streamErrorEvent(failure)])
  }

  // The frames read while waiting for the first token go out first, through the same rules.
  const head = collect(committed.head, tracker, tracker.committedAtMs ?? req.receivedAtMs)
  let pending: Array<Uint8Array> = head.out
  if (head.failure !== undefined) {
    ended = true
    tracker.failureAfterCommit = head.failure
    tracker.outcome = "partial"
    committed.backend.stats.recordFailure(head.failure._tag)
    pending.push(streamErrorEvent(head.failure))
  }

  const pull: Effect.Effect<Chunk, Cause.Done> = Effect.suspend(function loop(): Effect.Effect<Chunk, Cause.Done> {
    if (pending.length > 0) {
      const chunk = pending as unknown as Chunk
      pending = []
      return Effect.succeed(chunk)
    }
    if (ended) return Effect.fail(Cause.Done())
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const untilTotal = totalDeadline - now
      if (untilTotal <= 0) return fail(new TotalTimeout({ afterMs: plan.timeouts.totalMs }))
      const idle = plan.timeouts.idleMs
      const wait = Math.min(idle, untilTotal)
      return source.next.pipe(
        Effect.timeoutOrElse({
          duration: wait,
          orElse: () =>
            Effect.fail<FailureReason>(
              wait === idle ? new StreamStalled({ afterMs: idle }) : new TotalTimeout({ afterMs: plan.timeouts.totalMs })
            )
        }),
        Effect.flatMap((frames): Effect.Effect<Chunk, Cause.Done> => {
          if (frames === null) {
            ended = true
            tracker.outcome ??= "completed"
            return loop()
          }
          return Effect.flatMap(Clock.currentTimeMillis, (at) => {
            const { out, failure } = collect(frames, tracker, at)
            if (failure !== undefined) {
              pending = out
              return Effect.flatMap(fail(failure), (errorChunk) => {
                pending.push(errorChunk[0])
                return loop()
              })
            }
            pending = out
            return loop()
          })
        }),
        Effect.catch((failure: FailureReason | Cause.Done) =>
          Cause.isDone(failure) ? Effect.fail(failure) : fail(failure)
        )
      )
    })
  })

  return Stream.fromPull(Effect.succeed(pull))
}

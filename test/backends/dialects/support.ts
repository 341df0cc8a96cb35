/**
 * Helpers shared by the dialect unit tests: splitting bytes at arbitrary points, running a
 * FrameSource to its end over an in-memory body, normalising frames for comparison, and
 * building an UpstreamCall. Test-only; never imported by src/.
 */
import { Effect, Exit } from "effect"
import { Readable } from "node:stream"
import { upstreamCall } from "../../support/Calls.ts"
import type { CallKind, Frame, FrameSource, TokenEvent, UpstreamCall } from "../../../src/backends/Contract.ts"
import type { FailureReason } from "../../../src/backends/Failure.ts"

/** Splits `bytes` at the given cut points (any order, duplicates and out-of-range ignored). */
export const splitAt = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Buffer> => {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b)
  const out: Array<Buffer> = []
  let start = 0
  for (const p of points) {
    out.push(Buffer.from(bytes.subarray(start, p)))
    start = p
  }
  out.push(Buffer.from(bytes.subarray(start)))
  return out
}

/** A body that delivers exactly these chunks (one `read()` each). */
export const bodyOf = (chunks: ReadonlyArray<Uint8Array>): Readable => Readable.from(chunks.map((c) => Buffer.from(c)))

export const eventJson = (e: TokenEvent): unknown =>
  e._tag === "Error"
    ? { _tag: "Error", failure: { _tag: e.failure._tag, message: e.failure.message } }
    : e

/** Frames as (all bytes joined, all events), which is what a client and the tracker see. */
export const flatten = (frames: ReadonlyArray<Frame>) => ({
  text: Buffer.concat(frames.flatMap((f) => (f.bytes === undefined ? [] : [Buffer.from(f.bytes)]))).toString("utf8"),
  events: frames.flatMap((f) => f.events.map(eventJson))
})

/** Pulls a source to its end; the failure, if any, is returned alongside the frames read. */
export const drain = async (source: FrameSource) => {
  const frames: Array<Frame> = []
  const exit = await Effect.runPromiseExit(Effect.gen(function*() {
    while (true) {
      const batch = yield* source.next()
      if (batch === null) return
      frames.push(...batch)
    }
  }))
  const failure: FailureReason | undefined = Exit.isFailure(exit)
    ? exit.cause.reasons.flatMap((r) => (r._tag === "Fail" ? [r.error] : []))[0]
    : undefined
  return { frames, failure }
}

export const callOf = (
  kind: CallKind,
  body: { readonly [key: string]: unknown },
  options: { readonly upstreamModel?: string; readonly requestId?: string } = {}
): UpstreamCall => upstreamCall(kind, body, options)

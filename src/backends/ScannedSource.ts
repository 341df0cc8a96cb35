/**
 * A frame source over an upstream body cut into items by an incremental scanner (SSE
 * events, NDJSON lines): the read loop every dialect's Stream file shares. The dialect
 * supplies how items become frames and when the stream has ended cleanly; this module owns
 * the rules around them: a read past the end of a clean stream yields nothing, bytes that
 * cannot be scanned are a `MalformedChunk`, and a body that closes before the clean end is
 * a `MidStreamError`.
 */
import { Effect } from "effect"
import type { Readable } from "node:stream"
import type { Frame, FrameSource, ReadDeadline } from "./Contract.ts"
import { type FailureReason, MalformedChunk, MidStreamError } from "./Failure.ts"
import { pullBody, readFailure, type StreamingUpstreamResponse } from "./Upstream.ts"

export interface Scanner<Item> {
  /** The items a chunk completed; throws when the input cannot be scanned. */
  readonly feed: (chunk: Uint8Array) => Array<Item>
  /** At end of body: an item left without its terminator. */
  readonly flush: () => Item | undefined
  readonly buffered: number
}

/** A pull over a body: the next chunk, or null at the end (`Upstream.pullBody`, `StreamingUpstreamResponse.pull`). */
export type BodyPull = (within?: ReadDeadline) => Effect.Effect<Buffer | null, FailureReason>

/** An upstream body to scan: a streamed answer from `UpstreamPool.stream`, or a Node readable (tests, other callers). */
export type StreamBody = Readable | StreamingUpstreamResponse

/** The pull over either kind of body. */
export const pullOf = (body: StreamBody): BodyPull =>
  "pull" in body ? body.pull(readFailure) : pullBody(body, readFailure)

export const scanned = <Item>(options: {
  readonly status: number
  readonly body: StreamBody
  readonly scanner: Scanner<Item>
  readonly convert: (items: ReadonlyArray<Item>) => Array<Frame>
  /** The stream reached its clean end (nothing after it is read). */
  readonly done: () => boolean
  /** The body may close now without that being a failure. */
  readonly complete: () => boolean
  /** What the backend did not send, e.g. "[DONE]". */
  readonly endMarker: string
  /** Describes a scanning error. */
  readonly malformed: (e: unknown) => string
}): FrameSource => {
  const read = pullOf(options.body)
  const onChunk = (chunk: Buffer | null): Effect.Effect<ReadonlyArray<Frame> | null, FailureReason> => {
    if (chunk === null) {
      const last = options.scanner.flush()
      const tail = last === undefined ? [] : options.convert([last])
      if (tail.length > 0) return Effect.succeed(tail)
      if (options.complete()) return Effect.succeed(null)
      return Effect.fail(
        new MidStreamError({ message: `the backend closed the stream before ${options.endMarker}`, code: undefined })
      )
    }
    if (options.done()) return Effect.succeed([])
    let items: Array<Item>
    try {
      items = options.scanner.feed(chunk)
    } catch (e) {
      return Effect.fail(new MalformedChunk({ message: options.malformed(e) }))
    }
    return Effect.succeed(options.convert(items))
  }
  return {
    status: options.status,
    next: (within?: ReadDeadline) => Effect.flatMap(read(within), onChunk),
    buffered: () => options.scanner.buffered
  }
}

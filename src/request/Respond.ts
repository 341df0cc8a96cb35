/**
 * The stream phase: what the client receives. A committed stream's frames (the relay's,
 * dispatch/Relay.ts) go through the response policies (text filters, safe across chunk
 * boundaries: Policies.ts) and the inbound API's encoder, one write per frame; a unary
 * answer's texts go through the same filters. When no response policy is selected each
 * frame goes straight to the encoder, which hands an OpenAI frame's own bytes back untouched
 * (the common path costs one call) and re-encodes for a translating inbound API; at a clean
 * end the encoder's closing bytes (Anthropic's message_stop, response.completed) go last.
 *
 * A failure after the first byte (the relay's last frame, a filter's block, an extension's
 * failure) ends the stream with the encoder's error event; `Reply` records it for the
 * outcome (partial). Reply is written here only.
 */
import { Cause, Effect, Equal, Stream } from "effect"
import type { HttpServerResponse } from "effect/http"
import type { Frame, UnaryResult } from "../backends/Contract.ts"
import type { FramePull } from "../dispatch/Relay.ts"
import type { ExtensionFailed } from "./Errors.ts"
import type { StreamEncoder } from "./Inbound.ts"
import type { FilterChain, Step } from "./Policies.ts"
import * as WireErrors from "./WireErrors.ts"
import type { WireError } from "./WireErrors.ts"

/** What the response phase sent: the status, and how a committed stream ended badly (if it did). */
export class Reply {
  status = 0
  /** The code of the error event that ended a committed stream (or of a blocked unary answer). */
  failedAfterCommit: string | undefined = undefined
}

/**
 * A streamed response that hashes and compares by identity. When the client leaves after the
 * headers, @effect/platform-node's handler adds `Die(response)` to the request's interruption
 * and `Cause.combine` hashes and compares every reason: a plain response is hashed
 * structurally, key by key through its headers and its body's Stream object (~25 µs of CPU per
 * aborted stream, `npm run bench:abort-cause`), thousands of times over when clients leave
 * at once. The body is marked too: a middleware that adds headers (CORS) builds a new
 * response around the same body.
 */
export const byIdentity = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse => {
  Equal.byReferenceUnsafe(response.body)
  return Equal.byReferenceUnsafe(response)
}

type Chunk = readonly [Uint8Array, ...Array<Uint8Array>]

/** The text of a frame's deltas (undefined: it carries none). */
const deltaText = (frame: Frame): string | undefined => {
  let text: string | undefined
  for (const e of frame.events) if (e._tag === "Delta") text = (text ?? "") + e.text
  return text
}

/** A frame that ends the answer (its finish or usage): held text goes out before it. */
const ends = (frame: Frame): boolean => frame.events.some((e) => e._tag === "Finish" || e._tag === "Usage")

/** The stream's body: frames → filters → encoder, one write per pull. */
export const streamBody = (
  frames: FramePull,
  encoder: StreamEncoder,
  filters: FilterChain | undefined,
  reply: Reply
): Stream.Stream<Uint8Array> => {
  const queue: Array<Uint8Array> = []
  let done = false
  let flushed = false

  const stop = (wire: WireError, code: string): void => {
    reply.failedAfterCommit = code
    queue.push(encoder.error(wire))
    done = true
  }

  const blocked = (step: Extract<Step, { _tag: "Block" }>): void =>
    stop(WireErrors.blockedToWire(step.message), "content_blocked")

  const failed = (e: ExtensionFailed): void => stop(WireErrors.extensionToWire(e), "extension_failed")

  /** Releases what the filters hold (once): at the frame that ends the answer, or at the end. */
  const release = (f: FilterChain): Effect.Effect<Step, ExtensionFailed> => {
    if (flushed) return Effect.succeed({ _tag: "Emit", text: "" })
    flushed = true
    return f.end
  }

  const emit = (frame: Frame, text: string | undefined): void => {
    const bytes = encoder.frame(frame, text)
    if (bytes !== undefined) queue.push(bytes)
  }

  /**
   * One frame through the filters into the queue. A frame that ends the answer (finish,
   * usage) first releases what the filters hold, so the text keeps its order: the frame's
   * own filtered text and the released text go out together, then the frame without text.
   */
  const filtered = (f: FilterChain, frame: Frame): Effect.Effect<void, ExtensionFailed> =>
    Effect.gen(function*() {
      const text = deltaText(frame)
      const pushed = text === undefined ? undefined : yield* f.push(text)
      if (pushed !== undefined && pushed._tag === "Block") return blocked(pushed)
      const out = pushed?.text
      if (!ends(frame)) return emit(frame, out === text ? undefined : out)
      const released = yield* release(f)
      if (released._tag === "Block") return blocked(released)
      const all = (out ?? "") + released.text
      // Nothing held and nothing changed: the frame's own bytes.
      if (all === (text ?? "")) return emit(frame, undefined)
      if (all !== "") queue.push(encoder.text(all))
      emit(frame, text === undefined ? undefined : "")
    })

  /**
   * One frame into the queue: its error, or its bytes (through the filters when there are
   * any). Undefined when that was done at once (no filters: the common path, per chunk).
   */
  const take = (frame: Frame): Effect.Effect<void> | undefined => {
    for (const e of frame.events) {
      if (e._tag === "Error") {
        stop(WireErrors.reasonToWire(e.failure), e.failure._tag)
        return undefined
      }
    }
    if (filters === undefined) {
      // The OpenAI encoder hands the frame's own bytes back; a translating API re-encodes.
      emit(frame, undefined)
      return undefined
    }
    return filtered(filters, frame).pipe(Effect.catch((e) => Effect.sync(() => failed(e))))
  }

  const onFrame = (frame: Frame): Effect.Effect<Chunk, Cause.Done> => {
    const taking = take(frame)
    return taking === undefined ? next() : Effect.flatMap(taking, next)
  }

  const onEnd = (end: Cause.Done): Effect.Effect<Chunk, Cause.Done> => {
    done = true
    // The upstream ended cleanly: what the filters still hold goes out, then the encoder's close.
    const close = (): Effect.Effect<Chunk, Cause.Done> => {
      const last = reply.failedAfterCommit === undefined ? encoder.end?.() : undefined
      if (last !== undefined && last.length > 0) queue.push(last)
      return queue.length > 0 ? next() : Effect.fail(end)
    }
    if (filters === undefined || flushed) return close()
    return release(filters).pipe(
      Effect.map((step) => {
        if (step._tag === "Block") blocked(step)
        else if (step.text !== "") queue.push(encoder.text(step.text))
      }),
      Effect.catch((e) => Effect.sync(() => failed(e))),
      Effect.flatMap(close)
    )
  }

  /** The next frame through take, built once: a pull allocates no effect of its own. */
  const fromUpstream: Effect.Effect<Chunk, Cause.Done> = Effect.catch(Effect.flatMap(frames, onFrame), onEnd)

  function next(): Effect.Effect<Chunk, Cause.Done> {
    if (queue.length > 0) return Effect.succeed([queue.shift()!] as const)
    if (done) return Effect.fail(Cause.Done())
    return fromUpstream
  }

  const pull: Effect.Effect<Chunk, Cause.Done> = Effect.suspend(next)

  return Stream.fromPull(Effect.succeed(pull))
}

/**
 * A unary answer through the response filters: each choice's text filtered on its own (one
 * chain per choice). Undefined texts: nothing changed, the body goes out as it came.
 */
export const unaryTexts = (
  result: UnaryResult,
  start: Effect.Effect<FilterChain | undefined, ExtensionFailed>
): Effect.Effect<
  { readonly _tag: "Texts"; readonly texts: ReadonlyArray<string> | undefined } | Extract<Step, { _tag: "Block" }>,
  ExtensionFailed
> =>
  Effect.gen(function*() {
    const texts: Array<string> = []
    let changed = false
    for (const text of result.texts) {
      const chain = yield* start
      if (chain === undefined) return { _tag: "Texts", texts: undefined } as const
      const pushed = yield* chain.push(text)
      if (pushed._tag === "Block") return pushed
      const released = yield* chain.end
      if (released._tag === "Block") return released
      const out = pushed.text + released.text
      if (out !== text) changed = true
      texts.push(out)
    }
    return { _tag: "Texts", texts: changed ? texts : undefined } as const
  })

/**
 * The SGLang adapter: the OpenAI-compatible adapter plus SGLang's explicit abort.
 *
 * Every generation carries `rid` = the gateway's request id. A finalizer in the attempt's
 * scope (registered before the upstream request, so it runs after the socket is closed)
 * fires `POST {origin}/abort_request {"rid"}` when the scope closes while the engine may
 * still be working on the request: before its response headers (interrupt, first-token
 * deadline) or mid-stream (client gone, stall, mid-stream error, relay failure). It is not
 * sent when the stream was read to its end, the unary answer's headers arrived, or the attempt
 * failed without the engine holding the request (refused connection, an HTTP error
 * answer). The call is bounded by `abortTimeoutMs` and never fails the finalizer; it goes
 * outside the backend's pool (the abort route lives at the origin, not under /v1, and
 * must not queue behind the pool's busy connections): Node's own fetch, which also keeps
 * undici's client APIs out of the bundle's start path (they load with the first abort).
 *
 * Closing the connection alone is not enough on SGLang: aborts on disconnect have
 * regressed there (ghost requests keep decoding, backends.md §3).
 */
import { Effect, Redacted } from "effect"
import type { Adapter } from "../../Contract.ts"
import type { FailureReason } from "../../Failure.ts"
import type { UpstreamPool } from "../../Upstream.ts"
import * as OpenAI from "../openai/Client.ts"
import { ABORT_PATH, abortBody, withRid } from "./openai_sglang.ts"

export interface Options extends Omit<OpenAI.Options, "dialect"> {
  readonly abortTimeoutMs: number
}

/** Where the engine stands on this attempt's request, as far as the gateway knows. */
type Held = "sending" | "streaming" | "over"

/** Failures after which the engine may still be generating. */
const engineMayHold = (failure: FailureReason): boolean => {
  switch (failure._tag) {
    case "TimeToFirstTokenExceeded":
    case "TotalTimeout":
    case "StreamStalled":
      return true
    default:
      return false
  }
}

/** `POST /abort_request`, bounded, never failing. */
export const abort = (pool: UpstreamPool, rid: string, timeoutMs: number): Effect.Effect<void> =>
  Effect.tryPromise(() => {
    const headers: Record<string, string> = { "content-type": "application/json" }
    if (pool.apiKey !== undefined) headers["authorization"] = `Bearer ${Redacted.value(pool.apiKey)}`
    return fetch(pool.origin + ABORT_PATH, {
      method: "POST",
      headers,
      body: abortBody(rid),
      // as the pool's own requests: a redirect is an answer, never followed with the key
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs)
    }).then((res) => res.arrayBuffer()).then(() => undefined)
  }).pipe(
    Effect.catch((e) => Effect.logDebug("sglang abort_request failed", { rid, error: String(e) })),
    Effect.withSpan("Sglang.abort")
  )

/** Registers the abort finalizer; returns the handle the attempt updates. */
const abortOnClose = (pool: UpstreamPool, rid: string, timeoutMs: number) =>
  Effect.gen(function*() {
    const held: { state: Held } = { state: "sending" }
    yield* Effect.addFinalizer(() => held.state === "over" ? Effect.void : abort(pool, rid, timeoutMs))
    return held
  })

export const make = (pool: UpstreamPool, options: Options): Adapter => {
  const inner = OpenAI.make(pool, { ...options, dialect: "sglang" })
  const settle = (held: { state: Held }) => (failure: FailureReason) =>
    Effect.sync(() => {
      if (held.state === "sending" && !engineMayHold(failure)) held.state = "over"
    })
  return {
    dialect: "sglang",
    capabilities: inner.capabilities,
    stream: (call) =>
      Effect.gen(function*() {
        const held = yield* abortOnClose(pool, call.requestId, options.abortTimeoutMs)
        const source = yield* inner.stream(withRid(call)).pipe(Effect.tapError(settle(held)))
        held.state = "streaming"
        return {
          ...source,
          next: (within) => Effect.tap(source.next(within), (frames) =>
            Effect.sync(() => {
              if (frames === null) held.state = "over"
            }))
        }
      }),
    boundsUnary: inner.boundsUnary === true,
    unary: (call, withinMs) =>
      Effect.gen(function*() {
        if (call.kind === "embedding" || call.kind === "rerank") return yield* inner.unary(call, withinMs)
        const held = yield* abortOnClose(pool, call.requestId, options.abortTimeoutMs)
        const response = yield* inner.unary(withRid(call), withinMs).pipe(Effect.tapError(settle(held)))
        // A 2xx unary answer means the engine finished the request: nothing left to abort.
        held.state = "over"
        return response
      })
  }
}

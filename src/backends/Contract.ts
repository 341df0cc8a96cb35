/**
 * The backend contract: what every dialect adapter yields, whatever wire it speaks.
 *
 * A streaming attempt yields `Frame`s: the bytes to send to the client (already in the
 * client's dialect: the original bytes when dialects match, translated otherwise) and the
 * typed token events read from them. A unary attempt resolves once the response headers
 * say success (`UnaryResponse`), then reads the whole client-dialect body plus its usage:
 * a failure in that second phase comes after the engine did the whole generation, which
 * the dispatcher must know (it does not retry it by default). Failures are
 * `FailureReason`s, never strings. Adapters own no request state beyond the attempt's
 * scope: closing the scope closes the upstream socket.
 */
import { Effect, type Scope } from "effect"
import type { StreamEvent } from "../api/Events.ts"
import type { FinishReason } from "../api/Events.ts"
import * as Calls from "../api/openai/Calls.ts"
import type { InferenceCall } from "../api/openai/Calls.ts"
import type { RequestId } from "../domain/Ids.ts"
import type { Usage } from "../domain/Usage.ts"
import { type FailureReason, TotalTimeout } from "./Failure.ts"

export type { FinishReason } from "../api/Events.ts"
export type { CallKind } from "../api/openai/Calls.ts"

export const finishReason = (raw: unknown): FinishReason | undefined => {
  switch (raw) {
    case null:
    case undefined:
      return undefined
    case "stop":
    case "length":
    case "tool_calls":
    case "content_filter":
    case "function_call":
    case "error":
      return raw
    default:
      return "other"
  }
}

/**
 * Typed token events inside the gateway (ARCHITECTURE.md §4): the stream events every
 * inbound encoder reads (api/Events.ts), plus a failure that ends the stream.
 */
export type TokenEvent = StreamEvent | { readonly _tag: "Error"; readonly failure: FailureReason }

export interface Frame {
  /** Bytes for the client, or undefined when the event is consumed by the gateway. */
  readonly bytes: Uint8Array | undefined
  readonly events: ReadonlyArray<TokenEvent>
}

/**
 * How long a read may wait for bytes, and the failure when it does not get them (the
 * first-token deadline before commit, the idle gap after it). A timer armed only while
 * a read actually waits: cheaper than racing every read against a sleeping fiber.
 */
export interface ReadDeadline {
  readonly ms: number
  readonly onTimeout: () => FailureReason
}

/** One upstream streaming response: `next` yields the frames of the next upstream read, or null at the end. */
export interface FrameSource {
  readonly status: number
  readonly next: (within?: ReadDeadline) => Effect.Effect<ReadonlyArray<Frame> | null, FailureReason>
  /** Bytes held waiting for the rest of an event (the bounded stream buffer). */
  readonly buffered: () => number
}

export interface UnaryResult {
  readonly status: number
  readonly body: Uint8Array
  readonly contentType: string
  readonly usage: Usage | undefined
  readonly finish: FinishReason | undefined
  /** The generated text of each choice (chat content, completion text), for the repetition check. */
  readonly texts: ReadonlyArray<string>
}

/** A non-streaming answer whose headers said success: the engine has done the generation. */
export interface UnaryResponse {
  readonly status: number
  /**
   * Reads and decodes the whole answer. A failure here (a broken or malformed body, an
   * error object inside a 200) comes after the backend answered: a retry would redo the
   * whole generation.
   */
  readonly read: Effect.Effect<UnaryResult, FailureReason>
}

/**
 * One attempt's request, in the public (OpenAI) dialect: the decoded call (`kind` and its
 * schema-typed `body`, which keeps fields the gateway does not know) plus what the attempt
 * adds. Dialects read the body's fields through its type.
 */
export type UpstreamCall = InferenceCall & UpstreamCallInfo

export interface NativeBody {
  readonly dialect: "anthropic"
  readonly bytes: Uint8Array
  /** The model as the client's body names it. */
  readonly model: string
}

export interface UpstreamCallInfo {
  readonly requestId: RequestId
  /**
   * The client's raw body bytes while the body is the client's own (forwarded untouched when
   * nothing needs rewriting); undefined once something changed it.
   */
  readonly rawBody: Uint8Array | undefined
  /**
   * The client's body in a backend dialect's own API (the Anthropic Messages inbound API),
   * while unchanged: an adapter of that dialect sends it as it is (only the model renamed
   * when the backend names it otherwise) and answers with its backend's own bytes (frames
   * carry them untouched, their events still read from them). Other adapters ignore it.
   */
  readonly native?: NativeBody | undefined
  readonly upstreamModel: string
  readonly stream: boolean
  /** Whether the client asked for the usage chunk (`stream_options.include_usage`). */
  readonly clientWantsUsage: boolean
  /**
   * The output cap the gateway reserved for: the client's `max_tokens`, else the model's
   * default. Dialects whose API requires a cap (Anthropic) send this one, so the backend
   * never generates more than the reservation covers.
   */
  readonly maxOutputTokens: number
}

/** The attempt's call with `fields` set on its body; the raw bytes no longer match, so they go. */
export const withBodyFields = (call: UpstreamCall, fields: { readonly [key: string]: unknown }): UpstreamCall => ({
  ...call,
  ...Calls.withFields(call, fields),
  rawBody: undefined,
  native: undefined
})

/** The bytes to send: the client's own when the body is unchanged, else the body serialized. */
export const bodyBytes = (call: UpstreamCall): Uint8Array | string => call.rawBody ?? JSON.stringify(call.body)

export interface Capabilities {
  readonly chat: boolean
  readonly completion: boolean
  readonly embedding: boolean
  /** `/rerank` (query + documents → relevance scores), passed through untouched. */
  readonly rerank: boolean
}

/** What every adapter is built with (from the plan's timeouts and the gateway's bounds). */
export interface AdapterOptions {
  readonly firstTokenMs: number
  readonly totalMs: number
  readonly maxEventBytes: number
  readonly maxResponseBytes: number
}

/** A dialect adapter bound to one backend endpoint. */
export interface Adapter {
  /** The registered dialect name. */
  readonly dialect: string
  /** Its engines speak vLLM's `kv_transfer_params` (prefill/decode disaggregation). */
  readonly kvTransfer?: boolean
  readonly capabilities: Capabilities
  /** Sends a streaming request; resolves once the response headers are in and say success. */
  readonly stream: (call: UpstreamCall) => Effect.Effect<FrameSource, FailureReason, Scope.Scope>
  /**
   * Sends a non-streaming request; resolves once the response headers are in and say success.
   * `withinMs`, when given, is what is left of the request's total deadline: an adapter that
   * declares `boundsUnary` fails both phases (the headers, then `read`) with `TotalTimeout`
   * once it has passed, so the dispatcher need not race them (a fiber and a timer per phase).
   */
  readonly unary: (call: UpstreamCall, withinMs?: number) => Effect.Effect<UnaryResponse, FailureReason, Scope.Scope>
  /**
   * Whether `unary` honours `withinMs` for the headers and the body. An adapter without it
   * (an extension's own) is bounded by the dispatcher instead, as before.
   */
  readonly boundsUnary?: boolean
}

/**
 * What is left of a unary call's `ms` whenever it is asked (the headers' wait, then the
 * body's read), each as a `ReadDeadline` that fails with `TotalTimeout` (the request's total
 * deadline, `totalMs`, is what ran out). Measured on the monotonic clock, like the timers.
 */
export const unaryDeadline = (ms: number, totalMs: number): () => ReadDeadline => {
  const endsAt = performance.now() + ms
  const onTimeout = () => new TotalTimeout({ afterMs: totalMs })
  return () => ({ ms: Math.max(0, endsAt - performance.now()), onTimeout })
}

/** Both phases of a unary call, for callers that do not need to tell them apart (probes, prefill legs). */
export const unaryAll = (adapter: Adapter, call: UpstreamCall): Effect.Effect<UnaryResult, FailureReason, Scope.Scope> =>
  Effect.flatMap(adapter.unary(call), (response) => response.read)

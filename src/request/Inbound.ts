/**
 * An inbound API: how one client-facing endpoint decodes its requests into the gateway's
 * typed call and encodes what the pipeline produces (errors, a stream's frames, a unary
 * answer) back in its own wire format. The pipeline (Pipeline.ts) is the same for every
 * inbound API; http/ supplies the implementations (OpenAI.ts, Anthropic.ts, Responses.ts)
 * and the routes that bind them to paths. An API that translates (Anthropic Messages, the
 * Responses API) decodes to the same chat call and keeps what its answers repeat (`meta`).
 *
 * Contract only. Must never: decide a status (request/WireErrors.ts does) or do I/O.
 */
import type { Effect, Stream } from "effect"
import type { HttpServerResponse } from "effect/http"
import type { CallKind, InferenceCall } from "../api/openai/Calls.ts"
import type { Frame, UnaryResult } from "../backends/Contract.ts"
import type { JsonObject } from "./Decode.ts"
import type { InvalidBody } from "./Errors.ts"
import type { LimitKind } from "./Limits.ts"
import type { WireError } from "./WireErrors.ts"

/** Encodes one stream for the client (one encoder per response: it may keep state). */
export interface StreamEncoder {
  /**
   * The bytes of one frame, or undefined when it sends nothing. `text`, when given, replaces
   * the frame's generated text (response policies changed it; "" when they hold it back).
   */
  readonly frame: (frame: Frame, text: string | undefined) => Uint8Array | undefined
  /** Generated text released at the end by the response policies, before the frame that ends the answer. */
  readonly text: (text: string) => Uint8Array
  /** The last event of a stream that fails after its first byte. */
  readonly error: (wire: WireError) => Uint8Array
  /** What closes a stream that ended normally (Anthropic's message_stop, response.completed), if anything. */
  readonly end?: () => Uint8Array | undefined
}

/** What decode produced: the call, whether the client's bytes may go upstream as they are, and the API's own facts. */
export interface Decoded<M> {
  readonly call: InferenceCall
  /** False for a translating API: the client's bytes are not the call's body. */
  readonly forwardRaw: boolean
  readonly meta: M
}

/** What an answer's encoder knows about its request. */
export interface ReplyContext<M> {
  readonly requestId: string
  /** The model as the client named it. */
  readonly model: string
  readonly meta: M
  /**
   * The backend that answers speaks this API natively and got the client's own body
   * (`Inbound.native`): its bytes are already this API's, and go out as they are.
   */
  readonly passthrough: boolean
}

export interface Inbound<M = void> {
  /** What the body is decoded as (and the span's name: `Gateway.<kind>`). */
  readonly kind: CallKind
  /**
   * The backend dialect whose own API this one is (Anthropic Messages): a backend of that
   * dialect gets the client's bytes and answers in its own (no translation round-trip),
   * while nothing rewrote the request and no response policy reads the answer.
   */
  readonly native?: "anthropic"
  /** Which item counts the decode-time limits check on the client's own body (Limits.ts). */
  readonly limits: LimitKind
  /** The parsed body (bounded by the pre-scan and the limits) → the typed call, or the client's 400. */
  readonly decode: (json: JsonObject) => Effect.Effect<Decoded<M>, InvalidBody>
  /** An error answer in this API's envelope, with the status and headers the classification gives. */
  readonly error: (wire: WireError, requestId: string) => HttpServerResponse.HttpServerResponse
  readonly encoder: (context: ReplyContext<M>) => StreamEncoder
  /** The response of a committed stream (its body already encoded, headers from the pipeline). */
  readonly streamResponse: (
    body: Stream.Stream<Uint8Array>,
    headers: Readonly<Record<string, string>>
  ) => HttpServerResponse.HttpServerResponse
  /** The response of a unary answer (`body` already encoded). */
  readonly unaryResponse: (
    result: UnaryResult,
    body: Uint8Array,
    headers: Readonly<Record<string, string>>
  ) => HttpServerResponse.HttpServerResponse
  /**
   * A unary answer's body for the client. `texts`, when given, replaces each choice's
   * generated text (response policies changed it).
   */
  readonly unary: (result: UnaryResult, texts: ReadonlyArray<string> | undefined, context: ReplyContext<M>) => Uint8Array
}

/**
 * An inbound API: how one client-facing endpoint decodes its requests into the gateway's
 * typed call and encodes what the pipeline produces (errors, a stream's frames, a unary
 * answer) back in its own wire format. The pipeline (Pipeline.ts) is the same for every
 * inbound API; http/ supplies the implementations (the OpenAI endpoints today) and the
 * routes that bind them to paths.
 *
 * Contract only. Must never: decide a status (request/WireErrors.ts does) or do I/O.
 */
import type { Effect, Stream } from "effect"
import type { HttpServerResponse } from "effect/http"
import type { CallKind, InferenceCall } from "../api/openai/Calls.ts"
import type { Frame, UnaryResult } from "../backends/Contract.ts"
import type { JsonObject } from "./Decode.ts"
import type { InvalidBody } from "./Errors.ts"
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
}

export interface Inbound {
  /** What the body is decoded as (and the span's name: `Gateway.<kind>`). */
  readonly kind: CallKind
  /** The parsed body (bounded by the pre-scan and the limits) → the typed call, or the client's 400. */
  readonly decode: (json: JsonObject) => Effect.Effect<InferenceCall, InvalidBody>
  /** An error answer in this API's envelope, with the status and headers the classification gives. */
  readonly error: (wire: WireError, requestId: string) => HttpServerResponse.HttpServerResponse
  readonly encoder: () => StreamEncoder
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
  readonly unary: (result: UnaryResult, texts: ReadonlyArray<string> | undefined) => Uint8Array
}

/**
 * The OpenAI Responses inbound API: `POST /v1/responses` as the pipeline sees it
 * (request/Inbound.ts). Bodies decode with the Responses schemas and translate to the
 * gateway's chat call (api/responses/responses_openai.ts); the answer (OpenAI chat bytes and
 * typed token events from every dialect) is encoded back as a `response` object or the typed
 * `response.*` SSE events (api/responses/*); errors answer in the OpenAI envelope.
 *
 * `previous_response_id` is refused with a 400: the gateway keeps no response state (every
 * response says `store: false`), so a conversation is continued by sending it whole as `input`.
 *
 * Owns the Responses wire shapes of responses. Must never: decide a status (WireErrors.ts
 * does) or translate a request itself (the api/ translators do).
 */
import { Clock, Effect, Result } from "effect"
import { HttpServerResponse } from "effect/http"
import { isRecord } from "../api/Inbound.ts"
import { response, type ResponseHead } from "../api/responses/Response.ts"
import { decode } from "../api/responses/responses_openai.ts"
import { ResponseStreamEncoder } from "../api/responses/Stream.ts"
import { fromEnvelope } from "../api/WireError.ts"
import type { UnaryResult } from "../backends/Contract.ts"
import type { JsonObject } from "../request/Decode.ts"
import { InvalidBody } from "../request/Errors.ts"
import type { Inbound, ReplyContext, StreamEncoder } from "../request/Inbound.ts"
import { encodeFrame } from "./Reencode.ts"
import * as ErrorResponse from "./ErrorResponse.ts"
import { unaryWithTexts } from "./OpenAI.ts"

/** What a response repeats of its request, and when it was created (unix seconds). */
export interface ResponseMeta {
  readonly echo: Readonly<Record<string, unknown>>
  readonly createdAt: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const nowSeconds = () => Math.floor(Date.now() / 1000)

const head = (context: ReplyContext<ResponseMeta>): ResponseHead => ({
  id: `resp_${context.requestId}`,
  createdAt: context.meta.createdAt,
  model: context.model,
  echo: context.meta.echo
})

const streamEncoder = (context: ReplyContext<ResponseMeta>): StreamEncoder => {
  const out = new ResponseStreamEncoder(head(context))
  return {
    frame: (frame, text) => encodeFrame((event) => out.push(event), frame, text),
    text: (text) => out.push({ _tag: "Delta", text }),
    error: (wire) => out.fail(fromEnvelope(wire.status, wire.body, wire.retryAfterMs)),
    end: () => out.end(nowSeconds())
  }
}

const unary = (result: UnaryResult, texts: ReadonlyArray<string> | undefined, context: ReplyContext<ResponseMeta>) => {
  const bytes = texts === undefined ? result.body : unaryWithTexts(result, texts)
  let body: unknown
  try {
    body = JSON.parse(decoder.decode(bytes))
  } catch {
    body = {}
  }
  return encoder.encode(JSON.stringify(response(body, result.usage, result.finish, head(context), nowSeconds())))
}

const decodeResponses = (json: JsonObject) =>
  Effect.gen(function*() {
    const previous = json["previous_response_id"]
    if (typeof previous === "string") {
      return yield* new InvalidBody({
        message:
          "previous_response_id is not supported: this gateway stores no responses (they are answered with store: false). Send the whole conversation as input.",
        param: "previous_response_id"
      })
    }
    const decoded = decode(json, undefined)
    if (Result.isFailure(decoded)) return yield* new InvalidBody({ message: decoded.failure.message, param: decoded.failure.param })
    const createdAt = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const echo = isRecord(decoded.success.echo) ? { ...decoded.success.echo, store: false } : {}
    return { call: decoded.success.call, forwardRaw: false, meta: { echo, createdAt } }
  })

/** `POST /v1/responses`. */
export const responses: Inbound<ResponseMeta> = {
  kind: "chat",
  limits: "responses",
  decode: decodeResponses,
  error: (wire, requestId) => ErrorResponse.response(wire, requestId),
  encoder: streamEncoder,
  streamResponse: (body, headers) => HttpServerResponse.stream(body, { contentType: "text/event-stream", headers }),
  unary,
  unaryResponse: (result, body, headers) =>
    HttpServerResponse.uint8Array(body, { status: result.status, contentType: "application/json", headers })
}

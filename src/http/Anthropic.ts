/**
 * The Anthropic Messages inbound API: `POST /v1/messages` and `POST /v1/messages/count_tokens`
 * as the pipeline sees them (request/Inbound.ts). Bodies decode with the Anthropic schemas
 * and translate to the gateway's chat call (api/anthropic/messages_openai.ts); the answer,
 * which every dialect adapter produces as OpenAI chat bytes and typed token events, is
 * encoded back as an Anthropic `message` or Anthropic's SSE events (api/anthropic/*); errors
 * answer in Anthropic's envelope (`{"type":"error","error":{...}}`, 529 for overload) with
 * the `request-id` header Anthropic's SDK reads. Against an Anthropic-dialect backend the
 * client's bytes go upstream as they are and the backend's bytes come back as they are
 * (`passthrough`: the pipeline arranges it only while no policy rewrites the request or
 * reads the answer); the typed events are still read from them for accounting.
 *
 * Owns the Anthropic wire shapes of responses. Must never: decide a status (WireErrors.ts
 * does) or translate a request itself (the api/ translators do).
 */
import { Effect, Result } from "effect"
import { HttpServerResponse } from "effect/http"
import { errorAnswer, errorEvent } from "../api/anthropic/Errors.ts"
import { message } from "../api/anthropic/Message.ts"
import { countTokensBody, decode, decodeCountTokens } from "../api/anthropic/messages_openai.ts"
import { MessageStreamEncoder } from "../api/anthropic/Stream.ts"
import { type ChatCall, namedEvent, type Refused } from "../api/Inbound.ts"
import { fromEnvelope } from "../api/WireError.ts"
import type { UnaryResult } from "../backends/Contract.ts"
import type { JsonObject } from "../request/Decode.ts"
import { InvalidBody } from "../request/Errors.ts"
import type { Inbound, ReplyContext, StreamEncoder } from "../request/Inbound.ts"
import { encodeFrame } from "./Reencode.ts"
import type { WireError } from "../request/WireErrors.ts"
import { unaryWithTexts } from "./OpenAI.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const canonical = (wire: WireError) => fromEnvelope(wire.status, wire.body, wire.retryAfterMs)

/** Anthropic's SDK reads `request-id`; the gateway's own `x-request-id` stays too. */
const withRequestId = (headers: Readonly<Record<string, string>>, requestId: string | undefined) =>
  requestId === undefined ? headers : { ...headers, "request-id": requestId }

const head = (context: ReplyContext<void>) => ({ id: `msg_${context.requestId}`, model: context.model })

/**
 * The frame's typed events through the Anthropic encoder. `text`, when given, replaces the
 * frame's generated text (response policies changed it): one answer delta, or none.
 */
const streamEncoder = (context: ReplyContext<void>): StreamEncoder => {
  if (context.passthrough) return passthrough()
  const out = new MessageStreamEncoder(head(context))
  return {
    frame: (frame, text) => encodeFrame((event) => out.push(event), frame, text),
    text: (text: string) => out.push({ _tag: "Delta", text }),
    error: (wire) => out.fail(canonical(wire)),
    end: () => out.end()
  }
}

/**
 * The backend's own Anthropic events, untouched (it sends message_stop itself). No response
 * policy runs on this path, so the text is never replaced; a failure the gateway detects
 * (a stall, a deadline, an upstream error event) ends the stream with its error event.
 */
const passthrough = (): StreamEncoder => ({
  frame: (frame) => frame.bytes,
  // Only a response policy releases text, and none runs on this path; kept well-formed anyway.
  text: (text) => encoder.encode(namedEvent("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } })),
  error: (wire) => encoder.encode(errorEvent(canonical(wire)))
})

const refusal = (e: Refused) => new InvalidBody({ message: e.message, param: e.param })

const decodeWith = (translate: (raw: unknown) => Result.Result<ChatCall, Refused>) => (json: JsonObject) =>
  Result.match(translate(json), {
    onFailure: (e) => Effect.fail(refusal(e)),
    onSuccess: (call) => Effect.succeed({ call, forwardRaw: false, meta: undefined })
  })

const errorResponse = (wire: WireError, requestId: string) => {
  const answer = errorAnswer(canonical(wire), requestId)
  const { "content-type": _type, ...headers } = answer.headers
  return HttpServerResponse.text(answer.body, {
    status: answer.status,
    contentType: "application/json",
    headers: { ...headers, "x-request-id": requestId, "request-id": requestId }
  })
}

/** The unary `message` body (texts replaced first when the response policies changed them). */
const unary = (result: UnaryResult, texts: ReadonlyArray<string> | undefined, context: ReplyContext<void>): Uint8Array => {
  // The backend's own message (no response policy runs on this path).
  if (context.passthrough && texts === undefined) return result.body
  const bytes = texts === undefined ? result.body : unaryWithTexts(result, texts)
  let body: unknown
  try {
    body = JSON.parse(decoder.decode(bytes))
  } catch {
    body = {}
  }
  return encoder.encode(JSON.stringify(message(body, result.usage, result.finish, head(context))))
}

/** `POST /v1/messages`. */
export const messages: Inbound = {
  kind: "chat",
  native: "anthropic",
  limits: "messages",
  decode: decodeWith(decode),
  error: errorResponse,
  encoder: streamEncoder,
  streamResponse: (body, headers) =>
    HttpServerResponse.stream(body, { contentType: "text/event-stream", headers: withRequestId(headers, headers["x-request-id"]) }),
  unary,
  unaryResponse: (result, body, headers) =>
    HttpServerResponse.uint8Array(body, {
      status: result.status,
      contentType: "application/json",
      headers: withRequestId(headers, headers["x-request-id"])
    })
}

/** `POST /v1/messages/count_tokens`: decoded like a message without `max_tokens`; never dispatched. */
export const countTokens: Inbound = { ...messages, decode: decodeWith(decodeCountTokens) }

export const countAnswer = (inputTokens: number, requestId: string) =>
  HttpServerResponse.text(JSON.stringify(countTokensBody(inputTokens)), {
    status: 200,
    contentType: "application/json",
    headers: { "x-request-id": requestId, "request-id": requestId }
  })

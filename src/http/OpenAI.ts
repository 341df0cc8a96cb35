/**
 * The OpenAI inbound API: `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and
 * `/v1/rerank` as the pipeline sees them (request/Inbound.ts). Bodies decode with the OpenAI
 * wire schemas; errors answer in the OpenAI envelope; a stream's frames already carry
 * OpenAI chunk bytes (every dialect adapter produces them), so they pass through untouched
 * unless a response policy changed their text, in which case the chunk is rewritten.
 *
 * Owns the OpenAI wire shapes of responses. Must never: decide a status (WireErrors.ts does).
 */
import { Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import type { CallKind } from "../api/openai/Calls.ts"
import { sseEvent } from "../api/openai/ErrorEnvelope.ts"
import type { Frame, UnaryResult } from "../backends/Contract.ts"
import * as Decode from "../request/Decode.ts"
import type { Inbound, StreamEncoder } from "../request/Inbound.ts"
import * as ErrorResponse from "./ErrorResponse.ts"

type Json = { [key: string]: unknown }

const isRecord = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v)

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The JSON of an SSE `data:` event (undefined when the bytes are not one). */
const chunkOf = (bytes: Uint8Array): Json | undefined => {
  const text = decoder.decode(bytes)
  const start = text.indexOf("data:")
  if (start < 0) return undefined
  let json: unknown
  try {
    json = JSON.parse(text.slice(start + 5).trim())
  } catch {
    return undefined
  }
  return isRecord(json) ? json : undefined
}

const sse = (json: unknown): Uint8Array => encoder.encode(`data: ${JSON.stringify(json)}\n\n`)

/** Sets the generated text of the first choice of a chat or completion chunk (or message). */
const withText = (json: Json, text: string, where: "delta" | "message"): Json => {
  const choices = json["choices"]
  if (!Array.isArray(choices) || choices.length === 0 || !isRecord(choices[0])) return json
  const first: Json = { ...choices[0] }
  const holder = first[where]
  if (isRecord(holder)) {
    // Reasoning text was read into the same delta (Contract: Delta); the policies saw both.
    const { reasoning_content: _r, reasoning: _s, ...rest } = holder
    first[where] = { ...rest, content: text }
  } else if (typeof first["text"] === "string") {
    first["text"] = text
  } else {
    first[where] = { content: text }
  }
  return { ...json, choices: [first, ...choices.slice(1)] }
}

const streamEncoder = (kind: CallKind): StreamEncoder => {
  /** The last chunk seen: what a chunk the gateway writes itself repeats (id, created, model). */
  let last: Uint8Array | undefined
  return {
    frame: (frame: Frame, text: string | undefined) => {
      if (frame.bytes !== undefined) last = frame.bytes
      if (text === undefined || frame.bytes === undefined) return frame.bytes
      // Nothing left to say: a frame whose only content was the text now held back.
      if (text === "" && frame.events.every((e) => e._tag === "Delta")) return undefined
      const json = chunkOf(frame.bytes)
      return json === undefined ? frame.bytes : sse(withText(json, text, "delta"))
    },
    text: (text: string) => {
      const head = last === undefined ? undefined : chunkOf(last)
      const base = {
        id: head?.["id"] ?? "chatcmpl-sluice",
        created: head?.["created"] ?? 0,
        model: head?.["model"] ?? ""
      }
      return sse(
        kind === "completion"
          ? { ...base, object: "text_completion", choices: [{ index: 0, text, logprobs: null, finish_reason: null }] }
          : { ...base, object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }] }
      )
    },
    error: (wire) => encoder.encode(sseEvent(wire.body))
  }
}

/** Each choice's text replaced (a unary answer the response policies changed). */
export const unaryWithTexts = (result: UnaryResult, texts: ReadonlyArray<string> | undefined): Uint8Array => {
  if (texts === undefined) return result.body
  let json: unknown
  try {
    json = JSON.parse(decoder.decode(result.body))
  } catch {
    return result.body
  }
  if (!isRecord(json) || !Array.isArray(json["choices"])) return result.body
  const choices = json["choices"].map((choice, i) => {
    const text = texts[i]
    if (!isRecord(choice) || text === undefined) return choice
    if (isRecord(choice["message"])) return { ...choice, message: { ...choice["message"], content: text } }
    return typeof choice["text"] === "string" ? { ...choice, text } : choice
  })
  return encoder.encode(JSON.stringify({ ...json, choices }))
}

export const inbound = (kind: CallKind): Inbound => ({
  kind,
  limits: kind,
  decode: (json) => Effect.map(Decode.decode(kind, json), (call) => ({ call, forwardRaw: true, meta: undefined })),
  error: (wire, requestId) => ErrorResponse.response(wire, requestId),
  encoder: () => streamEncoder(kind),
  streamResponse: (body, headers) => HttpServerResponse.stream(body, { contentType: "text/event-stream", headers }),
  unary: unaryWithTexts,
  unaryResponse: (result, body, headers) =>
    HttpServerResponse.uint8Array(body, { status: result.status, contentType: result.contentType, headers })
})

/**
 * The client dialect's (OpenAI's) response shapes, as the translators from other dialects
 * write them: streaming chunks and their SSE framing, unary bodies, the usage object and
 * the wire spelling of a finish reason; plus `Untranslatable`, the rejection a translator
 * raises for a request the backend's dialect cannot express (it becomes a 400).
 *
 * Plain functions on the hot path (one call per translated token). Owns shapes only: it
 * never reads upstream bytes and never decides what a backend's field means.
 */
import { Effect } from "effect"
import * as Usage from "../../../domain/Usage.ts"
import type { FinishReason, UpstreamCall } from "../../Contract.ts"
import { InvalidRequest } from "../../Failure.ts"

/** A request field the backend's dialect cannot carry; the adapter answers 400 with it. */
export class Untranslatable extends Error {
  constructor(message: string, readonly param: string | null = null) {
    super(message)
  }
}

/** What every chunk of one response repeats. */
export interface ChunkHead {
  readonly id: string
  /** Unix seconds. */
  readonly created: number
  /** The model name the client asked for. */
  readonly model: string
}

const encoder = new TextEncoder()

export const DONE = "data: [DONE]\n\n"

/** One SSE event carrying `json`. */
export const sse = (json: unknown): string => `data: ${JSON.stringify(json)}\n\n`

export const bytes = (text: string): Uint8Array => encoder.encode(text)

/** The OpenAI spelling of a finish reason ("other" has none: it goes out as "stop"). */
export const wireFinish = (reason: FinishReason): string => {
  switch (reason) {
    case "other":
    case "error":
      return "stop"
    default:
      return reason
  }
}

export const usageJson = (u: Usage.Usage) => ({
  prompt_tokens: u.promptTokens,
  completion_tokens: u.completionTokens,
  total_tokens: Usage.total(u),
  prompt_tokens_details: { cached_tokens: u.cachedTokens }
})

export const chatChunk = (head: ChunkHead, delta: Record<string, unknown>, finish: FinishReason | null) => ({
  id: head.id,
  object: "chat.completion.chunk",
  created: head.created,
  model: head.model,
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finish === null ? null : wireFinish(finish) }]
})

export const completionChunk = (head: ChunkHead, text: string, finish: FinishReason | null) => ({
  id: head.id,
  object: "text_completion",
  created: head.created,
  model: head.model,
  choices: [{ index: 0, text, logprobs: null, finish_reason: finish === null ? null : wireFinish(finish) }]
})

/** The extra last chunk of `stream_options.include_usage`. */
export const usageChunk = (head: ChunkHead, object: "chat.completion.chunk" | "text_completion", u: Usage.Usage) => ({
  id: head.id,
  object,
  created: head.created,
  model: head.model,
  choices: [],
  usage: usageJson(u)
})

export interface ToolCall {
  readonly id: string
  readonly name: string
  /** The arguments as a JSON string, as OpenAI carries them. */
  readonly arguments: string
}

/**
 * The generated text of each choice of a unary OpenAI body (`message.content` of a chat
 * completion, `text` of a legacy completion); empty for embeddings and rerank.
 */
export const completionTexts = (body: unknown): Array<string> => {
  if (typeof body !== "object" || body === null) return []
  const choices = (body as Record<string, unknown>)["choices"]
  if (!Array.isArray(choices)) return []
  const out: Array<string> = []
  for (const choice of choices) {
    if (typeof choice !== "object" || choice === null) continue
    const c = choice as Record<string, unknown>
    const message = c["message"]
    const content = typeof message === "object" && message !== null ? (message as Record<string, unknown>)["content"] : undefined
    if (typeof content === "string") out.push(content)
    else if (typeof c["text"] === "string") out.push(c["text"])
  }
  return out
}

/** A unary `chat.completion` body. */
export const chatCompletion = (
  head: ChunkHead,
  message: { readonly content: string | null; readonly reasoning: string | undefined; readonly toolCalls: ReadonlyArray<ToolCall> },
  finish: FinishReason | undefined,
  usage: Usage.Usage | undefined
) => {
  const msg: Record<string, unknown> = { role: "assistant", content: message.content }
  if (message.reasoning !== undefined && message.reasoning !== "") msg["reasoning_content"] = message.reasoning
  if (message.toolCalls.length > 0) {
    msg["tool_calls"] = message.toolCalls.map((t) => ({
      id: t.id,
      type: "function",
      function: { name: t.name, arguments: t.arguments }
    }))
  }
  return {
    id: head.id,
    object: "chat.completion",
    created: head.created,
    model: head.model,
    choices: [{ index: 0, message: msg, logprobs: null, finish_reason: finish === undefined ? null : wireFinish(finish) }],
    usage: usage === undefined ? null : usageJson(usage)
  }
}

/** A unary legacy `text_completion` body. */
export const textCompletion = (head: ChunkHead, text: string, finish: FinishReason | undefined, usage: Usage.Usage | undefined) => ({
  id: head.id,
  object: "text_completion",
  created: head.created,
  model: head.model,
  choices: [{ index: 0, text, logprobs: null, finish_reason: finish === undefined ? null : wireFinish(finish) }],
  usage: usage === undefined ? null : usageJson(usage)
})

// ---- reading the client's request ----

export type Json = Readonly<Record<string, unknown>>

export const isRecord = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v)

export const str = (v: unknown): string | undefined => typeof v === "string" ? v : undefined

/** Parses JSON text that must be an object; undefined otherwise (a parsing boundary). */
export const parseObject = (text: string): Json | undefined => {
  try {
    const v: unknown = JSON.parse(text)
    return isRecord(v) ? v : undefined
  } catch {
    return undefined
  }
}

export const num = (v: unknown): number | undefined => typeof v === "number" && Number.isFinite(v) ? v : undefined

/** `max_completion_tokens`, else `max_tokens`, when a positive integer. */
export const maxTokens = (body: Json): number | undefined => {
  for (const key of ["max_completion_tokens", "max_tokens"]) {
    const v = body[key]
    if (typeof v === "number" && Number.isInteger(v) && v > 0) return v
  }
  return undefined
}

/** `stop` as a list (a string becomes one entry; null or absent becomes undefined). */
export const stopList = (body: Json): Array<string> | undefined => {
  const stop = body["stop"]
  if (typeof stop === "string") return [stop]
  if (Array.isArray(stop)) {
    const list = stop.filter((s): s is string => typeof s === "string")
    return list.length > 0 ? list : undefined
  }
  return undefined
}

/** The text of a message's `content` (string, or the text parts of an array joined). */
export const contentText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  let out = ""
  for (const part of content) {
    if (isRecord(part) && (part["type"] === "text" || part["type"] === "refusal")) {
      out += str(part["text"]) ?? str(part["refusal"]) ?? ""
    }
  }
  return out
}

/** A `data:` URL split into media type and base64 payload; undefined for other URLs. */
export const dataUrl = (url: string): { readonly mediaType: string; readonly data: string } | undefined => {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  return m === null ? undefined : { mediaType: m[1]!, data: m[2]! }
}

/** The model name the client asked for (translated answers carry it, as OpenAI's do). */
export const clientModel = (call: UpstreamCall): string => str(call.body["model"]) ?? call.upstreamModel

/** Runs a dialect's request translation; what it cannot express is the client's 400. */
export const translated = (call: UpstreamCall, requestBody: (call: UpstreamCall) => string) =>
  Effect.try({
    try: () => requestBody(call),
    catch: (e) =>
      new InvalidRequest({
        status: 400,
        message: e instanceof Error ? e.message : String(e),
        param: e instanceof Untranslatable ? e.param : null,
        code: "unsupported_by_backend"
      })
  })

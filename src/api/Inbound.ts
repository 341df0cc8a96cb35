/**
 * What the inbound translators (Anthropic Messages, OpenAI Responses → the chat call) share:
 * the refusal a translator raises for a request it cannot carry (it becomes a 400 naming the
 * field), the Schema-issue → refusal step, readers for the gateway's own chat-completion
 * JSON, and named SSE framing.
 *
 * Pure functions: no I/O, no clocks. Never decides statuses beyond "the client's request".
 */
import { Data, type Exit, Result } from "effect"
import { summarize } from "../domain/SchemaIssues.ts"
import type { Usage } from "../domain/Usage.ts"
import type { InferenceCall } from "./openai/Calls.ts"

/** What an inbound translator produces: a chat call, as the chat endpoint would have decoded it. */
export type ChatCall = Extract<InferenceCall, { readonly kind: "chat" }>

/** A request the inbound API accepts on its wire but Sluice cannot serve (always a 400). */
export class Refused extends Data.TaggedError("Refused")<{
  readonly message: string
  /** The field at fault, in the client's own request (`messages[2].content[0]`), or null. */
  readonly param: string | null
}> {}

/** A Schema decode result as a refusal that names the first failing path. */
export const fromSchema = <A>(exit: Exit.Exit<A, { readonly issue: Parameters<typeof summarize>[0] }>): Result.Result<A, Refused> => {
  if (exit._tag === "Success") return Result.succeed(exit.value)
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (failure === undefined || failure._tag !== "Fail") {
    return Result.fail(new Refused({ message: "The request body is invalid.", param: null }))
  }
  const summary = summarize(failure.error.issue)
  const message = summary.path === ""
    ? `Invalid request: ${summary.message}`
    : `Invalid value for '${summary.path}': ${summary.message.replace(`${summary.path}: `, "")}`
  return Result.fail(new Refused({ message, param: summary.path === "" ? null : summary.path }))
}

export type Json = Readonly<Record<string, unknown>>

export const isRecord = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v)

export const str = (v: unknown): string | undefined => typeof v === "string" ? v : undefined

export const num = (v: unknown): number | undefined => typeof v === "number" && Number.isFinite(v) ? v : undefined

/** JSON text that must hold an object; undefined otherwise (a parsing boundary). */
export const parseObject = (text: string): Json | undefined => {
  try {
    const v: unknown = JSON.parse(text)
    return isRecord(v) ? v : undefined
  } catch {
    return undefined
  }
}

/** One tool call of a chat-completion message. */
export interface ChatToolCall {
  readonly id: string
  readonly name: string
  /** The arguments as the JSON text the model produced. */
  readonly arguments: string
}

/** The first choice of a `chat.completion` body, read defensively (it is the gateway's own output). */
export interface ChatAnswer {
  readonly id: string
  readonly model: string
  readonly text: string
  readonly reasoning: string
  readonly refusal: string
  readonly toolCalls: ReadonlyArray<ChatToolCall>
  /** vLLM's `stop_reason`: the stop string that ended the answer, when one did. */
  readonly stopString: string | undefined
  readonly finishReason: string | undefined
}

const partsText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  let text = ""
  for (const part of content) if (isRecord(part) && typeof part["text"] === "string") text += part["text"]
  return text
}

export const chatAnswer = (body: unknown): ChatAnswer => {
  const b = isRecord(body) ? body : {}
  const choices = Array.isArray(b["choices"]) ? b["choices"] : []
  const choice = isRecord(choices[0]) ? choices[0] : {}
  const message = isRecord(choice["message"]) ? choice["message"] : {}
  const calls = Array.isArray(message["tool_calls"]) ? message["tool_calls"] : []
  const toolCalls: Array<ChatToolCall> = []
  for (const c of calls) {
    if (!isRecord(c)) continue
    const fn = isRecord(c["function"]) ? c["function"] : {}
    toolCalls.push({ id: str(c["id"]) ?? "", name: str(fn["name"]) ?? "", arguments: str(fn["arguments"]) ?? "" })
  }
  return {
    id: str(b["id"]) ?? "",
    model: str(b["model"]) ?? "",
    text: partsText(message["content"]),
    reasoning: str(message["reasoning_content"]) ?? str(message["reasoning"]) ?? "",
    refusal: str(message["refusal"]) ?? "",
    toolCalls,
    stopString: str(choice["stop_reason"]),
    finishReason: str(choice["finish_reason"])
  }
}

const count = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0)

/**
 * The `usage` object of a chat-completion body as gateway usage, for an encoder that was
 * handed no parsed usage (the pipeline always passes it; this keeps a body's own counts).
 */
export const usageOfChatBody = (body: unknown): Usage | undefined => {
  if (!isRecord(body) || !isRecord(body["usage"])) return undefined
  const u = body["usage"]
  const input = isRecord(u["prompt_tokens_details"]) ? u["prompt_tokens_details"] : {}
  const output = isRecord(u["completion_tokens_details"]) ? u["completion_tokens_details"] : {}
  return {
    promptTokens: count(u["prompt_tokens"]),
    completionTokens: count(u["completion_tokens"]),
    cachedTokens: count(input["cached_tokens"]),
    reasoningTokens: count(output["reasoning_tokens"])
  }
}

const encoder = new TextEncoder()

/** One named SSE event (`event: <name>` + `data: <json>`), as Anthropic and the Responses API frame them. */
export const namedEvent = (name: string, json: unknown): string => `event: ${name}\ndata: ${JSON.stringify(json)}\n\n`

export const bytes = (text: string): Uint8Array => encoder.encode(text)

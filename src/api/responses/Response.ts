/**
 * The gateway's unary answer (an OpenAI `chat.completion` body with its parsed usage and
 * finish reason) → a Responses API `response` object; and the pieces the stream encoder
 * shares (item ids, usage, status, the response envelope).
 *
 * - output: reasoning text → a `reasoning` item (its text as `reasoning_text` content, no
 *   summary); the answer → a `message` item with one `output_text` part (a refusal → a
 *   `refusal` part); each tool call → a `function_call` item (`call_id` the engine's id);
 * - status: a length finish → "incomplete" with `incomplete_details.reason`
 *   "max_output_tokens", content_filter → "incomplete" / "content_filter", else "completed";
 * - usage: input_tokens (with `input_tokens_details.cached_tokens`), output_tokens (with
 *   `output_tokens_details.reasoning_tokens`), total_tokens.
 *
 * Pure functions: no I/O, no clocks; the id, the creation time and the echoed request fields
 * are passed in.
 */
import type { Usage } from "../../domain/Usage.ts"
import type { FinishReason } from "../Events.ts"
import { chatAnswer, usageOfChatBody } from "../Inbound.ts"

export interface ResponseHead {
  /** `resp_<request id>`. */
  readonly id: string
  /** Unix seconds. */
  readonly createdAt: number
  /** The model name the client asked for. */
  readonly model: string
  /** The request fields a response repeats (responses_openai.ts `Decoded.echo`). */
  readonly echo: Readonly<Record<string, unknown>>
}

export type Item = Readonly<Record<string, unknown>>

/** The id of the output item at `index` (`msg_…`, `fc_…`, `rs_…`), derived from the response id. */
export const itemId = (prefix: "msg" | "fc" | "rs", head: ResponseHead, index: number): string =>
  `${prefix}_${head.id.replace(/^resp_/, "")}_${index}`

export const usageJson = (usage: Usage | undefined) => {
  const input = usage?.promptTokens ?? 0
  const output = usage?.completionTokens ?? 0
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: usage?.cachedTokens ?? 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: usage?.reasoningTokens ?? 0 },
    total_tokens: input + output
  }
}

export type Status = "completed" | "incomplete" | "failed" | "in_progress"

export const statusOf = (finish: FinishReason | undefined): { readonly status: Status; readonly incomplete: Item | null } => {
  switch (finish) {
    case "length":
      return { status: "incomplete", incomplete: { reason: "max_output_tokens" } }
    case "content_filter":
      return { status: "incomplete", incomplete: { reason: "content_filter" } }
    default:
      return { status: "completed", incomplete: null }
  }
}

/** The `response` object (the same envelope for unary answers and every lifecycle event). */
export const envelope = (
  head: ResponseHead,
  status: Status,
  output: ReadonlyArray<Item>,
  extra: {
    readonly usage?: ReturnType<typeof usageJson> | null
    readonly incomplete?: Item | null
    readonly error?: Item | null
    readonly completedAt?: number | null
  } = {}
) => ({
  id: head.id,
  object: "response",
  created_at: head.createdAt,
  status,
  completed_at: extra.completedAt ?? null,
  error: extra.error ?? null,
  incomplete_details: extra.incomplete ?? null,
  model: head.model,
  output,
  ...head.echo,
  usage: extra.usage ?? null
})

export const reasoningItem = (id: string, text: string, status: "in_progress" | "completed" | "incomplete"): Item => ({
  id,
  type: "reasoning",
  summary: [],
  content: text === "" ? [] : [{ type: "reasoning_text", text }],
  status
})

export const textPart = (text: string): Item => ({ type: "output_text", text, annotations: [], logprobs: [] })

export const messageItem = (id: string, parts: ReadonlyArray<Item>, status: "in_progress" | "completed" | "incomplete"): Item => ({
  id,
  type: "message",
  status,
  role: "assistant",
  content: parts
})

export const functionCallItem = (
  id: string,
  call: { readonly callId: string; readonly name: string; readonly arguments: string },
  status: "in_progress" | "completed" | "incomplete"
): Item => ({ id, type: "function_call", status, arguments: call.arguments, call_id: call.callId, name: call.name })

/** A unary chat completion → the `response` object. `now` (unix seconds) is its completion time. */
export const response = (
  body: unknown,
  usage: Usage | undefined,
  finish: FinishReason | undefined,
  head: ResponseHead,
  now: number
) => {
  const answer = chatAnswer(body)
  const { status, incomplete } = statusOf(finish)
  const itemStatus = status === "completed" ? "completed" : "incomplete"
  const output: Array<Item> = []
  if (answer.reasoning !== "") output.push(reasoningItem(itemId("rs", head, output.length), answer.reasoning, itemStatus))
  if (answer.text !== "") output.push(messageItem(itemId("msg", head, output.length), [textPart(answer.text)], itemStatus))
  else if (answer.refusal !== "") {
    output.push(messageItem(itemId("msg", head, output.length), [{ type: "refusal", refusal: answer.refusal }], itemStatus))
  }
  for (const call of answer.toolCalls) {
    output.push(functionCallItem(itemId("fc", head, output.length), { callId: call.id, name: call.name, arguments: call.arguments }, itemStatus))
  }
  return envelope(head, status, output, {
    usage: usageJson(usage ?? usageOfChatBody(body)),
    incomplete,
    completedAt: status === "completed" ? now : null
  })
}

/**
 * The gateway's unary answer (an OpenAI `chat.completion` body with its parsed usage and
 * finish reason) → an Anthropic `message` object; and the stop-reason and usage mappings the
 * stream encoder shares.
 *
 * - content: reasoning (`reasoning_content`) → a `thinking` block first (with an empty
 *   signature: no Anthropic signature exists for another engine's reasoning), the text (or a
 *   refusal) → a `text` block, each tool call → a `tool_use` block whose input is the parsed
 *   arguments (arguments that are not a JSON object are kept whole as
 *   `{"_raw_arguments": "..."}` rather than lost);
 * - stop_reason: stop → end_turn, or stop_sequence when the engine reported which stop
 *   string matched (vLLM's `stop_reason`); length → max_tokens; tool_calls → tool_use (also
 *   when an engine says "stop" but returned tool calls); content_filter → refusal;
 * - usage: input_tokens = prompt − cache reads − cache writes, cache_read_input_tokens,
 *   cache_creation_input_tokens, output_tokens (Anthropic counts the three inputs apart).
 *
 * Pure functions: no I/O, no clocks; ids and the model name are passed in.
 */
import type { Usage } from "../../domain/Usage.ts"
import type { FinishReason } from "../Events.ts"
import { type ChatToolCall, chatAnswer, parseObject, usageOfChatBody } from "../Inbound.ts"

export type StopReason = "end_turn" | "max_tokens" | "stop_sequence" | "tool_use" | "refusal"

export const stopReason = (finish: FinishReason | undefined, sawToolCall: boolean, stopString: string | undefined): StopReason => {
  switch (finish) {
    case "length":
      return "max_tokens"
    case "tool_calls":
    case "function_call":
      return "tool_use"
    case "content_filter":
      return "refusal"
    default:
      if (sawToolCall) return "tool_use"
      return finish === "stop" && stopString !== undefined ? "stop_sequence" : "end_turn"
  }
}

export interface AnthropicUsage {
  readonly input_tokens: number
  readonly cache_creation_input_tokens: number
  readonly cache_read_input_tokens: number
  readonly output_tokens: number
}

export const usageJson = (usage: Usage | undefined): AnthropicUsage => {
  const read = usage?.cachedTokens ?? 0
  const created = usage?.cacheCreationTokens ?? 0
  return {
    input_tokens: Math.max(0, (usage?.promptTokens ?? 0) - read - created),
    cache_creation_input_tokens: created,
    cache_read_input_tokens: read,
    output_tokens: usage?.completionTokens ?? 0
  }
}

/** A tool call's arguments as an Anthropic `input` object. */
export const toolInput = (args: string): Readonly<Record<string, unknown>> => {
  if (args.trim() === "") return {}
  return parseObject(args) ?? { _raw_arguments: args }
}

const toolUse = (call: ChatToolCall) => ({ type: "tool_use", id: call.id, name: call.name, input: toolInput(call.arguments) })

export interface MessageHead {
  /** The message id the client sees (`msg_<request id>`). */
  readonly id: string
  /** The model name the client asked for. */
  readonly model: string
}

/** A unary chat completion → the Anthropic `message` body. */
export const message = (
  body: unknown,
  usage: Usage | undefined,
  finish: FinishReason | undefined,
  head: MessageHead
) => {
  const answer = chatAnswer(body)
  const content: Array<Readonly<Record<string, unknown>>> = []
  if (answer.reasoning !== "") content.push({ type: "thinking", thinking: answer.reasoning, signature: "" })
  const text = answer.text !== "" ? answer.text : answer.refusal
  if (text !== "") content.push({ type: "text", text })
  for (const call of answer.toolCalls) content.push(toolUse(call))
  const reason = stopReason(finish, answer.toolCalls.length > 0, answer.stopString)
  return {
    id: head.id,
    type: "message",
    role: "assistant",
    model: head.model,
    content,
    stop_reason: reason,
    stop_sequence: reason === "stop_sequence" ? answer.stopString ?? null : null,
    usage: usageJson(usage ?? usageOfChatBody(body))
  }
}

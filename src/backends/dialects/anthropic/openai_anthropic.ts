/**
 * Translation OpenAI Chat Completions (client) ⇄ Anthropic Messages (backend): the request
 * body one way, the unary response body the other (the streaming direction is Stream.ts).
 *
 * Request rules (backends.md §2.4):
 * - system and developer messages, wherever they appear, become the top-level `system`
 *   (their texts joined by a blank line): Anthropic has no system turn;
 * - user content parts: text → text block; image_url → image block (a data: URL as base64,
 *   any other URL as a url source); other part types are rejected (400);
 * - assistant tool_calls → tool_use blocks (arguments must be a JSON object);
 * - role "tool" → a tool_result block in a user turn; consecutive same-role turns merge,
 *   with tool_result blocks first, as Anthropic requires;
 * - `max_tokens` is required by Anthropic: the client's `max_completion_tokens` or
 *   `max_tokens`, else the cap the gateway reserved for (`call.maxOutputTokens`, the
 *   model's `default_max_tokens`);
 * - `stop` → `stop_sequences`; temperature is clamped to Anthropic's 0..1; top_p and
 *   top_k pass; `user` → `metadata.user_id`; tools → `{name, description, input_schema}`;
 *   tool_choice auto/none/required/{function} → auto/none/any/tool; parallel_tool_calls
 *   false → `disable_parallel_tool_use`.
 * - Rejected (400): n > 1, response_format other than text, the deprecated "function"
 *   role, non-function tools. Ignored: penalties, logit_bias, seed, logprobs (no
 *   Anthropic equivalent; dropping them changes sampling, not the answer's shape).
 *
 * Pure functions: never performs I/O, never reads the clock.
 */
import type * as Usage from "../../../domain/Usage.ts"
import type { FinishReason, UpstreamCall } from "../../Contract.ts"
import {
  type ChunkHead,
  chatCompletion,
  contentText,
  dataUrl,
  isRecord,
  type Json,
  maxTokens,
  num,
  stopList,
  str,
  type ToolCall,
  Untranslatable
} from "../openai/Wire.ts"

/** Used when the client sets no limit (Anthropic requires one). */

export const ANTHROPIC_VERSION = "2023-06-01"

type Block = Record<string, unknown>
interface Turn {
  role: "user" | "assistant"
  content: Array<Block>
}

const imageBlock = (part: Json, path: string): Block => {
  const image = part["image_url"]
  const url = isRecord(image) ? str(image["url"]) : str(image)
  if (url === undefined) throw new Untranslatable("image_url part without a url", path)
  const inline = dataUrl(url)
  return inline === undefined
    ? { type: "image", source: { type: "url", url } }
    : { type: "image", source: { type: "base64", media_type: inline.mediaType, data: inline.data } }
}

/** A message's content as Anthropic blocks (text and images only). */
const blocks = (content: unknown, path: string): Array<Block> => {
  if (content === null || content === undefined) return []
  if (typeof content === "string") return content === "" ? [] : [{ type: "text", text: content }]
  if (!Array.isArray(content)) throw new Untranslatable("content must be a string or an array of parts", path)
  return content.map((part, i): Block => {
    const p = `${path}[${i}]`
    if (!isRecord(part)) throw new Untranslatable("a content part must be an object", p)
    switch (part["type"]) {
      case "text":
        return { type: "text", text: str(part["text"]) ?? "" }
      case "refusal":
        return { type: "text", text: str(part["refusal"]) ?? "" }
      case "image_url":
        return imageBlock(part, p)
      default:
        throw new Untranslatable(`content parts of type ${String(part["type"])} are not supported by the anthropic dialect`, p)
    }
  })
}

const toolUse = (call: unknown, path: string): Block => {
  if (!isRecord(call)) throw new Untranslatable("a tool call must be an object", path)
  const fn = isRecord(call["function"]) ? call["function"] : {}
  const args = str(fn["arguments"]) ?? "{}"
  let input: unknown
  try {
    input = args.trim() === "" ? {} : JSON.parse(args)
  } catch {
    throw new Untranslatable("tool call arguments are not valid JSON", `${path}.function.arguments`)
  }
  if (!isRecord(input)) throw new Untranslatable("tool call arguments must be a JSON object", `${path}.function.arguments`)
  return { type: "tool_use", id: str(call["id"]) ?? "", name: str(fn["name"]) ?? "", input }
}

/** Appends blocks as a turn, merging with the previous turn of the same role. */
const push = (turns: Array<Turn>, role: Turn["role"], content: Array<Block>) => {
  const last = turns[turns.length - 1]
  if (last !== undefined && last.role === role) {
    if (role === "user") {
      // tool_result blocks must lead the user turn that answers the tool calls.
      const results = content.filter((b) => b["type"] === "tool_result")
      const rest = content.filter((b) => b["type"] !== "tool_result")
      const lead = last.content.filter((b) => b["type"] === "tool_result")
      const tail = last.content.filter((b) => b["type"] !== "tool_result")
      last.content = [...lead, ...results, ...tail, ...rest]
    } else {
      last.content.push(...content)
    }
    return
  }
  turns.push({ role, content: [...content] })
}

const messagesOf = (body: Json): { system: string | undefined; turns: Array<Turn> } => {
  const messages = Array.isArray(body["messages"]) ? body["messages"] : []
  const system: Array<string> = []
  const turns: Array<Turn> = []
  messages.forEach((m, i) => {
    const path = `messages[${i}]`
    if (!isRecord(m)) throw new Untranslatable("a message must be an object", path)
    switch (m["role"]) {
      case "system":
      case "developer": {
        const text = contentText(m["content"])
        if (text !== "") system.push(text)
        return
      }
      case "user":
        return push(turns, "user", blocks(m["content"], `${path}.content`))
      case "assistant": {
        const content = blocks(m["content"], `${path}.content`)
        const calls = m["tool_calls"]
        if (Array.isArray(calls)) calls.forEach((c, j) => content.push(toolUse(c, `${path}.tool_calls[${j}]`)))
        return push(turns, "assistant", content)
      }
      case "tool": {
        const id = str(m["tool_call_id"])
        if (id === undefined) throw new Untranslatable("a tool message needs tool_call_id", `${path}.tool_call_id`)
        const content = m["content"]
        return push(turns, "user", [{
          type: "tool_result",
          tool_use_id: id,
          content: typeof content === "string" ? content : blocks(content, `${path}.content`)
        }])
      }
      default:
        throw new Untranslatable(`messages with role ${String(m["role"])} are not supported by the anthropic dialect`, `${path}.role`)
    }
  })
  // Anthropic rejects empty content; an assistant turn with neither text nor tools says "".
  for (const t of turns) if (t.content.length === 0) t.content.push({ type: "text", text: "" })
  return { system: system.length > 0 ? system.join("\n\n") : undefined, turns }
}

const toolsOf = (tools: unknown): Array<Block> | undefined => {
  if (!Array.isArray(tools) || tools.length === 0) return undefined
  return tools.map((t, i) => {
    if (!isRecord(t) || t["type"] !== "function" || !isRecord(t["function"])) {
      throw new Untranslatable("only function tools are supported by the anthropic dialect", `tools[${i}]`)
    }
    const fn = t["function"]
    const tool: Block = { name: str(fn["name"]) ?? "" }
    const description = str(fn["description"])
    if (description !== undefined) tool["description"] = description
    tool["input_schema"] = isRecord(fn["parameters"]) ? fn["parameters"] : { type: "object", properties: {} }
    return tool
  })
}

const toolChoiceOf = (choice: unknown, parallel: unknown): Block | undefined => {
  let out: Block | undefined
  if (choice === "auto") out = { type: "auto" }
  else if (choice === "none") out = { type: "none" }
  else if (choice === "required") out = { type: "any" }
  else if (isRecord(choice) && isRecord(choice["function"])) {
    out = { type: "tool", name: str(choice["function"]["name"]) ?? "" }
  } else if (choice !== undefined && choice !== null) {
    throw new Untranslatable("unsupported tool_choice", "tool_choice")
  }
  if (parallel === false) out = { ...(out ?? { type: "auto" }), disable_parallel_tool_use: true }
  return out
}

/** The Anthropic Messages request body for a chat call. Throws `Untranslatable`. */
export const requestBody = (call: UpstreamCall): string => {
  const body = call.body
  const n = num(body["n"])
  if (n !== undefined && n > 1) throw new Untranslatable("n > 1 is not supported by the anthropic dialect", "n")
  const format = body["response_format"]
  if (isRecord(format) && format["type"] !== "text") {
    throw new Untranslatable("response_format is not supported by the anthropic dialect", "response_format")
  }
  const { system, turns } = messagesOf(body)
  const out: Record<string, unknown> = {
    model: call.upstreamModel,
    max_tokens: maxTokens(body) ?? call.maxOutputTokens
  }
  if (system !== undefined) out["system"] = system
  out["messages"] = turns
  const stop = stopList(body)
  if (stop !== undefined) out["stop_sequences"] = stop
  const temperature = num(body["temperature"])
  if (temperature !== undefined) out["temperature"] = Math.min(1, Math.max(0, temperature))
  const topP = num(body["top_p"])
  if (topP !== undefined) out["top_p"] = topP
  const topK = num(body["top_k"])
  if (topK !== undefined) out["top_k"] = topK
  const tools = toolsOf(body["tools"])
  if (tools !== undefined) out["tools"] = tools
  const choice = tools === undefined ? undefined : toolChoiceOf(body["tool_choice"], body["parallel_tool_calls"])
  if (choice !== undefined) out["tool_choice"] = choice
  const user = str(body["user"])
  if (user !== undefined && user !== "") out["metadata"] = { user_id: user }
  if (call.stream) out["stream"] = true
  return JSON.stringify(out)
}

// ---- responses ----

/** Anthropic `stop_reason` → finish reason (§2.4); `pause_turn` and unknown reasons are "other". */
export const finishOf = (stopReason: unknown): FinishReason | undefined => {
  switch (stopReason) {
    case null:
    case undefined:
      return undefined
    case "end_turn":
    case "stop_sequence":
      return "stop"
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length"
    case "tool_use":
      return "tool_calls"
    case "refusal":
      return "content_filter"
    default:
      return "other"
  }
}

/** Anthropic usage → gateway usage: prompt = input + cache reads + cache writes (§2.4). */
export const usageOf = (raw: unknown): Usage.Usage | undefined => {
  if (!isRecord(raw)) return undefined
  const input = num(raw["input_tokens"])
  const output = num(raw["output_tokens"])
  if (input === undefined && output === undefined) return undefined
  const read = num(raw["cache_read_input_tokens"]) ?? 0
  const created = num(raw["cache_creation_input_tokens"]) ?? 0
  return { promptTokens: (input ?? 0) + read + created, completionTokens: output ?? 0, cachedTokens: read }
}

/** An Anthropic Message (unary answer) → an OpenAI `chat.completion` body. */
export const completionOf = (message: Json, model: string, created: number) => {
  const content = Array.isArray(message["content"]) ? message["content"] : []
  let text: string | null = null
  let reasoning: string | undefined
  const toolCalls: Array<ToolCall> = []
  for (const block of content) {
    if (!isRecord(block)) continue
    switch (block["type"]) {
      case "text":
        text = (text ?? "") + (str(block["text"]) ?? "")
        break
      case "thinking":
        reasoning = (reasoning ?? "") + (str(block["thinking"]) ?? "")
        break
      case "tool_use":
        toolCalls.push({
          id: str(block["id"]) ?? "",
          name: str(block["name"]) ?? "",
          arguments: JSON.stringify(isRecord(block["input"]) ? block["input"] : {})
        })
        break
    }
  }
  const head: ChunkHead = { id: str(message["id"]) ?? "", created, model }
  const finish = finishOf(message["stop_reason"])
  const usage = usageOf(message["usage"])
  return { body: chatCompletion(head, { content: text, reasoning, toolCalls }, finish, usage), finish, usage }
}

/**
 * Translation Anthropic Messages (client) → the gateway's chat call (an OpenAI chat
 * completion request, Calls.ts), and of the token counter's body to the same call.
 *
 * Mapping:
 * - `system` (a string or text blocks) → a leading system message; `role: "system"` turns
 *   inside `messages` stay system messages where they stand;
 * - text blocks → text; one text block is a string, several are text parts (lossless);
 *   images → `image_url` parts (base64 sources as `data:` URLs, url sources as they are);
 * - assistant `tool_use` blocks → `tool_calls` (input serialised as the JSON arguments);
 *   user `tool_result` blocks → `tool` messages, in order, the rest of the turn after them
 *   as a user message;
 * - `thinking` and `redacted_thinking` blocks of earlier turns are dropped: their signature
 *   means something only to Anthropic, and a chat backend has no field for them;
 * - `max_tokens` → `max_tokens`; `stop_sequences` → `stop`; `temperature`, `top_p` as they
 *   are (Anthropic's 0..1 lies inside OpenAI's 0..2); `top_k` → the `top_k` extension that
 *   vLLM, SGLang and the gateway's own dialects read; `metadata.user_id` → `user`;
 * - tools → function tools (`input_schema` → `parameters`); tool_choice auto/any/tool/none →
 *   "auto"/"required"/{function}/"none"; `disable_parallel_tool_use` → `parallel_tool_calls: false`;
 * - `output_config.format` (JSON schema output) → `response_format` json_schema;
 * - `stream: true` → `stream` with `stream_options.include_usage` (the encoder needs usage).
 * - Dropped (Anthropic features with no chat equivalent; against an Anthropic backend phase
 *   2 passes the client's bytes through instead): `thinking` config, `cache_control`,
 *   `citations`, `service_tier`, `container`, `mcp_servers`, `context_management`,
 *   `inference_geo`, `speed`, `diagnostics`, `is_error` on tool results. Fields Anthropic
 *   does not define are vendor extensions and are kept on the chat body.
 * - Refused (400 naming the field): content blocks other than text, image, tool_use,
 *   tool_result, thinking (documents, search results, server-tool blocks: no chat
 *   equivalent); Files-API image sources (the gateway has no file store); non-text content
 *   inside a tool_result (chat tool messages carry text); tool_use in a user turn or
 *   tool_result in an assistant turn (Anthropic refuses these too); tool_use input that is
 *   not a JSON object; server tools (`type` other than "custom": web search, code execution
 *   and the like run on Anthropic's side); a client tool without `input_schema`.
 *
 * Pure functions: never performs I/O, never reads the clock.
 */
import { Result, Schema } from "effect"
import { ChatCompletionRequest } from "../openai/Requests.ts"
import { type ChatCall, fromSchema, isRecord, Refused } from "../Inbound.ts"
import {
  type ContentBlock,
  CountTokensRequest,
  type Message,
  MessagesRequest,
  type TextBlock,
  type Tool,
  type ToolChoice
} from "./Requests.ts"

type ChatMessage = ChatCompletionRequest["messages"][number]
type Part = Readonly<Record<string, unknown>>

/** Top-level Anthropic fields that are translated or deliberately dropped (never copied). */
const ANTHROPIC_FIELDS = new Set([
  "model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p", "top_k", "tools",
  "tool_choice", "metadata", "stream", "thinking", "service_tier", "container", "mcp_servers",
  "context_management", "output_config", "inference_geo", "speed", "diagnostics", "cache_control",
  "user_profile_id", "workspace_id"
])

const refuse = (message: string, param: string): never => {
  throw new Refused({ message, param })
}

const textOf = (blocks: ReadonlyArray<Part>): string | ReadonlyArray<Part> =>
  blocks.length === 1 && blocks[0]?.["type"] === "text" ? String(blocks[0]["text"]) : blocks

const imagePart = (block: Block<"image">, path: string): Part => {
  const source = block.source
  switch (source.type) {
    case "base64":
      return { type: "image_url", image_url: { url: `data:${source.media_type};base64,${source.data}` } }
    case "url":
      return { type: "image_url", image_url: { url: source.url } }
    case "file":
      return refuse("image sources of type file (the Files API) are not supported: send the image as base64 or a url", `${path}.source`)
  }
}

const toolResultContent = (block: Block<"tool_result">, path: string): string | ReadonlyArray<Part> => {
  const content = block.content
  if (content === undefined) return ""
  if (typeof content === "string") return content
  const parts = content.map((b, k): Part => {
    if (b.type === "text") return { type: "text", text: b.text }
    return refuse(`tool results may hold text only (a chat tool message cannot carry a ${b.type} block)`, `${path}.content[${k}]`)
  })
  return textOf(parts)
}

type Known = "text" | "image" | "tool_use" | "tool_result" | "thinking" | "redacted_thinking"
type Block<T extends Known> = Extract<ContentBlock, { readonly type: T }>

/**
 * Narrows a block to a known type. The schema's catch-all block has `type: string` (any type
 * but the known ones), which a `switch` cannot tell apart, so the test is written once here.
 */
const is = <T extends Known>(block: ContentBlock, type: T): block is Block<T> => block.type === type

const thinking = (block: ContentBlock) => is(block, "thinking") || is(block, "redacted_thinking")

/** A user turn: tool results become tool messages, the other blocks one user message per run. */
const userTurn = (content: ReadonlyArray<ContentBlock>, path: string, out: Array<ChatMessage>) => {
  let pending: Array<Part> = []
  const flush = () => {
    if (pending.length > 0) out.push({ role: "user", content: textOf(pending) })
    pending = []
  }
  content.forEach((block, j) => {
    const p = `${path}.content[${j}]`
    if (is(block, "text")) pending.push({ type: "text", text: block.text })
    else if (is(block, "image")) pending.push(imagePart(block, p))
    else if (is(block, "tool_result")) {
      flush()
      out.push({ role: "tool", tool_call_id: block.tool_use_id, content: toolResultContent(block, p) })
    } else if (thinking(block)) return
    else if (is(block, "tool_use")) refuse("tool_use blocks belong in assistant turns", p)
    else refuse(`content blocks of type ${block.type} are not supported`, p)
  })
  flush()
}

const assistantTurn = (content: ReadonlyArray<ContentBlock>, path: string): ChatMessage => {
  const parts: Array<Part> = []
  const calls: Array<Part> = []
  content.forEach((block, j) => {
    const p = `${path}.content[${j}]`
    if (is(block, "text")) parts.push({ type: "text", text: block.text })
    else if (is(block, "tool_use")) {
      if (!isRecord(block.input)) refuse("tool_use input must be a JSON object", `${p}.input`)
      calls.push({ id: block.id, type: "function", function: { name: block.name, arguments: JSON.stringify(block.input) } })
    } else if (thinking(block)) return
    else if (is(block, "image")) refuse("assistant turns cannot carry images", p)
    else if (is(block, "tool_result")) refuse("tool_result blocks belong in user turns", p)
    else refuse(`content blocks of type ${block.type} are not supported`, p)
  })
  const text = parts.length === 0 ? null : textOf(parts)
  return calls.length > 0 ? { role: "assistant", content: text, tool_calls: calls } : { role: "assistant", content: text ?? "" }
}

const systemContent = (system: string | ReadonlyArray<TextBlock>): string | ReadonlyArray<Part> =>
  typeof system === "string" ? system : textOf(system.map((b) => ({ type: "text", text: b.text })))

const messagesOf = (system: string | ReadonlyArray<TextBlock> | undefined, messages: ReadonlyArray<Message>) => {
  const out: Array<ChatMessage> = []
  if (system !== undefined && (typeof system !== "string" || system !== "")) {
    out.push({ role: "system", content: systemContent(system) })
  }
  messages.forEach((m, i) => {
    const path = `messages[${i}]`
    if (m.role === "system") {
      out.push({ role: "system", content: typeof m.content === "string" ? m.content : systemText(m.content, path) })
    } else if (typeof m.content === "string") {
      out.push({ role: m.role, content: m.content })
    } else if (m.role === "user") {
      userTurn(m.content, path, out)
    } else {
      out.push(assistantTurn(m.content, path))
    }
  })
  return out
}

const systemText = (content: ReadonlyArray<ContentBlock>, path: string): string | ReadonlyArray<Part> =>
  textOf(content.map((b, j): Part => is(b, "text") ? { type: "text", text: b.text } : refuse("system turns may hold text only", `${path}.content[${j}]`)))

const toolsOf = (tools: ReadonlyArray<Tool>): ReadonlyArray<Part> =>
  tools.map((t, i) => {
    if (t.type !== undefined && t.type !== null && t.type !== "custom") {
      return refuse(`server tools (${t.type}) run on Anthropic's side and are not supported: declare client tools with an input_schema`, `tools[${i}].type`)
    }
    if (t.input_schema === undefined) return refuse("a client tool needs an input_schema", `tools[${i}].input_schema`)
    const fn: Record<string, unknown> = { name: t.name }
    if (t.description !== undefined) fn["description"] = t.description
    fn["parameters"] = t.input_schema
    if (typeof t["strict"] === "boolean") fn["strict"] = t["strict"]
    return { type: "function", function: fn }
  })

const toolChoiceOf = (choice: ToolChoice): { readonly choice: unknown; readonly parallel: boolean | undefined } => {
  const parallel = "disable_parallel_tool_use" in choice && choice.disable_parallel_tool_use === true ? false : undefined
  switch (choice.type) {
    case "auto":
      return { choice: "auto", parallel }
    case "any":
      return { choice: "required", parallel }
    case "tool":
      return { choice: { type: "function", function: { name: choice.name } }, parallel }
    case "none":
      return { choice: "none", parallel }
  }
}

const responseFormatOf = (config: unknown): Part | undefined => {
  if (!isRecord(config) || !isRecord(config["format"])) return undefined
  const format = config["format"]
  if (format["type"] !== "json_schema" || !isRecord(format["schema"])) {
    return refuse("output_config.format must be a json_schema format with a schema", "output_config.format")
  }
  return { type: "json_schema", json_schema: { name: "output", schema: format["schema"], strict: true } }
}

interface Prompt {
  readonly model: string
  readonly messages: ReadonlyArray<Message>
  readonly system?: string | ReadonlyArray<TextBlock>
  readonly tools?: ReadonlyArray<Tool>
  readonly tool_choice?: ToolChoice
  readonly [key: string]: unknown
}

/** The chat body of the shared prompt fields, plus the vendor extensions the client sent. */
const promptBody = (req: Prompt): Record<string, unknown> => {
  const body: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(req)) if (!ANTHROPIC_FIELDS.has(key)) body[key] = value
  body["model"] = req.model
  body["messages"] = messagesOf(req.system, req.messages)
  if (req.tools !== undefined && req.tools.length > 0) {
    body["tools"] = toolsOf(req.tools)
    if (req.tool_choice !== undefined) {
      const { choice, parallel } = toolChoiceOf(req.tool_choice)
      body["tool_choice"] = choice
      if (parallel !== undefined) body["parallel_tool_calls"] = parallel
    }
  }
  const format = responseFormatOf(req["output_config"])
  if (format !== undefined) body["response_format"] = format
  return body
}

const decodeChat = Schema.decodeUnknownExit(ChatCompletionRequest)

/**
 * Runs a translation (a `Refused` it throws becomes the failure), then decodes the result
 * with the chat schema: that gives dispatch the chat type without a cast, and a value the
 * chat API would refuse (an empty conversation) is refused here too.
 */
const build = (make: () => Record<string, unknown>): Result.Result<ChatCall, Refused> => {
  let raw: Record<string, unknown>
  try {
    raw = make()
  } catch (e) {
    if (e instanceof Refused) return Result.fail(e)
    throw e
  }
  return Result.map(fromSchema(decodeChat(raw)), (body): ChatCall => ({ kind: "chat", body }))
}

const decodeMessages = Schema.decodeUnknownExit(MessagesRequest)
const decodeCount = Schema.decodeUnknownExit(CountTokensRequest)

/** `POST /v1/messages`: the Anthropic body → the chat call, or the refusal naming the field. */
export const decode = (raw: unknown): Result.Result<ChatCall, Refused> =>
  isRecord(raw) && raw["max_tokens"] === undefined
    ? Result.fail(new Refused({ message: "max_tokens: Field required (Anthropic's API requires an output cap)", param: "max_tokens" }))
    : Result.flatMap(fromSchema(decodeMessages(raw)), (req) =>
    build(() => {
      const body = promptBody(req)
      body["max_tokens"] = req.max_tokens
      if (req.stop_sequences !== undefined && req.stop_sequences.length > 0) body["stop"] = req.stop_sequences
      if (req.temperature !== undefined) body["temperature"] = req.temperature
      if (req.top_p !== undefined) body["top_p"] = req.top_p
      if (req.top_k !== undefined) body["top_k"] = req.top_k
      const user = req.metadata?.user_id
      if (typeof user === "string" && user !== "") body["user"] = user
      if (req.stream === true) {
        body["stream"] = true
        body["stream_options"] = { include_usage: true }
      }
      return body
    }))

/**
 * `POST /v1/messages/count_tokens`: the same prompt without `max_tokens` → the chat call
 * whose prompt the gateway's estimator tokenizes (admission's `promptText` over this body),
 * so a count equals the prompt part of the reservation a real request would make.
 */
export const decodeCountTokens = (raw: unknown): Result.Result<ChatCall, Refused> =>
  Result.flatMap(fromSchema(decodeCount(raw)), (req) => build(() => promptBody(req)))

/** The count_tokens answer body. */
export const countTokensBody = (inputTokens: number) => ({ input_tokens: inputTokens })

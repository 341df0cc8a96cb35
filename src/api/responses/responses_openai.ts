/**
 * Translation OpenAI Responses (client) → the gateway's chat call (an OpenAI chat completion
 * request, Calls.ts), plus the request fields a `response` object echoes back.
 *
 * Mapping:
 * - `instructions` → a leading system message (never carried over from a previous response,
 *   as the Responses API specifies); `input` as a string → one user message;
 * - message items: user/system keep their role, developer → system (not every engine's chat
 *   template knows "developer"), assistant stays assistant; input_text/output_text → text
 *   (one part is a string, several are text parts), input_image with an image_url →
 *   `image_url` part (its `detail` kept), refusal → text;
 * - function_call items → `tool_calls` of the assistant message they follow (consecutive
 *   calls share one message); function_call_output → a `tool` message;
 * - reasoning items are dropped (encrypted or engine-specific; no chat field carries them);
 * - `previous_response_id`: the stored items of that response (Conversation.ts) come first;
 * - tools: function tools → chat function tools; tool_choice none/auto/required/{function}
 *   as chat spells them; `parallel_tool_calls`, `temperature`, `top_p`, `user` as they are;
 *   `max_output_tokens` → `max_tokens`; `reasoning.effort` → `reasoning_effort`;
 *   `text.format` json_schema / json_object → `response_format`;
 * - `stream: true` → `stream` with `stream_options.include_usage` (the encoder needs usage).
 * - Not sent to the engine (they shape the response or the store): `store`, `metadata`,
 *   `include`, `truncation`, `service_tier`, `prompt_cache_key`, `safety_identifier`,
 *   `max_tool_calls`, `top_logprobs`, `text.verbosity`, `reasoning.summary`. Fields the
 *   Responses API does not define are vendor extensions, kept on the chat body.
 * - Refused (400 naming the field): built-in tools (web_search, file_search, computer use,
 *   code interpreter, MCP, ...: they run on OpenAI's side); tool_choice naming a built-in or
 *   `allowed_tools`; item types other than message, function_call, function_call_output,
 *   reasoning (item_reference and hosted tool calls need OpenAI's own state); input_file
 *   parts and images by `file_id` (the gateway has no file store); non-text function-call
 *   output; `background: true` (no background jobs), `conversation` and `prompt` (OpenAI-held
 *   objects); a `previous_response_id` the store does not hold.
 *
 * Pure functions: never performs I/O, never reads the clock.
 */
import { Result, Schema } from "effect"
import { type ChatCall, fromSchema, Refused } from "../Inbound.ts"
import { ChatCompletionRequest } from "../openai/Requests.ts"
import { type ContentPart, type InputItem, type MessageItem, InputItem as InputItemSchema, ResponsesRequest, type Tool, type ToolChoice } from "./Requests.ts"

type ChatMessage = ChatCompletionRequest["messages"][number]
type Part = Readonly<Record<string, unknown>>

/** Top-level Responses fields that are translated or deliberately not sent (never copied). */
const RESPONSES_FIELDS = new Set([
  "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature", "top_p", "stream",
  "stream_options", "store", "previous_response_id", "metadata", "user", "parallel_tool_calls", "reasoning", "text",
  "background", "include", "truncation", "service_tier", "prompt_cache_key", "prompt_cache_retention",
  "safety_identifier", "max_tool_calls", "top_logprobs", "conversation", "prompt", "context_management"
])

const refuse = (message: string, param: string): never => {
  throw new Refused({ message, param })
}

const textOf = (parts: ReadonlyArray<Part>): string | ReadonlyArray<Part> =>
  parts.length === 1 && parts[0]?.["type"] === "text" ? String(parts[0]["text"]) : parts

type Known = "input_text" | "input_image" | "output_text" | "refusal"
const isPart = <T extends Known>(part: ContentPart, type: T): part is Extract<ContentPart, { readonly type: T }> =>
  part.type === type

const partOf = (part: ContentPart, path: string): Part => {
  if (isPart(part, "input_text") || isPart(part, "output_text")) return { type: "text", text: part.text }
  if (isPart(part, "refusal")) return { type: "text", text: part.refusal }
  if (isPart(part, "input_image")) {
    if (typeof part.image_url !== "string") {
      return refuse("images by file_id are not supported (the gateway has no file store): send an image_url", `${path}.file_id`)
    }
    const image: Record<string, unknown> = { url: part.image_url }
    if (typeof part.detail === "string") image["detail"] = part.detail
    return { type: "image_url", image_url: image }
  }
  return refuse(`content parts of type ${part.type} are not supported`, path)
}

const contentOf = (content: string | ReadonlyArray<ContentPart>, path: string): string | ReadonlyArray<Part> =>
  typeof content === "string" ? content : textOf(content.map((p, k) => partOf(p, `${path}[${k}]`)))

type KnownItem = "message" | "function_call" | "function_call_output" | "reasoning"
const isItem = <T extends KnownItem>(item: InputItem, type: T): item is Extract<InputItem, { readonly type: T }> =>
  item.type === type

/** A message item may omit its `type`; no other item has a `role`. */
const isMessage = (item: InputItem): item is MessageItem => "role" in item && (item.type === undefined || item.type === "message")

/** Items (the stored ones first, then the request's own) → chat messages. */
const messagesOf = (items: ReadonlyArray<{ readonly item: InputItem; readonly path: string }>): Array<ChatMessage> => {
  const out: Array<ChatMessage> = []
  for (const { item, path } of items) {
    if (isItem(item, "function_call")) {
      const call = { id: item.call_id, type: "function", function: { name: item.name, arguments: item.arguments } }
      const last = out[out.length - 1]
      if (last !== undefined && last.role === "assistant") {
        out[out.length - 1] = { ...last, tool_calls: [...(last.tool_calls ?? []), call] }
      } else {
        out.push({ role: "assistant", content: null, tool_calls: [call] })
      }
    } else if (isItem(item, "function_call_output")) {
      const output = typeof item.output === "string"
        ? item.output
        : textOf(item.output.map((p, k) =>
          isPart(p, "input_text") || isPart(p, "output_text")
            ? { type: "text", text: p.text }
            : refuse("function call output may hold text only", `${path}.output[${k}]`)
        ))
      out.push({ role: "tool", tool_call_id: item.call_id, content: output })
    } else if (isItem(item, "reasoning")) {
      continue
    } else if (isMessage(item)) {
      const role = item.role === "developer" ? "system" : item.role
      out.push({ role, content: contentOf(item.content, `${path}.content`) })
    } else {
      refuse(`input items of type ${String(item.type)} are not supported`, `${path}.type`)
    }
  }
  return out
}

const toolsOf = (tools: ReadonlyArray<Tool>): ReadonlyArray<Part> =>
  tools.map((t, i) => {
    if (t.type !== "function") {
      return refuse(`built-in tools (${t.type}) run on OpenAI's side and are not supported: declare function tools`, `tools[${i}].type`)
    }
    if (t.name === undefined) return refuse("a function tool needs a name", `tools[${i}].name`)
    const fn: Record<string, unknown> = { name: t.name }
    if (typeof t.description === "string") fn["description"] = t.description
    fn["parameters"] = t.parameters ?? { type: "object", properties: {} }
    if (typeof t.strict === "boolean") fn["strict"] = t.strict
    return { type: "function", function: fn }
  })

const toolChoiceOf = (choice: ToolChoice): unknown => {
  if (typeof choice === "string") return choice
  if (choice.type === "function" && typeof choice["name"] === "string") return { type: "function", function: { name: choice["name"] } }
  return refuse(`tool_choice of type ${choice.type} is not supported: use none, auto, required or a function`, "tool_choice")
}

export interface Decoded {
  readonly call: ChatCall
  /** The request fields the `response` object repeats (Response.ts). */
  readonly echo: Readonly<Record<string, unknown>>
  /**
   * The whole conversation as items (the previous response's stored items, then this
   * request's input): with this response's output items, what the store keeps for it.
   */
  readonly items: ReadonlyArray<InputItem>
}

const decodeRequest = Schema.decodeUnknownExit(ResponsesRequest)
const decodeItems = Schema.decodeUnknownExit(Schema.Array(InputItemSchema))
const decodeChat = Schema.decodeUnknownExit(ChatCompletionRequest)

const echoOf = (req: ResponsesRequest): Readonly<Record<string, unknown>> => ({
  instructions: req.instructions ?? null,
  max_output_tokens: req.max_output_tokens ?? null,
  metadata: req.metadata ?? {},
  parallel_tool_calls: req.parallel_tool_calls ?? true,
  previous_response_id: req.previous_response_id ?? null,
  reasoning: req.reasoning ?? null,
  store: req.store ?? true,
  temperature: req.temperature ?? null,
  text: req.text ?? { format: { type: "text" } },
  tool_choice: req.tool_choice ?? "auto",
  tools: req.tools ?? [],
  top_p: req.top_p ?? null,
  truncation: "disabled",
  user: req.user ?? null
})

const chatBodyOf = (req: ResponsesRequest, items: ReadonlyArray<{ readonly item: InputItem; readonly path: string }>) => {
  if (req.background === true) refuse("background responses are not supported", "background")
  if (req["conversation"] !== undefined && req["conversation"] !== null) refuse("conversations are not supported: use previous_response_id", "conversation")
  if (req["prompt"] !== undefined && req["prompt"] !== null) refuse("stored prompts are not supported: send instructions and input", "prompt")
  const body: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(req)) if (!RESPONSES_FIELDS.has(key)) body[key] = value
  body["model"] = req.model
  const messages = messagesOf(items)
  if (messages.length === 0) refuse("the input holds no message to answer", "input")
  if (typeof req.instructions === "string" && req.instructions !== "") messages.unshift({ role: "system", content: req.instructions })
  body["messages"] = messages
  if (req.tools !== undefined && req.tools.length > 0) {
    body["tools"] = toolsOf(req.tools)
    if (req.tool_choice !== undefined) body["tool_choice"] = toolChoiceOf(req.tool_choice)
    if (typeof req.parallel_tool_calls === "boolean") body["parallel_tool_calls"] = req.parallel_tool_calls
  }
  if (typeof req.max_output_tokens === "number") body["max_tokens"] = req.max_output_tokens
  if (typeof req.temperature === "number") body["temperature"] = req.temperature
  if (typeof req.top_p === "number") body["top_p"] = req.top_p
  if (req.user !== undefined && req.user !== "") body["user"] = req.user
  if (typeof req.reasoning?.effort === "string") body["reasoning_effort"] = req.reasoning.effort
  const format = req.text?.format
  if (format !== undefined && format.type === "json_object") body["response_format"] = { type: "json_object" }
  if (format !== undefined && format.type === "json_schema") {
    const schema: Record<string, unknown> = { name: format["name"], schema: format["schema"] }
    if (typeof format["description"] === "string") schema["description"] = format["description"]
    if (typeof format["strict"] === "boolean") schema["strict"] = format["strict"]
    body["response_format"] = { type: "json_schema", json_schema: schema }
  }
  if (req.stream === true) {
    body["stream"] = true
    body["stream_options"] = { include_usage: true }
  }
  return body
}

/**
 * `POST /v1/responses`: the body (and, when it names a `previous_response_id`, that response's
 * stored items, or undefined when the store does not hold it) → the chat call.
 */
export const decode = (raw: unknown, previous: ReadonlyArray<unknown> | undefined): Result.Result<Decoded, Refused> =>
  Result.flatMap(fromSchema(decodeRequest(raw)), (req) => {
    const id = req.previous_response_id
    if (typeof id === "string" && previous === undefined) {
      return Result.fail(new Refused({ message: `Previous response with id '${id}' not found.`, param: "previous_response_id" }))
    }
    const stored = typeof id === "string" && previous !== undefined ? decodeItems(previous) : undefined
    if (stored !== undefined && stored._tag === "Failure") {
      return Result.fail(new Refused({ message: `The stored items of response '${id}' could not be read.`, param: "previous_response_id" }))
    }
    const own: ReadonlyArray<InputItem> = req.input === undefined
      ? []
      : typeof req.input === "string"
      ? [{ type: "message", role: "user", content: req.input }]
      : req.input
    const history = stored?._tag === "Success" ? stored.value : []
    const items = [
      ...history.map((item) => ({ item, path: "previous_response_id" })),
      ...own.map((item, i) => ({ item, path: typeof req.input === "string" ? "input" : `input[${i}]` }))
    ]
    let body: Record<string, unknown>
    try {
      body = chatBodyOf(req, items)
    } catch (e) {
      if (e instanceof Refused) return Result.fail(e)
      throw e
    }
    return Result.map(fromSchema(decodeChat(body)), (chat): Decoded => ({
      call: { kind: "chat", body: chat },
      echo: echoOf(req),
      items: [...history, ...own]
    }))
  })

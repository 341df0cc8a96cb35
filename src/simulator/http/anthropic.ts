/**
 * The Anthropic Messages dialect: `POST /v1/messages`, streaming events in the documented order
 * (message_start → content_block_start → ping → content_block_delta… → content_block_stop → message_delta →
 * message_stop; backends.md §2.4), tool_use blocks with `input_json_delta`, usage with `cache_read_input_tokens`
 * (`input_tokens` excludes cache reads), and Anthropic's error envelope with 529 `overloaded_error`.
 *
 * Owns: request parsing and the event/body shapes. Must never: decide timing, lengths or faults.
 */
import { randomUUID } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { ToolChoice } from "../outputs.ts"
import { chatPromptTokens, type TemplateMessage } from "../tokens.ts"
import { admitGeneration, type ErrorKind, type ErrorSender } from "./admit.ts"
import type { Encoder, FailureKind, FinishReason, Generation } from "./generation.ts"
import { bool, contentText, isRecord, num, parseJson, readJson, requestRid, sendJson, type SimContext, str } from "./wire.ts"

const ERROR_TYPES: Readonly<Record<ErrorKind, readonly [number | undefined, string]>> = {
  invalid_request: [undefined, "invalid_request_error"],
  not_found: [undefined, "not_found_error"],
  rate_limit: [undefined, "rate_limit_error"],
  overloaded: [529, "overloaded_error"],
  server: [undefined, "api_error"],
  loading: [529, "overloaded_error"]
}

/** `{"type":"error","error":{type,message},"request_id"}`; overload is 529, not 503. */
export const anthropicErrors: ErrorSender = (res, status, kind, message, headers) => {
  const [override, type] = ERROR_TYPES[kind]
  const requestId = `req_${randomUUID().replaceAll("-", "").slice(0, 24)}`
  sendJson(res, override ?? status, { type: "error", error: { type, message }, request_id: requestId }, {
    "request-id": requestId,
    ...headers
  })
}

const STOP_REASONS: Readonly<Record<FinishReason, string>> = {
  stop: "end_turn",
  length: "max_tokens",
  tool_calls: "tool_use",
  abort: "end_turn"
}

const FAILURES: Readonly<Record<FailureKind, readonly [number, string, string]>> = {
  midstream: [529, "overloaded_error", "Overloaded"],
  oom: [500, "api_error", "Internal server error"],
  crash: [500, "api_error", "Internal server error"]
}

const event = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

const usage = (g: Generation, output: number) => ({
  input_tokens: g.promptTokens - g.cachedTokens,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: g.cachedTokens,
  output_tokens: output
})

const toolInput = (json: string): unknown => {
  const parsed = parseJson(json)
  return isRecord(parsed) ? parsed : {}
}

const messagesEncoder: Encoder = {
  contentType: "text/event-stream",
  headersAtAccept: true,
  begin: (g) => {
    const tool = g.meta.plan.tool
    return [
      event("message_start", {
        type: "message_start",
        message: {
          id: g.meta.id,
          type: "message",
          role: "assistant",
          model: g.meta.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: usage(g, 1)
        }
      }),
      event("content_block_start", {
        type: "content_block_start",
        index: 0,
        content_block: tool === undefined
          ? { type: "text", text: "" }
          : { type: "tool_use", id: g.meta.toolCallId, name: tool.name, input: {} }
      }),
      event("ping", { type: "ping" })
    ]
  },
  token: (g, i) => {
    const piece = JSON.stringify(g.meta.plan.pieces[i])
    const delta = g.meta.plan.tool === undefined
      ? `{"type":"text_delta","text":${piece}}`
      : `{"type":"input_json_delta","partial_json":${piece}}`
    return `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":${delta}}\n\n`
  },
  end: (g) => [
    event("content_block_stop", { type: "content_block_stop", index: 0 }),
    event("message_delta", {
      type: "message_delta",
      delta: { stop_reason: STOP_REASONS[g.finishReason], stop_sequence: null },
      usage: usage(g, g.completionTokens)
    }),
    event("message_stop", { type: "message_stop" })
  ],
  error: (_g, kind) => {
    const [, type, message] = FAILURES[kind]
    return [event("error", { type: "error", error: { type, message } })]
  },
  malformed: () =>
    `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":\n\n`,
  complete: (g) => {
    const tool = g.meta.plan.tool
    return {
      id: g.meta.id,
      type: "message",
      role: "assistant",
      model: g.meta.model,
      content: tool === undefined
        ? [{ type: "text", text: g.text() }]
        : [{ type: "tool_use", id: g.meta.toolCallId, name: tool.name, input: toolInput(g.text()) }],
      stop_reason: STOP_REASONS[g.finishReason],
      stop_sequence: null,
      usage: usage(g, g.completionTokens)
    }
  },
  failure: (_g, kind) => {
    const [status, type, message] = FAILURES[kind]
    return { status, body: { type: "error", error: { type, message } } }
  }
}

const tooLong = (prompt: number, maxTokens: number, maxLen: number): string =>
  prompt >= maxLen
    ? `prompt is too long: ${prompt} tokens > ${maxLen - 1} maximum`
    : `input length and \`max_tokens\` exceed context limit: ${prompt} + ${maxTokens} > ${maxLen}, ` +
      "decrease input length or `max_tokens` and try again"

/** `tool_choice` {type:"any"} (first tool) or {type:"tool", name}. */
const forcedTool = (tools: unknown, choice: unknown): ToolChoice | undefined => {
  if (!Array.isArray(tools) || tools.length === 0 || !isRecord(choice)) return undefined
  const defs = tools.filter(isRecord)
  const pick = (t: Readonly<Record<string, unknown>> | undefined): ToolChoice | undefined =>
    t === undefined ? undefined : { name: str(t, "name") ?? "tool", parameters: t["input_schema"] }
  if (choice["type"] === "any") return pick(defs[0])
  if (choice["type"] === "tool") {
    const name = str(choice, "name")
    return pick(defs.find((t) => t["name"] === name) ?? (name === undefined ? undefined : { name }))
  }
  return undefined
}

export const handleMessages = (ctx: SimContext, req: IncomingMessage, res: ServerResponse): void =>
  readJson(req, (m) => anthropicErrors(res, 400, "invalid_request", m), (raw) => {
    if (!isRecord(raw)) return anthropicErrors(res, 400, "invalid_request", "Invalid request body")
    const model = str(raw, "model")
    if (model !== ctx.model) return anthropicErrors(res, 404, "not_found", `model: ${model ?? ""}`)
    const maxTokens = num(raw, "max_tokens")
    if (maxTokens === undefined) return anthropicErrors(res, 400, "invalid_request", "max_tokens: Field required")
    if (!Array.isArray(raw["messages"])) return anthropicErrors(res, 400, "invalid_request", "messages: Field required")
    const messages: Array<TemplateMessage> = []
    if (raw["system"] !== undefined) messages.push({ role: "system", content: contentText(raw["system"]) })
    for (const m of raw["messages"]) {
      if (isRecord(m)) messages.push({ role: str(m, "role") ?? "user", content: contentText(m["content"]) })
    }
    const tools = raw["tools"]
    const prompt = chatPromptTokens(messages, Array.isArray(tools) && tools.length > 0 ? JSON.stringify(tools) : undefined)
    admitGeneration(ctx, res, {
      prompt,
      maxTokens,
      forcedTokens: num(raw, "sim_output_tokens"),
      requestSeed: undefined,
      tool: forcedTool(tools, raw["tool_choice"]),
      stream: bool(raw, "stream") ?? false,
      includeUsage: true,
      rid: requestRid(req, raw)
    }, { idPrefix: "msg_", toolIdPrefix: "toolu_", encoder: messagesEncoder, errors: anthropicErrors, tooLong })
  })

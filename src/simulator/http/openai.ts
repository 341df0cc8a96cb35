/**
 * The OpenAI dialect as vLLM serves it: `/v1/chat/completions`, `/v1/completions` (streaming and not, with
 * `stream_options.include_usage`), tool calls as `delta.tool_calls` fragments, and vLLM's error envelope.
 *
 * Owns: request parsing for these routes and the exact chunk/body shapes. Must never: decide timing, lengths or
 * faults (admit.ts, outputs.ts and generation.ts do), or emit a chunk that is not one JSON object per `data:`
 * line (except the malformed-chunk fault).
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import type { ToolChoice } from "../outputs.ts"
import { chatPromptTokens, completionPromptTokens, type TemplateMessage } from "../tokens.ts"
import { admitGeneration, type ErrorKind, type ErrorSender } from "./admit.ts"
import type { Encoder, FailureKind, Generation } from "./generation.ts"
import { transferRequest } from "./transfer.ts"
import { bool, contentText, isRecord, type Json, num, readJson, requestRid, sendJson, type SimContext, str } from "./wire.ts"

const ERROR_TYPES: Readonly<Record<ErrorKind, string>> = {
  invalid_request: "BadRequestError",
  not_found: "NotFoundError",
  rate_limit: "RateLimitError",
  overloaded: "ServiceUnavailableError",
  server: "InternalServerError",
  loading: "ServiceUnavailableError"
}

/** vLLM's `ErrorResponse`: `{"error":{message,type,param,code}}`. */
export const openaiErrors: ErrorSender = (res, status, kind, message, headers) =>
  sendJson(res, status, { error: { message, type: ERROR_TYPES[kind], param: null, code: status } }, headers)

const FAILURE_MESSAGES: Readonly<Record<FailureKind, string>> = {
  midstream: "Internal server error: the engine failed while generating (injected mid-stream fault).",
  oom: "CUDA out of memory. Tried to allocate 2.00 GiB (injected OOM: every running request failed).",
  crash: "EngineCore encountered an issue and shut down."
}

const errorEvent = (kind: FailureKind) =>
  `data: ${JSON.stringify({ error: { message: FAILURE_MESSAGES[kind], type: "InternalServerError", param: null, code: 500 } })}\n\n`

export const tooLongMessage = (prompt: number, maxTokens: number, maxLen: number): string =>
  maxTokens > 0 && prompt < maxLen
    ? `This model's maximum context length is ${maxLen} tokens. However, you requested ${prompt + maxTokens} tokens ` +
      `(${prompt} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`
    : `This model's maximum context length is ${maxLen} tokens. However, your request has ${prompt} input tokens. ` +
      `Please reduce the length of the input messages.`

const usageJson = (g: Generation) => ({
  prompt_tokens: g.promptTokens,
  completion_tokens: g.completionTokens,
  total_tokens: g.promptTokens + g.completionTokens,
  prompt_tokens_details: { cached_tokens: g.cachedTokens }
})

const head = (g: Generation, object: string) =>
  `data: {"id":"${g.meta.id}","object":"${object}","created":${g.meta.createdSec},"model":${JSON.stringify(g.meta.model)},`

const tail = (g: Generation, object: string): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (g.meta.includeUsage) out.push(`${head(g, object)}"choices":[],"usage":${JSON.stringify(usageJson(g))}}\n\n`)
  out.push("data: [DONE]\n\n")
  return out
}

const chatEncoder: Encoder = {
  contentType: "text/event-stream",
  headersAtAccept: true,
  begin: (g) => {
    const content = g.meta.plan.tool === undefined ? `""` : "null"
    return [`${head(g, "chat.completion.chunk")}"choices":[{"index":0,"delta":{"role":"assistant","content":${content}},"logprobs":null,"finish_reason":null}]}\n\n`]
  },
  token: (g, i) => {
    const { plan } = g.meta
    const piece = JSON.stringify(plan.pieces[i])
    const delta = plan.tool === undefined
      ? `{"content":${piece}}`
      : i === 0
      ? `{"tool_calls":[{"index":0,"id":"${g.meta.toolCallId}","type":"function","function":{"name":${JSON.stringify(plan.tool.name)},"arguments":${piece}}}]}`
      : `{"tool_calls":[{"index":0,"function":{"arguments":${piece}}}]}`
    return `${head(g, "chat.completion.chunk")}"choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":null}]}\n\n`
  },
  end: (g) => [
    `${head(g, "chat.completion.chunk")}"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"${g.finishReason}"}]}\n\n`,
    ...tail(g, "chat.completion.chunk")
  ],
  error: (_g, kind) => [errorEvent(kind), "data: [DONE]\n\n"],
  malformed: (g) => `${head(g, "chat.completion.chunk")}"choices":[{"index":0,"delta":{"content":"\n\n`,
  complete: (g) => {
    const { plan } = g.meta
    const message = plan.tool === undefined
      ? { role: "assistant", content: g.text(), tool_calls: [] }
      : {
        role: "assistant",
        content: null,
        tool_calls: [{ id: g.meta.toolCallId, type: "function", function: { name: plan.tool.name, arguments: g.text() } }]
      }
    return {
      id: g.meta.id,
      object: "chat.completion",
      created: g.meta.createdSec,
      model: g.meta.model,
      choices: [{ index: 0, message, logprobs: null, finish_reason: g.finishReason, stop_reason: null }],
      usage: usageJson(g),
      prompt_logprobs: null,
      ...(g.transferOut === undefined ? {} : { kv_transfer_params: g.transferOut })
    }
  },
  failure: (_g, kind) => ({
    status: 500,
    body: { error: { message: FAILURE_MESSAGES[kind], type: "InternalServerError", param: null, code: 500 } }
  })
}

const completionEncoder: Encoder = {
  ...chatEncoder,
  begin: () => [],
  token: (g, i) =>
    `${head(g, "text_completion")}"choices":[{"index":0,"text":${JSON.stringify(g.meta.plan.pieces[i])},"logprobs":null,"finish_reason":null}]}\n\n`,
  end: (g) => [
    `${head(g, "text_completion")}"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"${g.finishReason}"}]}\n\n`,
    ...tail(g, "text_completion")
  ],
  malformed: (g) => `${head(g, "text_completion")}"choices":[{"index":0,"text":"\n\n`,
  complete: (g) => ({
    id: g.meta.id,
    object: "text_completion",
    created: g.meta.createdSec,
    model: g.meta.model,
    choices: [{ index: 0, text: g.text(), logprobs: null, finish_reason: g.finishReason, stop_reason: null }],
    usage: usageJson(g),
    ...(g.transferOut === undefined ? {} : { kv_transfer_params: g.transferOut })
  })
}

/** Common parameters of both generation routes; sends the error and returns undefined when invalid. */
const commonParams = (ctx: SimContext, res: ServerResponse, body: Json) => {
  const model = str(body, "model")
  if (model !== ctx.model) {
    openaiErrors(res, 404, "not_found", `The model \`${model ?? ""}\` does not exist.`)
    return undefined
  }
  const n = num(body, "n")
  if (n !== undefined && n !== 1) {
    openaiErrors(res, 400, "invalid_request", "The simulator supports n = 1 only.")
    return undefined
  }
  const streamOptions = body["stream_options"]
  return {
    maxTokens: num(body, "max_completion_tokens") ?? num(body, "max_tokens"),
    forcedTokens: num(body, "sim_output_tokens"),
    requestSeed: num(body, "seed"),
    stream: bool(body, "stream") ?? false,
    includeUsage: isRecord(streamOptions) && streamOptions["include_usage"] === true,
    transfer: transferRequest(body)
  }
}

/** The function a request forces: `tool_choice` "required" (first tool) or `{type:"function",function:{name}}`. */
export const forcedTool = (tools: unknown, choice: unknown): ToolChoice | undefined => {
  if (!Array.isArray(tools) || tools.length === 0) return undefined
  const fns = tools.map((t) => (isRecord(t) && isRecord(t["function"]) ? t["function"] : isRecord(t) ? t : {}))
  const byName = (name: string | undefined) => fns.find((f) => f["name"] === name)
  const pick = (f: Json | undefined): ToolChoice | undefined =>
    f === undefined ? undefined : { name: str(f, "name") ?? "tool", parameters: f["parameters"] }
  if (choice === "required") return pick(fns[0])
  if (isRecord(choice)) {
    const fn = choice["function"]
    const name = isRecord(fn) ? str(fn, "name") : str(choice, "name")
    return pick(byName(name) ?? (name === undefined ? undefined : { name, parameters: {} }))
  }
  return undefined
}

const chatMessages = (messages: ReadonlyArray<unknown>): Array<TemplateMessage> =>
  messages.filter(isRecord).map((m) => {
    const calls = m["tool_calls"]
    const text = contentText(m["content"]) + (Array.isArray(calls) ? JSON.stringify(calls) : "")
    return { role: str(m, "role") ?? "user", content: text }
  })

export const handleChat = (ctx: SimContext, req: IncomingMessage, res: ServerResponse): void =>
  readJson(req, (m) => openaiErrors(res, 400, "invalid_request", m), (raw) => {
    if (!isRecord(raw) || !Array.isArray(raw["messages"])) {
      return openaiErrors(res, 400, "invalid_request", "messages: field required (a list)")
    }
    const p = commonParams(ctx, res, raw)
    if (p === undefined) return
    const tools = raw["tools"]
    const prompt = chatPromptTokens(
      chatMessages(raw["messages"]),
      Array.isArray(tools) && tools.length > 0 ? JSON.stringify(tools) : undefined
    )
    admitGeneration(ctx, res, { ...p, prompt, tool: forcedTool(tools, raw["tool_choice"]), rid: requestRid(req, raw), host: req.headers.host }, {
      idPrefix: "chatcmpl-",
      toolIdPrefix: "chatcmpl-tool-",
      encoder: chatEncoder,
      errors: openaiErrors,
      tooLong: tooLongMessage
    })
  })

const isTokenArray = (u: unknown): u is ReadonlyArray<number> =>
  Array.isArray(u) && u.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0)

export const handleCompletion = (ctx: SimContext, req: IncomingMessage, res: ServerResponse): void =>
  readJson(req, (m) => openaiErrors(res, 400, "invalid_request", m), (raw) => {
    if (!isRecord(raw)) return openaiErrors(res, 400, "invalid_request", "Invalid request body")
    let prompt = raw["prompt"]
    if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === "string" || isTokenArray(prompt[0]))) {
      prompt = prompt[0]
    }
    if (typeof prompt !== "string" && !isTokenArray(prompt)) {
      return openaiErrors(res, 400, "invalid_request", "prompt: one string or one token list is supported")
    }
    const p = commonParams(ctx, res, raw)
    if (p === undefined) return
    admitGeneration(ctx, res, {
      ...p,
      prompt: completionPromptTokens(prompt),
      tool: undefined,
      rid: requestRid(req, raw),
      host: req.headers.host
    }, { idPrefix: "cmpl-", toolIdPrefix: "", encoder: completionEncoder, errors: openaiErrors, tooLong: tooLongMessage })
  })

export const handleModels = (ctx: SimContext, res: ServerResponse): void =>
  sendJson(res, 200, {
    object: "list",
    data: [{
      id: ctx.model,
      object: "model",
      created: Math.floor(ctx.epochMs() / 1000),
      owned_by: "vllm",
      root: ctx.profile.modelPath,
      parent: null,
      max_model_len: ctx.profile.maxModelLen,
      permission: []
    }]
  })

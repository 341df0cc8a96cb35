/**
 * The Ollama dialect: `POST /api/chat` and `/api/generate` as NDJSON (streaming by default), tool calls delivered
 * whole (arguments as an object), the final `done` line with durations in nanoseconds, `{"error": "…"}` errors;
 * `POST /api/embed`; plus `GET /`, `/api/version`, `/api/tags` and `/api/ps` (backends.md §1.6, §2.5).
 *
 * Owns: request parsing and line shapes. Quirk kept on purpose: `prompt_eval_count` counts only the prompt tokens
 * that were evaluated, so a prefix-cache hit lowers it (real Ollama does this too).
 * Must never: decide timing, lengths or faults.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { hashString } from "../engine/random.ts"
import type { ToolChoice } from "../outputs.ts"
import { chatPromptTokens, completionPromptTokens, type TemplateMessage } from "../tokens.ts"
import { admitGeneration, type ErrorSender, rejectIfLoading, sendInjectedError } from "./admit.ts"
import { embedDelayMs, embeddingVector, MAX_EMBEDDING_INPUTS, replyItemsLater, tooManyInputs } from "./embeddings.ts"
import type { Encoder, FailureKind, Generation } from "./generation.ts"
import { forcedTool as openaiForcedTool } from "./openai.ts"
import { bool, contentText, isRecord, type Json, num, parseJson, readJson, sendJson, type SimContext, str } from "./wire.ts"

export const ollamaErrors: ErrorSender = (res, status, kind, message, headers) => {
  const text = kind === "overloaded" ? "server busy, please try again.  maximum pending requests exceeded" : message
  sendJson(res, status, { error: text }, headers)
}

const FAILURES: Readonly<Record<FailureKind, string>> = {
  midstream: "an error was encountered while running the model: unexpected EOF",
  oom: "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, " +
    "check ollama server logs for details",
  crash: "model runner has unexpectedly stopped"
}

const ns = (ms: number) => Math.round(ms * 1e6)

const doneFields = (g: Generation) => {
  const t = g.timings()
  return {
    done: true,
    done_reason: g.finishReason === "length" ? "length" : "stop",
    total_duration: ns(t.totalMs),
    load_duration: 0,
    prompt_eval_count: g.promptTokens - g.cachedTokens,
    prompt_eval_duration: ns(t.promptMs),
    eval_count: g.completionTokens,
    eval_duration: ns(t.evalMs)
  }
}

/** The assistant message: text, or the whole tool call once its arguments are complete JSON. */
const message = (g: Generation) => {
  const tool = g.meta.plan.tool
  const text = g.text()
  const args = tool === undefined ? undefined : parseJson(text)
  if (tool === undefined || !isRecord(args)) return { role: "assistant", content: text }
  return { role: "assistant", content: "", tool_calls: [{ function: { name: tool.name, arguments: args } }] }
}

const line = (data: unknown) => JSON.stringify(data) + "\n"

const chatEncoder: Encoder = {
  contentType: "application/x-ndjson",
  headersAtAccept: false,
  begin: () => [],
  token: (g, i) =>
    g.meta.plan.tool !== undefined
      ? undefined
      : `{"model":${JSON.stringify(g.meta.model)},"created_at":"${g.isoNow()}","message":{"role":"assistant","content":${
        JSON.stringify(g.meta.plan.pieces[i])
      }},"done":false}\n`,
  end: (g) => {
    const out: Array<string> = []
    if (g.meta.plan.tool !== undefined) {
      out.push(line({ model: g.meta.model, created_at: g.isoNow(), message: message(g), done: false }))
    }
    out.push(line({
      model: g.meta.model,
      created_at: g.isoNow(),
      message: { role: "assistant", content: "" },
      ...doneFields(g)
    }))
    return out
  },
  error: (_g, kind) => [line({ error: FAILURES[kind] })],
  malformed: (g) => `{"model":${JSON.stringify(g.meta.model)},"created_at":"${g.isoNow()}","message":{"role":"assistant","content":\n`,
  complete: (g) => ({ model: g.meta.model, created_at: g.isoNow(), message: message(g), ...doneFields(g) }),
  failure: (_g, kind) => ({ status: 500, body: { error: FAILURES[kind] } })
}

/** `/api/generate`: the same lines with `response` instead of `message`. */
const generateEncoder: Encoder = {
  ...chatEncoder,
  token: (g, i) =>
    `{"model":${JSON.stringify(g.meta.model)},"created_at":"${g.isoNow()}","response":${
      JSON.stringify(g.meta.plan.pieces[i])
    },"done":false}\n`,
  end: (g) => [line({ model: g.meta.model, created_at: g.isoNow(), response: "", ...doneFields(g) })],
  malformed: (g) => `{"model":${JSON.stringify(g.meta.model)},"created_at":"${g.isoNow()}","response":\n`,
  complete: (g) => ({ model: g.meta.model, created_at: g.isoNow(), response: g.text(), ...doneFields(g) })
}

const tooLong = (p: number, m: number, l: number) => `requested context length ${p + m} exceeds the model's context length ${l}`

const sameModel = (ctx: SimContext, model: string | undefined) =>
  model !== undefined && (model === ctx.model || model === `${ctx.model}:latest` || `${model}:latest` === ctx.model)

/** Ollama has no `tool_choice`: with tools and no choice it calls the first tool; an OpenAI-style choice is honoured. */
const forcedTool = (tools: unknown, choice: unknown): ToolChoice | undefined =>
  choice === undefined ? openaiForcedTool(tools, "required") : openaiForcedTool(tools, choice)

/** Checks the body and model; sends the error and returns undefined when they are not acceptable. */
const acceptBody = (ctx: SimContext, res: ServerResponse, raw: unknown): Json | undefined => {
  if (!isRecord(raw)) return void ollamaErrors(res, 400, "invalid_request", "invalid request body")
  const model = str(raw, "model")
  if (!sameModel(ctx, model)) {
    return void ollamaErrors(res, 404, "not_found", `model "${model ?? ""}" not found, try pulling it first`)
  }
  return raw
}

export const handleOllamaChat = (ctx: SimContext, req: IncomingMessage, res: ServerResponse): void =>
  readJson(req, (m) => ollamaErrors(res, 400, "invalid_request", m), (body) => {
    const raw = acceptBody(ctx, res, body)
    if (raw === undefined) return
    if (!Array.isArray(raw["messages"])) return ollamaErrors(res, 400, "invalid_request", "messages is required")
    const messages: Array<TemplateMessage> = raw["messages"].filter(isRecord).map((m) => ({
      role: str(m, "role") ?? "user",
      content: contentText(m["content"]) + (Array.isArray(m["tool_calls"]) ? JSON.stringify(m["tool_calls"]) : "")
    }))
    const tools = raw["tools"]
    const options: Json = isRecord(raw["options"]) ? raw["options"] : {}
    const numPredict = num(options, "num_predict")
    admitGeneration(ctx, res, {
      prompt: chatPromptTokens(messages, Array.isArray(tools) && tools.length > 0 ? JSON.stringify(tools) : undefined),
      maxTokens: numPredict !== undefined && numPredict > 0 ? numPredict : undefined,
      forcedTokens: num(raw, "sim_output_tokens"),
      requestSeed: num(options, "seed"),
      tool: forcedTool(tools, raw["tool_choice"]),
      stream: bool(raw, "stream") ?? true,
      includeUsage: true,
      rid: undefined
    }, {
      idPrefix: "ollama-",
      toolIdPrefix: "call_",
      encoder: chatEncoder,
      errors: ollamaErrors,
      tooLong
    })
  })

export const handleOllamaGenerate = (ctx: SimContext, req: IncomingMessage, res: ServerResponse): void =>
  readJson(req, (m) => ollamaErrors(res, 400, "invalid_request", m), (body) => {
    const raw = acceptBody(ctx, res, body)
    if (raw === undefined) return
    const text = str(raw, "prompt") ?? ""
    const system = str(raw, "system")
    const messages: Array<TemplateMessage> = system === undefined ? [] : [{ role: "system", content: system }]
    const options: Json = isRecord(raw["options"]) ? raw["options"] : {}
    const numPredict = num(options, "num_predict")
    admitGeneration(ctx, res, {
      prompt: bool(raw, "raw") === true
        ? completionPromptTokens(text)
        : chatPromptTokens([...messages, { role: "user", content: text }]),
      maxTokens: numPredict !== undefined && numPredict > 0 ? numPredict : undefined,
      forcedTokens: num(raw, "sim_output_tokens"),
      requestSeed: num(options, "seed"),
      tool: undefined,
      stream: bool(raw, "stream") ?? true,
      includeUsage: true,
      rid: undefined
    }, { idPrefix: "ollama-", toolIdPrefix: "call_", encoder: generateEncoder, errors: ollamaErrors, tooLong })
  })

/** `POST /api/embed {model, input: string | string[], dimensions?}` → `{model, embeddings, …}`. */
export const handleOllamaEmbed = (ctx: SimContext, req: IncomingMessage, res: ServerResponse): void =>
  readJson(req, (m) => ollamaErrors(res, 400, "invalid_request", m), (body) => {
    const raw = acceptBody(ctx, res, body)
    if (raw === undefined) return
    const input = raw["input"]
    const inputs = typeof input === "string" ? [input] : Array.isArray(input) ? input : undefined
    if (inputs === undefined || inputs.length === 0 || !inputs.every((x) => typeof x === "string")) {
      return ollamaErrors(res, 400, "invalid_request", "input must be a string or a list of strings")
    }
    if (inputs.length > MAX_EMBEDDING_INPUTS) return ollamaErrors(res, 400, "invalid_request", tooManyInputs(inputs.length))
    const dims = num(raw, "dimensions") ?? ctx.profile.hiddenSize
    if (!Number.isInteger(dims) || dims < 1 || dims > ctx.profile.hiddenSize) {
      return ollamaErrors(res, 400, "invalid_request", `dimensions must be between 1 and ${ctx.profile.hiddenSize}`)
    }
    if (rejectIfLoading(ctx, res, ollamaErrors)) return
    if (ctx.faults.drawRequest().failBeforeFirstToken) return sendInjectedError(ctx, res, ollamaErrors)
    let tokens = 0
    const ids = inputs.map((text: string) => {
      const t = completionPromptTokens(text)
      tokens += t.length
      return t
    })
    const delay = embedDelayMs(ctx, tokens)
    const shell = {
      model: ctx.model,
      embeddings: [],
      total_duration: ns(delay * ctx.timeScale),
      load_duration: 0,
      prompt_eval_count: tokens
    }
    replyItemsLater(res, delay, shell, "embeddings", ids.length, (i) => Array.from(embeddingVector(ids[i]!, dims, ctx.seed)))
  })

const modelEntry = (ctx: SimContext) => {
  const p = ctx.profile
  return {
    name: ctx.model,
    model: ctx.model,
    digest: hashString(ctx.model).toString(16).padStart(8, "0").repeat(8),
    size: p.weightBytes,
    details: {
      parent_model: "",
      format: "gguf",
      family: "llama",
      families: ["llama"],
      parameter_size: `${p.parameterSizeB.toFixed(1)}B`,
      quantization_level: p.quantization === "fp8" ? "Q8_0" : "F16"
    }
  }
}

export const handleTags = (ctx: SimContext, res: ServerResponse): void =>
  sendJson(res, 200, {
    models: [{ ...modelEntry(ctx), modified_at: new Date(ctx.epochMs()).toISOString() }]
  })

export const handlePs = (ctx: SimContext, res: ServerResponse): void => {
  const loaded = !ctx.faults.isLoading(ctx.nowMs())
  const entry = modelEntry(ctx)
  sendJson(res, 200, {
    models: loaded
      ? [{ ...entry, size_vram: entry.size, expires_at: new Date(ctx.epochMs() + 5 * 60_000).toISOString() }]
      : []
  })
}

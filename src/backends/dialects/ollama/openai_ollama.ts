/**
 * Translation OpenAI (client) ⇄ Ollama native API (backend; base URL without /v1):
 * chat → `POST /api/chat`, legacy completions → `POST /api/generate`, embeddings →
 * `POST /api/embed`; and the unary answers back (the streaming direction is Stream.ts).
 *
 * Request rules (backends.md §2.5):
 * - `stream` is always sent explicitly (Ollama streams by default);
 * - sampling goes into `options`: max_completion_tokens/max_tokens → `num_predict`,
 *   temperature, top_p, top_k, seed, stop (as a list), presence/frequency penalties;
 * - response_format json_object → `format: "json"`, json_schema → `format: <schema>`;
 * - system/developer → role system; text parts are joined; images must be data: URLs
 *   (they go to `images` as base64; Ollama cannot fetch URLs, so other URLs are a 400);
 * - assistant tool_calls → tool_calls with arguments as an object; role "tool" → role
 *   tool with `tool_name` looked up from the earlier call id;
 * - tools pass in OpenAI's function shape (Ollama reads it); tool_choice "none" drops
 *   them, other tool_choice values are ignored (Ollama has no forcing);
 * - Ollama extensions `keep_alive` and `think` pass through;
 * - Rejected (400): n > 1, echo, prompt arrays of more than one entry, token prompts,
 *   token embedding inputs, non-function tools.
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
  textCompletion,
  type ToolCall,
  Untranslatable
} from "../openai/Wire.ts"

export const path = (kind: UpstreamCall["kind"]): string => {
  switch (kind) {
    case "chat":
      return "/api/chat"
    case "completion":
      return "/api/generate"
    case "embedding":
      return "/api/embed"
    case "rerank":
      // Ollama has no rerank API; requestBody refuses the call before this path is used.
      return "/api/rerank"
  }
}

const optionsOf = (body: Json): Record<string, unknown> | undefined => {
  const options: Record<string, unknown> = {}
  const max = maxTokens(body)
  if (max !== undefined) options["num_predict"] = max
  for (const key of ["temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty"]) {
    const v = num(body[key])
    if (v !== undefined) options[key] = v
  }
  const stop = stopList(body)
  if (stop !== undefined) options["stop"] = stop
  return Object.keys(options).length > 0 ? options : undefined
}

const common = (call: UpstreamCall): Record<string, unknown> => {
  const body = call.body
  const n = num(body["n"])
  if (n !== undefined && n > 1) throw new Untranslatable("n > 1 is not supported by the ollama dialect", "n")
  const out: Record<string, unknown> = { model: call.upstreamModel, stream: call.stream }
  const options = optionsOf(body)
  if (options !== undefined) out["options"] = options
  const format = body["response_format"]
  if (isRecord(format)) {
    if (format["type"] === "json_object") out["format"] = "json"
    else if (format["type"] === "json_schema") {
      const schema = isRecord(format["json_schema"]) ? format["json_schema"]["schema"] : undefined
      out["format"] = isRecord(schema) ? schema : "json"
    }
  }
  if (body["keep_alive"] !== undefined) out["keep_alive"] = body["keep_alive"]
  if (body["think"] !== undefined) out["think"] = body["think"]
  return out
}

const images = (content: unknown, path: string): Array<string> => {
  if (!Array.isArray(content)) return []
  const out: Array<string> = []
  content.forEach((part, i) => {
    if (!isRecord(part)) return
    if (part["type"] === "image_url") {
      const image = part["image_url"]
      const url = isRecord(image) ? str(image["url"]) : str(image)
      const inline = url === undefined ? undefined : dataUrl(url)
      if (inline === undefined) {
        throw new Untranslatable("the ollama dialect takes images only as data: URLs", `${path}[${i}].image_url`)
      }
      out.push(inline.data)
    } else if (part["type"] !== "text" && part["type"] !== "refusal") {
      throw new Untranslatable(`content parts of type ${String(part["type"])} are not supported by the ollama dialect`, `${path}[${i}]`)
    }
  })
  return out
}

const argumentsObject = (raw: unknown, path: string): Json => {
  const text = str(raw) ?? "{}"
  let parsed: unknown
  try {
    parsed = text.trim() === "" ? {} : JSON.parse(text)
  } catch {
    throw new Untranslatable("tool call arguments are not valid JSON", path)
  }
  if (!isRecord(parsed)) throw new Untranslatable("tool call arguments must be a JSON object", path)
  return parsed
}

const messagesOf = (body: Json): Array<Record<string, unknown>> => {
  const messages = Array.isArray(body["messages"]) ? body["messages"] : []
  const toolNames = new Map<string, string>()
  return messages.map((m, i) => {
    const path = `messages[${i}]`
    if (!isRecord(m)) throw new Untranslatable("a message must be an object", path)
    const content = contentText(m["content"])
    switch (m["role"]) {
      case "system":
      case "developer":
        return { role: "system", content }
      case "user": {
        const pics = images(m["content"], `${path}.content`)
        return pics.length > 0 ? { role: "user", content, images: pics } : { role: "user", content }
      }
      case "assistant": {
        const out: Record<string, unknown> = { role: "assistant", content }
        const calls = m["tool_calls"]
        if (Array.isArray(calls) && calls.length > 0) {
          out["tool_calls"] = calls.map((c, j) => {
            const p = `${path}.tool_calls[${j}]`
            if (!isRecord(c)) throw new Untranslatable("a tool call must be an object", p)
            const fn = isRecord(c["function"]) ? c["function"] : {}
            const name = str(fn["name"]) ?? ""
            const id = str(c["id"])
            if (id !== undefined) toolNames.set(id, name)
            return { function: { name, arguments: argumentsObject(fn["arguments"], `${p}.function.arguments`) } }
          })
        }
        return out
      }
      case "tool": {
        const name = toolNames.get(str(m["tool_call_id"]) ?? "")
        return name === undefined ? { role: "tool", content } : { role: "tool", content, tool_name: name }
      }
      default:
        throw new Untranslatable(`messages with role ${String(m["role"])} are not supported by the ollama dialect`, `${path}.role`)
    }
  })
}

const toolsOf = (body: Json): Array<unknown> | undefined => {
  const tools = body["tools"]
  if (!Array.isArray(tools) || tools.length === 0 || body["tool_choice"] === "none") return undefined
  tools.forEach((t, i) => {
    if (!isRecord(t) || t["type"] !== "function" || !isRecord(t["function"])) {
      throw new Untranslatable("only function tools are supported by the ollama dialect", `tools[${i}]`)
    }
  })
  return tools
}

const promptOf = (body: Json): string => {
  const prompt = body["prompt"]
  if (typeof prompt === "string") return prompt
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === "string") return prompt[0]
  throw new Untranslatable("the ollama dialect takes one text prompt per request (no arrays of prompts, no token ids)", "prompt")
}

const embedInput = (body: Json): string | Array<string> => {
  const input = body["input"]
  if (typeof input === "string") return input
  if (Array.isArray(input) && input.every((x) => typeof x === "string")) return input
  throw new Untranslatable("the ollama dialect embeds text only (no token ids)", "input")
}

/** The Ollama request body for any call kind. Throws `Untranslatable`. */
export const requestBody = (call: UpstreamCall): string => {
  const body = call.body
  switch (call.kind) {
    case "chat": {
      const out = { ...common(call), messages: messagesOf(body) }
      const tools = toolsOf(body)
      return JSON.stringify(tools === undefined ? out : { ...out, tools })
    }
    case "completion": {
      if (body["echo"] === true) throw new Untranslatable("echo is not supported by the ollama dialect", "echo")
      const out: Record<string, unknown> = { ...common(call), prompt: promptOf(body) }
      const suffix = str(body["suffix"])
      if (suffix !== undefined) out["suffix"] = suffix
      return JSON.stringify(out)
    }
    case "rerank":
      throw new Untranslatable("the ollama dialect has no rerank API", null)
    case "embedding": {
      const out: Record<string, unknown> = { model: call.upstreamModel, input: embedInput(body) }
      const dimensions = num(body["dimensions"])
      if (dimensions !== undefined) out["dimensions"] = dimensions
      if (body["keep_alive"] !== undefined) out["keep_alive"] = body["keep_alive"]
      return JSON.stringify(out)
    }
  }
}

// ---- responses ----

/** Ollama `done_reason` → finish reason; "stop" after tool calls is OpenAI's "tool_calls". */
export const finishOf = (doneReason: unknown, sawToolCalls: boolean): FinishReason => {
  switch (doneReason) {
    case undefined:
    case null:
    case "stop":
      return sawToolCalls ? "tool_calls" : "stop"
    case "length":
      return "length"
    default:
      // "load", "unload" and reasons added later.
      return "other"
  }
}

/** `prompt_eval_count`/`eval_count` → usage (Ollama reports no cache hits). */
export const usageOf = (line: Json): Usage.Usage | undefined => {
  const prompt = num(line["prompt_eval_count"])
  const completion = num(line["eval_count"])
  if (prompt === undefined && completion === undefined) return undefined
  return { promptTokens: prompt ?? 0, completionTokens: completion ?? 0, cachedTokens: 0 }
}

/** Whole tool calls of one message, with OpenAI ids (Ollama's own when it sends one). */
export const toolCallsOf = (message: Json, idFor: (n: number) => string, first: number): Array<ToolCall> => {
  const calls = message["tool_calls"]
  if (!Array.isArray(calls)) return []
  const out: Array<ToolCall> = []
  for (const c of calls) {
    if (!isRecord(c)) continue
    const fn = isRecord(c["function"]) ? c["function"] : {}
    const args = fn["arguments"]
    out.push({
      id: str(c["id"]) ?? idFor(first + out.length),
      name: str(fn["name"]) ?? "",
      arguments: typeof args === "string" ? args : JSON.stringify(isRecord(args) ? args : {})
    })
  }
  return out
}

export const toolCallId = (requestId: string) => (n: number): string => `call_${requestId}_${n}`

/** A unary `/api/chat` answer → an OpenAI `chat.completion` body. */
export const chatCompletionOf = (answer: Json, head: ChunkHead, requestId: string) => {
  const message = isRecord(answer["message"]) ? answer["message"] : {}
  const toolCalls = toolCallsOf(message, toolCallId(requestId), 0)
  const text = str(message["content"]) ?? ""
  const finish = finishOf(answer["done_reason"], toolCalls.length > 0)
  const usage = usageOf(answer)
  const content = text === "" && toolCalls.length > 0 ? null : text
  return { body: chatCompletion(head, { content, reasoning: str(message["thinking"]), toolCalls }, finish, usage), finish, usage }
}

/** A unary `/api/generate` answer → an OpenAI `text_completion` body. */
export const textCompletionOf = (answer: Json, head: ChunkHead) => {
  const finish = finishOf(answer["done_reason"], false)
  const usage = usageOf(answer)
  return { body: textCompletion(head, str(answer["response"]) ?? "", finish, usage), finish, usage }
}

/** An `/api/embed` answer → the OpenAI embeddings list (base64 as little-endian float32 when asked). */
export const embeddingsOf = (answer: Json, model: string, base64: boolean) => {
  const vectors = Array.isArray(answer["embeddings"]) ? answer["embeddings"] : []
  const prompt = num(answer["prompt_eval_count"]) ?? 0
  const usage: Usage.Usage = { promptTokens: prompt, completionTokens: 0, cachedTokens: 0 }
  const data = vectors.map((v, index) => {
    const floats = Array.isArray(v) ? v.map((x) => (typeof x === "number" ? x : 0)) : []
    return {
      object: "embedding",
      index,
      embedding: base64 ? Buffer.from(new Float32Array(floats).buffer).toString("base64") : floats
    }
  })
  return {
    body: { object: "list", data, model, usage: { prompt_tokens: prompt, total_tokens: prompt } },
    usage
  }
}

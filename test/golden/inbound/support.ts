/**
 * Shared by the inbound golden tests: the golden-file comparison (missing files fail;
 * UPDATE_GOLDEN=1 rewrites them), the event-sequence fixtures, and an SSE reader that checks
 * the exact framing (`event: <type>\ndata: <json>\n\n`, the data's `type` equal to the event
 * name) before a golden file sees the parsed events.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"
import type { StreamEvent } from "../../../src/api/Events.ts"
import type { WireError } from "../../../src/api/WireError.ts"

export const root = dirname(fileURLToPath(import.meta.url))
const UPDATE = process.env["UPDATE_GOLDEN"] === "1"

export const read = (file: string): string => readFileSync(join(root, file), "utf8")
export const readJson = (file: string): unknown => JSON.parse(read(file))

export const golden = (file: string, actual: unknown) => {
  const path = join(root, file)
  const text = `${JSON.stringify(actual, null, 2)}\n`
  if (UPDATE) {
    writeFileSync(path, text)
    return
  }
  if (!existsSync(path)) throw new Error(`missing golden file ${file}: run with UPDATE_GOLDEN=1 and review it`)
  expect(text).toBe(readFileSync(path, "utf8"))
}

/** One step of a stream fixture: an event, the normal end, or a failure. */
export type Step = { readonly event: StreamEvent } | { readonly end: true } | { readonly fail: WireError }

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)
const orUndefined = (v: unknown): string | undefined => typeof v === "string" ? v : undefined

/** A fixture file (JSON: events with `null` for absent fields) → typed steps. */
export const steps = (file: string): Array<Step> => {
  const raw = readJson(file)
  if (!Array.isArray(raw)) throw new Error(`${file}: expected an array`)
  return raw.map((s): Step => {
    if (!isObj(s)) throw new Error(`${file}: a step must be an object`)
    if (s["end"] === true) return { end: true }
    if (isObj(s["fail"])) {
      const f = s["fail"]
      return {
        fail: {
          status: Number(f["status"]),
          type: f["type"] === "overloaded_error" ? "overloaded_error" : f["type"] === "rate_limit_error" ? "rate_limit_error" : "server_error",
          code: orUndefined(f["code"]) ?? null,
          message: String(f["message"]),
          param: orUndefined(f["param"]) ?? null,
          retryAfterMs: typeof f["retryAfterMs"] === "number" ? f["retryAfterMs"] : undefined
        }
      }
    }
    switch (s["_tag"]) {
      case "Delta":
        return { event: s["reasoning"] === true ? { _tag: "Delta", text: String(s["text"]), reasoning: true } : { _tag: "Delta", text: String(s["text"]) } }
      case "ToolCallDelta":
        return {
          event: {
            _tag: "ToolCallDelta",
            index: Number(s["index"]),
            id: orUndefined(s["id"]),
            name: orUndefined(s["name"]),
            arguments: orUndefined(s["arguments"])
          }
        }
      case "Finish":
        return { event: { _tag: "Finish", reason: finishOf(s["reason"]) } }
      case "Usage":
        return { event: { _tag: "Usage", usage: usageOf(s["usage"]) } }
      default:
        throw new Error(`${file}: unknown step ${JSON.stringify(s)}`)
    }
  })
}

export const finishOf = (v: unknown) => {
  switch (v) {
    case "stop":
    case "length":
    case "tool_calls":
    case "content_filter":
    case "function_call":
    case "error":
      return v
    default:
      return "other" as const
  }
}

export const usageOf = (v: unknown) => {
  if (!isObj(v)) throw new Error("usage must be an object")
  const out: { promptTokens: number; completionTokens: number; cachedTokens: number; cacheCreationTokens?: number; reasoningTokens?: number } = {
    promptTokens: Number(v["promptTokens"]),
    completionTokens: Number(v["completionTokens"]),
    cachedTokens: Number(v["cachedTokens"])
  }
  if (typeof v["cacheCreationTokens"] === "number") out.cacheCreationTokens = v["cacheCreationTokens"]
  if (typeof v["reasoningTokens"] === "number") out.reasoningTokens = v["reasoningTokens"]
  return out
}

/** A unary fixture: the chat body with the pipeline's parsed usage and finish reason. */
export const unaryFixture = (file: string) => {
  const raw = readJson(file)
  if (!isObj(raw)) throw new Error(`${file}: expected an object`)
  return {
    body: raw["body"],
    usage: raw["usage"] === undefined || raw["usage"] === null ? undefined : usageOf(raw["usage"]),
    finish: raw["finish"] === undefined ? undefined : finishOf(raw["finish"])
  }
}

export interface SseEvent {
  readonly event: string
  readonly data: Record<string, unknown>
}

const decoder = new TextDecoder()

/**
 * The SSE text of one encoder output chunk → its events. Each chunk an encoder returns must
 * hold whole events, so a writer can send each as it comes.
 */
export const parseSse = (chunk: Uint8Array): Array<SseEvent> => {
  const text = decoder.decode(chunk)
  if (text === "") return []
  expect(text.endsWith("\n\n")).toBe(true)
  return text.slice(0, -2).split("\n\n").map((block) => {
    const lines = block.split("\n")
    expect(lines.length).toBe(2)
    const [head = "", body = ""] = lines
    expect(head.startsWith("event: ")).toBe(true)
    expect(body.startsWith("data: ")).toBe(true)
    const event = head.slice(7)
    const json = body.slice(6)
    const data: unknown = JSON.parse(json)
    expect(json).toBe(JSON.stringify(data))
    if (!isObj(data)) throw new Error("SSE data must be an object")
    expect(data["type"]).toBe(event)
    return { event, data }
  })
}

/** A stream encoder as the golden and property tests drive it. */
export interface Encoder {
  push(event: StreamEvent): Uint8Array
  end(): Uint8Array
  fail(error: WireError): Uint8Array
}

/** Runs the steps through an encoder: the parsed events, and the raw bytes (for the SDK tests). */
export const run = (encoder: Encoder, fixture: ReadonlyArray<Step>) => {
  const chunks: Array<Uint8Array> = []
  for (const step of fixture) {
    if ("event" in step) chunks.push(encoder.push(step.event))
    else if ("end" in step) chunks.push(encoder.end())
    else chunks.push(encoder.fail(step.fail))
  }
  return { events: chunks.flatMap(parseSse), text: chunks.map((c) => decoder.decode(c)).join("") }
}

/** Canonical errors of every status the gateway answers with (the error-body goldens). */
export const CANONICAL_ERRORS: ReadonlyArray<WireError> = [
  { status: 400, type: "invalid_request_error", code: "invalid_value", message: "Invalid value for 'max_tokens': Expected a value greater than 0", param: "max_tokens", retryAfterMs: undefined },
  { status: 400, type: "invalid_request_error", code: "context_length_exceeded", message: "prompt is too long", param: null, retryAfterMs: undefined },
  { status: 401, type: "authentication_error", code: "invalid_api_key", message: "Incorrect API key provided.", param: null, retryAfterMs: undefined },
  { status: 402, type: "insufficient_quota", code: "billing", message: "The tenant has no credit left.", param: null, retryAfterMs: undefined },
  { status: 403, type: "permission_error", code: "forbidden", message: "This key may not use that model.", param: "model", retryAfterMs: undefined },
  { status: 404, type: "invalid_request_error", code: "model_not_found", message: "The model `nope` does not exist or is not served here.", param: "model", retryAfterMs: undefined },
  { status: 413, type: "invalid_request_error", code: "request_too_large", message: "The request body exceeds the limit of 1048576 bytes.", param: null, retryAfterMs: undefined },
  { status: 415, type: "invalid_request_error", code: "unsupported_media_type", message: "Send application/json.", param: null, retryAfterMs: undefined },
  { status: 429, type: "rate_limit_error", code: "token_budget_exceeded", message: "Token budget exceeded for tenant acme.", param: null, retryAfterMs: 2500 },
  { status: 500, type: "server_error", code: "internal_error", message: "Internal gateway error (request req-1).", param: null, retryAfterMs: undefined },
  { status: 502, type: "server_error", code: "backends_exhausted", message: "All 2 attempt(s) for model m failed before the first token.", param: null, retryAfterMs: undefined },
  { status: 503, type: "overloaded_error", code: "backends_overloaded", message: "the backend is overloaded: queue full", param: null, retryAfterMs: 1000 },
  { status: 503, type: "server_error", code: "draining", message: "The gateway is shutting down; retry on another instance.", param: null, retryAfterMs: 1000 },
  { status: 504, type: "timeout_error", code: "backends_timeout", message: "time to first token exceeded", param: null, retryAfterMs: undefined }
]

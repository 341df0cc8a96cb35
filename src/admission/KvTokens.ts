/**
 * The prompt's token ids as the engine will see them, for the precise prefix index: the engine's KV events
 * name blocks by chained hashes of token ids (domain/KvBlocks.ts), so the router needs the ids, not only
 * their count. The ids are those of the simulator's engine (cl100k BPE under the Llama 3.1 chat-template
 * approximation, src/simulator/tokens.ts), computed with the same shared template code. For a real vLLM the
 * model's own tokenizer and template would be needed; until then its blocks simply do not match (the router
 * then sees no precise hit there, never a false one).
 *
 * Bounds: at most `maxTokens` ids (the blocks the router hashes); each message's text is cut at
 * `maxTokens × 6` characters; a prompt with a run of `LONG_RUN` or more non-space characters (where BPE
 * costs quadratic time) gets no ids. Messages are encoded one at a time with a yield between them. The
 * tokenizer tables load on first use. Pure apart from that lazy load; no clocks, no I/O.
 */
import { Effect } from "effect"
import type { InferenceCall } from "../api/openai/Calls.ts"
import { chatTemplateTokens, completionTemplateTokens, type TemplateMessage } from "../domain/KvBlocks.ts"
import { LONG_RUN } from "./Tokenizer.ts"

type Encode = (text: string) => Array<number>

let encoder: Encode | undefined

const asText = { disallowedSpecial: new Set<string>() }

/** Loads the engine tokenizer's tables (idempotent). */
export const load: Effect.Effect<void> = Effect.suspend(() =>
  encoder !== undefined ? Effect.void : Effect.promise(async () => {
    const mod = await import("gpt-tokenizer/encoding/cl100k_base")
    encoder = (text) => (text.length === 0 ? [] : mod.encode(text, asText))
  })
)

const isRecord = (v: unknown): v is { readonly [key: string]: unknown } => typeof v === "object" && v !== null

/** A message's content as the simulator's wire layer flattens it (http/wire.ts `contentText`). */
export const contentText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return content === undefined || content === null ? "" : JSON.stringify(content)
  let out = ""
  for (const part of content) {
    if (isRecord(part) && typeof part["text"] === "string") out += part["text"]
    else if (isRecord(part) && part["type"] === "tool_result") out += contentText(part["content"])
    else out += JSON.stringify(part)
  }
  return out
}

/** Whether `text` has a run of `LONG_RUN` non-space characters (BPE would be quadratic on it). */
const hasLongRun = (text: string): boolean => {
  let run = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 32 || c === 10 || c === 9 || c === 13) run = 0
    else if (++run >= LONG_RUN) return true
  }
  return false
}

/** The leading `maxTokens` prompt token ids of a generation call; undefined when not computable (see above). */
export const promptTokenIds = (call: InferenceCall, maxTokens: number): Effect.Effect<Uint32Array | undefined> =>
  Effect.gen(function*() {
    if (maxTokens <= 0) return undefined
    if (encoder === undefined) yield* load
    const encode = encoder!
    const cap = maxTokens * 6
    const cut = (text: string) => (text.length > cap ? text.slice(0, cap) : text)
    if (call.kind === "completion") {
      const p = call.body.prompt
      const one = Array.isArray(p) && p.length === 1 ? p[0] : p
      if (typeof one === "string") {
        const text = cut(one)
        if (hasLongRun(text)) return undefined
        return completionTemplateTokens(encode(text).slice(0, maxTokens))
      }
      if (Array.isArray(one) && one.every((x) => typeof x === "number")) {
        return completionTemplateTokens(one.slice(0, maxTokens))
      }
      return undefined
    }
    if (call.kind !== "chat") return undefined
    const messages: Array<TemplateMessage> = []
    let chars = 0
    for (const m of call.body.messages) {
      const calls = m.tool_calls
      const content = cut(contentText(m.content) + (Array.isArray(calls) ? JSON.stringify(calls) : ""))
      if (hasLongRun(content)) return undefined
      messages.push({ role: m.role, content })
      chars += content.length
      if (chars > cap) break
    }
    const tools = call.body.tools
    const toolsJson = Array.isArray(tools) && tools.length > 0 ? cut(JSON.stringify(tools)) : undefined
    if (toolsJson !== undefined && hasLongRun(toolsJson)) return undefined
    // One message per yield: a long conversation never holds the event loop for its whole length.
    const encoded = new Map<string, Array<number>>()
    for (const text of [toolsJson ?? "", ...messages.map((m) => m.content)]) {
      if (!encoded.has(text)) encoded.set(text, encode(text))
      yield* Effect.yieldNow
    }
    const ids = chatTemplateTokens(messages, toolsJson, (t) => encoded.get(t) ?? encode(t), maxTokens)
    return ids.length > maxTokens ? ids.subarray(0, maxTokens) : ids
  })

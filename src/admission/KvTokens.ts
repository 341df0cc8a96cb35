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
 * tokenizer tables load on first use. Long message texts (system prompts shared by many requests, a
 * conversation's earlier turns) are kept encoded in an LRU bounded by `CACHE_TOKENS` ids, so a shared
 * prefix is tokenized once, not per request (llm-d's router keeps a tokenization cache for the same
 * reason). No clocks, no I/O.
 */
import { Effect } from "effect"
import type { InferenceCall } from "../api/openai/Calls.ts"
import { chatTemplateTokens, completionTemplateTokens, contentText, type TemplateMessage } from "../domain/KvBlocks.ts"
import { LONG_RUN } from "./Tokenizer.ts"

type Encode = (text: string) => ArrayLike<number>

let encoder: Encode | undefined

/** Texts at least this long are cached encoded; the cache holds at most `CACHE_TOKENS` ids in all. */
const CACHE_MIN_CHARS = 512
export const CACHE_TOKENS = 2_000_000
const cache = new Map<string, Uint32Array>()
let cachedTokens = 0

const encodeCached = (encode: Encode, text: string): ArrayLike<number> => {
  if (text.length < CACHE_MIN_CHARS) return encode(text)
  const hit = cache.get(text)
  if (hit !== undefined) {
    cache.delete(text)
    cache.set(text, hit)
    return hit
  }
  const ids = Uint32Array.from(encode(text))
  if (ids.length > CACHE_TOKENS) return ids
  cache.set(text, ids)
  cachedTokens += ids.length
  for (const [k, v] of cache) {
    if (cachedTokens <= CACHE_TOKENS) break
    cache.delete(k)
    cachedTokens -= v.length
  }
  return ids
}

/** Texts and ids held by the encoding cache (for tests). */
export const cacheSize = (): { readonly texts: number; readonly tokens: number } => ({ texts: cache.size, tokens: cachedTokens })

const asText = { disallowedSpecial: new Set<string>() }

/** Loads the engine tokenizer's tables (idempotent). */
export const load: Effect.Effect<void> = Effect.suspend(() =>
  encoder !== undefined ? Effect.void : Effect.promise(async () => {
    const mod = await import("gpt-tokenizer/encoding/cl100k_base")
    encoder = (text) => (text.length === 0 ? [] : mod.encode(text, asText))
  })
)

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
        const all = encodeCached(encode, text)
        return completionTemplateTokens(all.length > maxTokens ? Uint32Array.from(all).subarray(0, maxTokens) : all)
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
    const encoded = new Map<string, ArrayLike<number>>()
    for (const text of [toolsJson ?? "", ...messages.map((m) => m.content)]) {
      if (!encoded.has(text)) encoded.set(text, encodeCached(encode, text))
      yield* Effect.yieldNow
    }
    const ids = chatTemplateTokens(messages, toolsJson, (t) => encoded.get(t) ?? encode(t), maxTokens)
    return ids.length > maxTokens ? ids.subarray(0, maxTokens) : ids
  })

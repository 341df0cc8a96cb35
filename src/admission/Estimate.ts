/**
 * Token estimates at admission, computed once and carried on the request: prompt tokens
 * (tokenizer over the message text plus the chat template's per-message overhead),
 * maximum output tokens (`max_tokens` or the model's default, times the sequences decoded),
 * the reservation, and the chained hashes of the prompt's leading blocks (the prefix
 * index's key). Linear in the body: one pass to collect the text (nested client objects
 * are stringified only after the decode phase bounded their depth), a bounded count.
 *
 * The per-candidate predictions the router derives from these (GPU-seconds, time to first
 * token) live in routing/Predict.ts. Pure functions; no clocks, no I/O.
 */
import { Effect } from "effect"
import type { CallKind } from "../backends/Contract.ts"
import type { Estimate } from "../domain/Request.ts"
import * as PrefixHash from "./PrefixHash.ts"
import * as Tokenizer from "./Tokenizer.ts"

/** Tokens the OpenAI chat format adds per message, and to prime the reply (cookbook figures). */
const PER_MESSAGE = 4
const REPLY_PRIMING = 3
/** A flat allowance per image part (low-detail figure). */
const PER_IMAGE = 85

const partsText = (content: unknown, images: { n: number }): string => {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  let text = ""
  for (const part of content) {
    if (typeof part !== "object" || part === null) continue
    const p = part as Record<string, unknown>
    if (typeof p["text"] === "string") text += p["text"]
    else if (p["type"] === "image_url" || p["type"] === "input_image") images.n++
  }
  return text
}

export interface PromptText {
  /** Everything that is tokenized, joined. */
  readonly text: string
  /** Tokens not covered by `text` (template overhead, images, token-id prompts). */
  readonly extraTokens: number
}

export const promptText = (kind: CallKind, body: Readonly<Record<string, unknown>>): PromptText => {
  if (kind === "chat") {
    const messages = Array.isArray(body["messages"]) ? body["messages"] : []
    const images = { n: 0 }
    let text = ""
    for (const m of messages) {
      if (typeof m !== "object" || m === null) continue
      const msg = m as Record<string, unknown>
      text += `${String(msg["role"] ?? "")}\n${partsText(msg["content"], images)}\n`
      if (Array.isArray(msg["tool_calls"])) text += JSON.stringify(msg["tool_calls"])
    }
    if (Array.isArray(body["tools"])) text += JSON.stringify(body["tools"])
    return { text, extraTokens: messages.length * PER_MESSAGE + REPLY_PRIMING + images.n * PER_IMAGE }
  }
  if (kind === "rerank") {
    // Each document is scored against the query: the engine reads the query once per document.
    const documents = Array.isArray(body["documents"]) ? body["documents"] : []
    const query = typeof body["query"] === "string" ? body["query"] : ""
    let text = ""
    for (const d of documents) text += `${query}\n${typeof d === "string" ? d : JSON.stringify(d)}\n`
    return { text, extraTokens: 0 }
  }
  const input = kind === "completion" ? body["prompt"] : body["input"]
  if (typeof input === "string") return { text: input, extraTokens: 0 }
  if (Array.isArray(input)) {
    if (input.every((x) => typeof x === "number")) return { text: "", extraTokens: input.length }
    let text = ""
    let extra = 0
    for (const x of input) {
      if (typeof x === "string") text += x + "\n"
      else if (Array.isArray(x)) extra += x.length
    }
    return { text, extraTokens: extra }
  }
  return { text: "", extraTokens: 0 }
}

/** How the prompt's prefix hashes are cut: `routing.prefix_block_chars`, `prefix_max_blocks`, the model id. */
export interface PrefixOptions {
  readonly blockChars: number
  readonly maxBlocks: number
  readonly salt: string
}

/** The plan's defaults (Plan.ts), for callers that do not pass the routing plan. */
export const DEFAULT_PREFIX: PrefixOptions = { blockChars: 64, maxBlocks: 512, salt: "" }

/**
 * The estimate from the prompt and its token count: the reservation is the prompt plus
 * `sequences × maxOutputTokens` (every choice of `n`, every `best_of` candidate, every
 * prompt of a completions batch is decoded up to the cap).
 */
const fromCount = (
  kind: CallKind,
  prompt: PromptText,
  counted: number,
  maxOutputTokens: number,
  prefix: PrefixOptions,
  sequences: number
): Estimate => {
  const promptTokens = counted + prompt.extraTokens
  const generates = kind !== "embedding" && kind !== "rerank"
  const output = generates ? Math.max(1, sequences) * maxOutputTokens : 0
  return {
    promptTokens,
    maxOutputTokens: output,
    outputCap: generates ? maxOutputTokens : 0,
    reservationTokens: promptTokens + output,
    promptChars: prompt.text.length,
    prefixHashes: generates
      ? PrefixHash.chain(prompt.text, prefix.blockChars, prefix.maxBlocks, prefix.salt)
      : PrefixHash.empty,
    prefixBlockChars: prefix.blockChars
  }
}

/** The estimate, counted synchronously (bounded: see Tokenizer.ts). */
export const estimate = (
  kind: CallKind,
  body: Readonly<Record<string, unknown>>,
  encoding: Tokenizer.Encoding,
  maxOutputTokens: number,
  prefix: PrefixOptions = DEFAULT_PREFIX,
  sequences = 1
): { readonly estimate: Estimate; readonly prompt: PromptText } => {
  const prompt = promptText(kind, body)
  return { estimate: fromCount(kind, prompt, Tokenizer.count(encoding, prompt.text), maxOutputTokens, prefix, sequences), prompt }
}

/**
 * The estimate at admission: counted in windows with the event loop free between them, and
 * no further than `stopAbove` prompt tokens (a prompt past the context window is refused,
 * however long it is).
 */
export const estimateYielding = (
  kind: CallKind,
  body: Readonly<Record<string, unknown>>,
  encoding: Tokenizer.Encoding,
  maxOutputTokens: number,
  prefix: PrefixOptions,
  sequences: number,
  stopAbove?: number
): Effect.Effect<{ readonly estimate: Estimate; readonly prompt: PromptText }> =>
  Effect.suspend(() => {
    const prompt = promptText(kind, body)
    return Effect.map(
      Tokenizer.countYielding(encoding, prompt.text, stopAbove),
      (counted) => ({ estimate: fromCount(kind, prompt, counted, maxOutputTokens, prefix, sequences), prompt })
    )
  })


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
import * as Calls from "../api/openai/Calls.ts"
import type { InferenceCall } from "../api/openai/Calls.ts"
import type { Estimate } from "./Request.ts"
import * as PrefixHash from "./PrefixHash.ts"
import * as Tokenizer from "./Tokenizer.ts"

/** Tokens the OpenAI chat format adds per message, and to prime the reply (cookbook figures). */
const PER_MESSAGE = 4
const REPLY_PRIMING = 3
/** A flat allowance per image part (low-detail figure). */
const PER_IMAGE = 85

/** A content part or a document: an object whose fields are read one by one (the schema keeps parts as unknown). */
const isRecord = (v: unknown): v is { readonly [key: string]: unknown } => typeof v === "object" && v !== null

const partsText = (content: unknown, images: { n: number }): string => {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  let text = ""
  for (const part of content) {
    if (!isRecord(part)) continue
    const partText = part["text"]
    if (typeof partText === "string") text += partText
    else if (part["type"] === "image_url" || part["type"] === "input_image") images.n++
  }
  return text
}

export interface PromptText {
  /** Everything that is tokenized, joined. */
  readonly text: string
  /** Tokens not covered by `text` (template overhead, images, token-id prompts). */
  readonly extraTokens: number
}

/** Prompts of completions and inputs of embeddings: text, texts, token ids, or lists of token ids. */
const promptOf = (input: string | ReadonlyArray<string> | ReadonlyArray<number> | ReadonlyArray<ReadonlyArray<number>>): PromptText => {
  if (typeof input === "string") return { text: input, extraTokens: 0 }
  let text = ""
  let extra = 0
  for (const x of input) {
    if (typeof x === "string") text += x + "\n"
    else if (typeof x === "number") extra++
    else extra += x.length
  }
  return { text, extraTokens: extra }
}

/**
 * The text the engine will read, from the typed call. JSON.stringify runs only on fields
 * decode has bounded in depth (JsonScan.ts), never on unbounded client data.
 */
export const promptText = (call: InferenceCall): PromptText => {
  switch (call.kind) {
    case "chat": {
      const messages = call.body.messages
      const images = { n: 0 }
      let text = ""
      for (const msg of messages) {
        text += `${msg.role}\n${partsText(msg.content, images)}\n`
        if (msg.tool_calls != null) text += JSON.stringify(msg.tool_calls)
      }
      if (call.body.tools != null) text += JSON.stringify(call.body.tools)
      return { text, extraTokens: messages.length * PER_MESSAGE + REPLY_PRIMING + images.n * PER_IMAGE }
    }
    case "rerank": {
      // Each document is scored against the query: the engine reads the query once per document.
      const query = call.body.query
      let text = ""
      for (const d of call.body.documents) text += `${query}\n${typeof d === "string" ? d : JSON.stringify(d)}\n`
      return { text, extraTokens: 0 }
    }
    case "completion":
      return promptOf(call.body.prompt)
    case "embedding":
      return promptOf(call.body.input)
  }
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
  call: InferenceCall,
  prompt: PromptText,
  counted: number,
  maxOutputTokens: number,
  prefix: PrefixOptions,
  sequences: number
): Estimate => {
  const promptTokens = counted + prompt.extraTokens
  const generates = Calls.generates(call)
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
  call: InferenceCall,
  encoding: Tokenizer.Encoding,
  maxOutputTokens: number,
  prefix: PrefixOptions = DEFAULT_PREFIX,
  sequences = 1
): { readonly estimate: Estimate; readonly prompt: PromptText } => {
  const prompt = promptText(call)
  return { estimate: fromCount(call, prompt, Tokenizer.count(encoding, prompt.text), maxOutputTokens, prefix, sequences), prompt }
}

/**
 * The estimate with the prompt's upper bound (Tokenizer.upperBound: its UTF-8 bytes) instead
 * of a count, for a request admitted before its model's tokenizer tables have loaded: never
 * below the tokenizer's own count (`count` may exceed it by the one token per cut it adds on
 * pathological text, see Tokenizer.ts); `promptBound` says it is a bound.
 */
export const estimateBound = (
  call: InferenceCall,
  maxOutputTokens: number,
  prefix: PrefixOptions,
  sequences: number
): { readonly estimate: Estimate; readonly prompt: PromptText } => {
  const prompt = promptText(call)
  const estimate = fromCount(call, prompt, Tokenizer.upperBound(prompt.text), maxOutputTokens, prefix, sequences)
  return { estimate: { ...estimate, promptBound: true }, prompt }
}

/**
 * The prompt tokens of `prompt` (from `promptText`) counted exactly, as admission would have
 * with the tables loaded: waits for them if they are still loading.
 */
export const exactPromptTokens = (prompt: PromptText, encoding: Tokenizer.Encoding): Effect.Effect<number> =>
  Effect.andThen(
    Tokenizer.load(encoding),
    Effect.map(Tokenizer.countYielding(encoding, prompt.text), (counted) => counted + prompt.extraTokens)
  )

/**
 * The estimate at admission: counted in windows with the event loop free between them, and
 * no further than `stopAbove` prompt tokens (a prompt past the context window is refused,
 * however long it is).
 */
export const estimateYielding = (
  call: InferenceCall,
  encoding: Tokenizer.Encoding,
  maxOutputTokens: number,
  prefix: PrefixOptions,
  sequences: number,
  stopAbove?: number
): Effect.Effect<{ readonly estimate: Estimate; readonly prompt: PromptText }> =>
  Effect.suspend(() => {
    const prompt = promptText(call)
    return Effect.map(
      Tokenizer.countYielding(encoding, prompt.text, stopAbove),
      (counted) => ({ estimate: fromCount(call, prompt, counted, maxOutputTokens, prefix, sequences), prompt })
    )
  })


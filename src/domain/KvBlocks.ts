/**
 * KV-cache block identity, shared by the simulated engine and the gateway: the chained block hash an engine keys
 * its prefix cache by, the root a model's chain starts from, and the Llama 3 chat-template token layout the
 * simulator feeds its engine. The gateway's precise prefix index (backends/KvBlockIndex.ts) looks up the hashes
 * an engine publishes in its KV events (api/KvEvents.ts), so both sides must compute them with this one module.
 *
 * Owns: `chainHash`, `rootHash`, `blockHashes`, `chatTemplateTokens` (the tokenizer is passed in, so this module
 * stays pure and imports no library). Must never: read the clock or ambient randomness, or import the gateway.
 */

/** 32-bit finaliser (murmur3 fmix32). */
export const fmix32 = (h0: number): number => {
  let h = h0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Mixes two 32-bit values into one (order-sensitive). */
export const mix32 = (a: number, b: number): number => fmix32(Math.imul(a ^ 0x9e3779b9, 0x01000193) ^ (b >>> 0))

/** A 32-bit hash of a string (FNV-1a then fmix). */
export const hashString = (s: string, seed = 0): number => {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return fmix32(h)
}

const TWO_POW_21 = 2097152

/**
 * Chained block hash: `h_i = H(h_{i-1}, tokens[start..end))`, returned as a non-negative integer below 2^53 so
 * it can key a `Map<number, …>` exactly (and travel in JSON). Two independent 32-bit lanes keep collisions
 * negligible at the scale of a KV cache (≈1e5 blocks ⇒ collision probability ≈ 1e10 / 2^54).
 */
export const chainHash = (parent: number, tokens: ArrayLike<number>, start: number, end: number): number => {
  const parentHi = Math.floor(parent / TWO_POW_21)
  const parentLo = parent - parentHi * TWO_POW_21
  let a = mix32(parentHi, 0x243f6a88) ^ parentLo
  let b = mix32(parentLo, 0x85a308d3) ^ parentHi
  for (let i = start; i < end; i++) {
    const t = tokens[i]! >>> 0
    a = Math.imul(a ^ t, 0x01000193)
    a = (a << 13) | (a >>> 19)
    b = Math.imul(b + t, 0x5bd1e995)
    b ^= b >>> 15
  }
  const hi = fmix32(a ^ (end - start)) // 32 bits
  const lo = fmix32(b ^ hi) >>> 11 // 21 bits
  return hi * TWO_POW_21 + lo
}

/** The parent of a chain's first block: the engine's cache salt (the served model name), as vLLM's `NONE_HASH`. */
export const rootHash = (salt: string): number => hashString(salt, 0x51ce)

/** Hashes of the leading full `blockSize`-token blocks of `tokens` (at most `maxBlocks`), chained from `root`. */
export const blockHashes = (tokens: ArrayLike<number>, blockSize: number, maxBlocks: number, root: number): Float64Array => {
  const n = Math.max(0, Math.min(maxBlocks, Math.floor(tokens.length / blockSize)))
  const out = new Float64Array(n)
  let h = root
  for (let b = 0; b < n; b++) {
    h = chainHash(h, tokens, b * blockSize, (b + 1) * blockSize)
    out[b] = h
  }
  return out
}

// ---- the Llama 3.1 chat template (approximation; src/simulator/tokens.ts documents it) ----

export const BEGIN_OF_TEXT = 128000
export const START_HEADER = 128006
export const END_HEADER = 128007
export const EOT = 128009

export interface TemplateMessage {
  readonly role: string
  readonly content: string
}

/**
 * Prompt token ids of a chat under the Llama 3.1 template: `<|begin_of_text|>`, then per message (tools first, as
 * an `ipython` message) `<|start_header_id|>role<|end_header_id|>\n\n content <|eot_id|>`, then the assistant
 * header. Each message is encoded on its own (so a conversation is a token prefix of its next turn). Stops adding
 * messages once `maxTokens` are reached (a caller that hashes only leading blocks need not encode the rest).
 */
export const chatTemplateTokens = (
  messages: ReadonlyArray<TemplateMessage>,
  toolsJson: string | undefined,
  encode: (text: string) => ArrayLike<number>,
  maxTokens = Number.POSITIVE_INFINITY
): Uint32Array => {
  const parts: Array<ArrayLike<number>> = []
  let total = 1
  const newlines = encode("\n\n")
  const header = (role: string, content: string) => {
    const r = encode(role)
    const c = content.length === 0 ? [] : encode(content)
    parts.push([START_HEADER], r, [END_HEADER], newlines, c, [EOT])
    total += r.length + newlines.length + c.length + 3
  }
  if (toolsJson !== undefined) header("ipython", toolsJson)
  for (const m of messages) {
    if (total >= maxTokens) break
    header(m.role, m.content)
  }
  if (total < maxTokens) {
    const gen = encode("assistant")
    parts.push([START_HEADER], gen, [END_HEADER], newlines)
    total += gen.length + newlines.length + 2
  }
  const out = new Uint32Array(total)
  out[0] = BEGIN_OF_TEXT
  let k = 1
  for (const p of parts) for (let i = 0; i < p.length; i++) out[k++] = p[i]!
  return out
}

/** Prompt token ids of a raw completion: `<|begin_of_text|>` + the text's (or the given) ids. */
export const completionTemplateTokens = (ids: ArrayLike<number>): Uint32Array => {
  const out = new Uint32Array(ids.length + 1)
  out[0] = BEGIN_OF_TEXT
  for (let i = 0; i < ids.length; i++) out[i + 1] = ids[i]!
  return out
}

const isRecord = (v: unknown): v is { readonly [key: string]: unknown } => typeof v === "object" && v !== null

/**
 * The text of a message's `content` as engines flatten it before templating: a string, or the
 * text of its parts (tool results by their content, other parts as JSON). One definition for
 * the simulator and for the gateway's precise prefix index, whose block hashes must agree.
 */
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

/**
 * Tokens: prompt counting with a real BPE tokenizer, an approximation of Llama 3's chat template, and
 * deterministic pseudo-text whose token count is exact.
 *
 * Owns: how text becomes token ids (prompt side) and how token ids become text (output side).
 * Must never: do I/O or read the clock; depend on the wire formats (dialects hand in plain messages).
 *
 * Approximations (documented in README.md):
 * - Tokenizer: `gpt-tokenizer`'s cl100k_base. Llama 3's tokenizer is tiktoken-based with a 128,256-token vocabulary
 *   whose first 100K merges are cl100k's, so counts for English text agree closely (not exactly).
 * - Chat template (Llama 3.1, without the default "Cutting Knowledge Date" system preamble):
 *   `<|begin_of_text|>` + per message `<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>`
 *   + `<|start_header_id|>assistant<|end_header_id|>\n\n`, i.e. 1 + Σ(content + 5) + 4 tokens. Tools (if any)
 *   are serialised as JSON into an extra system-like header block. Each message is encoded on its own, so a
 *   conversation's prompt is a token prefix of the next turn's prompt (what makes multi-turn prefix hits work).
 * - Special tokens use Llama 3's ids (128000…); text that looks like a special token is encoded as plain text.
 */
import { decode, encode } from "gpt-tokenizer/encoding/cl100k_base"
import { chatTemplateTokens, completionTemplateTokens, type TemplateMessage } from "../domain/KvBlocks.ts"
import { makeRng } from "./engine/random.ts"

export { BEGIN_OF_TEXT, END_HEADER, EOT, START_HEADER, type TemplateMessage } from "../domain/KvBlocks.ts"

const PLAIN = { disallowedSpecial: new Set<string>() }

export const encodeText = (text: string): Array<number> => (text.length === 0 ? [] : encode(text, PLAIN))

export const countTokens = (text: string): number => encodeText(text).length

export const decodeTokens = (ids: ReadonlyArray<number>): string => decode(ids)

/** Prompt token ids for a chat request under the Llama 3.1 template approximation (shared with the gateway). */
export const chatPromptTokens = (messages: ReadonlyArray<TemplateMessage>, toolsJson?: string): Uint32Array =>
  chatTemplateTokens(messages, toolsJson, encodeText)

/** Prompt token ids for a raw completion prompt: `<|begin_of_text|>` + the text (or the given ids). */
export const completionPromptTokens = (prompt: string | ReadonlyArray<number>): Uint32Array =>
  completionTemplateTokens(typeof prompt === "string" ? encodeText(prompt) : prompt)

// ---- pseudo-text ----

const WORDS = (
  "the of and to in is that for it as with was on be by at this from or have an they which one you were all " +
  "we can her has there been if more when will would who so no about out up them some what its time only new " +
  "could two like other then first also after way many these may well should very through long where much " +
  "before right too any same just over such our most even work back good because each people those how three " +
  "year made world still between both under last never while another number since against place around however " +
  "small great system case part large end point group often given set important public few found high state " +
  "during without water less light early form line order river power model cache token batch engine request " +
  "memory block queue stream latency signal simple value result change level local field open close"
).split(" ")

const CAPITALS = "The This It We They In For When After Each Many Some Our Most Every Later".split(" ")

interface Piece {
  readonly id: number
  readonly text: string
}

const single = (text: string): Piece | undefined => {
  const ids = encodeText(text)
  return ids.length === 1 ? { id: ids[0]!, text } : undefined
}

const keep = (xs: ReadonlyArray<Piece | undefined>): ReadonlyArray<Piece> => xs.filter((x): x is Piece => x !== undefined)

const WORD_PIECES = keep(WORDS.map((w) => single(" " + w)))
const CAP_PIECES = keep(CAPITALS.map((w) => single(" " + w)))
const FIRST_PIECES = keep(CAPITALS.map((w) => single(w)))
const PERIOD = single(".")!
const COMMA = single(",")!

/** Output tokens: ids and the text piece of each (their concatenation re-tokenizes to exactly these ids). */
export interface TokenPieces {
  readonly ids: Uint32Array
  readonly pieces: ReadonlyArray<string>
}

/**
 * `n` tokens of English-looking pseudo-text, determined by `seed`. Every piece is one cl100k token (a word with
 * a leading space, a capitalised word, "." or ","), so `encodeText(pieces.join(""))` gives back `ids` exactly.
 */
export const pseudoText = (n: number, seed: number): TokenPieces => {
  const rng = makeRng(seed)
  const ids = new Uint32Array(n)
  const pieces: Array<string> = new Array<string>(n)
  let sinceStop = 0
  let sentenceLength = 6 + Math.floor(rng() * 12)
  for (let i = 0; i < n; i++) {
    let p: Piece
    if (i === 0) p = FIRST_PIECES[Math.floor(rng() * FIRST_PIECES.length)]!
    else if (pieces[i - 1] === ".") p = CAP_PIECES[Math.floor(rng() * CAP_PIECES.length)]!
    else if (sinceStop >= sentenceLength && i < n - 1 && pieces[i - 1] !== ",") {
      p = PERIOD
      sinceStop = 0
      sentenceLength = 6 + Math.floor(rng() * 12)
    } else if (sinceStop > 3 && pieces[i - 1] !== "," && rng() < 0.06) {
      p = COMMA
    } else {
      p = WORD_PIECES[Math.floor(rng() * WORD_PIECES.length)]!
      sinceStop++
    }
    ids[i] = p.id
    pieces[i] = p.text
  }
  return { ids, pieces }
}

const LOOP = [single("The")!, ...keep([" answer", " is", " the", " same", " answer", "."].map(single))]

/** Degenerate output: one short phrase repeated (a repetition loop) for exactly `n` tokens. */
export const repetitionLoop = (n: number): TokenPieces => {
  const ids = new Uint32Array(n)
  const pieces: Array<string> = new Array<string>(n)
  for (let i = 0; i < n; i++) {
    const p = i % LOOP.length === 0 && i > 0 ? CAP_PIECES[0]! : LOOP[i % LOOP.length]!
    ids[i] = p.id
    pieces[i] = p.text
  }
  return { ids, pieces }
}

/**
 * Tokens of an exact string (tool-call arguments), each with its text piece. Pieces are cut at token
 * boundaries; for ASCII text (our generated arguments) they are exact.
 */
export const textPieces = (text: string): TokenPieces => {
  const ids = encodeText(text)
  return { ids: Uint32Array.from(ids), pieces: ids.map((id) => decode([id])) }
}

/** A word for generated argument values (deterministic from the rng). */
export const pickWord = (u: number): string => WORDS[Math.floor(u * WORDS.length) % WORDS.length]!

/**
 * Prompt token counting with a real BPE tokenizer (gpt-tokenizer).
 *
 * `o200k` is exact for current OpenAI models (gpt-4o, gpt-4.1, gpt-5, o-series); `cl100k`
 * is exact for gpt-3.5/gpt-4 and the documented approximation for open models (Llama 3's
 * tiktoken-derived vocabulary counts within a few percent of cl100k on English text);
 * `chars` is bytes/4 for when no tokenizer is wanted. Encodings are loaded on first use
 * (each costs tens of MB and up to 0.2 s, so a gateway at rest does not carry them); the
 * admission phase awaits the load, so every estimate uses the real tokenizer.
 */
import { Effect } from "effect"

export type Encoding = "o200k" | "cl100k" | "chars"

type Counter = (text: string) => number

const counters: Partial<Record<Encoding, Counter>> = {
  chars: (text) => Math.ceil(Buffer.byteLength(text, "utf8") / 4)
}

/** The encoding a model name implies when the config does not say. */
export const encodingFor = (model: string): Encoding => {
  const m = model.toLowerCase().replace(/^.*\//, "")
  if (/^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o[1-9]|chatgpt|gpt-oss|codex)/.test(m)) return "o200k"
  return "cl100k"
}

/** Loads an encoding (idempotent). */
export const load = (encoding: Encoding): Effect.Effect<void> =>
  counters[encoding] !== undefined
    ? Effect.void
    : Effect.promise(async () => {
      const mod = encoding === "o200k"
        ? await import("gpt-tokenizer/encoding/o200k_base")
        : await import("gpt-tokenizer/encoding/cl100k_base")
      counters[encoding] = (text) => mod.countTokens(text)
    })

export const isLoaded = (encoding: Encoding): boolean => counters[encoding] !== undefined

/** Counts tokens now; uses the byte approximation while the encoding is still loading. */
export const count = (encoding: Encoding, text: string): number => (counters[encoding] ?? counters.chars!)(text)

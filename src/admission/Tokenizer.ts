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

import type { Encoding } from "../domain/Encodings.ts"

export type { Encoding } from "../domain/Encodings.ts"
export { encodingFor } from "../domain/Encodings.ts"

type Counter = (text: string) => number

const counters: Partial<Record<Encoding, Counter>> = {
  chars: (text) => Math.ceil(Buffer.byteLength(text, "utf8") / 4)
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

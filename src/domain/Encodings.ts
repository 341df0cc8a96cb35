/**
 * The prompt tokenizers a model can be configured with, and which one a model name implies
 * when the config does not say. Names and a pure lookup only: the tokenizers themselves are
 * loaded by admission (admission/Tokenizer.ts).
 *
 * `o200k` is exact for current OpenAI models (gpt-4o, gpt-4.1, gpt-5, o-series); `cl100k` is
 * exact for gpt-3.5/gpt-4 and the documented approximation for open models (Llama 3's
 * tiktoken-derived vocabulary counts within a few percent of cl100k on English text);
 * `chars` is bytes/4 for when no tokenizer is wanted.
 */

export type Encoding = "o200k" | "cl100k" | "chars"

/** The encoding a model name implies when the config does not say. */
export const encodingFor = (model: string): Encoding => {
  const m = model.toLowerCase().replace(/^.*\//, "")
  if (/^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o[1-9]|chatgpt|gpt-oss|codex)/.test(m)) return "o200k"
  return "cl100k"
}

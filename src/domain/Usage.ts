/**
 * Token usage as the gateway accounts it, and the arithmetic on it.
 * Pure values only: no I/O, no clocks.
 */

export interface Usage {
  readonly promptTokens: number
  readonly completionTokens: number
  /** Prompt tokens the backend served from its prefix cache (a subset of promptTokens). */
  readonly cachedTokens: number
  /** Prompt tokens written to the backend's prompt cache (a subset of promptTokens), where reported. */
  readonly cacheCreationTokens?: number
  /** Completion tokens spent on hidden reasoning (a subset of completionTokens), where reported. */
  readonly reasoningTokens?: number
}

export const zero: Usage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 }

export const total = (u: Usage): number => u.promptTokens + u.completionTokens

/** Parses an OpenAI `usage` object; undefined when it is not one. */
export const fromOpenAI = (raw: unknown): Usage | undefined => {
  if (typeof raw !== "object" || raw === null) return undefined
  const u = raw as Record<string, unknown>
  // Rerank and some embedding servers report only `total_tokens` (all of it input).
  const prompt = typeof u["prompt_tokens"] === "number" ? u["prompt_tokens"] : u["total_tokens"]
  if (typeof prompt !== "number") return undefined
  const completion = typeof u["completion_tokens"] === "number" ? u["completion_tokens"] : 0
  const details = u["prompt_tokens_details"]
  const cached = typeof details === "object" && details !== null &&
      typeof (details as Record<string, unknown>)["cached_tokens"] === "number"
    ? (details as Record<string, number>)["cached_tokens"]!
    : 0
  return { promptTokens: prompt, completionTokens: completion, cachedTokens: cached }
}

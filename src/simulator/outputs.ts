/**
 * Output planning: what a request will generate, decided once at admission, deterministically.
 *
 * Owns: the "natural" output length (log-uniform 16–512 tokens from seed + prompt hash), `max_tokens` capping,
 * the `sim_output_tokens` override, degenerate (repetition-loop) output, and tool calls with deterministic
 * JSON arguments derived from the function's JSON-Schema parameters.
 * Must never: know a wire format; the dialects turn a plan into chunks.
 */
import { hashTokens, makeRng, type Rng } from "./engine/random.ts"
import type { FinishKind } from "./engine/sequence.ts"
import { pickWord, pseudoText, repetitionLoop, textPieces } from "./tokens.ts"

/** `max_tokens` when a request does not say (vLLM would allow up to the context length; we keep demos short). */
export const DEFAULT_MAX_TOKENS = 256
export const NATURAL_MIN = 16
export const NATURAL_MAX = 512

export interface ToolChoice {
  readonly name: string
  /** The function's JSON-Schema `parameters` (or Anthropic `input_schema`), as sent. */
  readonly parameters: unknown
}

export interface OutputPlan {
  readonly ids: Uint32Array
  readonly pieces: ReadonlyArray<string>
  /** Engine-level finish ("length" when max_tokens cut it). */
  readonly finish: FinishKind
  /** Present when the output is a tool call; `pieces` are then fragments of `argumentsJson`. */
  readonly tool?: { readonly name: string; readonly argumentsJson: string } | undefined
}

export interface PlanInput {
  readonly prompt: Uint32Array
  readonly maxTokens: number
  readonly seed: number
  /** Client-supplied `seed` (changes the text, not the length). */
  readonly requestSeed?: number | undefined
  /** `sim_output_tokens`: exact output length (still capped by maxTokens). */
  readonly forcedTokens?: number | undefined
  readonly degenerate: boolean
  readonly tool?: ToolChoice | undefined
}

/** Log-uniform length in [NATURAL_MIN, NATURAL_MAX] from a 32-bit hash. */
export const naturalLength = (hash: number): number => {
  const u = (hash >>> 0) / 4294967296
  return Math.round(Math.exp(Math.log(NATURAL_MIN) + u * (Math.log(NATURAL_MAX) - Math.log(NATURAL_MIN))))
}

export const planOutput = (input: PlanInput): OutputPlan => {
  const promptHash = hashTokens(input.prompt, input.seed)
  const textSeed = promptHash ^ (input.requestSeed ?? 0)
  const max = Math.max(1, input.maxTokens)
  if (input.tool !== undefined) {
    const argumentsJson = JSON.stringify(exampleValue(input.tool.parameters, makeRng(textSeed), 0))
    const all = textPieces(argumentsJson)
    const n = Math.min(all.ids.length, max)
    return {
      ids: all.ids.subarray(0, n),
      pieces: all.pieces.slice(0, n),
      finish: n < all.ids.length ? "length" : "stop",
      tool: { name: input.tool.name, argumentsJson }
    }
  }
  if (input.degenerate) {
    const t = repetitionLoop(max)
    return { ids: t.ids, pieces: t.pieces, finish: "length" }
  }
  const wanted = input.forcedTokens ?? naturalLength(promptHash)
  const n = Math.max(1, Math.min(wanted, max))
  const t = pseudoText(n, textSeed)
  return { ids: t.ids, pieces: t.pieces, finish: wanted > max ? "length" : "stop" }
}

const isRecord = (u: unknown): u is Readonly<Record<string, unknown>> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** A deterministic value that satisfies the common parts of a JSON Schema (type, enum, properties, items). */
export const exampleValue = (schema: unknown, rng: Rng, depth: number): unknown => {
  if (!isRecord(schema) || depth > 4) return pickWord(rng())
  const enumValues = schema["enum"]
  if (Array.isArray(enumValues) && enumValues.length > 0) return enumValues[Math.floor(rng() * enumValues.length)]
  if ("const" in schema) return schema["const"]
  const rawType = schema["type"]
  const type = Array.isArray(rawType) ? rawType.find((t) => t !== "null") : rawType
  switch (type) {
    case "integer":
      return Math.floor(rng() * 100)
    case "number":
      return Math.round(rng() * 10000) / 100
    case "boolean":
      return rng() < 0.5
    case "null":
      return null
    case "array":
      return [exampleValue(schema["items"], rng, depth + 1)]
    case "string":
      return `${pickWord(rng())} ${pickWord(rng())}`
    default: {
      const props = schema["properties"]
      if (!isRecord(props)) return type === "object" ? {} : pickWord(rng())
      const out: Record<string, unknown> = {}
      for (const key of Object.keys(props)) out[key] = exampleValue(props[key], rng, depth + 1)
      return out
    }
  }
}

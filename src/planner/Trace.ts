/**
 * The planner's traces: what arrives when. An arrival is a time, a tenant, a model, a prompt (a list of
 * keyed segments: equal keys are equal token runs, which is how a shared system prompt or a conversation's
 * history becomes a shared prefix), an output length, an output cap and an optional session.
 *
 * Owns decoding trace lines (JSONL) into arrivals, with Schema (never a cast): the planner's own line
 * format, and the audit ledger's records (`usage.jsonl` lines, or the journal's settled entries: arrival
 * at `settledAtMs − durationMs`, prompt and completion tokens as charged, the output cap from the
 * reservation; the record id as the only segment, so ledger prompts share nothing: the ledger keeps no
 * prompt text). Bounded: at most `MAX_ARRIVALS`
 * lines, every count capped. Must never: do I/O (the command line reads the file) or read a clock.
 */
import { Data, Option, Schema } from "effect"

export interface Segment {
  /** Equal keys stand for equal token runs (a shared prefix); the token ids are derived from the key. */
  readonly key: string
  readonly tokens: number
}

export interface Arrival {
  /** Send time, ms from the trace's start (virtual time). */
  readonly atMs: number
  readonly tenant: string
  readonly model: string
  /** The prompt, in order. */
  readonly segments: ReadonlyArray<Segment>
  /** Tokens the engine generates. */
  readonly outputTokens: number
  /** The request's output cap (`max_tokens`), what admission reserves; ≥ outputTokens. */
  readonly maxTokens: number
  /** Session key (`user` / `x-session-id`): session affinity. */
  readonly session?: string | undefined
}

/** Most arrivals one trace may hold, and the largest token count one line may name. */
export const MAX_ARRIVALS = 5_000_000
export const MAX_TOKENS = 1_048_576

export const promptTokens = (a: Arrival): number => {
  let n = 0
  for (const s of a.segments) n += s.tokens
  return n
}

const Tokens = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(MAX_TOKENS))
const Key = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(256))

/**
 * The planner's line: `{"at_ms":0,"model":"m","prompt_tokens":900,"output_tokens":120}` with optional
 * `tenant`, `max_tokens`, `session`, and `prefix` + `prefix_tokens` (the leading `prefix_tokens` of the
 * prompt are the run named `prefix`, shared by every line naming it).
 */
const PlannerLine = Schema.Struct({
  at_ms: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  tenant: Schema.optionalKey(Key),
  model: Key,
  prompt_tokens: Tokens,
  output_tokens: Tokens,
  max_tokens: Schema.optionalKey(Tokens),
  prefix: Schema.optionalKey(Key),
  prefix_tokens: Schema.optionalKey(Tokens),
  session: Schema.optionalKey(Key)
})
const decodePlannerLine = Schema.decodeUnknownOption(Schema.fromJsonString(PlannerLine))

const Count = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
/** The fields of a settled accounting record the planner reads (the ledger's own schema: JournalEntry.ts). */
const Usage = Schema.Struct({
  recordId: Schema.optionalKey(Schema.String),
  at: Schema.optionalKey(Schema.String),
  tenant: Key,
  model: Key,
  charged: Schema.Struct({ promptTokens: Count, completionTokens: Count }),
  reservedTokens: Schema.optionalKey(Count),
  estimatedPromptTokens: Schema.optionalKey(Count),
  durationMs: Count,
  settledAtMs: Schema.optionalKey(Schema.Finite)
})
/** `usage.jsonl` lines (the record with `at` and `seq`), or journal lines (`{"t":"s","r":record}` and the others). */
const Ledger = Schema.Union([
  Schema.Struct({ t: Schema.String, r: Schema.optionalKey(Usage) }),
  Usage
])
const decodeUsage = Schema.decodeUnknownOption(Schema.fromJsonString(Ledger))

export class TraceError extends Data.TaggedError("TraceError")<{ readonly line: number; readonly message: string }> {}

/** One decoded line: an arrival (absolute time, rebased later), nothing (a ledger line that is no usage), or an error. */
const decodeLine = (text: string, index: number): Arrival | undefined | TraceError => {
  const planner = decodePlannerLine(text)
  if (Option.isSome(planner)) {
    const l = planner.value
    const prefixTokens = l.prefix === undefined ? 0 : Math.min(l.prefix_tokens ?? 0, l.prompt_tokens)
    if (l.prefix !== undefined && l.prefix_tokens === undefined) {
      return new TraceError({ line: index + 1, message: "prefix needs prefix_tokens" })
    }
    const segments: Array<Segment> = []
    if (prefixTokens > 0) segments.push({ key: `p:${l.prefix}`, tokens: prefixTokens })
    if (l.prompt_tokens > prefixTokens) segments.push({ key: `u:${index}`, tokens: l.prompt_tokens - prefixTokens })
    return {
      atMs: l.at_ms,
      tenant: l.tenant ?? "default",
      model: l.model,
      segments,
      outputTokens: l.output_tokens,
      maxTokens: Math.max(l.output_tokens, l.max_tokens ?? l.output_tokens),
      session: l.session
    }
  }
  const decoded = decodeUsage(text)
  if (Option.isNone(decoded)) {
    return new TraceError({ line: index + 1, message: "neither a planner trace line nor a ledger usage record" })
  }
  const r = "t" in decoded.value ? decoded.value.r : decoded.value
  if (r === undefined) return undefined // a journal line that is no settlement
  const prompt = Math.min(MAX_TOKENS, Math.floor(r.charged.promptTokens))
  const output = Math.min(MAX_TOKENS, Math.floor(r.charged.completionTokens))
  const settled = r.settledAtMs ?? ("at" in r && r.at !== undefined ? Date.parse(r.at) : Number.NaN)
  // Usage without generation (embeddings, failures before a token) is no load the planner models.
  if (!Number.isFinite(settled) || prompt < 1 || output < 1) return undefined
  const reserved = (r.reservedTokens ?? 0) - (r.estimatedPromptTokens ?? 0)
  return {
    atMs: Math.max(0, settled - r.durationMs),
    tenant: r.tenant,
    model: r.model,
    segments: [{ key: `r:${r.recordId ?? index}`, tokens: prompt }],
    outputTokens: output,
    maxTokens: Math.min(MAX_TOKENS, Math.max(output, reserved))
  }
}

/** Decodes a JSONL trace (blank lines skipped), sorted by time and rebased to start at 0. */
export const parse = (text: string): ReadonlyArray<Arrival> | TraceError => {
  const out: Array<Arrival> = []
  let index = 0
  let start = 0
  while (start < text.length) {
    let end = text.indexOf("\n", start)
    if (end < 0) end = text.length
    const line = text.slice(start, end).trim()
    start = end + 1
    if (line.length > 0) {
      const decoded = decodeLine(line, index)
      if (decoded instanceof TraceError) return decoded
      if (decoded !== undefined) {
        if (out.length >= MAX_ARRIVALS) return new TraceError({ line: index + 1, message: `more than ${MAX_ARRIVALS} arrivals` })
        out.push(decoded)
      }
    }
    index++
  }
  out.sort((a, b) => a.atMs - b.atMs)
  const t0 = out[0]?.atMs ?? 0
  return t0 === 0 ? out : out.map((a) => ({ ...a, atMs: a.atMs - t0 }))
}

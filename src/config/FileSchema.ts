/**
 * The schema of the YAML config file (stage one of loading: decode).
 *
 * Owns the shape of the file only. Unknown keys are rejected (decoding runs with
 * `onExcessProperty: "error"`), so a typo such as `max_concurency` fails at start with
 * the path that holds it. Cross-field rules (duplicate ids, a model no backend serves)
 * live in Plan.ts; this file must never read the environment or touch the network.
 */
import { Schema } from "effect"

const DURATION = /^\d+(\.\d+)?\s*(ms|s|m|h)$/
const BYTES = /^\d+(\.\d+)?\s*(B|KB|KiB|MB|MiB|GB|GiB)$/

/** `250ms`, `30s`, `5m`, `1h`, or a number of milliseconds. */
export const Duration = Schema.Union([
  Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  Schema.String.check(Schema.isPattern(DURATION, { message: "expected a duration such as 500ms, 30s or 5m" }))
])

/** `4MiB`, `512KB`, or a number of bytes. */
export const ByteSize = Schema.Union([
  Schema.Int.check(Schema.isGreaterThan(0)),
  Schema.String.check(Schema.isPattern(BYTES, { message: "expected a size such as 512KiB or 4MiB" }))
])

const Name = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/, {
  message: "expected a name of letters, digits and . _ : / @ + -"
}))

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const Ratio = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))

export const Dialect = Schema.Literals(["openai", "vllm", "sglang", "llamacpp", "nim", "tgi", "anthropic", "ollama"])
export type Dialect = typeof Dialect.Type

export const ModelEntry = Schema.Struct({
  name: Name,
  aliases: Schema.optionalKey(Schema.Array(Name)),
  /** Expected output tokens when a request has no max_tokens (for reservations and estimates). */
  default_max_tokens: Schema.optionalKey(PositiveInt),
  /** Hard cap on max_tokens a client may ask for. */
  max_output_tokens: Schema.optionalKey(PositiveInt),
  /** Context window in tokens; longer prompts are rejected with 400 before dispatch. */
  context_window: Schema.optionalKey(PositiveInt),
  /** Prompt tokenizer: o200k / cl100k (BPE) or chars (bytes/4). Default: from the model name. */
  tokenizer: Schema.optionalKey(Schema.Literals(["o200k", "cl100k", "chars"]))
})

/** A backend serves a model under the public name, or under another upstream name. */
export const ServedModel = Schema.Union([
  Name,
  Schema.Struct({ name: Name, upstream: Schema.String })
])

export const SimulatedEngine = Schema.Struct({
  profile: Schema.String,
  time_scale: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThan(0))),
  jitter: Schema.optionalKey(Ratio),
  seed: Schema.optionalKey(Schema.Int),
  dialect: Schema.optionalKey(Schema.Literals(["openai", "anthropic", "ollama", "sglang"]))
})

export const BackendEntry = Schema.Struct({
  id: Name,
  dialect: Schema.optionalKey(Dialect),
  /** Base URL including the API prefix, e.g. http://10.0.0.5:8000/v1. Omit when `simulate` is set. */
  url: Schema.optionalKey(Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s]+$/, {
    message: "expected an http(s) URL"
  }))),
  /** Start an in-process engine simulator for this backend instead of calling a URL. */
  simulate: Schema.optionalKey(SimulatedEngine),
  models: Schema.Array(ServedModel).check(Schema.isMinLength(1)),
  gpu: Schema.optionalKey(Schema.String),
  quantization: Schema.optionalKey(Schema.String),
  /** Slot limit: at most this many requests in flight on this backend. */
  max_concurrency: Schema.optionalKey(PositiveInt),
  /** Name of the environment variable holding the API key (read at start, kept redacted). */
  api_key_env: Schema.optionalKey(Schema.String.check(Schema.isPattern(/^[A-Z_][A-Z0-9_]*$/, {
    message: "expected an environment variable name"
  }))),
  /** Relative routing weight (ordered fallback ignores it). */
  weight: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThan(0))),
  /** Upstream connections kept per backend (undici pool). */
  connections: Schema.optionalKey(PositiveInt)
})

export const Timeouts = Schema.Struct({
  connect: Schema.optionalKey(Duration),
  first_token: Schema.optionalKey(Duration),
  idle: Schema.optionalKey(Duration),
  total: Schema.optionalKey(Duration),
  queue: Schema.optionalKey(Duration),
  drain: Schema.optionalKey(Duration)
})

export const Limits = Schema.Struct({
  max_body_bytes: Schema.optionalKey(ByteSize)
})

export const Retries = Schema.Struct({
  max_attempts: Schema.optionalKey(PositiveInt),
  /** Gateway-wide extra attempts as a share of first attempts (0.2 = at most 20% more). */
  budget_ratio: Schema.optionalKey(Ratio),
  /** Retries always allowed per second regardless of the ratio, so a quiet gateway can still retry. */
  min_per_second: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))
})

export const Routing = Schema.Struct({
  policy: Schema.optionalKey(Schema.String)
})

export const Budgets = Schema.Struct({
  /** Tokens (prompt + completion) each tenant may reserve per window; omit for unlimited. */
  tokens_per_window: Schema.optionalKey(PositiveInt),
  window: Schema.optionalKey(Duration)
})

export const Server = Schema.Struct({
  host: Schema.optionalKey(Schema.String),
  port: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 })))
})

export const ConfigFile = Schema.Struct({
  server: Schema.optionalKey(Server),
  models: Schema.optionalKey(Schema.Array(ModelEntry)),
  backends: Schema.Array(BackendEntry).check(Schema.isMinLength(1)),
  routing: Schema.optionalKey(Routing),
  timeouts: Schema.optionalKey(Timeouts),
  limits: Schema.optionalKey(Limits),
  retries: Schema.optionalKey(Retries),
  budgets: Schema.optionalKey(Budgets)
})
export type ConfigFile = typeof ConfigFile.Type

/** Parses a duration accepted by `Duration` into milliseconds. */
export const durationMs = (value: number | string): number => {
  if (typeof value === "number") return value
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(value)!
  const n = Number(m[1])
  switch (m[2]) {
    case "ms": return n
    case "s": return n * 1000
    case "m": return n * 60_000
    default: return n * 3_600_000
  }
}

/** Parses a size accepted by `ByteSize` into bytes. */
export const byteCount = (value: number | string): number => {
  if (typeof value === "number") return value
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)$/.exec(value)!
  const unit = { B: 1, KB: 1000, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3 }[m[2]!]!
  return Math.round(Number(m[1]) * unit)
}

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

/**
 * A registered dialect: `openai`, `vllm`, `sglang`, `llamacpp`, `nim`, `tgi`, `anthropic`,
 * `ollama`, or one an extension adds (checked against the dialect registry at start).
 */
export const Dialect = Name

/** Which request and response policies (extensions) run; names from the registries. */
export const PolicySelection = Schema.Struct({
  request: Schema.optionalKey(Schema.Array(Name)),
  response: Schema.optionalKey(Schema.Array(Name))
})

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
  tokenizer: Schema.optionalKey(Schema.Literals(["o200k", "cl100k", "chars"])),
  /** Quantizations allowed to serve this model (its latency/quality target); default: all. */
  allowed_quantizations: Schema.optionalKey(Schema.Array(Schema.String)),
  /** GPU SKUs allowed to serve this model; default: all. */
  allowed_gpus: Schema.optionalKey(Schema.Array(Schema.String)),
  /** Time-to-first-token target; candidates predicted to miss it score lower. */
  ttft_target: Schema.optionalKey(Duration),
  /** Inter-token latency target (headroom scorer); default 100ms. */
  itl_target: Schema.optionalKey(Duration),
  /**
   * What a degenerate (looping) output does: `observe` (default: a metric, a log line and
   * health evidence), `end_stream` (also ends a stream with an error event and refuses a
   * unary answer with 502), or `off`.
   */
  repetition: Schema.optionalKey(Schema.Literals(["observe", "end_stream", "off"])),
  /**
   * Whether a non-streaming request may be retried on another backend after the first
   * backend answered 2xx (it already did the whole generation). Default false.
   */
  retry_unary_after_response: Schema.optionalKey(Schema.Boolean),
  /**
   * Models tried in order when this one cannot answer before its first token: its context
   * window is too small, its backends are overloaded, unavailable or rate limited.
   */
  fallbacks: Schema.optionalKey(Schema.Array(Name)),
  /** Largest `n` (and vLLM `best_of`) a request may ask for; default 8. */
  max_n: Schema.optionalKey(PositiveInt),
  /**
   * When every candidate backend is saturated: `route` (default: the least bad takes it and
   * the engine queues it), `queue` (wait in flow control, `flow_control:`) or `reject` (429
   * with retry-after at once).
   */
  on_saturation: Schema.optionalKey(Schema.Literals(["route", "queue", "reject"])),
  /** The policies for this model (instead of the gateway-wide `extensions` lists). */
  extensions: Schema.optionalKey(PolicySelection)
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
  /** Upstream connections per backend for requests (undici pool); at least max_concurrency, default equal. */
  connections: Schema.optionalKey(PositiveInt),
  /** Engine performance profile for GPU-second and TTFT estimates (a simulator profile name). */
  profile: Schema.optionalKey(Schema.String),
  /** Relative price of one GPU-second here (cost scorer). */
  cost_per_gpu_second: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  /** Metrics endpoint flavour to scrape; default from the dialect; `none` disables scraping. */
  metrics: Schema.optionalKey(Schema.Literals(["vllm", "sglang", "trtllm", "llamacpp", "nim", "tgi", "none"])),
  /** Pool role for prefill/decode disaggregation. */
  role: Schema.optionalKey(Schema.Literals(["mixed", "prefill", "decode"])),
  /** Subscribe to the engine's KV-cache events (`GET /kv_events`) for precise prefix routing; default: on for simulated vLLM/SGLang engines. */
  kv_events: Schema.optionalKey(Schema.Boolean),
  /** Free labels (region, zone, tier, ...) for routing extensions to read; Sluice itself reads none. */
  labels: Schema.optionalKey(Schema.Record(Name, Schema.String))
})

export const Timeouts = Schema.Struct({
  connect: Schema.optionalKey(Duration),
  first_token: Schema.optionalKey(Duration),
  idle: Schema.optionalKey(Duration),
  total: Schema.optionalKey(Duration),
  queue: Schema.optionalKey(Duration),
  drain: Schema.optionalKey(Duration)
})

/** Decode-time bounds on one request (each exceeded limit is a 400 naming the field). */
export const Limits = Schema.Struct({
  max_body_bytes: Schema.optionalKey(ByteSize),
  /** Nesting of arrays and objects in a body (checked on the bytes, before parsing). */
  max_json_depth: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 512 }))),
  /** JSON values in a body (every string, number, literal, array and object). */
  max_json_values: Schema.optionalKey(PositiveInt),
  /** Object keys in a body (all objects together). */
  max_json_keys: Schema.optionalKey(PositiveInt),
  /** Chat `messages`. */
  max_messages: Schema.optionalKey(PositiveInt),
  /** Chat `tools`. */
  max_tools: Schema.optionalKey(PositiveInt),
  /** `stop` sequences. */
  max_stop_sequences: Schema.optionalKey(PositiveInt),
  /** Items of a batch: embeddings `input`, completions `prompt` list, rerank `documents`. */
  max_inputs: Schema.optionalKey(PositiveInt),
  /** A non-streaming upstream answer larger than this fails (ResponseTooLarge). */
  max_response_bytes: Schema.optionalKey(ByteSize)
})

export const Retries = Schema.Struct({
  max_attempts: Schema.optionalKey(PositiveInt),
  /** Gateway-wide extra attempts as a share of first attempts (0.2 = at most 20% more). */
  budget_ratio: Schema.optionalKey(Ratio),
  /** Retries always allowed per second regardless of the ratio, so a quiet gateway can still retry. */
  min_per_second: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))
})

/** A tenant's routing policy: backends it may use (default: all) and backends it must not. */
export const TenantRouting = Schema.Struct({
  allowed_backends: Schema.optionalKey(Schema.Array(Name)),
  denied_backends: Schema.optionalKey(Schema.Array(Name))
})

/** Filter → score → pick, every plugin chosen by name (see src/routing/plugins/). */
export const Routing = Schema.Struct({
  /** `inference` (filter/score/pick), or a baseline: `ordered`, `round_robin`, `least_outstanding`, `random`. */
  policy: Schema.optionalKey(Schema.Literals(["inference", "ordered", "round_robin", "least_outstanding", "random"])),
  filters: Schema.optionalKey(Schema.Array(Schema.String)),
  /** Scorer name → weight. */
  scorers: Schema.optionalKey(Schema.Record(Schema.String, Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))),
  /** A registered picker: `max_score`, `p2c`, `weighted_random` or one an extension adds. */
  picker: Schema.optionalKey(Schema.String),
  /** Saturation filter thresholds. */
  max_queue: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  max_kv_usage: Schema.optionalKey(Ratio),
  /** Approximate prefix index. */
  prefix_block_chars: Schema.optionalKey(PositiveInt),
  prefix_max_blocks: Schema.optionalKey(PositiveInt),
  prefix_capacity: Schema.optionalKey(PositiveInt),
  prefix_ttl: Schema.optionalKey(Duration),
  session_ttl: Schema.optionalKey(Duration),
  /** Seed of the pickers' random choices (reproducible benchmarks). */
  seed: Schema.optionalKey(Schema.Int),
  /** Tenant policy (the `tenant` filter): tenant id → the backends it may or may not use. */
  tenants: Schema.optionalKey(Schema.Record(Schema.String, TenantRouting)),
  /** Prefill/decode pools: prompts shorter than this are served by one engine, not split in two legs. */
  pd_min_prompt_tokens: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  /**
   * Panic routing: when the share of a model's candidates that the health and breaker
   * filters keep falls below this, those filters are ignored and every candidate is ranked
   * (the excluded ones last). 0 disables it.
   */
  panic_threshold: Schema.optionalKey(Ratio),
  /**
   * How much a tenant's spend pressure p (its spend limits' used share, 0..1) weighs the
   * `cost` scorer in: `p² × this × the configured scorers' total weight`. 0 disables it.
   */
  spend_pressure_weight: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))
})

/** Backend health from probes and the outcomes of real requests. */
export const Health = Schema.Struct({
  probe_interval: Schema.optionalKey(Duration),
  probe_timeout: Schema.optionalKey(Duration),
  /** First re-probe of an unhealthy or cold backend; the delay doubles up to probe_backoff_max. */
  probe_backoff: Schema.optionalKey(Duration),
  probe_backoff_max: Schema.optionalKey(Duration),
  scrape_interval: Schema.optionalKey(Duration),
  /** Below this output rate (tokens/s of a stream) the stream counts as a bad outcome. */
  min_tokens_per_second: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  /** Sliding window of request outcomes that health is judged on. */
  window: Schema.optionalKey(Duration),
  /** Outcomes the window must hold before its failure rate can make a backend unhealthy. */
  min_samples: Schema.optionalKey(PositiveInt),
  /** Failure rate at or above which a backend is unhealthy (excluded). */
  unhealthy_at: Schema.optionalKey(Ratio),
  /** Failure rate at or above which a backend is degraded (lower routing weight). */
  degrade_at: Schema.optionalKey(Ratio),
  /** Consecutive failed probes before unhealthy. */
  unhealthy_after: Schema.optionalKey(PositiveInt),
  /**
   * Degenerate-output detector: a loop is a sequence of at most `repetition_max_period`
   * units repeated verbatim at least `repetition_min_repeats` times over at least the last
   * `repetition_min_run` units (src/resilience/Repetition.ts).
   */
  repetition_min_run: Schema.optionalKey(PositiveInt),
  repetition_max_period: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1024 }))),
  repetition_min_repeats: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(2)))
})

/** Circuit breakers keyed by (model, GPU SKU). */
export const Breakers = Schema.Struct({
  window: Schema.optionalKey(Duration),
  min_requests: Schema.optionalKey(PositiveInt),
  /** Failure (or slow-token) rate above which the breaker degrades (lower routing weight). */
  degrade_at: Schema.optionalKey(Ratio),
  /** Failure rate above which it opens. */
  open_at: Schema.optionalKey(Ratio),
  open_for: Schema.optionalKey(Duration),
  half_open_probes: Schema.optionalKey(PositiveInt),
  /** A first token slower than this counts as a slow outcome. */
  slow_ttft: Schema.optionalKey(Duration),
  /** Routing weight multiplier while degraded. */
  degraded_weight: Schema.optionalKey(Ratio)
})

export const Budgets = Schema.Struct({
  /** Tokens (prompt + completion) each tenant may reserve per window; omit for unlimited. */
  tokens_per_window: Schema.optionalKey(PositiveInt),
  window: Schema.optionalKey(Duration),
  /** With REDIS_URL, while Redis is unreachable: refuse (503) or admit from a local share of the limit. */
  redis_down: Schema.optionalKey(Schema.Literals(["fail_closed", "local_share"])),
  /** Gateway processes sharing the Redis budget (each worker counts); the default local share is 1/replicas. */
  replicas: Schema.optionalKey(PositiveInt),
  /** The fraction of the limit one process may spend alone while Redis is unreachable. */
  local_share: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)))
})

const Amount = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * Limits of one subject (a tenant, a key, a tenant on one model); an absent field is no
 * limit. Tokens and requests are counts, spend is USD. The admin API takes the same fields.
 */
export const LimitSet = Schema.Struct({
  requests_per_minute: Schema.optionalKey(Amount),
  input_tokens_per_minute: Schema.optionalKey(Amount),
  input_tokens_per_day: Schema.optionalKey(Amount),
  input_tokens_per_month: Schema.optionalKey(Amount),
  output_tokens_per_minute: Schema.optionalKey(Amount),
  output_tokens_per_day: Schema.optionalKey(Amount),
  output_tokens_per_month: Schema.optionalKey(Amount),
  tokens_per_minute: Schema.optionalKey(Amount),
  tokens_per_day: Schema.optionalKey(Amount),
  tokens_per_month: Schema.optionalKey(Amount),
  spend_per_day: Schema.optionalKey(Amount),
  spend_per_month: Schema.optionalKey(Amount),
  concurrent_requests: Schema.optionalKey(Amount)
})

/** Limits per tenant (and per tenant and model) and per key; the database can add and override them. */
export const Quotas = Schema.Struct({
  tenants: Schema.optionalKey(Schema.Record(Name, Schema.Struct({
    ...LimitSet.fields,
    /** The tenant's limits on one model (name or alias). */
    models: Schema.optionalKey(Schema.Record(Name, LimitSet))
  }))),
  /** By key id. */
  keys: Schema.optionalKey(Schema.Record(Name, LimitSet))
})

/** A price in USD per million tokens. */
export const PriceEntry = Schema.Struct({
  input: Amount,
  /** Prompt tokens served from the prefix cache (default: `input`). */
  cached_input: Schema.optionalKey(Amount),
  output: Amount
})

/** Prices by model (name or alias), optionally different on some backends. */
export const Prices = Schema.Record(Name, Schema.Struct({
  ...PriceEntry.fields,
  backends: Schema.optionalKey(Schema.Record(Name, PriceEntry))
}))

/** The audit ledger's queue and local journal (see src/accounting/Ledger.ts). */
export const Ledger = Schema.Struct({
  /** Records held in memory for the store; beyond that they wait in the journal only. */
  queue: Schema.optionalKey(PositiveInt),
  /** Records per store write. */
  batch: Schema.optionalKey(PositiveInt),
  /** Write-behind interval. */
  interval: Schema.optionalKey(Duration),
  /** Longest wait between two store attempts while it fails (the backoff doubles up to this). */
  max_backoff: Schema.optionalKey(Duration),
  /** Journal group commit: fdatasync at most this often (never per request). */
  sync_interval: Schema.optionalKey(Duration),
  /** Journal segment size before a new segment starts (old ones are deleted once in the store). */
  segment_size: Schema.optionalKey(ByteSize)
})

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** Cross-origin access for browsers; off unless configured. */
export const Cors = Schema.Struct({
  /** Origins allowed to call the API (`https://app.example.com`), or `*` for any. */
  allowed_origins: Schema.Array(Schema.String.check(Schema.isPattern(/^(\*|https?:\/\/[^\s/]+)$/, {
    message: "expected * or an origin such as https://app.example.com"
  }))).check(Schema.isMinLength(1)),
  /** Request headers a browser may send (default: authorization, content-type, x-request-id, x-session-id). */
  allowed_headers: Schema.optionalKey(Schema.Array(Schema.String)),
  /** How long a browser may cache a preflight answer (default 10m). */
  max_age: Schema.optionalKey(Duration)
})

/** Request and response policies (extensions registered by layers): which run, and their deadline. */
export const Extensions = Schema.Struct({
  /** Request guardrails and transforms in order; default: every registered one. */
  request: Schema.optionalKey(Schema.Array(Name)),
  /** Response text filters in order; default: every registered one. */
  response: Schema.optionalKey(Schema.Array(Name)),
  /** Deadline of one policy call (a request policy, or one step of a response filter). */
  timeout: Schema.optionalKey(Duration)
})

/** A tenant declared in the config file (GitOps-style; tenants can also live in the database). */
export const AuthTenant = Schema.Struct({
  name: Schema.optionalKey(Schema.String)
})

/**
 * An API key declared in the config file: its public id and the Argon2id hash of the whole
 * key (`sluice keys hash` prints both), never the key itself.
 */
export const AuthKey = Schema.Struct({
  /** The key id: the 12 characters after `sk-sluice-`. */
  id: Schema.String.check(Schema.isPattern(/^[0-9A-Za-z]{12}$/, { message: "expected a key id of 12 letters and digits" })),
  tenant: Name,
  name: Schema.optionalKey(Schema.String),
  hash: Schema.String.check(Schema.isPattern(/^\$argon2id\$/, { message: "expected an Argon2id hash ($argon2id$...)" })),
  /** Models (names or aliases) the key may use; default: every model. */
  models: Schema.optionalKey(Schema.Array(Name)),
  /** ISO 8601 time after which the key is refused, e.g. 2026-12-31T00:00:00Z. */
  expires_at: Schema.optionalKey(Schema.String)
})

/**
 * Who may call the gateway. `none` serves every request as tenant `default` without keys,
 * on any address. Otherwise requests present API keys once any key exists (in the database
 * or here); with no key at all the gateway serves anonymously on a loopback address only.
 */
export const Auth = Schema.Union([
  Schema.Literal("none"),
  Schema.Struct({
    /** Authenticators in order (registry names); default `[api_key]`. */
    authenticators: Schema.optionalKey(Schema.Array(Name)),
    /** Verified keys kept per replica (SHA-256 of the key → identity); default 10000. */
    cache_size: Schema.optionalKey(PositiveInt),
    /** How long a verified key is trusted before its row is read again (no Argon2 then); default 30s. */
    cache_ttl: Schema.optionalKey(Duration),
    /** Redis pub/sub channel that carries revocations to every replica (with REDIS_URL). */
    revocation_channel: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1))),
    /** Tenants declared here, by id. */
    tenants: Schema.optionalKey(Schema.Record(Name, AuthTenant)),
    /** Keys declared here (hashes only). */
    keys: Schema.optionalKey(Schema.Array(AuthKey))
  })
])

export const Server = Schema.Struct({
  host: Schema.optionalKey(Schema.String),
  port: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))),
  /** Cross-origin access for browsers (off unless set). */
  cors: Schema.optionalKey(Cors),
  /** A request's headers must arrive within this, from its first byte (0: no deadline). */
  headers_timeout: Schema.optionalKey(Duration),
  /** The whole request, headers and body, must arrive within this, from its first byte (0: no deadline). */
  body_timeout: Schema.optionalKey(Duration),
  /** Open client connections at most (per process); more are closed at accept (0: no cap). */
  max_connections: Schema.optionalKey(Count),
  /** Open client connections from one address at most (per process; 0: no cap). */
  max_connections_per_address: Schema.optionalKey(Count),
  /**
   * After this long with no request in flight and none started, one memory-reducing full GC
   * gives memory back to the OS, once per quiet period (0, the default: never; it slows the
   * load that follows, see README "Memory after load").
   */
  idle_gc_after: Schema.optionalKey(Duration)
})

/** Flow control: where requests wait when every backend of their model is saturated. */
export const FlowControlTenant = Schema.Struct({
  /** The tenant's priority band (0 first); default `flow_control.default_band`. */
  band: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 15 }))),
  /** Its weight in fair queuing (tokens served in proportion); default 1. */
  weight: Schema.optionalKey(Schema.Number.check(Schema.isGreaterThan(0))),
  /** Whether its requests may pick a lower priority (a higher band) with `x-sluice-priority`. */
  priority_header: Schema.optionalKey(Schema.Boolean)
})

export const FlowControl = Schema.Struct({
  bands: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 16 }))),
  default_band: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 15 }))),
  max_queued: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  max_wait: Schema.optionalKey(Duration),
  tenants: Schema.optionalKey(Schema.Record(Name, FlowControlTenant))
})

export const ConfigFile = Schema.Struct({
  server: Schema.optionalKey(Server),
  models: Schema.optionalKey(Schema.Array(ModelEntry)),
  backends: Schema.Array(BackendEntry).check(Schema.isMinLength(1)),
  routing: Schema.optionalKey(Routing),
  timeouts: Schema.optionalKey(Timeouts),
  limits: Schema.optionalKey(Limits),
  retries: Schema.optionalKey(Retries),
  budgets: Schema.optionalKey(Budgets),
  quotas: Schema.optionalKey(Quotas),
  prices: Schema.optionalKey(Prices),
  ledger: Schema.optionalKey(Ledger),
  health: Schema.optionalKey(Health),
  breakers: Schema.optionalKey(Breakers),
  extensions: Schema.optionalKey(Extensions),
  auth: Schema.optionalKey(Auth),
  flow_control: Schema.optionalKey(FlowControl)
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

/**
 * The validated, immutable plan (stage two of loading: validate across fields).
 *
 * Owns the rules that span fields: unique backend ids, unique model names and aliases,
 * every model served by at least one backend, every backend model declared. A plan is
 * a frozen value: a reload builds a new one and swaps it; nothing mutates a plan.
 * This module does no I/O except reading the API-key environment variables it is given.
 */
import { Data, Redacted } from "effect"
import * as Encodings from "../domain/Encodings.ts"
import { BackendId, GpuSku, ModelId, TenantId } from "../domain/Ids.ts"
import type { LimitSet, Price } from "../domain/Quotas.ts"
import { byteCount, type ConfigFile, durationMs } from "./FileSchema.ts"

export interface ModelPlan {
  readonly id: ModelId
  readonly aliases: ReadonlyArray<string>
  readonly defaultMaxTokens: number
  readonly maxOutputTokens: number | undefined
  readonly contextWindow: number | undefined
  readonly tokenizer: Encodings.Encoding
  readonly allowedQuantizations: ReadonlyArray<string> | undefined
  readonly allowedGpus: ReadonlyArray<string> | undefined
  readonly ttftTargetMs: number | undefined
  readonly itlTargetMs: number | undefined
  /** What a degenerate output does (`models[].repetition`). */
  readonly repetition: "observe" | "end_stream" | "off"
  /** Whether a unary request may be retried after a backend answered 2xx. */
  readonly retryUnaryAfterResponse: boolean
  /** Largest `n` / `best_of` a request may ask for. */
  readonly maxN: number
  /** When every candidate is saturated: route to the least bad, wait in flow control, or 429 (default route). */
  readonly onSaturation?: "route" | "queue" | "reject" | undefined
  /** This model's policy lists (undefined: the gateway's `extensions`). */
  readonly extensions: PolicySelectionPlan | undefined
  /** Models tried in order when this one cannot answer before its first token (`models[].fallbacks`). */
  readonly fallbacks: ReadonlyArray<ModelId>
}

export interface PolicySelectionPlan {
  readonly request?: ReadonlyArray<string> | undefined
  readonly response?: ReadonlyArray<string> | undefined
}

export interface ExtensionsPlan extends PolicySelectionPlan {
  /** Deadline of one policy call. */
  readonly timeoutMs: number
}

export interface SimulatedPlan {
  readonly profile: string
  readonly timeScale: number
  readonly jitter: number | undefined
  readonly seed: number | undefined
  readonly dialect: "openai" | "anthropic" | "ollama" | "sglang"
}

export interface BackendPlan {
  readonly id: BackendId
  /** A name in the dialect registry (checked at start). */
  readonly dialect: string
  /** Base URL with the API prefix (".../v1"); undefined until a simulated engine is started. */
  readonly url: string | undefined
  readonly simulate: SimulatedPlan | undefined
  /** Public model id → the name the backend knows it by. */
  readonly models: ReadonlyMap<ModelId, string>
  readonly gpu: GpuSku
  readonly quantization: string
  readonly maxConcurrency: number
  /** Upstream connections for requests: at least `maxConcurrency` (default: equal). */
  readonly connections: number
  readonly apiKey: Redacted.Redacted<string> | undefined
  readonly weight: number
  /** Engine performance profile name (GPU-second estimates), if known. */
  readonly profile: string | undefined
  readonly costPerGpuSecond: number
  /** Which engine metrics to scrape; undefined: the dialect's default (the fleet resolves it). */
  readonly metrics: MetricsFlavour | undefined
  readonly role: "mixed" | "prefill" | "decode"
  /** Whether the backend actor subscribes to the engine's KV-cache events (precise prefix index). */
  readonly kvEvents: boolean
  /** Free labels for routing extensions (`backends[].labels`). */
  readonly labels: Readonly<Record<string, string>>
}

/** The engine metrics names a scrape understands (backends/EngineMetrics.ts). */
export type MetricsFlavour = "vllm" | "sglang" | "trtllm" | "llamacpp" | "nim" | "tgi" | "none"

export interface TimeoutsPlan {
  readonly connectMs: number
  readonly firstTokenMs: number
  readonly idleMs: number
  readonly totalMs: number
  readonly queueMs: number
  readonly drainMs: number
}

/** A tenant's routing policy (the `tenant` filter). */
export interface TenantRoutingPlan {
  /** Backends the tenant may use; undefined: all. */
  readonly allowedBackends: ReadonlySet<BackendId> | undefined
  readonly deniedBackends: ReadonlySet<BackendId>
}

export interface RoutingPlan {
  readonly policy: "inference" | "ordered" | "round_robin" | "least_outstanding" | "random"
  readonly filters: ReadonlyArray<string>
  readonly scorers: Readonly<Record<string, number>>
  readonly picker: string
  readonly maxQueue: number
  readonly maxKvUsage: number
  readonly prefixBlockChars: number
  /** Blocks hashed per prompt: `prefixBlockChars × prefixMaxBlocks` characters are matchable. */
  readonly prefixMaxBlocks: number
  /** Prefix-index entries per backend, at most (fewer when the engine's KV cache holds less). */
  readonly prefixCapacity: number
  readonly prefixTtlMs: number
  readonly sessionTtlMs: number
  readonly seed: number | undefined
  /** Tenant id → policy; a tenant not listed may use every backend. */
  readonly tenants: ReadonlyMap<string, TenantRoutingPlan>
  readonly pdMinPromptTokens: number
  /** Below this share of candidates kept by the health and breaker filters, route in panic. */
  readonly panicThreshold: number
  /** Spend pressure p adds the `cost` scorer at `p² × this × Σ scorer weights` (routing/Pipeline.ts). */
  readonly spendPressureWeight: number
}

export interface HealthPlan {
  readonly probeIntervalMs: number
  readonly probeTimeoutMs: number
  readonly probeBackoffMs: number
  readonly probeBackoffMaxMs: number
  readonly scrapeIntervalMs: number
  readonly minTokensPerSecond: number
  readonly windowMs: number
  readonly minSamples: number
  readonly unhealthyAt: number
  readonly degradeAt: number
  readonly unhealthyAfter: number
  readonly repetitionMinRun: number
  readonly repetitionMaxPeriod: number
  readonly repetitionMinRepeats: number
}

export interface BreakersPlan {
  readonly windowMs: number
  readonly minRequests: number
  readonly degradeAt: number
  readonly openAt: number
  readonly openForMs: number
  readonly halfOpenProbes: number
  readonly slowTtftMs: number
  readonly degradedWeight: number
}

/** Decode-time bounds on one request (FileSchema `limits`). */
export interface LimitsPlan {
  readonly maxBodyBytes: number
  readonly maxJsonDepth: number
  readonly maxJsonValues: number
  readonly maxJsonKeys: number
  readonly maxMessages: number
  readonly maxTools: number
  readonly maxStopSequences: number
  readonly maxInputs: number
  readonly maxResponseBytes: number
}

export interface CorsPlan {
  /** Allowed origins; `*` allows any. */
  readonly allowedOrigins: ReadonlyArray<string>
  readonly allowedHeaders: ReadonlyArray<string>
  readonly maxAgeSeconds: number
}

/** The listener: where it listens and what it accepts. Read at start (a reload does not change it). */
export interface ServerPlan {
  readonly host: string
  readonly port: number
  readonly cors: CorsPlan | undefined
  /** Deadlines for *receiving* a request (never for sending the response); 0 = none. */
  readonly headersTimeoutMs: number
  readonly bodyTimeoutMs: number
  /** 0 = no cap. */
  readonly maxConnections: number
  readonly maxConnectionsPerAddress: number
  /** Quiet time before the idle memory reducer's GC (observability/IdleMemory.ts); 0 = off. */
  readonly idleGcAfterMs: number
}

export interface BudgetsPlan {
  readonly tokensPerWindow: number | undefined
  readonly windowMs: number
  /** While a shared (Redis) budget store is unreachable: refuse, or admit from a local share. */
  readonly redisDown: "fail_closed" | "local_share"
  /** The fraction of the limit (of what was left in a window, when known) one process may spend alone. */
  readonly localShare: number
}

/** Limits from the config file (the database overlays them, admission/Quotas.ts). */
export interface QuotasPlan {
  readonly tenants: ReadonlyMap<TenantId, LimitSet>
  readonly keys: ReadonlyMap<string, LimitSet>
  /** By tenant, then model id. */
  readonly models: ReadonlyMap<TenantId, ReadonlyMap<ModelId, LimitSet>>
}

export interface PricePlan extends Price {
  /** Backend id → its own price of this model. */
  readonly backends: ReadonlyMap<BackendId, Price>
}

export interface LedgerPlan {
  readonly queueRecords: number
  readonly batchRecords: number
  readonly intervalMs: number
  readonly maxBackoffMs: number
  readonly syncIntervalMs: number
  readonly segmentBytes: number
}

/** A key declared in the config file: id and Argon2id hash only. */
export interface DeclaredKey {
  readonly id: string
  readonly tenant: TenantId
  readonly name: string
  readonly hash: string
  /** Model names or aliases it may use; undefined: every model. */
  readonly models: ReadonlyArray<string> | undefined
  readonly expiresAtMs: number | undefined
}

export interface AuthPlan {
  /** `none`: `auth: none`, every request is tenant `default`; `keys`: API keys once any exists. */
  readonly mode: "none" | "keys"
  /** Authenticator names in order (checked against the registry at start). */
  readonly authenticators: ReadonlyArray<string>
  readonly cacheSize: number
  readonly cacheTtlMs: number
  readonly revocationChannel: string
  /** Tenants declared in the file, by id. */
  readonly tenants: ReadonlyMap<TenantId, { readonly name: string }>
  /** Keys declared in the file, by key id. */
  readonly keys: ReadonlyMap<string, DeclaredKey>
}

export interface Plan {
  readonly server: ServerPlan
  readonly models: ReadonlyMap<ModelId, ModelPlan>
  /** Every name a client may use (model ids and aliases) → the model id. */
  readonly modelNames: ReadonlyMap<string, ModelId>
  readonly backends: ReadonlyArray<BackendPlan>
  readonly routing: RoutingPlan
  readonly health: HealthPlan
  readonly breakers: BreakersPlan
  readonly timeouts: TimeoutsPlan
  readonly limits: LimitsPlan
  readonly retries: { readonly maxAttempts: number; readonly budgetRatio: number; readonly minPerSecond: number }
  readonly budgets: BudgetsPlan
  readonly quotas: QuotasPlan
  /** Model id → price. */
  readonly prices: ReadonlyMap<ModelId, PricePlan>
  readonly ledger: LedgerPlan
  readonly extensions: ExtensionsPlan
  readonly auth: AuthPlan
  readonly flowControl: FlowControlPlan
}

export interface FlowControlPlan {
  readonly bands: number
  readonly defaultBand: number
  /** Waiting requests per model. */
  readonly maxQueued: number
  readonly maxWaitMs: number
  readonly tenants: ReadonlyMap<string, { readonly band: number; readonly weight: number; readonly priorityHeader: boolean }>
}

export interface PlanIssue {
  readonly path: string
  readonly message: string
}

/** Every cross-field problem of a file (`path`/`message`: the first one). */
export class PlanError extends Data.TaggedError("PlanError")<{
  readonly path: string
  readonly message: string
  readonly issues: ReadonlyArray<PlanIssue>
}> {
  override toString() {
    return this.issues.map((i) => `${i.path}: ${i.message}`).join("; ")
  }
}

export const defaults = {
  host: "127.0.0.1",
  port: 8080,
  /** Receiving a request: headers within 10 s, all of it within 30 s (4 MiB at ~1.1 Mbit/s). */
  headersTimeout: "10s",
  bodyTimeout: "30s",
  /** Per process. A proxy in front shows up as one address: raise the per-address cap (or 0) there. */
  maxConnections: 10_000,
  maxConnectionsPerAddress: 1_000,
  /** Longer than V8's own memory reducer waits (8 s), far longer than any pause between a client's requests. */
  // Off by default: the GC also shrinks the young generation, and load after it runs with more
  // scavenges until V8 grows it back (bench/README.md, "Idle memory", the cost after idle).
  idleGcAfter: "0s",
  defaultMaxTokens: 256,
  maxConcurrency: 256,
  timeouts: { connect: "5s", first_token: "60s", idle: "30s", total: "10m", queue: "5s", drain: "30s" },
  maxBodyBytes: 4 * 1024 * 1024,
  /**
   * Decode-time limits. JSON values and keys bound what `JSON.parse` costs on the event loop
   * (~25 ns a number, ~60 ns a short string, up to ~1 µs a distinct object key): 300k values
   * cover OpenAI's 300k-token embeddings batch or a 128k-token prompt sent as token ids.
   * Counts follow OpenAI's documented caps where there is one (128 tools, 2048 inputs).
   */
  limits: {
    maxJsonDepth: 64,
    maxJsonValues: 300_000,
    maxJsonKeys: 50_000,
    maxMessages: 4096,
    maxTools: 128,
    maxStopSequences: 16,
    maxInputs: 2048,
    maxResponseBytes: 64 * 1024 * 1024
  },
  maxN: 8,
  cors: { allowedHeaders: ["authorization", "content-type", "x-request-id", "x-session-id"], maxAge: "10m" },
  retries: { maxAttempts: 3, budgetRatio: 0.2, minPerSecond: 5 },
  budgetWindowMs: 60_000,
  ledger: {
    queueRecords: 10_000,
    batchRecords: 500,
    intervalMs: 200,
    maxBackoffMs: 30_000,
    syncIntervalMs: 50,
    segmentBytes: 16 * 1024 * 1024
  } satisfies LedgerPlan,
  filters: ["model_served", "health", "breaker", "quantization", "sku", "saturation", "tenant"],
  /** 512 blocks × 64 chars ≈ 32K characters ≈ 8K tokens of prompt are matchable (e.g. a 6K-token system prompt). */
  prefixMaxBlocks: 512,
  scorers: { prefix_cache: 3, queue_depth: 2, kv_usage: 2, session_affinity: 2, predicted_ttft: 1, headroom: 1 },
  /** Envoy's default: route in panic below 50% of the candidates available. */
  panicThreshold: 0.5,
  health: {
    probeBackoffMs: 250,
    probeBackoffMaxMs: 1_000,
    windowMs: 30_000,
    minSamples: 10,
    unhealthyAt: 0.5,
    degradeAt: 0.2,
    unhealthyAfter: 3,
    repetitionMinRun: 320,
    repetitionMaxPeriod: 128,
    repetitionMinRepeats: 4
  },
  auth: { authenticators: ["api_key"], cacheSize: 10_000, cacheTtlMs: 30_000, revocationChannel: "sluice:auth:revocations" }
} as const

/** The metrics of a simulated engine: it serves vLLM's names, or SGLang's, or none. */
const simulatedMetrics = (dialect: string): MetricsFlavour =>
  dialect === "openai" ? "vllm" : dialect === "sglang" ? "sglang" : "none"

/**
 * Validates a decoded file into a plan; the environment is passed in so tests control it.
 * Throws one PlanError listing every problem found (not just the first).
 */
export const fromFile = (
  file: ConfigFile,
  env: Readonly<Record<string, string | undefined>>
): Plan => {
  const issues: Array<PlanIssue> = []
  const plan = validate(file, env, (path, message) => void issues.push({ path, message }))
  const first = issues[0]
  if (first !== undefined) throw new PlanError({ ...first, issues })
  return plan
}

/** Builds the plan, reporting each problem through `fail` and carrying on to find the next. */
const validate = (
  file: ConfigFile,
  env: Readonly<Record<string, string | undefined>>,
  fail: (path: string, message: string) => void
): Plan => {
  const models = new Map<ModelId, ModelPlan>()
  const modelNames = new Map<string, ModelId>()
  const claim = (name: string, id: ModelId, path: string) => {
    const owner = modelNames.get(name)
    if (owner !== undefined) fail(path, `name "${name}" is already used by model "${owner}"`)
    modelNames.set(name, id)
  }
  ;(file.models ?? []).forEach((m, i) => {
    const id = ModelId(m.name)
    claim(m.name, id, `models[${i}].name`)
    ;(m.aliases ?? []).forEach((alias, j) => claim(alias, id, `models[${i}].aliases[${j}]`))
    if (m.default_max_tokens !== undefined && m.max_output_tokens !== undefined && m.default_max_tokens > m.max_output_tokens) {
      fail(`models[${i}].default_max_tokens`, "must not exceed max_output_tokens")
    }
    models.set(id, {
      id,
      aliases: m.aliases ?? [],
      defaultMaxTokens: m.default_max_tokens ?? m.max_output_tokens ?? defaults.defaultMaxTokens,
      maxOutputTokens: m.max_output_tokens,
      contextWindow: m.context_window,
      tokenizer: m.tokenizer ?? Encodings.encodingFor(m.name),
      allowedQuantizations: m.allowed_quantizations,
      allowedGpus: m.allowed_gpus,
      ttftTargetMs: m.ttft_target === undefined ? undefined : durationMs(m.ttft_target),
      itlTargetMs: m.itl_target === undefined ? undefined : durationMs(m.itl_target),
      repetition: m.repetition ?? "observe",
      retryUnaryAfterResponse: m.retry_unary_after_response ?? false,
      onSaturation: m.on_saturation ?? "route",
      maxN: m.max_n ?? defaults.maxN,
      extensions: m.extensions === undefined ? undefined : { request: m.extensions.request, response: m.extensions.response },
      fallbacks: []
    })
  })
  // Fallbacks name declared models (or their aliases), never the model itself.
  ;(file.models ?? []).forEach((m, i) => {
    const id = modelNames.get(m.name)
    const model = id === undefined ? undefined : models.get(id)
    if (model === undefined || m.fallbacks === undefined) return
    const fallbacks: Array<ModelId> = []
    m.fallbacks.forEach((name, j) => {
      const target = modelNames.get(name)
      if (target === undefined) fail(`models[${i}].fallbacks[${j}]`, `model "${name}" is not declared under models`)
      else if (target === model.id) fail(`models[${i}].fallbacks[${j}]`, "a model cannot fall back to itself")
      else if (fallbacks.includes(target)) fail(`models[${i}].fallbacks[${j}]`, `model "${name}" is listed twice`)
      else fallbacks.push(target)
    })
    models.set(model.id, { ...model, fallbacks })
  })
  const declared = (file.models ?? []).length > 0

  const ids = new Set<string>()
  const backends = file.backends.map((b, i): BackendPlan => {
    const path = `backends[${i}]`
    if (ids.has(b.id)) fail(`${path}.id`, `duplicate backend id "${b.id}"`)
    ids.add(b.id)
    if (b.url === undefined && b.simulate === undefined) fail(path, "needs either url or simulate")
    if (b.url !== undefined && b.simulate !== undefined) fail(path, "url and simulate are exclusive")
    const served = new Map<ModelId, string>()
    b.models.forEach((entry, j) => {
      const name = typeof entry === "string" ? entry : entry.name
      const upstream = typeof entry === "string" ? entry : entry.upstream
      const id = modelNames.get(name)
      if (id === undefined) {
        if (declared) fail(`${path}.models[${j}]`, `model "${name}" is not declared under models`)
        // Without a models section, every served name declares a model.
        const implicit = ModelId(name)
        models.set(implicit, {
          id: implicit,
          aliases: [],
          defaultMaxTokens: defaults.defaultMaxTokens,
          maxOutputTokens: undefined,
          contextWindow: undefined,
          tokenizer: Encodings.encodingFor(name),
          allowedQuantizations: undefined,
          allowedGpus: undefined,
          ttftTargetMs: undefined,
          itlTargetMs: undefined,
          repetition: "observe",
          retryUnaryAfterResponse: false,
          maxN: defaults.maxN,
          extensions: undefined,
          fallbacks: []
        })
        modelNames.set(name, implicit)
        served.set(implicit, upstream)
      } else {
        if (served.has(id)) fail(`${path}.models[${j}]`, `model "${name}" is listed twice`)
        served.set(id, upstream)
      }
    })
    let apiKey: Redacted.Redacted<string> | undefined
    if (b.api_key_env !== undefined) {
      const value = env[b.api_key_env]
      if (value === undefined || value === "") {
        fail(`${path}.api_key_env`, `environment variable ${b.api_key_env} is not set`)
      }
      apiKey = Redacted.make(value!)
    }
    const simulate = b.simulate
    // A request holds its upstream connection as long as its slot (a stream: its whole life), so a
    // pool smaller than the slots would make requests wait inside the HTTP client, where neither
    // timeouts.queue nor any metric sees them. The slot wait is the only wait for capacity.
    const maxConcurrency = b.max_concurrency ?? defaults.maxConcurrency
    const connections = b.connections ?? maxConcurrency
    if (connections < maxConcurrency) {
      fail(
        `${path}.connections`,
        `must be at least max_concurrency (${maxConcurrency}): each request in flight holds one upstream connection ` +
          "for as long as it holds its slot, so a smaller pool makes requests wait where timeouts.queue does not apply"
      )
    }
    return {
      id: BackendId(b.id),
      dialect: b.dialect ?? (simulate?.dialect ?? "openai"),
      url: b.url?.replace(/\/+$/, ""),
      simulate: simulate === undefined ? undefined : {
        profile: simulate.profile,
        timeScale: simulate.time_scale ?? 1,
        jitter: simulate.jitter,
        seed: simulate.seed,
        dialect: simulate.dialect ?? "openai"
      },
      models: served,
      gpu: GpuSku(b.gpu ?? "unknown"),
      quantization: b.quantization ?? "unknown",
      maxConcurrency,
      connections,
      apiKey,
      weight: b.weight ?? 1,
      profile: b.profile ?? simulate?.profile,
      costPerGpuSecond: b.cost_per_gpu_second ?? 1,
      metrics: b.metrics ?? (simulate === undefined ? undefined : simulatedMetrics(simulate.dialect ?? "openai")),
      role: b.role ?? "mixed",
      kvEvents: b.kv_events ?? (simulate !== undefined && simulatedMetrics(simulate.dialect ?? "openai") !== "none"),
      labels: b.labels ?? {}
    }
  })

  for (const [id] of models) {
    if (!backends.some((b) => b.models.has(id))) {
      const i = (file.models ?? []).findIndex((m) => m.name === id)
      fail(`models[${i}]`, `model "${id}" is not served by any backend`)
    }
  }

  const t = { ...defaults.timeouts, ...file.timeouts }
  const rt = file.routing ?? {}
  // Plugin names are checked against the routing plugin registry at start (config/Checks.ts).
  const tenants = new Map<string, TenantRoutingPlan>()
  for (const [tenant, policy] of Object.entries(rt.tenants ?? {})) {
    const check = (list: ReadonlyArray<string> | undefined, key: string) =>
      (list ?? []).forEach((id, i) => {
        if (!ids.has(id)) fail(`routing.tenants.${tenant}.${key}[${i}]`, `unknown backend "${id}"`)
      })
    check(policy.allowed_backends, "allowed_backends")
    check(policy.denied_backends, "denied_backends")
    tenants.set(tenant, {
      allowedBackends: policy.allowed_backends === undefined ? undefined : new Set(policy.allowed_backends.map(BackendId)),
      deniedBackends: new Set((policy.denied_backends ?? []).map(BackendId))
    })
  }
  const sv = file.server ?? {}
  const headersTimeoutMs = durationMs(sv.headers_timeout ?? defaults.headersTimeout)
  const bodyTimeoutMs = durationMs(sv.body_timeout ?? defaults.bodyTimeout)
  if (headersTimeoutMs > 0 && bodyTimeoutMs > 0 && headersTimeoutMs > bodyTimeoutMs) {
    fail("server.headers_timeout", "must not exceed server.body_timeout (the body deadline counts from the request's first byte too)")
  }
  const lim = file.limits ?? {}
  const cors = file.server?.cors
  const auth = authPlan(file.auth, modelNames, fail)
  const quotas = quotasPlan(file.quotas, modelNames, fail)
  const prices = pricesPlan(file.prices, modelNames, ids, fail)
  const h = file.health ?? {}
  if ((h.degrade_at ?? defaults.health.degradeAt) > (h.unhealthy_at ?? defaults.health.unhealthyAt)) {
    fail("health.degrade_at", "must not exceed health.unhealthy_at")
  }
  const br = file.breakers ?? {}
  const r = file.retries ?? {}
  const b = file.budgets ?? {}
  const l = file.ledger ?? {}
  if (b.replicas !== undefined && b.local_share !== undefined) fail("budgets.local_share", "set either replicas or local_share, not both")
  if (l.batch !== undefined && l.queue !== undefined && l.queue < l.batch) fail("ledger.queue", "must hold at least one batch (ledger.batch)")
  const fc = file.flow_control ?? {}
  const bands = fc.bands ?? 3
  const defaultBand = fc.default_band ?? Math.min(1, bands - 1)
  if (defaultBand >= bands) fail("flow_control.default_band", `must be below flow_control.bands (${bands})`)
  const flowTenants = new Map<string, { band: number; weight: number; priorityHeader: boolean }>()
  for (const [tenant, t] of Object.entries(fc.tenants ?? {})) {
    if (t.band !== undefined && t.band >= bands) fail(`flow_control.tenants.${tenant}.band`, `must be below flow_control.bands (${bands})`)
    flowTenants.set(tenant, { band: t.band ?? defaultBand, weight: t.weight ?? 1, priorityHeader: t.priority_header ?? false })
  }
  return {
    flowControl: {
      bands,
      defaultBand,
      maxQueued: fc.max_queued ?? 1024,
      maxWaitMs: fc.max_wait === undefined ? 30_000 : durationMs(fc.max_wait),
      tenants: flowTenants
    },
    server: {
      host: sv.host ?? defaults.host,
      port: sv.port ?? defaults.port,
      headersTimeoutMs,
      bodyTimeoutMs,
      maxConnections: sv.max_connections ?? defaults.maxConnections,
      maxConnectionsPerAddress: sv.max_connections_per_address ?? defaults.maxConnectionsPerAddress,
      idleGcAfterMs: durationMs(sv.idle_gc_after ?? defaults.idleGcAfter),
      cors: cors === undefined ? undefined : {
        allowedOrigins: cors.allowed_origins,
        allowedHeaders: cors.allowed_headers ?? defaults.cors.allowedHeaders,
        maxAgeSeconds: Math.round(durationMs(cors.max_age ?? defaults.cors.maxAge) / 1000)
      }
    },
    models,
    modelNames,
    backends,
    routing: {
      policy: rt.policy ?? "inference",
      filters: rt.filters ?? defaults.filters,
      scorers: rt.scorers ?? defaults.scorers,
      picker: rt.picker ?? "max_score",
      maxQueue: rt.max_queue ?? 128,
      maxKvUsage: rt.max_kv_usage ?? 0.97,
      prefixBlockChars: rt.prefix_block_chars ?? 64,
      prefixMaxBlocks: rt.prefix_max_blocks ?? defaults.prefixMaxBlocks,
      prefixCapacity: rt.prefix_capacity ?? 200_000,
      prefixTtlMs: rt.prefix_ttl === undefined ? 10 * 60_000 : durationMs(rt.prefix_ttl),
      sessionTtlMs: rt.session_ttl === undefined ? 10 * 60_000 : durationMs(rt.session_ttl),
      seed: rt.seed,
      tenants,
      pdMinPromptTokens: rt.pd_min_prompt_tokens ?? 256,
      panicThreshold: rt.panic_threshold ?? defaults.panicThreshold,
      spendPressureWeight: rt.spend_pressure_weight ?? 4
    },
    health: {
      probeIntervalMs: h.probe_interval === undefined ? 10_000 : durationMs(h.probe_interval),
      probeTimeoutMs: h.probe_timeout === undefined ? 5_000 : durationMs(h.probe_timeout),
      probeBackoffMs: h.probe_backoff === undefined ? defaults.health.probeBackoffMs : durationMs(h.probe_backoff),
      probeBackoffMaxMs: h.probe_backoff_max === undefined ? defaults.health.probeBackoffMaxMs : durationMs(h.probe_backoff_max),
      scrapeIntervalMs: h.scrape_interval === undefined ? 1_000 : durationMs(h.scrape_interval),
      minTokensPerSecond: h.min_tokens_per_second ?? 1,
      windowMs: h.window === undefined ? defaults.health.windowMs : durationMs(h.window),
      minSamples: h.min_samples ?? defaults.health.minSamples,
      unhealthyAt: h.unhealthy_at ?? defaults.health.unhealthyAt,
      degradeAt: h.degrade_at ?? defaults.health.degradeAt,
      unhealthyAfter: h.unhealthy_after ?? defaults.health.unhealthyAfter,
      repetitionMinRun: h.repetition_min_run ?? defaults.health.repetitionMinRun,
      repetitionMaxPeriod: h.repetition_max_period ?? defaults.health.repetitionMaxPeriod,
      repetitionMinRepeats: h.repetition_min_repeats ?? defaults.health.repetitionMinRepeats
    },
    breakers: {
      windowMs: br.window === undefined ? 30_000 : durationMs(br.window),
      minRequests: br.min_requests ?? 10,
      degradeAt: br.degrade_at ?? 0.2,
      openAt: br.open_at ?? 0.5,
      openForMs: br.open_for === undefined ? 10_000 : durationMs(br.open_for),
      halfOpenProbes: br.half_open_probes ?? 2,
      slowTtftMs: br.slow_ttft === undefined ? 10_000 : durationMs(br.slow_ttft),
      degradedWeight: br.degraded_weight ?? 0.5
    },
    timeouts: {
      connectMs: durationMs(t.connect),
      firstTokenMs: durationMs(t.first_token),
      idleMs: durationMs(t.idle),
      totalMs: durationMs(t.total),
      queueMs: durationMs(t.queue),
      drainMs: durationMs(t.drain)
    },
    limits: {
      maxBodyBytes: lim.max_body_bytes === undefined ? defaults.maxBodyBytes : byteCount(lim.max_body_bytes),
      maxJsonDepth: lim.max_json_depth ?? defaults.limits.maxJsonDepth,
      maxJsonValues: lim.max_json_values ?? defaults.limits.maxJsonValues,
      maxJsonKeys: lim.max_json_keys ?? defaults.limits.maxJsonKeys,
      maxMessages: lim.max_messages ?? defaults.limits.maxMessages,
      maxTools: lim.max_tools ?? defaults.limits.maxTools,
      maxStopSequences: lim.max_stop_sequences ?? defaults.limits.maxStopSequences,
      maxInputs: lim.max_inputs ?? defaults.limits.maxInputs,
      maxResponseBytes: lim.max_response_bytes === undefined ? defaults.limits.maxResponseBytes : byteCount(lim.max_response_bytes)
    },
    retries: {
      maxAttempts: r.max_attempts ?? defaults.retries.maxAttempts,
      budgetRatio: r.budget_ratio ?? defaults.retries.budgetRatio,
      minPerSecond: r.min_per_second ?? defaults.retries.minPerSecond
    },
    quotas,
    prices,
    budgets: {
      tokensPerWindow: b.tokens_per_window,
      windowMs: b.window === undefined ? defaults.budgetWindowMs : durationMs(b.window),
      redisDown: b.redis_down ?? "local_share",
      localShare: b.local_share ?? 1 / (b.replicas ?? 1)
    },
    ledger: {
      queueRecords: l.queue ?? defaults.ledger.queueRecords,
      batchRecords: l.batch ?? defaults.ledger.batchRecords,
      intervalMs: l.interval === undefined ? defaults.ledger.intervalMs : durationMs(l.interval),
      maxBackoffMs: l.max_backoff === undefined ? defaults.ledger.maxBackoffMs : durationMs(l.max_backoff),
      syncIntervalMs: l.sync_interval === undefined ? defaults.ledger.syncIntervalMs : durationMs(l.sync_interval),
      segmentBytes: l.segment_size === undefined ? defaults.ledger.segmentBytes : byteCount(l.segment_size)
    },
    extensions: {
      request: file.extensions?.request,
      response: file.extensions?.response,
      timeoutMs: file.extensions?.timeout === undefined ? 1_000 : durationMs(file.extensions.timeout)
    },
    auth
  }
}

/** The `quotas` section: models named per tenant resolve to model ids. */
const quotasPlan = (
  section: ConfigFile["quotas"],
  modelNames: ReadonlyMap<string, ModelId>,
  fail: (path: string, message: string) => void
): QuotasPlan => {
  const tenants = new Map<TenantId, LimitSet>()
  const models = new Map<TenantId, Map<ModelId, LimitSet>>()
  for (const [id, { models: perModel, ...set }] of Object.entries(section?.tenants ?? {})) {
    tenants.set(TenantId(id), set)
    const byModel = new Map<ModelId, LimitSet>()
    for (const [name, limits] of Object.entries(perModel ?? {})) {
      const model = modelNames.get(name)
      if (model === undefined) fail(`quotas.tenants.${id}.models.${name}`, `unknown model "${name}"`)
      else byModel.set(model, limits)
    }
    if (byModel.size > 0) models.set(TenantId(id), byModel)
  }
  return { tenants, keys: new Map(Object.entries(section?.keys ?? {})), models }
}

/** The `prices` section: known models and backends. */
const pricesPlan = (
  section: ConfigFile["prices"],
  modelNames: ReadonlyMap<string, ModelId>,
  backendIds: ReadonlySet<string>,
  fail: (path: string, message: string) => void
): ReadonlyMap<ModelId, PricePlan> => {
  const prices = new Map<ModelId, PricePlan>()
  const priceOf = (p: { readonly input: number; readonly cached_input?: number; readonly output: number }): Price => ({
    input: p.input,
    cachedInput: p.cached_input ?? p.input,
    output: p.output
  })
  for (const [name, entry] of Object.entries(section ?? {})) {
    const model = modelNames.get(name)
    if (model === undefined) {
      fail(`prices.${name}`, `unknown model "${name}"`)
      continue
    }
    const backends = new Map<BackendId, Price>()
    for (const [b, p] of Object.entries(entry.backends ?? {})) {
      if (!backendIds.has(b)) fail(`prices.${name}.backends.${b}`, `unknown backend "${b}"`)
      backends.set(BackendId(b), priceOf(p))
    }
    prices.set(model, { ...priceOf(entry), backends })
  }
  return prices
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/

/** The `auth` section: declared keys name declared tenants and known models, ids are unique. */
const authPlan = (
  section: ConfigFile["auth"],
  modelNames: ReadonlyMap<string, ModelId>,
  fail: (path: string, message: string) => void
): AuthPlan => {
  const d = defaults.auth
  if (section === "none") {
    return {
      mode: "none",
      authenticators: ["anonymous"],
      cacheSize: d.cacheSize,
      cacheTtlMs: d.cacheTtlMs,
      revocationChannel: d.revocationChannel,
      tenants: new Map(),
      keys: new Map()
    }
  }
  const a = section ?? {}
  const tenants = new Map<TenantId, { readonly name: string }>()
  for (const [id, t] of Object.entries(a.tenants ?? {})) tenants.set(TenantId(id), { name: t.name ?? id })
  const keys = new Map<string, DeclaredKey>()
  ;(a.keys ?? []).forEach((k, i) => {
    const path = `auth.keys[${i}]`
    if (keys.has(k.id)) fail(`${path}.id`, `duplicate key id "${k.id}"`)
    if (!tenants.has(TenantId(k.tenant))) fail(`${path}.tenant`, `tenant "${k.tenant}" is not declared under auth.tenants`)
    ;(k.models ?? []).forEach((m, j) => {
      if (!modelNames.has(m)) fail(`${path}.models[${j}]`, `unknown model "${m}"`)
    })
    let expiresAtMs: number | undefined
    if (k.expires_at !== undefined) {
      expiresAtMs = ISO_TIME.test(k.expires_at) ? Date.parse(k.expires_at) : Number.NaN
      if (Number.isNaN(expiresAtMs)) fail(`${path}.expires_at`, "expected an ISO 8601 time such as 2026-12-31T00:00:00Z")
    }
    keys.set(k.id, { id: k.id, tenant: TenantId(k.tenant), name: k.name ?? k.id, hash: k.hash, models: k.models, expiresAtMs })
  })
  return {
    mode: "keys",
    authenticators: a.authenticators ?? d.authenticators,
    cacheSize: a.cache_size ?? d.cacheSize,
    cacheTtlMs: a.cache_ttl === undefined ? d.cacheTtlMs : durationMs(a.cache_ttl),
    revocationChannel: a.revocation_channel ?? d.revocationChannel,
    tenants,
    keys
  }
}

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
  /** This model's policy lists (undefined: the gateway's `extensions`). */
  readonly extensions: PolicySelectionPlan | undefined
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
  readonly connections: number
  readonly apiKey: Redacted.Redacted<string> | undefined
  readonly weight: number
  /** Engine performance profile name (GPU-second estimates), if known. */
  readonly profile: string | undefined
  readonly costPerGpuSecond: number
  /** Which engine metrics to scrape; undefined: the dialect's default (the fleet resolves it). */
  readonly metrics: MetricsFlavour | undefined
  readonly role: "mixed" | "prefill" | "decode"
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
}

export interface HealthPlan {
  readonly probeIntervalMs: number
  readonly probeTimeoutMs: number
  readonly scrapeIntervalMs: number
  readonly minTokensPerSecond: number
  readonly unhealthyAfter: number
  readonly repetitionWindow: number
  readonly repetitionNgram: number
  readonly repetitionMax: number
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
  readonly server: { readonly host: string; readonly port: number }
  readonly models: ReadonlyMap<ModelId, ModelPlan>
  /** Every name a client may use (model ids and aliases) → the model id. */
  readonly modelNames: ReadonlyMap<string, ModelId>
  readonly backends: ReadonlyArray<BackendPlan>
  readonly routing: RoutingPlan
  readonly health: HealthPlan
  readonly breakers: BreakersPlan
  readonly timeouts: TimeoutsPlan
  readonly limits: { readonly maxBodyBytes: number }
  readonly retries: { readonly maxAttempts: number; readonly budgetRatio: number; readonly minPerSecond: number }
  readonly budgets: { readonly tokensPerWindow: number | undefined; readonly windowMs: number }
  readonly extensions: ExtensionsPlan
  readonly auth: AuthPlan
}

export class PlanError extends Data.TaggedError("PlanError")<{
  readonly path: string
  readonly message: string
}> {
  override toString() {
    return `${this.path}: ${this.message}`
  }
}

export const defaults = {
  host: "127.0.0.1",
  port: 8080,
  defaultMaxTokens: 256,
  maxConcurrency: 256,
  connections: 128,
  timeouts: { connect: "5s", first_token: "60s", idle: "30s", total: "10m", queue: "5s", drain: "30s" },
  maxBodyBytes: 4 * 1024 * 1024,
  retries: { maxAttempts: 3, budgetRatio: 0.2, minPerSecond: 5 },
  budgetWindowMs: 60_000,
  filters: ["model_served", "health", "breaker", "quantization", "sku", "saturation", "tenant"],
  /** 512 blocks × 64 chars ≈ 32K characters ≈ 8K tokens of prompt are matchable (e.g. a 6K-token system prompt). */
  prefixMaxBlocks: 512,
  scorers: { prefix_cache: 3, queue_depth: 2, kv_usage: 2, session_affinity: 2, predicted_ttft: 1, headroom: 1 },
  auth: { authenticators: ["api_key"], cacheSize: 10_000, cacheTtlMs: 30_000, revocationChannel: "sluice:auth:revocations" }
} as const

/** The metrics of a simulated engine: it serves vLLM's names, or SGLang's, or none. */
const simulatedMetrics = (dialect: string): MetricsFlavour =>
  dialect === "openai" ? "vllm" : dialect === "sglang" ? "sglang" : "none"

/** Validates a decoded file into a plan; the environment is passed in so tests control it. */
export const fromFile = (
  file: ConfigFile,
  env: Readonly<Record<string, string | undefined>>
): Plan => {
  const fail = (path: string, message: string): never => {
    throw new PlanError({ path, message })
  }
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
      extensions: m.extensions === undefined ? undefined : { request: m.extensions.request, response: m.extensions.response }
    })
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
          extensions: undefined
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
      maxConcurrency: b.max_concurrency ?? defaults.maxConcurrency,
      connections: b.connections ?? Math.min(b.max_concurrency ?? defaults.connections, defaults.connections),
      apiKey,
      weight: b.weight ?? 1,
      profile: b.profile ?? simulate?.profile,
      costPerGpuSecond: b.cost_per_gpu_second ?? 1,
      metrics: b.metrics ?? (simulate === undefined ? undefined : simulatedMetrics(simulate.dialect ?? "openai")),
      role: b.role ?? "mixed"
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
  const auth = authPlan(file.auth, modelNames, fail)
  const h = file.health ?? {}
  const br = file.breakers ?? {}
  const r = file.retries ?? {}
  return {
    server: { host: file.server?.host ?? defaults.host, port: file.server?.port ?? defaults.port },
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
      pdMinPromptTokens: rt.pd_min_prompt_tokens ?? 256
    },
    health: {
      probeIntervalMs: h.probe_interval === undefined ? 10_000 : durationMs(h.probe_interval),
      probeTimeoutMs: h.probe_timeout === undefined ? 5_000 : durationMs(h.probe_timeout),
      scrapeIntervalMs: h.scrape_interval === undefined ? 1_000 : durationMs(h.scrape_interval),
      minTokensPerSecond: h.min_tokens_per_second ?? 1,
      unhealthyAfter: h.unhealthy_after ?? 3,
      repetitionWindow: h.repetition_window ?? 256,
      repetitionNgram: h.repetition_ngram ?? 8,
      repetitionMax: h.repetition_max ?? 12
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
      maxBodyBytes: file.limits?.max_body_bytes === undefined
        ? defaults.maxBodyBytes
        : byteCount(file.limits.max_body_bytes)
    },
    retries: {
      maxAttempts: r.max_attempts ?? defaults.retries.maxAttempts,
      budgetRatio: r.budget_ratio ?? defaults.retries.budgetRatio,
      minPerSecond: r.min_per_second ?? defaults.retries.minPerSecond
    },
    budgets: {
      tokensPerWindow: file.budgets?.tokens_per_window,
      windowMs: file.budgets?.window === undefined ? defaults.budgetWindowMs : durationMs(file.budgets.window)
    },
    extensions: {
      request: file.extensions?.request,
      response: file.extensions?.response,
      timeoutMs: file.extensions?.timeout === undefined ? 1_000 : durationMs(file.extensions.timeout)
    },
    auth
  }
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/

/** The `auth` section: declared keys name declared tenants and known models, ids are unique. */
const authPlan = (
  section: ConfigFile["auth"],
  modelNames: ReadonlyMap<string, ModelId>,
  fail: (path: string, message: string) => never
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

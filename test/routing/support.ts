/**
 * Fixtures for routing tests: backends with stub pools and adapters (any call dies: the
 * router must never talk to a backend), requests with real admission estimates, and views
 * with chosen numbers for plugin unit tests.
 */
import { Effect } from "effect"
import * as Estimate from "../../src/admission/Estimate.ts"
import { Backend } from "../../src/backends/Backend.ts"
import type { Adapter } from "../../src/backends/Contract.ts"
import type { UpstreamPool } from "../../src/backends/Upstream.ts"
import type { BackendPlan, ModelPlan, RoutingPlan } from "../../src/config/Plan.ts"
import { BackendId, GpuSku, ModelId, RequestId, TenantId } from "../../src/domain/Ids.ts"
import type { Admitted, GatewayRequest } from "../../src/admission/Request.ts"
import type { BackendView } from "../../src/routing/Contract.ts"
import { profileOf } from "../../src/routing/Profiles.ts"

export const MODEL = ModelId("m")

const pool: UpstreamPool = {
  origin: "http://127.0.0.1:1",
  basePath: "/v1",
  apiKey: undefined,
  post: () => Effect.die("the router must not call a backend"),
  call: () => Effect.die("the router must not call a backend"),
  stream: () => Effect.die("the router must not call a backend"),
  getFromOrigin: () => Effect.die("the router must not call a backend"),
  streamFromOrigin: () => Effect.die("the router must not call a backend"),
  close: Effect.void,
  open: () => 0,
  queued: () => 0
}

const adapter: Adapter = {
  dialect: "openai",
  kvTransfer: true,
  capabilities: { chat: true, completion: true, embedding: true, rerank: true },
  stream: () => Effect.die("the router must not call a backend"),
  unary: () => Effect.die("the router must not call a backend")
}

export const backendPlan = (id: string, over: Partial<BackendPlan> = {}): BackendPlan => ({
  id: BackendId(id),
  dialect: "openai",
  url: `http://${id}.invalid/v1`,
  simulate: undefined,
  models: new Map([[MODEL, "m"]]),
  gpu: GpuSku("H100"),
  quantization: "fp8",
  maxConcurrency: 16,
  connections: 16,
  apiKey: undefined,
  weight: 1,
  profile: "llama-3.1-8b-fp8-h100",
  costPerGpuSecond: 1,
  metrics: "none",
  role: "mixed",
  kvEvents: false,
  labels: {},
  ...over
})

export const backend = (id: string, over: Partial<BackendPlan> = {}): Backend => new Backend(backendPlan(id, over), pool, adapter)

export const modelPlan = (over: Partial<ModelPlan> = {}): ModelPlan => ({
  id: MODEL,
  aliases: [],
  defaultMaxTokens: 128,
  maxOutputTokens: undefined,
  contextWindow: undefined,
  tokenizer: "chars",
  allowedQuantizations: undefined,
  allowedGpus: undefined,
  ttftTargetMs: undefined,
  itlTargetMs: undefined,
  repetition: "observe",
  retryUnaryAfterResponse: false,
  maxN: 8,
  extensions: undefined,
  fallbacks: [],
  ...over
})

let ids = 0

/** A chat request with a real estimate (chars tokenizer) and prefix hashes. */
export const request = (
  text: string,
  over: Partial<Omit<Admitted, "estimate">> & { readonly maxTokens?: number } = {}
): GatewayRequest => {
  const body = { model: "m", messages: [{ role: "user" as const, content: text }], stream: true }
  const call = { kind: "chat" as const, body }
  const { estimate } = Estimate.estimate(call, "chars", over.maxTokens ?? 64, { blockChars: 64, maxBlocks: 512, salt: "m" })
  return {
    ...call,
    id: RequestId(`r${ids++}`),
    model: modelPlan(),
    requestedModel: "m",
    rawBody: new TextEncoder().encode(JSON.stringify(body)),
    stream: true,
    clientWantsUsage: false,
    requestedMaxTokens: undefined,
    estimate,
    identity: { tenant: TenantId("default"), keyId: undefined, via: "anonymous" },
    tenant: TenantId("default"),
    headers: {},
    sessionKey: undefined,
    promptPrefix: text.slice(0, 4096),
    receivedAtMs: 0,
    ...over
  }
}

/** A view with chosen numbers (defaults: an idle healthy H100 with nothing cached). */
export const view = (id: string, over: Partial<BackendView> = {}, planOver: Partial<BackendPlan> = {}): BackendView => {
  const b = backend(id, planOver)
  return {
    backend: b,
    index: 0,
    health: "healthy",
    breaker: "closed",
    signals: undefined,
    signalsAgeMs: undefined,
    inFlight: 0,
    inFlightTokens: 0,
    slotsFree: 16,
    coolingDown: false,
    ttftMs: undefined,
    tokensPerSecond: undefined,
    profile: profileOf(b.plan),
    prefixMatchedBlocks: 0,
    prefixTotalBlocks: 10,
    prefixTrust: 1,
    cachedPrefixTokens: 0,
    sessionAffine: false,
    pendingRequests: 0,
    pendingPrefillTokens: 0,
    decodingRequests: 0,
    kvUsage: 0,
    predictedTtftMs: 50,
    predictedItlMs: 10,
    prefillGpuSeconds: 0.05,
    decodeGpuSeconds: 0.5,
    weight: 1,
    ...over
  }
}

export const routingPlan = (over: Partial<RoutingPlan> = {}): RoutingPlan => ({
  policy: "inference",
  filters: ["model_served", "health", "breaker", "quantization", "sku", "saturation", "tenant"],
  scorers: { prefix_cache: 3, queue_depth: 2, kv_usage: 2, session_affinity: 2, predicted_ttft: 1, headroom: 1 },
  picker: "max_score",
  maxQueue: 128,
  maxKvUsage: 0.97,
  prefixBlockChars: 64,
  prefixMaxBlocks: 512,
  prefixCapacity: 200_000,
  prefixTtlMs: 600_000,
  sessionTtlMs: 600_000,
  seed: 1,
  tenants: new Map(),
  pdMinPromptTokens: 256,
  panicThreshold: 0.5,
  spendPressureWeight: 4,
  ...over
})

/** English-looking text of about `chars` characters, varied by `seed`. */
export const text = (chars: number, seed: number): string => {
  const words = ["engine", "cache", "token", "batch", "queue", "block", "stream", "prefix", "model", "router"]
  let s = ""
  let x = seed >>> 0 || 1
  while (s.length < chars) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    s += words[x % words.length]! + " "
  }
  return s.slice(0, chars)
}

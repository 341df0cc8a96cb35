/**
 * The routing contract: filter → score → pick, each step a plugin chosen by name in the
 * config (ARCHITECTURE.md §5). Contracts live here, apart from the plugins (plugins/<name>/).
 *
 * A plugin sees an immutable `BackendView` per candidate, built once per request by
 * Views.ts from the backend actors, the breakers, the affinity index and the routing state
 * (prefix index, in-flight work); it never changes backend state and never does I/O.
 * Scores are in [0, 1]; the policy combines them with configured weights and a picker
 * orders the candidates (the first is tried first, the rest are the fallback order).
 *
 * Units: every time predicted from a `GpuProfile` is in engine milliseconds (the time the
 * engine spends), independent of the gateway's clock; token counts are the admission
 * estimate's (Estimate.ts).
 */
import type { Backend, EngineSignals } from "../backends/Backend.ts"
import type { BreakerState, Health } from "../domain/States.ts"
import type { RoutingPlan } from "../config/Plan.ts"
import type { GatewayRequest } from "../admission/Request.ts"

export type { BreakerState } from "../domain/States.ts"

/**
 * GPU cost profile of a (model, SKU) pair, for GPU-second and TTFT estimates: the engine
 * step model of backends.md §5.4, `step_ms = c0 + c_pf·P + c_dec·D + c_kv·Σctx`.
 */
export interface GpuProfile {
  /** Profile name (a simulator profile name, or "default"). */
  readonly name: string
  /** False when the backend named no known profile and the conservative default is used. */
  readonly known: boolean
  /** Fixed cost of one engine step, ms (c0). */
  readonly stepMs: number
  /** Prefill cost per prompt token, ms (c_pf). */
  readonly prefillMsPerToken: number
  /** Decode cost per running sequence per step, ms (c_dec). */
  readonly decodeMsPerSeq: number
  /** KV read cost per context token per step, ms (c_kv). */
  readonly kvMsPerContextToken: number
  /** Token budget of one engine step (chunked prefill). */
  readonly maxBatchedTokens: number
  /** KV-cache capacity in tokens. */
  readonly kvCapacityTokens: number
  /** GPUs the engine occupies (GPU-seconds = engine seconds × gpuCount). */
  readonly gpuCount: number
  /** Relative cost of one GPU-second on this backend (config `cost_per_gpu_second`). */
  readonly costPerGpuSecond: number
}

export interface BackendView {
  readonly backend: Backend
  /** Position in the model's serving list (config order): the deterministic tie-break. */
  readonly index: number
  readonly health: Health
  readonly breaker: BreakerState
  /** Scraped engine signals when fresh enough to trust (undefined otherwise, or never scraped). */
  readonly signals: EngineSignals | undefined
  /** Milliseconds since the last scrape (undefined: never scraped). */
  readonly signalsAgeMs: number | undefined
  readonly inFlight: number
  readonly inFlightTokens: number
  readonly slotsFree: number
  readonly coolingDown: boolean
  readonly ttftMs: number | undefined
  readonly tokensPerSecond: number | undefined
  readonly profile: GpuProfile
  /** Leading prompt blocks of this request found in the backend's approximate prefix index. */
  readonly prefixMatchedBlocks: number
  /** Prompt blocks of this request that were hashed (the denominator of the prefix score). */
  readonly prefixTotalBlocks: number
  /** How far the index's predictions held on this backend (engine-reported cached ÷ predicted), 0..1. */
  readonly prefixTrust: number
  /** Prompt tokens of this request the backend probably has in its prefix cache. */
  readonly cachedPrefixTokens: number
  /** The session of this request is pinned/hinted to this backend. */
  readonly sessionAffine: boolean
  /** Gateway-local: requests dispatched here that have not produced a first token. */
  readonly pendingRequests: number
  /** Gateway-local: uncached prompt tokens of those requests (prefill work queued or running). */
  readonly pendingPrefillTokens: number
  /** Gateway-local: requests past their first token (decoding). */
  readonly decodingRequests: number
  /** Estimated KV use 0..1: the engine's gauge when fresh, else gateway-local tokens ÷ capacity. */
  readonly kvUsage: number
  /** Predicted time to first token here, engine ms: queued prefill + own uncached prefill + steps. */
  readonly predictedTtftMs: number
  /** Predicted decode step time (inter-token latency) here if the request joins, engine ms. */
  readonly predictedItlMs: number
  /** Estimated GPU-seconds of this request here: prefill (uncached part) and decode. */
  readonly prefillGpuSeconds: number
  readonly decodeGpuSeconds: number
  /**
   * Estimated price of this request here, micro-dollars, at the configured token prices of
   * the model on this backend (its own, else the model's): uncached prompt × input, the
   * cached prefix × cached input, the output estimate × output. Undefined: no price set.
   */
  readonly priceMicros?: number | undefined
  /**
   * Multiplier on the combined score: backend weight × `degraded_weight` for a degraded or
   * half-open breaker and for degraded health, × its square for an open breaker and for
   * unhealthy (those are ranked only in panic, and then below the degraded).
   */
  readonly weight: number
}

export interface RoutingContext {
  readonly req: GatewayRequest
  readonly nowMs: number
  readonly plan: RoutingPlan
}

export interface Filter {
  readonly name: string
  /**
   * Keeps the candidates that may serve the request. Returns `views` itself when it keeps
   * all of them (no allocation on the common path).
   */
  readonly apply: (ctx: RoutingContext, views: ReadonlyArray<BackendView>) => ReadonlyArray<BackendView>
  /**
   * A soft filter (saturation): it runs after the hard ones, the candidates it excludes are
   * ranked last instead of dropped, and when it would exclude all of them it keeps them all.
   * It never fails a request.
   */
  readonly failOpen: boolean
  /**
   * The filter excludes on health evidence (health, breaker). Such filters decide panic
   * routing: when the share of candidates they keep falls below `routing.panic_threshold`,
   * they are ignored for the request and the candidates they would exclude go last.
   */
  readonly healthGate?: boolean
}

export interface Scorer {
  readonly name: string
  /** Whether the score matters for a prefill-only leg (P/D plans rank prefill engines with these). */
  readonly prefill?: boolean
  /** A score in [0, 1]; higher is better. May look at all candidates to normalise. */
  readonly score: (ctx: RoutingContext, view: BackendView, all: ReadonlyArray<BackendView>) => number
}

export interface Scored {
  readonly view: BackendView
  readonly score: number
}

export interface Picker {
  readonly name: string
  /** Orders candidates: the first is tried first. `random` is in [0, 1). */
  readonly order: (ctx: RoutingContext, scored: ReadonlyArray<Scored>, random: () => number) => ReadonlyArray<BackendView>
}

/**
 * How an attempt the router placed ended, as dispatch (its owner) reports it: routing reads it
 * when the attempt's scope closes, to correct its prefix index. (That the attempt started, its
 * first token, dispatch reports through `PlacedAttempt.started`, so the counts stay current.)
 */
export interface AttemptProgress {
  /** The attempt is the one that served the request. */
  readonly served: boolean
  /** Prompt tokens the engine reported serving from its prefix cache, once it reported usage. */
  readonly cachedTokens: number | undefined
}

/** An attempt routing counts on its backend until the attempt's scope closes. */
export interface PlacedAttempt {
  /**
   * The attempt produced its first token (a unary answer: its answer): its engine is decoding
   * it, not queueing or prefilling. Moves it from the backend's pending to its decoding work;
   * idempotent, and a no-op once the attempt's scope closed.
   */
  readonly started: () => void
}

/** Builds a plugin from the routing plan (its config hook); called once per plan, not per request. */
export type FilterFactory = (plan: RoutingPlan) => Filter
export type ScorerFactory = (plan: RoutingPlan) => Scorer
export type PickerFactory = (plan: RoutingPlan) => Picker

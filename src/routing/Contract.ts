/**
 * The routing contract: filter → score → pick, each step a plugin chosen by name in the
 * config (ARCHITECTURE.md §5). Contracts live here, apart from the plugins.
 *
 * A plugin sees an immutable `BackendView` per candidate, taken once per request from the
 * backend actors, breakers and the prefix index; it never changes backend state. Scores
 * are in [0, 1]; the policy combines them with configured weights and a picker orders the
 * candidates (the first is tried first, the rest are the fallback order).
 */
import type { Backend, EngineSignals, Health } from "../backends/Backend.ts"
import type { GatewayRequest } from "../domain/Request.ts"

export type BreakerState = "closed" | "degraded" | "open" | "half_open"

/** GPU cost profile of a (model, SKU) pair, for GPU-second and TTFT estimates (backends.md §5.4). */
export interface GpuProfile {
  /** Fixed cost of one engine step, ms. */
  readonly stepMs: number
  /** Prefill cost per prompt token, ms. */
  readonly prefillMsPerToken: number
  /** Decode cost per running sequence per step, ms. */
  readonly decodeMsPerSeq: number
  /** Relative cost of one GPU-second on this SKU (for the cost scorer). */
  readonly costPerGpuSecond: number
}

export interface BackendView {
  readonly backend: Backend
  readonly health: Health
  readonly breaker: BreakerState
  readonly signals: EngineSignals | undefined
  /** Milliseconds since the last scrape (undefined: never scraped). */
  readonly signalsAgeMs: number | undefined
  readonly inFlight: number
  readonly inFlightTokens: number
  readonly slotsFree: number
  readonly coolingDown: boolean
  readonly ttftMs: number | undefined
  readonly tokensPerSecond: number | undefined
  readonly profile: GpuProfile | undefined
  /** Prompt tokens of this request the backend probably has in its prefix cache. */
  readonly cachedPrefixTokens: number
  /** The session of this request is pinned/hinted to this backend. */
  readonly sessionAffine: boolean
}

export interface RoutingContext {
  readonly req: GatewayRequest
  readonly nowMs: number
}

export interface Filter {
  readonly name: string
  /** Keeps the candidates that may serve the request. */
  readonly apply: (ctx: RoutingContext, views: ReadonlyArray<BackendView>) => ReadonlyArray<BackendView>
}

export interface Scorer {
  readonly name: string
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

/**
 * Builds the `BackendView`s of one request: a snapshot, per candidate, of everything the
 * plugins may read, with the per-candidate estimates (predicted TTFT and ITL, GPU-seconds)
 * evaluated once here from the admission estimate and the backend's GPU profile.
 *
 * The prefix match comes from the engine's KV events where it publishes them (PreciseMatch.ts),
 * else from the approximate index. Signals from the engine are used when fresh (younger than twice the scrape interval);
 * otherwise every figure falls back to gateway-local numbers (in-flight work placed by this
 * gateway, EWMAs of observed streams). Plain TypeScript on the hot path: one object per
 * candidate, no Effect. Must never: mutate a backend (it only clears the prefix index of a
 * backend seen cold or unhealthy, whose engine cache is presumed lost).
 */
import * as Predict from "./Predict.ts"
import type { Backend } from "../backends/Backend.ts"
import type { BackendId, ModelId } from "../domain/Ids.ts"
import type { Price } from "../domain/Quotas.ts"
import type { GatewayRequest } from "../admission/Request.ts"
import type { Breakers } from "../resilience/Breakers.ts"
import type { BackendView } from "./Contract.ts"
import type { RoutingState } from "./Placement.ts"
import { preciseMatch } from "./PreciseMatch.ts"
import { profileOf } from "./Profiles.ts"

export interface ViewDeps {
  readonly breakers: Breakers["Service"]
  readonly state: RoutingState
  readonly degradedWeight: number
  /** Signals older than this are ignored. */
  readonly maxSignalAgeMs: number
  /** The configured price of a model on a backend (admission's price table, in memory), if any. */
  readonly price?: ((model: ModelId, backend: BackendId) => Price | undefined) | undefined
}

export const view = (
  req: GatewayRequest,
  backend: Backend,
  index: number,
  now: number,
  hinted: BackendId | undefined,
  deps: ViewDeps
): BackendView => {
  const { state } = deps
  const health = backend.health
  if (health === "cold" || health === "unhealthy") state.index.clear(backend.id)
  const breaker = deps.breakers.state(req.model.id, backend.plan.gpu, now)
  const scraped = backend.signals
  const age = scraped === undefined ? undefined : now - scraped.scrapedAtMs
  const signals = age !== undefined && age <= deps.maxSignalAgeMs ? scraped : undefined
  const profile = profileOf(backend.plan)
  const local = state.load(backend)
  const e = req.estimate

  // The engine's own KV events when it publishes them (exact, trusted as they are); else the
  // approximate index, scaled by how far its predictions held here.
  const precise = preciseMatch(req, backend, () => state.pendingMatch(backend, e.prefixHashes))
  const matched = precise?.matched ?? state.index.match(backend.id, e.prefixHashes, now)
  const trust = precise === undefined ? state.trust(backend) : 1
  const cached = precise?.cachedTokens ?? Math.floor(Predict.cachedTokens(e, matched) * trust)

  // Engine signals include other gateways' traffic: take the larger of theirs and ours.
  const waitingElsewhere = signals === undefined ? 0 : Math.max(0, signals.waiting - local.pendingRequests)
  const pendingPrefillTokens = local.pendingPrefillTokens + waitingElsewhere * e.promptTokens
  const decoding = Math.max(local.decoding, signals?.running ?? 0)
  const load: Predict.CandidateLoad = {
    pendingPrefillTokens,
    decoding,
    contextTokens: backend.inFlightTokens
  }
  const kvUsage = signals?.kvUsage ?? Math.min(1, local.kvTokens / profile.kvCapacityTokens)
  const gpu = Predict.gpuSeconds(e, profile, cached, load)
  const price = deps.price?.(req.model.id, backend.id)
  const uncached = Math.max(0, e.promptTokens - cached)
  const priceMicros = price === undefined
    ? undefined
    : uncached * price.input + (e.promptTokens - uncached) * price.cachedInput + e.maxOutputTokens * price.output
  let weight = backend.plan.weight
  // An open breaker or an unhealthy backend is only ever ranked in panic: below degraded ones.
  const dw = deps.degradedWeight
  if (breaker === "degraded" || breaker === "half_open") weight *= dw
  else if (breaker === "open") weight *= dw * dw
  if (health === "degraded") weight *= dw
  else if (health === "unhealthy") weight *= dw * dw

  return {
    backend,
    index,
    health,
    breaker,
    signals,
    signalsAgeMs: age,
    inFlight: backend.slots.inUse,
    inFlightTokens: backend.inFlightTokens,
    slotsFree: backend.slots.free,
    coolingDown: backend.coolDownUntilMs > now,
    ttftMs: backend.ttftMs,
    tokensPerSecond: backend.tokensPerSecond,
    profile,
    prefixMatchedBlocks: matched,
    prefixTotalBlocks: precise?.total ?? e.prefixHashes.length,
    prefixTrust: trust,
    cachedPrefixTokens: cached,
    // A hint to an engine that lost its cache (cold, unhealthy) is no reason to go back there.
    sessionAffine: hinted !== undefined && hinted === backend.id && health !== "cold" && health !== "unhealthy",
    pendingRequests: local.pendingRequests + waitingElsewhere,
    pendingPrefillTokens,
    decodingRequests: decoding,
    kvUsage,
    predictedTtftMs: Predict.predictTtftMs(e, profile, cached, load),
    predictedItlMs: Predict.predictItlMs(e, profile, load),
    prefillGpuSeconds: gpu.prefill,
    decodeGpuSeconds: gpu.decode,
    priceMicros,
    weight
  }
}

export const views = (
  req: GatewayRequest,
  backends: ReadonlyArray<Backend>,
  now: number,
  hinted: BackendId | undefined,
  deps: ViewDeps
): Array<BackendView> => {
  const out = new Array<BackendView>(backends.length)
  for (let i = 0; i < backends.length; i++) out[i] = view(req, backends[i]!, i, now, hinted, deps)
  return out
}

/**
 * Routing state that follows requests onto backends: the approximate prefix index, the
 * work the gateway has placed on each backend (requests waiting for their first token and
 * their uncached prompt tokens, requests decoding, KV tokens), how far the index's
 * predictions held per backend, and the prefill/decode plan of disaggregated requests.
 *
 * The router reads it (synchronously, once per candidate); the dispatcher changes it only
 * through `dispatched` (scoped to an attempt: recorded when the attempt takes its slot,
 * released with the attempt's scope) and `upstreamCall` (runs the prefill leg of a
 * disaggregated request). Everything is gateway-local, so routing degrades gracefully to
 * these numbers when the engines' scraped signals are missing or stale.
 *
 * Correction by the engine: when an attempt ends, the prompt tokens the engine reported as
 * cached are compared with what the index predicted; the backend's `trust` (an EWMA of
 * reported ÷ predicted, 0..1) scales its prefix score and predicted cache hits. An attempt
 * that never committed un-records the blocks it had added (the engine never prefilled them).
 */
import { Clock, Context, Effect, Layer, type Scope } from "effect"
import * as Predict from "./Predict.ts"
import type { RequestTracker } from "../accounting/Tracker.ts"
import type { Backend } from "../backends/Backend.ts"
import type { UpstreamCall } from "../backends/Contract.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { Plan } from "../config/Plan.ts"
import type { GatewayRequest } from "../domain/Request.ts"
import * as Disaggregation from "./Disaggregation.ts"
import { capacityFor, PrefixIndex } from "./PrefixIndex.ts"
import { profileOf } from "./Profiles.ts"

/** One attempt's work on a backend. */
interface Ticket {
  readonly tracker: RequestTracker
  readonly uncachedTokens: number
  readonly kvTokens: number
}

interface BackendState {
  readonly tickets: Set<Ticket>
  trust: number
}

/** Gateway-local load of one backend, as the views need it. */
export interface LocalLoad {
  readonly pendingRequests: number
  readonly pendingPrefillTokens: number
  readonly decoding: number
  /** Uncached prompt + expected output tokens of the requests in flight (KV they add). */
  readonly kvTokens: number
}

/** Smoothing of the trust EWMA, and the prediction below which a request says nothing. */
const TRUST_ALPHA = 0.1
const MIN_PREDICTED_TOKENS = 32

export interface RoutingState {
  readonly index: PrefixIndex
  readonly load: (backend: Backend) => LocalLoad
  readonly trust: (backend: Backend) => number
  /** Index capacity of a backend (entries). */
  readonly capacity: (backend: Backend) => number
  /** Records an attempt on `backend` until the current scope closes. */
  readonly dispatched: (
    req: GatewayRequest,
    backend: Backend,
    tracker: RequestTracker
  ) => Effect.Effect<void, never, Scope.Scope>
  /** The prefill candidates of a disaggregated request (set by the router, read by dispatch). */
  readonly setPrefillPlan: (req: GatewayRequest, prefill: ReadonlyArray<Backend>) => void
  readonly prefillPlan: (req: GatewayRequest) => ReadonlyArray<Backend> | undefined
  /**
   * The call to send to `backend`: `call` itself, or for a disaggregated request on a decode
   * backend, the decode leg after running the prefill leg (falls back to `call` if it fails).
   */
  readonly upstreamCall: (
    req: GatewayRequest,
    backend: Backend,
    call: UpstreamCall,
    plan: Plan
  ) => Effect.Effect<UpstreamCall, never, Scope.Scope>
}

export const make = (initial: Plan): RoutingState => {
  const index = new PrefixIndex(initial.routing.prefixTtlMs)
  const states = new Map<string, BackendState>()
  const prefillPlans = new WeakMap<GatewayRequest, ReadonlyArray<Backend>>()
  const stateOf = (backend: Backend): BackendState => {
    let s = states.get(backend.id)
    if (s === undefined) {
      s = { tickets: new Set(), trust: 1 }
      states.set(backend.id, s)
    }
    return s
  }
  /** The engine's own block count once scraped (`cache_config_info`), else the profile's. */
  const capacity = (backend: Backend): number => {
    const s = backend.signals
    const kvTokens = s?.numGpuBlocks !== undefined && s.blockSize !== undefined
      ? s.numGpuBlocks * s.blockSize
      : profileOf(backend.plan).kvCapacityTokens
    return capacityFor(initial.routing.prefixCapacity, kvTokens, initial.routing.prefixBlockChars)
  }

  const record = (req: GatewayRequest, backend: Backend, now: number): number => {
    const hashes = req.estimate.prefixHashes
    const matched = index.match(backend.id, hashes, now)
    index.record(backend.id, hashes, now, capacity(backend))
    return matched
  }

  const state: RoutingState = {
    index,
    capacity,
    trust: (backend) => stateOf(backend).trust,
    load: (backend) => {
      let pendingRequests = 0
      let pendingPrefillTokens = 0
      let decoding = 0
      let kvTokens = 0
      for (const t of stateOf(backend).tickets) {
        kvTokens += t.kvTokens
        if (t.tracker.committedAtMs === undefined && t.tracker.firstTokenAtMs === undefined) {
          pendingRequests++
          pendingPrefillTokens += t.uncachedTokens
        } else {
          decoding++
        }
      }
      return { pendingRequests, pendingPrefillTokens, decoding, kvTokens }
    },
    dispatched: (req, backend, tracker) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const s = stateOf(backend)
        const e = req.estimate
        const matched = record(req, backend, now)
        const predicted = Math.floor(Predict.cachedTokens(e, matched) * s.trust)
        const uncached = Math.max(1, e.promptTokens - predicted)
        const ticket: Ticket = { tracker, uncachedTokens: uncached, kvTokens: uncached + e.maxOutputTokens }
        s.tickets.add(ticket)
        return Effect.addFinalizer(() =>
          Effect.sync(() => {
            s.tickets.delete(ticket)
            if (tracker.backend !== backend.id) {
              index.forget(backend.id, e.prefixHashes, matched)
              return
            }
            const reported = tracker.reported?.cachedTokens
            const expected = Predict.cachedTokens(e, matched)
            if (reported !== undefined && expected >= MIN_PREDICTED_TOKENS) {
              const ratio = Math.min(1, reported / expected)
              s.trust += TRUST_ALPHA * (ratio - s.trust)
            }
          })
        )
      }),
    setPrefillPlan: (req, prefill) => {
      prefillPlans.set(req, prefill)
    },
    prefillPlan: (req) => prefillPlans.get(req),
    upstreamCall: (req, backend, call, plan) => {
      const prefill = prefillPlans.get(req)
      if (prefill === undefined || prefill.length === 0 || backend.plan.role !== "decode") return Effect.succeed(call)
      return Disaggregation.decodeLeg(req, prefill, call, plan, (p, now) => {
        record(req, p, now)
      })
    }
  }
  return state
}

export class Placement extends Context.Service<Placement, RoutingState>()("sluice/routing/Placement") {
  static readonly layer = Layer.effect(
    Placement,
    Effect.map(GatewayConfig, (config) => make(config.initial))
  )
}

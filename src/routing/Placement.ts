/**
 * Routing state that follows requests onto backends: the approximate prefix index, the
 * work the gateway has placed on each backend (requests waiting for their first token and
 * their uncached prompt tokens, requests decoding, KV tokens), and how far the index's
 * predictions held per backend.
 *
 * The router reads it (synchronously, once per candidate); the dispatcher changes it only
 * through `dispatched` (scoped to an attempt: recorded when the attempt takes its slot,
 * released with the attempt's scope) and `prefilled` (the prefill leg of a disaggregated
 * request put its prompt's blocks on that engine). Everything is gateway-local, so routing
 * degrades gracefully to these numbers when the engines' scraped signals are missing or
 * stale. No I/O: the prefill leg itself is dispatch's (dispatch/PrefillLeg.ts).
 *
 * Correction by the engine: when an attempt ends, the prompt tokens the engine reported as
 * cached are compared with what the index predicted; the backend's `trust` (an EWMA of
 * reported ÷ predicted, 0..1) scales its prefix score and predicted cache hits. An attempt
 * that never served the request un-records the blocks it had added (the engine never
 * prefilled them, or the answer went elsewhere).
 */
import { Clock, Context, Effect, Layer, type Scope } from "effect"
import type { GatewayRequest } from "../admission/Request.ts"
import type { Backend } from "../backends/Backend.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import * as Scoped from "../domain/Scoped.ts"
import type { Plan } from "../config/Plan.ts"
import type { AttemptProgress } from "./Contract.ts"
import * as Predict from "./Predict.ts"
import { preciseMatch } from "./PreciseMatch.ts"
import { capacityFor, PrefixIndex } from "./PrefixIndex.ts"
import { profileOf } from "./Profiles.ts"

/** One attempt's work on a backend. */
interface Ticket {
  readonly progress: AttemptProgress
  /** The request's prompt-block hashes (what its prefill puts on the engine). */
  readonly hashes: Uint32Array
  readonly uncachedTokens: number
  readonly kvTokens: number
  /** Seen started (an attempt's first token never un-happens): counted in `decoding`, out of `pending`. */
  decoding: boolean
}

/**
 * A backend's tickets, kept so that a routing decision costs O(requests still waiting for
 * their first token) rather than O(requests in flight): with thousands of open streams,
 * walking every ticket per candidate per decision was a third of the gateway's CPU while
 * streams were being opened.
 */
interface BackendState {
  /** Tickets not yet seen started. */
  readonly pending: Set<Ticket>
  /** Tickets seen started and not yet released. */
  decoding: number
  /** Sum of `kvTokens` over every ticket held. */
  kvTokens: number
  trust: number
}

/** Moves the tickets whose attempt has started out of `pending`. */
const sweep = (s: BackendState): void => {
  for (const t of s.pending) {
    if (t.progress.started) {
      s.pending.delete(t)
      t.decoding = true
      s.decoding++
    }
  }
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
  /**
   * Leading blocks of `hashes` shared with a request placed on `backend` that has not had its first
   * token (its prefill, and so its KV events, are still to come).
   */
  readonly pendingMatch: (backend: Backend, hashes: Uint32Array) => number
  /** Index capacity of a backend (entries). */
  readonly capacity: (backend: Backend) => number
  /** Records an attempt on `backend` until the current scope closes; `progress` says how it went. */
  readonly dispatched: (
    req: GatewayRequest,
    backend: Backend,
    progress: AttemptProgress
  ) => Effect.Effect<void, never, Scope.Scope>
  /** A prefill leg put the request's prompt on `backend` (its engine now caches those blocks). */
  readonly prefilled: (req: GatewayRequest, backend: Backend) => Effect.Effect<void>
}

export const make = (initial: Plan): RoutingState => {
  const index = new PrefixIndex(initial.routing.prefixTtlMs)
  const states = new Map<string, BackendState>()
  const stateOf = (backend: Backend): BackendState => {
    let s = states.get(backend.id)
    if (s === undefined) {
      s = { pending: new Set(), decoding: 0, kvTokens: 0, trust: 1 }
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

  const pendingMatch = (backend: Backend, hashes: Uint32Array): number => {
    let best = 0
    const s = stateOf(backend)
    sweep(s)
    for (const t of s.pending) {
      const other = t.hashes
      const n = Math.min(hashes.length, other.length)
      let k = 0
      while (k < n && hashes[k] === other[k]) k++
      if (k > best) best = k
    }
    return best
  }

  return {
    index,
    capacity,
    pendingMatch,
    trust: (backend) => stateOf(backend).trust,
    load: (backend) => {
      const s = stateOf(backend)
      sweep(s)
      let pendingPrefillTokens = 0
      for (const t of s.pending) pendingPrefillTokens += t.uncachedTokens
      return { pendingRequests: s.pending.size, pendingPrefillTokens, decoding: s.decoding, kvTokens: s.kvTokens }
    },
    dispatched: (req, backend, progress) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const s = stateOf(backend)
        const e = req.estimate
        const matched = record(req, backend, now)
        const predicted = preciseMatch(req, backend, () => pendingMatch(backend, e.prefixHashes))?.cachedTokens ??
          Math.floor(Predict.cachedTokens(e, matched) * s.trust)
        const uncached = Math.max(1, e.promptTokens - predicted)
        const ticket: Ticket = { progress, hashes: e.prefixHashes, uncachedTokens: uncached, kvTokens: uncached + e.maxOutputTokens, decoding: false }
        s.pending.add(ticket)
        s.kvTokens += ticket.kvTokens
        return Scoped.addFinalizer(() =>
          Effect.sync(() => {
            if (ticket.decoding) s.decoding--
            else s.pending.delete(ticket)
            s.kvTokens -= ticket.kvTokens
            if (!progress.served) {
              index.forget(backend.id, e.prefixHashes, matched)
              return
            }
            const reported = progress.cachedTokens
            const expected = Predict.cachedTokens(e, matched)
            if (reported !== undefined && expected >= MIN_PREDICTED_TOKENS) {
              const ratio = Math.min(1, reported / expected)
              s.trust += TRUST_ALPHA * (ratio - s.trust)
            }
          })
        )
      }),
    prefilled: (req, backend) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        record(req, backend, now)
      })
  }
}

export class Placement extends Context.Service<Placement, RoutingState>()("sluice/routing/Placement") {
  static readonly layer = Layer.effect(
    Placement,
    Effect.map(GatewayConfig, (config) => make(config.initial))
  )
}

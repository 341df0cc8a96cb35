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
import type { AttemptProgress, PlacedAttempt } from "./Contract.ts"
import * as Predict from "./Predict.ts"
import { preciseMatch } from "./PreciseMatch.ts"
import { capacityFor, PrefixIndex } from "./PrefixIndex.ts"
import { profileOf } from "./Profiles.ts"

/** One attempt's work on a backend. */
interface Ticket {
  /** The request's prompt-block hashes (what its prefill puts on the engine). */
  readonly hashes: Uint32Array
  readonly uncachedTokens: number
  readonly kvTokens: number
  /** Had its first token (counted as decoding), or released (counted nowhere). */
  state: "pending" | "decoding" | "released"
}

/**
 * A backend's placed work, kept as running counts (routing reads them once per candidate per
 * decision, so they must not cost a walk over the attempts in flight). Only the attempts still
 * waiting for their first token are kept, for `pendingMatch`.
 */
interface BackendState {
  readonly pending: Set<Ticket>
  pendingPrefillTokens: number
  decoding: number
  kvTokens: number
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

/** A placed attempt whose holder releases it (`release`, once) when the attempt's scope closes. */
export interface PlacedTicket extends PlacedAttempt {
  readonly release: () => void
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
  /**
   * Records an attempt on `backend` as pending until it reports its first token through the
   * returned handle, and until the current scope closes; `progress` says how it ended.
   */
  readonly dispatched: (
    req: GatewayRequest,
    backend: Backend,
    progress: AttemptProgress
  ) => Effect.Effect<PlacedAttempt, never, Scope.Scope>
  /**
   * `dispatched` at `now`, synchronously, for a caller that releases the attempt itself:
   * `release()` exactly once, when the attempt's scope closes (dispatch's hold).
   */
  readonly dispatchedAt: (
    req: GatewayRequest,
    backend: Backend,
    progress: AttemptProgress,
    now: number
  ) => PlacedTicket
  /** A prefill leg put the request's prompt on `backend` (its engine now caches those blocks). */
  readonly prefilled: (req: GatewayRequest, backend: Backend) => Effect.Effect<void>
}

export const make = (initial: Plan): RoutingState => {
  const index = new PrefixIndex(initial.routing.prefixTtlMs)
  const states = new Map<string, BackendState>()
  const stateOf = (backend: Backend): BackendState => {
    let s = states.get(backend.id)
    if (s === undefined) {
      s = { pending: new Set(), pendingPrefillTokens: 0, decoding: 0, kvTokens: 0, trust: 1 }
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
    for (const t of stateOf(backend).pending) {
      const other = t.hashes
      const n = Math.min(hashes.length, other.length)
      let k = 0
      while (k < n && hashes[k] === other[k]) k++
      if (k > best) best = k
    }
    return best
  }

  /**
   * The release of an attempt's ticket when its scope closes (a stream's last byte). Made here,
   * outside `dispatchedAt`, so the finalizer keeps the ticket and the estimate, not the request.
   */
  const release = (
    s: BackendState,
    ticket: Ticket,
    backendId: Backend["id"],
    e: GatewayRequest["estimate"],
    matched: number,
    progress: AttemptProgress
  ) =>
  (): void => {
    if (ticket.state === "pending") {
      s.pending.delete(ticket)
      s.pendingPrefillTokens -= ticket.uncachedTokens
    } else {
      s.decoding--
    }
    ticket.state = "released"
    s.kvTokens -= ticket.kvTokens
    if (!progress.served) {
      index.forget(backendId, e.prefixHashes, matched)
      return
    }
    const reported = progress.cachedTokens
    const expected = Predict.cachedTokens(e, matched)
    if (reported !== undefined && expected >= MIN_PREDICTED_TOKENS) {
      const ratio = Math.min(1, reported / expected)
      s.trust += TRUST_ALPHA * (ratio - s.trust)
    }
  }

  const dispatchedAt = (req: GatewayRequest, backend: Backend, progress: AttemptProgress, now: number): PlacedTicket => {
    const s = stateOf(backend)
    const e = req.estimate
    const matched = record(req, backend, now)
    const predicted = preciseMatch(req, backend, () => pendingMatch(backend, e.prefixHashes))?.cachedTokens ??
      Math.floor(Predict.cachedTokens(e, matched) * s.trust)
    const uncached = Math.max(1, e.promptTokens - predicted)
    const ticket: Ticket = { hashes: e.prefixHashes, uncachedTokens: uncached, kvTokens: uncached + e.maxOutputTokens, state: "pending" }
    s.pending.add(ticket)
    s.pendingPrefillTokens += ticket.uncachedTokens
    s.kvTokens += ticket.kvTokens
    return {
      started: () => {
        if (ticket.state !== "pending") return
        ticket.state = "decoding"
        s.pending.delete(ticket)
        s.pendingPrefillTokens -= ticket.uncachedTokens
        s.decoding++
      },
      release: release(s, ticket, backend.id, e, matched, progress)
    }
  }

  return {
    index,
    capacity,
    pendingMatch,
    trust: (backend) => stateOf(backend).trust,
    load: (backend) => {
      const s = stateOf(backend)
      return {
        pendingRequests: s.pending.size,
        pendingPrefillTokens: s.pendingPrefillTokens,
        decoding: s.decoding,
        kvTokens: s.kvTokens
      }
    },
    dispatched: (req, backend, progress) =>
      Effect.uninterruptible(Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const placed = dispatchedAt(req, backend, progress, now)
        return Effect.as(Scoped.addFinalizer(() => Effect.sync(placed.release)), { started: placed.started })
      })),
    dispatchedAt,
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

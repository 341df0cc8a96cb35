/**
 * The KV pin index: "this session (or prompt prefix) lives on backend B".
 *
 * A request holds a hard pin for as long as its scope is open; when the scope closes the
 * pin becomes a soft hint that expires after `ttlMs`. Capacity is bounded: when full, the
 * least recently used soft hint is evicted (hard pins are never evicted). The router
 * reads hints; only the dispatcher takes pins: through `pin` (scoped), or `pinAt` and
 * `unpin` from a finalizer it owns (its hold releases all an attempt holds in one).
 */
import { Clock, Context, Effect, Layer, Scope } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { BackendId } from "../domain/Ids.ts"
import * as Scoped from "../domain/Scoped.ts"

/** Sessions and prefixes remembered at most (soft hints; held pins are never evicted). */
const CAPACITY = 100_000

interface Entry {
  backend: BackendId
  held: number
  expiresAt: number
}

/** A held pin (`pinAt`), given back with `unpin`. */
export interface Pin {
  readonly backend: BackendId
}

export interface AffinitySnapshot {
  readonly entries: number
  /** Pins held by open requests (must be 0 when the gateway is idle). */
  readonly heldPins: number
}

export class Affinity extends Context.Service<Affinity, {
  /** Pins `key` to `backend` until the current scope closes; then it is a soft hint. */
  readonly pin: (key: string, backend: BackendId) => Effect.Effect<void, never, Scope.Scope>
  /**
   * `pin` at `now`, synchronously, for a caller that releases it itself: `unpin(pin, at)`
   * exactly once, `at` the time its scope closed (from then on a soft hint until `at + ttl`).
   */
  readonly pinAt: (key: string, backend: BackendId, now: number) => Pin
  readonly unpin: (pin: Pin, at: number) => void
  /** The backend a key is pinned or hinted to, if any. */
  readonly lookup: (key: string) => Effect.Effect<BackendId | undefined>
  /** `lookup` at a given time, synchronously (the router's hot path reads it once per request). */
  readonly peek: (key: string, now: number) => BackendId | undefined
  /** Drops every hint to a backend (it turned unhealthy). */
  readonly forget: (backend: BackendId) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<AffinitySnapshot>
}>()("sluice/routing/Affinity") {
  /** Hints live for `routing.session_ttl` after their last request ends. */
  static readonly layer = Layer.effect(
    Affinity,
    Effect.map(GatewayConfig, ({ initial }) => make(CAPACITY, initial.routing.sessionTtlMs))
  )
}

export const make = (capacity: number, ttlMs: number): Affinity["Service"] => {
  // A Map iterates in insertion order: re-inserting on use keeps it in LRU order.
  const entries = new Map<string, Entry>()
  let heldPins = 0

  const evict = (now: number) => {
    if (entries.size < capacity) return
    for (const [key, e] of entries) {
      if (e.held === 0 || e.expiresAt <= now) {
        entries.delete(key)
        if (entries.size < capacity) return
      }
    }
  }

  const peek = (key: string, now: number): BackendId | undefined => {
    const e = entries.get(key)
    if (e === undefined) return undefined
    if (e.held === 0 && e.expiresAt <= now) {
      entries.delete(key)
      return undefined
    }
    return e.backend
  }

  const pinAt = (key: string, backend: BackendId, now: number): Pin => {
    let e = entries.get(key)
    if (e === undefined) {
      evict(now)
      e = { backend, held: 0, expiresAt: now + ttlMs }
    } else {
      entries.delete(key)
      if (e.backend !== backend) {
        // The session moved (failover or rebalancing): the newest placement wins.
        e.backend = backend
      }
    }
    entries.set(key, e)
    e.held++
    heldPins++
    return e
  }

  const unpin = (pin: Pin, at: number): void => {
    const entry = pin as Entry
    entry.held--
    heldPins--
    entry.expiresAt = at + ttlMs
  }

  return Affinity.of({
    pin: (key, backend) =>
      Effect.uninterruptible(Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const entry = pinAt(key, backend, now)
        return Scoped.addFinalizer(() => Effect.map(Clock.currentTimeMillis, (at) => unpin(entry, at)))
      })),
    pinAt,
    unpin,
    lookup: (key) => Effect.map(Clock.currentTimeMillis, (now) => peek(key, now)),
    peek,
    forget: (backend) =>
      Effect.sync(() => {
        for (const [key, e] of entries) if (e.backend === backend && e.held === 0) entries.delete(key)
      }),
    snapshot: Effect.sync(() => ({ entries: entries.size, heldPins }))
  })
}

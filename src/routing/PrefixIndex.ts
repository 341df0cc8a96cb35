/**
 * The approximate prefix index: per backend, the prompt-block hashes we sent there
 * (GIE's approximate prefix scorer, anchors.md §4), so the router can predict which
 * backend holds a request's prefix in its KV cache without asking the engine.
 *
 * Each backend's entries live in one `Map` (hash → last use, ms) kept in LRU order
 * (re-inserting on use moves an entry to the back; eviction pops from the front). A
 * request's blocks are recorded tail first, so like vLLM's free queue the tail of a prompt
 * is evicted before its head and a surviving entry keeps its whole chain matchable.
 *
 * Bounds: a backend holds at most `capacity(backend)` entries (the smaller of the
 * configured `prefix_capacity` and what the engine's KV cache can hold, so the index
 * forgets roughly when the engine does); entries older than `ttlMs` count as absent and
 * are dropped when met. Must never: exceed a bound after any call, do I/O, or allocate per
 * block beyond the map's own entries.
 */

export class PrefixIndex {
  private readonly byBackend = new Map<string, Map<number, number>>()

  constructor(readonly ttlMs: number) {}

  private entries(backend: string): Map<number, number> {
    let m = this.byBackend.get(backend)
    if (m === undefined) {
      m = new Map()
      this.byBackend.set(backend, m)
    }
    return m
  }

  /** Leading blocks of `hashes` present (and fresh) for `backend`: the longest matched prefix. */
  match(backend: string, hashes: Uint32Array, now: number): number {
    const m = this.byBackend.get(backend)
    if (m === undefined || m.size === 0) return 0
    const oldest = now - this.ttlMs
    let n = 0
    for (; n < hashes.length; n++) {
      const h = hashes[n]!
      const at = m.get(h)
      if (at === undefined) break
      if (at < oldest) {
        m.delete(h)
        break
      }
    }
    return n
  }

  /** Records that `backend` now holds `hashes` (most recently used), evicting down to `capacity`. */
  record(backend: string, hashes: Uint32Array, now: number, capacity: number): void {
    if (hashes.length === 0) return
    const m = this.entries(backend)
    for (let i = hashes.length - 1; i >= 0; i--) {
      const h = hashes[i]!
      m.delete(h)
      m.set(h, now)
    }
    this.trim(m, capacity)
  }

  /** Drops `hashes[from..]` from `backend` (an attempt that never ran its prefill). */
  forget(backend: string, hashes: Uint32Array, from: number): void {
    const m = this.byBackend.get(backend)
    if (m === undefined) return
    for (let i = Math.max(0, from); i < hashes.length; i++) m.delete(hashes[i]!)
  }

  /** Drops everything recorded for a backend (it restarted, or turned unhealthy). */
  clear(backend: string): void {
    this.byBackend.delete(backend)
  }

  size(backend: string): number {
    return this.byBackend.get(backend)?.size ?? 0
  }

  private trim(m: Map<number, number>, capacity: number): void {
    if (m.size <= capacity) return
    for (const key of m.keys()) {
      m.delete(key)
      if (m.size <= capacity) return
    }
  }
}

/**
 * Entries a backend's index may hold: `configured`, or fewer when the engine's KV cache
 * holds fewer blocks' worth of prompt text (`kvTokens × charsPerToken ÷ blockChars`,
 * GIE's `lru_capacity`), so the index forgets roughly when the engine evicts.
 */
export const capacityFor = (configured: number, kvCapacityTokens: number, blockChars: number, charsPerToken = 4): number =>
  Math.max(1, Math.min(configured, Math.floor((kvCapacityTokens * charsPerToken) / blockChars)))

/**
 * Verified keys, per replica: key id → the SHA-256 digest of the key that was verified
 * against its Argon2id hash, the identity it proved, its expiry, and until when the entry
 * is trusted without reading the row again (`auth.cache_ttl`). Bounded (`auth.cache_size`,
 * least recently used first out). A second small table remembers digests that failed
 * verification, so repeating a wrong key does not cost another Argon2 run.
 *
 * Plain TypeScript on purpose: it is read on every request (a Map lookup, no allocation).
 * Owns the tables. Must never: hold a raw key (only digests), or decide validity by itself
 * (ApiKeys.ts checks digests, expiry and revocation).
 */
import type { Identity } from "../domain/Identity.ts"
import type { TenantId } from "../domain/Ids.ts"

export interface CachedKey {
  readonly keyId: string
  readonly digest: Buffer
  /** The Argon2id hash the digest was verified against: a refresh that finds the same hash needs no Argon2. */
  readonly hash: string
  readonly identity: Identity
  readonly expiresAtMs: number | undefined
  /** Trusted until then; after it the row is read again. */
  readonly freshUntilMs: number
  /** Declared in the config file (no row to record its use in). */
  readonly declared: boolean
}

export interface KeyCache {
  readonly get: (keyId: string) => CachedKey | undefined
  readonly put: (entry: CachedKey) => void
  readonly drop: (keyId: string) => void
  readonly dropTenant: (tenant: TenantId) => void
  readonly clear: () => void
  /** Remembers a digest that failed verification until `untilMs`. */
  readonly reject: (digestHex: string, untilMs: number) => void
  readonly rejected: (digestHex: string, nowMs: number) => boolean
  readonly size: () => number
}

export const make = (capacity: number): KeyCache => {
  const entries = new Map<string, CachedKey>()
  const failures = new Map<string, number>()
  const failureCapacity = Math.max(16, Math.min(capacity, 4096))
  return {
    get: (keyId) => {
      const entry = entries.get(keyId)
      if (entry !== undefined) {
        // A Map iterates in insertion order: re-inserting on use keeps it in LRU order.
        entries.delete(keyId)
        entries.set(keyId, entry)
      }
      return entry
    },
    put: (entry) => {
      entries.delete(entry.keyId)
      entries.set(entry.keyId, entry)
      if (entries.size > capacity) entries.delete(entries.keys().next().value!)
    },
    drop: (keyId) => void entries.delete(keyId),
    dropTenant: (tenant) => {
      for (const [id, entry] of entries) if (entry.identity.tenant === tenant) entries.delete(id)
    },
    clear: () => {
      entries.clear()
      failures.clear()
    },
    reject: (digestHex, untilMs) => {
      failures.delete(digestHex)
      failures.set(digestHex, untilMs)
      if (failures.size > failureCapacity) failures.delete(failures.keys().next().value!)
    },
    rejected: (digestHex, nowMs) => {
      const until = failures.get(digestHex)
      if (until === undefined) return false
      if (until > nowMs) return true
      failures.delete(digestHex)
      return false
    },
    size: () => entries.size
  }
}

/**
 * The `api_key` authenticator: Sluice API keys from `Authorization: Bearer` or `x-api-key`,
 * checked against the keys declared in the config file and the key store.
 *
 * Hot path (a key seen before, within `auth.cache_ttl`): one SHA-256 of the presented key,
 * a Map lookup by its public key id, a constant-time comparison with the digest that was
 * verified, and the expiry check (on every use, cached or not). No Argon2, no I/O.
 * Slow path (first use, or the entry is stale): read the key row (declared keys: the plan),
 * refuse revoked/expired keys and disabled tenants, and run Argon2id once, unless the row
 * still holds the hash this digest was verified against. Concurrent first uses of one key
 * share one verification; a digest that failed is remembered, so repeating a wrong key does
 * not run Argon2 again; at most four verifications run at once.
 *
 * While no key exists at all (none declared, none in the store), requests without a Sluice
 * key are let in as tenant `default` (the embedded default; Protection.ts allows that on
 * loopback only). The first key created here, announced by another process, or verified
 * turns that off for good.
 *
 * Owns the cache, the last-used times (written every 10 s and at shutdown, off the request
 * path) and the open/closed state. Must never: log or keep a raw key.
 */
import { Clock, Context, Deferred, Effect, Layer, Schedule, Semaphore } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { DeclaredKey, Plan } from "../config/Plan.ts"
import * as Format from "../domain/ApiKeys.ts"
import type { Identity } from "../domain/Identity.ts"
import { TenantId } from "../domain/Ids.ts"
import type { AuthRejection, Authenticator } from "../extensions/Contract.ts"
import * as Deadline from "../domain/Deadline.ts"
import { within } from "./Authentication.ts"
import { Authenticators } from "../extensions/Registries.ts"
import { KeyStore, type StoreError } from "../stores/KeyStore.ts"
import * as ApiKey from "./ApiKey.ts"
import * as KeyCache from "./KeyCache.ts"
import { Revocations } from "./Revocations.ts"

export const NAME = Format.AUTHENTICATOR
const VERIFICATIONS = 4
const LAST_USED_EVERY = "10 seconds"
const RECHECK_EVERY = "2 seconds"

const rejection: AuthRejection = { _tag: "AuthRejection", message: "invalid API key" }
const unavailable: AuthRejection = { _tag: "AuthRejection", message: "key store unavailable", unavailable: true }
const cannotVerify: AuthRejection = { _tag: "AuthRejection", message: "key verification unavailable", unavailable: true }
const anonymousIdentity: Identity = { tenant: TenantId("default"), keyId: undefined, via: "anonymous" }

/** What a key row says, wherever it came from. */
interface KeyFacts {
  readonly tenant: TenantId
  readonly hash: string
  readonly models: ReadonlyArray<string> | undefined
  readonly expiresAtMs: number | undefined
  readonly refused: boolean
  readonly declared: boolean
}

const fromDeclared = (k: DeclaredKey): KeyFacts => ({
  tenant: k.tenant,
  hash: k.hash,
  models: k.models,
  expiresAtMs: k.expiresAtMs,
  refused: false,
  declared: true
})

const expired = (expiresAtMs: number | undefined, nowMs: number) => expiresAtMs !== undefined && nowMs >= expiresAtMs

export class ApiKeys extends Context.Service<ApiKeys, {
  readonly authenticator: Authenticator
  /** Whether any key exists (declared in `plan` or in the store): requests must present one. */
  readonly required: (plan: Plan) => boolean
  readonly cache: KeyCache.KeyCache
  /** Argon2 verifications run so far (the benchmark checks none runs on the hot path). */
  readonly verifications: () => number
}>()("sluice/auth/ApiKeys") {
  static readonly layer: Layer.Layer<ApiKeys, StoreError, GatewayConfig | KeyStore | Revocations> = Layer.effect(
    ApiKeys,
    Effect.gen(function*() {
      const config = yield* GatewayConfig
      const store = yield* KeyStore
      const events = yield* Revocations
      const cache = KeyCache.make(config.initial.auth.cacheSize)
      const slots = yield* Semaphore.make(VERIFICATIONS)
      const layerScope = yield* Effect.scope
      const used = new Map<string, number>()
      const pending = new Map<string, Deferred.Deferred<Identity, AuthRejection>>()
      let storeHasKeys = yield* store.anyKey
      let verifications = 0

      events.listen((event) => {
        if (event.kind === "key") cache.drop(event.id)
        else if (event.kind === "tenant") cache.dropTenant(TenantId(event.id))
        else storeHasKeys = true
      })

      const flushLastUsed = Effect.suspend(() => {
        if (used.size === 0) return Effect.void
        const batch = new Map(used)
        used.clear()
        return store.touchKeys(batch).pipe(
          Effect.catch((e) => Effect.logWarning("could not record when keys were last used").pipe(Effect.annotateLogs({ cause: String(e.cause) })))
        )
      })
      yield* Effect.forkScoped(Effect.repeat(flushLastUsed, Schedule.spaced(LAST_USED_EVERY)))
      yield* Effect.addFinalizer(() => flushLastUsed)
      // A key made by another process (`sluice keys create`) turns keys on here too.
      if (!storeHasKeys) {
        const recheck = Effect.flatMap(Effect.orElseSucceed(store.anyKey, () => false), (any) =>
          Effect.sync(() => {
            if (any) storeHasKeys = true
          }))
        yield* Effect.forkScoped(Effect.repeat(recheck, {
          schedule: Schedule.spaced(RECHECK_EVERY),
          while: () => !storeHasKeys
        }))
      }

      const required = (plan: Plan) => storeHasKeys || plan.auth.keys.size > 0
      // With keys to check, the native Argon2 module is loaded now: a missing or unloadable
      // binary (another platform's, a pruned node_modules) stops the start with its reason
      // instead of refusing every right key later. Without keys it is loaded on first use.
      if (required(config.initial)) yield* Effect.orDie(ApiKey.load)

      /** The row behind a key id: the config file's first, then the store. */
      const facts = (plan: Plan, keyId: string): Effect.Effect<KeyFacts | undefined, AuthRejection> => {
        const declared = plan.auth.keys.get(keyId)
        if (declared !== undefined) return Effect.succeed(fromDeclared(declared))
        return store.keyForAuth(keyId).pipe(
          Effect.mapError(() => unavailable),
          Effect.map((row) =>
            row === undefined ? undefined : {
              tenant: row.tenant,
              hash: row.hash,
              models: row.models,
              expiresAtMs: row.expiresAtMs,
              refused: row.revokedAtMs !== undefined || row.tenantDisabledAtMs !== undefined,
              declared: false
            }
          )
        )
      }

      /** First use or a stale entry: read the row, verify with Argon2 unless this digest was verified against it. */
      const verify = (plan: Plan, key: string, keyId: string, digest: Buffer, stale: KeyCache.CachedKey | undefined) =>
        Effect.gen(function*() {
          const row = yield* facts(plan, keyId)
          const now = yield* Clock.currentTimeMillis
          if (row === undefined) return yield* Effect.fail(rejection)
          if (row.refused || expired(row.expiresAtMs, now)) {
            cache.drop(keyId)
            return yield* Effect.fail(rejection)
          }
          const known = stale !== undefined && stale.hash === row.hash && ApiKey.sameDigest(stale.digest, digest)
          if (!known) {
            verifications++
            const ok = yield* slots.withPermits(1)(ApiKey.verify(row.hash, key)).pipe(
              Effect.catchTag("Argon2Unavailable", (e) =>
                Effect.andThen(Effect.logError(e.message), Effect.fail(cannotVerify)))
            )
            if (!ok) {
              cache.reject(digest.toString("hex"), now + plan.auth.cacheTtlMs)
              return yield* Effect.fail(rejection)
            }
          }
          const identity: Identity = { tenant: row.tenant, keyId, via: NAME, models: row.models }
          cache.put({ keyId, digest, hash: row.hash, identity, expiresAtMs: row.expiresAtMs, freshUntilMs: now + plan.auth.cacheTtlMs, declared: row.declared })
          if (!row.declared) storeHasKeys = true
          return identity
        })

      /**
       * One verification per presented key at a time, in a fiber of its own (in the layer's
       * scope): it runs to its end, bounded by `timeoutMs`, even if the request that started it
       * leaves, and every request presenting that key waits for it only as long as its own
       * deadline. (It used to run uninterruptibly in the first request's fiber, so a key store
       * that did not answer held that request past the authenticator's deadline, forever.)
       */
      const once = (hex: string, effect: Effect.Effect<Identity, AuthRejection>, timeoutMs: number) =>
        Effect.suspend(() => {
          const running = pending.get(hex)
          if (running !== undefined) return Deferred.await(running)
          const deferred = Deferred.makeUnsafe<Identity, AuthRejection>()
          pending.set(hex, deferred)
          const verification = Deadline.within(effect, timeoutMs, () => Effect.fail(unavailable)).pipe(
            // Forgotten before it is answered: a request arriving after the answer starts afresh
            // instead of reusing a finished verification's outcome (a 503 included).
            Effect.onExit((exit) => Effect.andThen(Effect.sync(() => pending.delete(hex)), Deferred.done(deferred, exit)))
          )
          return Effect.andThen(Effect.forkIn(verification, layerScope), Deferred.await(deferred))
        })

      const authenticate = (credentials: Parameters<Authenticator["authenticate"]>[0]) =>
        Effect.flatMap(config.current, (plan) => {
          const key = Format.presented(credentials.headers)
          // Not a Sluice key: another authenticator's credential, or none.
          if (key === undefined || !Format.looksLikeKey(key)) return Effect.succeed(required(plan) ? undefined : anonymousIdentity)
          const keyId = Format.keyIdOf(key)
          if (keyId === undefined) return Effect.fail(rejection)
          const digest = ApiKey.digest(key)
          return Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<Identity, AuthRejection> => {
            const hit = cache.get(keyId)
            if (hit !== undefined && now < hit.freshUntilMs) {
              if (!ApiKey.sameDigest(hit.digest, digest)) return Effect.fail(rejection)
              if (expired(hit.expiresAtMs, now)) {
                cache.drop(keyId)
                return Effect.fail(rejection)
              }
              if (!hit.declared) used.set(keyId, now)
              return Effect.succeed(hit.identity)
            }
            const hex = digest.toString("hex")
            if (cache.rejected(hex, now)) return Effect.fail(rejection)
            // Only this path waits (the store, Argon2id): bounded here, so a cached key costs
            // the chain no fiber (`boundsItself`).
            return within(
              NAME,
              Effect.tap(once(hex, verify(plan, key, keyId, digest, hit), plan.extensions.timeoutMs), () =>
                Effect.sync(() => {
                  if (plan.auth.keys.get(keyId) === undefined) used.set(keyId, now)
                })),
              plan.extensions.timeoutMs,
              unavailable
            )
          })
        })

      return ApiKeys.of({
        authenticator: { name: NAME, authenticate, boundsItself: true },
        required,
        cache,
        verifications: () => verifications
      })
    })
  )

  /** Adds the `api_key` authenticator to the registry. */
  static readonly register: Layer.Layer<never, never, ApiKeys | Authenticators> = Authenticators.add(
    Effect.map(ApiKeys, (keys) => keys.authenticator)
  )
}

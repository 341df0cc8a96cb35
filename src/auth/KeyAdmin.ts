/**
 * The operations on tenants and keys that the admin API (http/Admin.ts) and the command
 * line (cli/keys.ts) both offer, on the same store: create a key (the raw key is returned
 * here once and never again: only its Argon2id hash is written), list without secrets,
 * revoke, rotate (a new key now, the old one expiring after a grace period), set an expiry,
 * and tenants (create, read, rename, disable). Every change that can end a key's validity is
 * announced (Revocations.ts), so cached copies on this and other replicas are dropped.
 *
 * Owns the rules of those operations (names, known models, no rotation of a revoked key).
 * Must never: log a raw key or a hash.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import { TenantId } from "../domain/Ids.ts"
import { type KeyRecord, KeyStore, type StoreError, type TenantExists, type TenantRecord } from "../stores/KeyStore.ts"
import * as ApiKey from "./ApiKey.ts"
import { InvalidAdminRequest, KeyNotFound, TenantNotFound } from "./Errors.ts"
import { Revocations } from "./Revocations.ts"

export const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** A new key: `key` is shown to the caller once; the store holds only its hash. */
export interface CreatedKey {
  readonly key: string
  readonly record: KeyRecord
}

export interface NewKeyRequest {
  readonly tenant: string
  readonly name: string
  readonly models?: ReadonlyArray<string> | undefined
  readonly expiresAtMs?: number | undefined
  /** Create the tenant when it does not exist (the command line's convenience). */
  readonly createTenant?: boolean | undefined
}

export const keyStatus = (k: KeyRecord, nowMs: number): "active" | "revoked" | "expired" =>
  k.revokedAtMs !== undefined ? "revoked" : k.expiresAtMs !== undefined && nowMs >= k.expiresAtMs ? "expired" : "active"

export class KeyAdmin extends Context.Service<KeyAdmin, {
  readonly createTenant: (id: string, name: string | undefined) =>
    Effect.Effect<TenantRecord, InvalidAdminRequest | TenantExists | StoreError>
  readonly tenants: Effect.Effect<ReadonlyArray<TenantRecord>, StoreError>
  readonly tenant: (id: string) => Effect.Effect<TenantRecord, TenantNotFound | StoreError>
  readonly updateTenant: (id: string, change: { readonly name?: string | undefined; readonly disabled?: boolean | undefined }) =>
    Effect.Effect<TenantRecord, TenantNotFound | StoreError>
  readonly createKey: (request: NewKeyRequest) =>
    Effect.Effect<CreatedKey, TenantNotFound | InvalidAdminRequest | TenantExists | StoreError>
  readonly keys: (tenant: string | undefined) => Effect.Effect<ReadonlyArray<KeyRecord>, TenantNotFound | StoreError>
  readonly key: (id: string) => Effect.Effect<KeyRecord, KeyNotFound | StoreError>
  readonly revokeKey: (id: string) => Effect.Effect<KeyRecord, KeyNotFound | StoreError>
  /** A new key with the old one's tenant, name and models; the old one expires `graceMs` from now (or sooner, if it already would). */
  readonly rotateKey: (id: string, graceMs: number) =>
    Effect.Effect<{ readonly created: CreatedKey; readonly old: KeyRecord }, KeyNotFound | TenantNotFound | InvalidAdminRequest | StoreError>
  readonly setExpiry: (id: string, expiresAtMs: number | undefined) => Effect.Effect<KeyRecord, KeyNotFound | StoreError>
}>()("sluice/auth/KeyAdmin") {
  static readonly layer: Layer.Layer<KeyAdmin, never, KeyStore | Revocations | GatewayConfig> = Layer.effect(
    KeyAdmin,
    Effect.gen(function*() {
      const store = yield* KeyStore
      const events = yield* Revocations
      const config = yield* GatewayConfig

      const validTenantId = (id: string) =>
        TENANT_ID.test(id)
          ? Effect.succeed(TenantId(id))
          : Effect.fail(new InvalidAdminRequest({ message: "A tenant id is 1-64 letters, digits, '.', '_' or '-'.", param: "tenant" }))
      const existingTenant = (id: string) =>
        Effect.flatMap(store.tenant(TenantId(id)), (t) => t === undefined ? Effect.fail(new TenantNotFound({ tenant: id })) : Effect.succeed(t))
      const existingKey = (id: string) =>
        Effect.flatMap(store.key(id), (k) => k === undefined ? Effect.fail(new KeyNotFound({ key: id })) : Effect.succeed(k))
      const checkModels = (models: ReadonlyArray<string> | undefined) =>
        Effect.flatMap(config.current, (plan) => {
          const unknown = (models ?? []).find((m) => !plan.modelNames.has(m))
          return unknown === undefined
            ? Effect.void
            : Effect.fail(new InvalidAdminRequest({ message: `Unknown model \`${unknown}\`.`, param: "models" }))
        })

      const createTenant = (id: string, name: string | undefined) =>
        Effect.gen(function*() {
          const tenant = yield* validTenantId(id)
          if (name !== undefined && (name === "" || name.length > 200)) {
            return yield* new InvalidAdminRequest({ message: "A tenant name is 1-200 characters.", param: "name" })
          }
          return yield* store.createTenant({ id: tenant, name: name ?? id }, yield* Clock.currentTimeMillis)
        })

      const createKey = (request: NewKeyRequest) =>
        Effect.gen(function*() {
          if (request.name === "" || request.name.length > 200) {
            return yield* new InvalidAdminRequest({ message: "A key name is 1-200 characters.", param: "name" })
          }
          yield* checkModels(request.models)
          const tenant = yield* validTenantId(request.tenant)
          const now = yield* Clock.currentTimeMillis
          if (request.expiresAtMs !== undefined && request.expiresAtMs <= now) {
            return yield* new InvalidAdminRequest({ message: "The expiry must be in the future.", param: "expires_at" })
          }
          if ((yield* store.tenant(tenant)) === undefined) {
            if (request.createTenant !== true) return yield* new TenantNotFound({ tenant })
            yield* store.createTenant({ id: tenant, name: tenant }, now)
          }
          const { keyId, key } = ApiKey.generate()
          const hash = yield* ApiKey.hash(key)
          const record = yield* store.createKey(
            { id: keyId, tenant, name: request.name, hash, models: request.models, expiresAtMs: request.expiresAtMs },
            now
          )
          yield* events.announce({ kind: "created" })
          return { key, record } satisfies CreatedKey
        })

      const changed = (record: KeyRecord | undefined, id: string) =>
        record === undefined
          ? Effect.fail(new KeyNotFound({ key: id }))
          : Effect.as(events.announce({ kind: "key", id }), record)

      return KeyAdmin.of({
        createTenant,
        tenants: store.tenants,
        tenant: existingTenant,
        updateTenant: (id, change) =>
          Effect.gen(function*() {
            const updated = yield* store.updateTenant(TenantId(id), change, yield* Clock.currentTimeMillis)
            if (updated === undefined) return yield* new TenantNotFound({ tenant: id })
            if (change.disabled === true) yield* events.announce({ kind: "tenant", id })
            return updated
          }),
        createKey,
        keys: (tenant) =>
          tenant === undefined ? store.keys(undefined) : Effect.andThen(existingTenant(tenant), store.keys(TenantId(tenant))),
        key: existingKey,
        revokeKey: (id) => Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.flatMap(store.revokeKey(id, now), (r) => changed(r, id))),
        rotateKey: (id, graceMs) =>
          Effect.gen(function*() {
            const old = yield* existingKey(id)
            const now = yield* Clock.currentTimeMillis
            if (keyStatus(old, now) !== "active") {
              return yield* new InvalidAdminRequest({ message: `Key ${id} is ${keyStatus(old, now)}; create a new key instead.`, param: null })
            }
            const created = yield* createKey({ tenant: old.tenant, name: old.name, models: old.models }).pipe(
              Effect.catchTag("TenantExists", (e) => Effect.die(e))
            )
            const until = old.expiresAtMs === undefined ? now + graceMs : Math.min(old.expiresAtMs, now + graceMs)
            const expiring = yield* Effect.flatMap(store.setKeyExpiry(id, until, now), (r) => changed(r, id))
            return { created, old: expiring }
          }),
        setExpiry: (id, expiresAtMs) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.flatMap(store.setKeyExpiry(id, expiresAtMs, now), (r) => changed(r, id)))
      })
    })
  )
}

const SPAN = /^(\d+)\s*(s|m|h|d)$/
const SPAN_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const ISO = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/

/** `45s`, `90m`, `12h`, `30d` in milliseconds, or undefined. */
export const parseSpanMs = (text: string): number | undefined => {
  const m = SPAN.exec(text.trim())
  return m === null ? undefined : Number(m[1]) * SPAN_MS[m[2] === "s" ? "s" : m[2] === "m" ? "m" : m[2] === "h" ? "h" : "d"]
}

/** An expiry given as a span from now (`30d`) or an ISO 8601 time, in ms since the epoch; undefined if neither. */
export const parseExpiry = (text: string, nowMs: number): number | undefined => {
  const span = parseSpanMs(text)
  if (span !== undefined) return nowMs + span
  if (!ISO.test(text.trim())) return undefined
  const at = Date.parse(text.trim())
  return Number.isNaN(at) ? undefined : at
}

/** The seven-day grace a rotated key keeps unless told otherwise. */
export const DEFAULT_ROTATION_GRACE_MS = 7 * 86_400_000

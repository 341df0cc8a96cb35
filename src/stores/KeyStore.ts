/**
 * The tenants and API keys in the database (Migrations.ts): plain reads and writes with
 * decoded rows, the same SQL on SQLite and PostgreSQL. A key row holds only the Argon2id
 * hash of its key (auth/ApiKey.ts makes and checks it); nothing here ever sees a raw key.
 *
 * Owns the queries. Must never: decide whether a key is valid (auth/ does), or cache.
 */
import { Context, Data, Effect, Layer, Option, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { TenantId } from "../domain/Ids.ts"

export interface TenantRecord {
  readonly id: TenantId
  readonly name: string
  readonly createdAtMs: number
  readonly disabledAtMs: number | undefined
}

export interface KeyRecord {
  /** The public key id (the part of the key before the secret). */
  readonly id: string
  readonly tenant: TenantId
  readonly name: string
  /** Argon2id PHC string of the whole key. */
  readonly hash: string
  /** Model names the key may use; undefined: every model. */
  readonly models: ReadonlyArray<string> | undefined
  readonly createdAtMs: number
  readonly expiresAtMs: number | undefined
  readonly revokedAtMs: number | undefined
  readonly lastUsedAtMs: number | undefined
}

/** A key with what the authenticator also needs about its tenant (one query). */
export interface KeyForAuth extends KeyRecord {
  readonly tenantDisabledAtMs: number | undefined
}

/** The database did not answer or refused (not the caller's fault). */
export class StoreError extends Data.TaggedError("StoreError")<{
  readonly operation: string
  readonly cause: unknown
}> {}

export class TenantExists extends Data.TaggedError("TenantExists")<{ readonly tenant: string }> {}

const Time = Schema.NullOr(Schema.Number)

const TenantRow = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  created_at: Schema.Number,
  disabled_at: Time
})

const KeyRow = Schema.Struct({
  id: Schema.String,
  tenant_id: Schema.String,
  name: Schema.String,
  hash: Schema.String,
  models: Schema.NullOr(Schema.String),
  created_at: Schema.Number,
  expires_at: Time,
  revoked_at: Time,
  last_used_at: Time
})

const KeyAuthRow = Schema.Struct({ ...KeyRow.fields, tenant_disabled_at: Time })

const opt = (v: number | null): number | undefined => v === null ? undefined : v

const decodeModels = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Array(Schema.String)))

const toTenant = (r: typeof TenantRow.Type): TenantRecord => ({
  id: TenantId(r.id),
  name: r.name,
  createdAtMs: r.created_at,
  disabledAtMs: opt(r.disabled_at)
})

const toKey = (r: typeof KeyRow.Type): KeyRecord => ({
  id: r.id,
  tenant: TenantId(r.tenant_id),
  name: r.name,
  hash: r.hash,
  models: r.models === null ? undefined : Option.getOrElse(decodeModels(r.models), () => []),
  createdAtMs: r.created_at,
  expiresAtMs: opt(r.expires_at),
  revokedAtMs: opt(r.revoked_at),
  lastUsedAtMs: opt(r.last_used_at)
})

export interface NewKey {
  readonly id: string
  readonly tenant: TenantId
  readonly name: string
  readonly hash: string
  readonly models: ReadonlyArray<string> | undefined
  readonly expiresAtMs: number | undefined
}

export class KeyStore extends Context.Service<KeyStore, {
  readonly createTenant: (tenant: { readonly id: TenantId; readonly name: string }, nowMs: number) =>
    Effect.Effect<TenantRecord, StoreError | TenantExists>
  readonly tenant: (id: TenantId) => Effect.Effect<TenantRecord | undefined, StoreError>
  readonly tenants: Effect.Effect<ReadonlyArray<TenantRecord>, StoreError>
  /** Renames, disables (`disabled: true`) or re-enables a tenant; undefined when there is none. */
  readonly updateTenant: (
    id: TenantId,
    change: { readonly name?: string | undefined; readonly disabled?: boolean | undefined },
    nowMs: number
  ) => Effect.Effect<TenantRecord | undefined, StoreError>
  readonly createKey: (key: NewKey, nowMs: number) => Effect.Effect<KeyRecord, StoreError>
  readonly key: (id: string) => Effect.Effect<KeyRecord | undefined, StoreError>
  /** The key with its tenant's state, for the authenticator. */
  readonly keyForAuth: (id: string) => Effect.Effect<KeyForAuth | undefined, StoreError>
  readonly keys: (tenant: TenantId | undefined) => Effect.Effect<ReadonlyArray<KeyRecord>, StoreError>
  /** Revokes a key (a second revocation keeps the first time); undefined when there is none. */
  readonly revokeKey: (id: string, nowMs: number) => Effect.Effect<KeyRecord | undefined, StoreError>
  /** Sets (or clears) a key's expiry; undefined when there is none. */
  readonly setKeyExpiry: (id: string, expiresAtMs: number | undefined, nowMs: number) =>
    Effect.Effect<KeyRecord | undefined, StoreError>
  /** Records when keys were last used (written in batches, off the request path). */
  readonly touchKeys: (used: ReadonlyMap<string, number>) => Effect.Effect<void, StoreError>
  /** Whether any key exists, revoked or not (auth turns on with the first key). */
  readonly anyKey: Effect.Effect<boolean, StoreError>
}>()("sluice/stores/KeyStore") {
  static readonly layer: Layer.Layer<KeyStore, never, SqlClient.SqlClient> = Layer.effect(
    KeyStore,
    Effect.map(SqlClient.SqlClient, (sql) => make(sql))
  )
}

const KEY_COLUMNS = "id, tenant_id, name, hash, models, created_at, expires_at, revoked_at, last_used_at"

export const make = (sql: SqlClient.SqlClient): KeyStore["Service"] => {
  const wrap = (operation: string) => <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, StoreError> =>
    Effect.mapError(effect, (cause) => new StoreError({ operation, cause }))

  const findTenant = SqlSchema.findOneOption({
    Request: Schema.String,
    Result: TenantRow,
    execute: (id) => sql`SELECT id, name, created_at, disabled_at FROM sluice_tenants WHERE id = ${id}`
  })
  const allTenants = SqlSchema.findAll({
    Request: Schema.Void,
    Result: TenantRow,
    execute: () => sql`SELECT id, name, created_at, disabled_at FROM sluice_tenants ORDER BY id`
  })
  const findKey = SqlSchema.findOneOption({
    Request: Schema.String,
    Result: KeyRow,
    execute: (id) => sql`SELECT ${sql.literal(KEY_COLUMNS)} FROM sluice_keys WHERE id = ${id}`
  })
  const findKeyForAuth = SqlSchema.findOneOption({
    Request: Schema.String,
    Result: KeyAuthRow,
    execute: (id) =>
      sql`SELECT k.id, k.tenant_id, k.name, k.hash, k.models, k.created_at, k.expires_at, k.revoked_at,
        k.last_used_at, t.disabled_at AS tenant_disabled_at
        FROM sluice_keys k JOIN sluice_tenants t ON t.id = k.tenant_id WHERE k.id = ${id}`
  })
  const findKeys = SqlSchema.findAll({
    Request: Schema.NullOr(Schema.String),
    Result: KeyRow,
    execute: (tenant) =>
      tenant === null
        ? sql`SELECT ${sql.literal(KEY_COLUMNS)} FROM sluice_keys ORDER BY tenant_id, created_at, id`
        : sql`SELECT ${sql.literal(KEY_COLUMNS)} FROM sluice_keys WHERE tenant_id = ${tenant} ORDER BY created_at, id`
  })
  const keyById = (id: string) => Effect.map(findKey(id), (row) => Option.getOrUndefined(Option.map(row, toKey)))
  const tenantById = (id: string) => Effect.map(findTenant(id), (row) => Option.getOrUndefined(Option.map(row, toTenant)))

  return KeyStore.of({
    createTenant: (tenant, nowMs) =>
      Effect.gen(function*() {
        const inserted = yield* sql`INSERT INTO sluice_tenants (id, name, created_at, updated_at)
          VALUES (${tenant.id}, ${tenant.name}, ${nowMs}, ${nowMs}) ON CONFLICT (id) DO NOTHING RETURNING id`
        if (inserted.length === 0) return yield* new TenantExists({ tenant: tenant.id })
        return { id: tenant.id, name: tenant.name, createdAtMs: nowMs, disabledAtMs: undefined } satisfies TenantRecord
      }).pipe(Effect.catchTag("SqlError", (cause) => Effect.fail(new StoreError({ operation: "createTenant", cause })))),
    tenant: (id) => wrap("tenant")(tenantById(id)),
    tenants: wrap("tenants")(Effect.map(allTenants(undefined), (rows) => rows.map(toTenant))),
    updateTenant: (id, change, nowMs) =>
      wrap("updateTenant")(Effect.gen(function*() {
        if (change.name !== undefined) {
          yield* sql`UPDATE sluice_tenants SET name = ${change.name}, updated_at = ${nowMs} WHERE id = ${id}`
        }
        if (change.disabled === true) {
          yield* sql`UPDATE sluice_tenants SET disabled_at = COALESCE(disabled_at, ${nowMs}), updated_at = ${nowMs}
            WHERE id = ${id}`
        } else if (change.disabled === false) {
          yield* sql`UPDATE sluice_tenants SET disabled_at = NULL, updated_at = ${nowMs} WHERE id = ${id}`
        }
        return yield* tenantById(id)
      })),
    createKey: (key, nowMs) =>
      wrap("createKey")(Effect.gen(function*() {
        yield* sql`INSERT INTO sluice_keys (id, tenant_id, name, hash, models, created_at, updated_at, expires_at)
          VALUES (${key.id}, ${key.tenant}, ${key.name}, ${key.hash},
            ${key.models === undefined ? null : JSON.stringify(key.models)}, ${nowMs}, ${nowMs}, ${key.expiresAtMs ?? null})`
        return {
          id: key.id,
          tenant: key.tenant,
          name: key.name,
          hash: key.hash,
          models: key.models,
          createdAtMs: nowMs,
          expiresAtMs: key.expiresAtMs,
          revokedAtMs: undefined,
          lastUsedAtMs: undefined
        } satisfies KeyRecord
      })),
    key: (id) => wrap("key")(keyById(id)),
    keyForAuth: (id) =>
      wrap("keyForAuth")(Effect.map(findKeyForAuth(id), (row) =>
        Option.getOrUndefined(Option.map(row, (r): KeyForAuth => ({ ...toKey(r), tenantDisabledAtMs: opt(r.tenant_disabled_at) }))))),
    keys: (tenant) => wrap("keys")(Effect.map(findKeys(tenant ?? null), (rows) => rows.map(toKey))),
    revokeKey: (id, nowMs) =>
      wrap("revokeKey")(Effect.andThen(
        sql`UPDATE sluice_keys SET revoked_at = COALESCE(revoked_at, ${nowMs}), updated_at = ${nowMs} WHERE id = ${id}`,
        keyById(id)
      )),
    setKeyExpiry: (id, expiresAtMs, nowMs) =>
      wrap("setKeyExpiry")(Effect.andThen(
        sql`UPDATE sluice_keys SET expires_at = ${expiresAtMs ?? null}, updated_at = ${nowMs} WHERE id = ${id}`,
        keyById(id)
      )),
    touchKeys: (used) =>
      wrap("touchKeys")(Effect.forEach(
        used,
        ([id, at]) => sql`UPDATE sluice_keys SET last_used_at = ${at} WHERE id = ${id}`,
        { discard: true }
      )),
    anyKey: wrap("anyKey")(Effect.map(sql`SELECT id FROM sluice_keys LIMIT 1`, (rows) => rows.length > 0))
  })
}

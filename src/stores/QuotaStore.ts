/**
 * Limits and prices set through the admin API or the CLI (tables of migration 0002): plain
 * reads and writes with decoded rows, the same SQL on SQLite and PostgreSQL. A stored
 * limit set overlays the config file's field by field (a `null` field removes the file's
 * limit); a stored price replaces the file's.
 *
 * Owns the queries. Must never: be read on the request path (admission/Quotas.ts keeps a
 * refreshed copy in memory), or decide what a limit means.
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { LIMIT_FIELD_NAMES, type LimitField, type Price } from "../domain/Quotas.ts"
import { StoreError } from "./KeyStore.ts"

export type LimitScope = "tenant" | "key" | "model"

/** Stored limit fields: a number, or null to remove the config file's limit. */
export type StoredLimits = { readonly [F in LimitField]?: number | null }

export interface LimitRow {
  readonly scope: LimitScope
  /** The tenant id (scopes `tenant` and `model`) or the key id. */
  readonly subject: string
  /** The model id (scope `model`), else ''. */
  readonly model: string
  readonly limits: StoredLimits
}

export interface PriceRow {
  readonly model: string
  /** '' for every backend. */
  readonly backend: string
  readonly price: Price
}

const Amount = Schema.NullOr(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))
export const StoredLimitsSchema = Schema.Struct(
  Object.fromEntries(LIMIT_FIELD_NAMES.map((f) => [f, Schema.optionalKey(Amount)])) as {
    readonly [F in LimitField]: Schema.optionalKey<typeof Amount>
  }
)
const decodeLimits = Schema.decodeUnknownOption(Schema.fromJsonString(StoredLimitsSchema))

const LimitTableRow = Schema.Struct({
  scope: Schema.Literals(["tenant", "key", "model"]),
  subject: Schema.String,
  model: Schema.String,
  limits: Schema.String
})
const PriceTableRow = Schema.Struct({
  model: Schema.String,
  backend: Schema.String,
  input: Schema.Number,
  cached_input: Schema.NullOr(Schema.Number),
  output: Schema.Number
})

export class QuotaStore extends Context.Service<QuotaStore, {
  readonly limits: Effect.Effect<ReadonlyArray<LimitRow>, StoreError>
  /** Replaces the stored limits of one subject (an empty set deletes the row). */
  readonly setLimits: (row: LimitRow, nowMs: number) => Effect.Effect<void, StoreError>
  readonly prices: Effect.Effect<ReadonlyArray<PriceRow>, StoreError>
  readonly setPrice: (row: PriceRow, nowMs: number) => Effect.Effect<void, StoreError>
  readonly deletePrice: (model: string, backend: string) => Effect.Effect<void, StoreError>
}>()("sluice/stores/QuotaStore") {
  static readonly layer: Layer.Layer<QuotaStore, never, SqlClient.SqlClient> = Layer.effect(
    QuotaStore,
    Effect.map(SqlClient.SqlClient, (sql) => make(sql))
  )
}

export const make = (sql: SqlClient.SqlClient): QuotaStore["Service"] => {
  const wrap = (operation: string) => <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, StoreError> =>
    Effect.mapError(effect, (cause) => new StoreError({ operation, cause }))
  const allLimits = SqlSchema.findAll({
    Request: Schema.Void,
    Result: LimitTableRow,
    execute: () => sql`SELECT scope, subject, model, limits FROM sluice_quota_limits ORDER BY scope, subject, model`
  })
  const allPrices = SqlSchema.findAll({
    Request: Schema.Void,
    Result: PriceTableRow,
    execute: () => sql`SELECT model, backend, input, cached_input, output FROM sluice_quota_prices ORDER BY model, backend`
  })
  return QuotaStore.of({
    limits: wrap("limits")(Effect.map(allLimits(undefined), (rows) =>
      rows.flatMap((r): Array<LimitRow> => {
        // A row that does not decode (written by a newer version) is ignored, never a crash.
        const limits = decodeLimits(r.limits)
        return Option.isNone(limits) ? [] : [{ scope: r.scope, subject: r.subject, model: r.model, limits: limits.value }]
      }))),
    setLimits: (row, nowMs) =>
      wrap("setLimits")(
        Object.keys(row.limits).length === 0
          ? Effect.asVoid(sql`DELETE FROM sluice_quota_limits WHERE scope = ${row.scope} AND subject = ${row.subject} AND model = ${row.model}`)
          : Effect.asVoid(sql`INSERT INTO sluice_quota_limits (scope, subject, model, limits, updated_at)
              VALUES (${row.scope}, ${row.subject}, ${row.model}, ${JSON.stringify(row.limits)}, ${nowMs})
              ON CONFLICT (scope, subject, model) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at`)
      ),
    prices: wrap("prices")(Effect.map(allPrices(undefined), (rows) =>
      rows.map((r): PriceRow => ({
        model: r.model,
        backend: r.backend,
        price: { input: r.input, cachedInput: r.cached_input ?? r.input, output: r.output }
      })))),
    setPrice: (row, nowMs) =>
      wrap("setPrice")(Effect.asVoid(sql`INSERT INTO sluice_quota_prices (model, backend, input, cached_input, output, updated_at)
        VALUES (${row.model}, ${row.backend}, ${row.price.input}, ${row.price.cachedInput}, ${row.price.output}, ${nowMs})
        ON CONFLICT (model, backend) DO UPDATE SET input = excluded.input, cached_input = excluded.cached_input,
          output = excluded.output, updated_at = excluded.updated_at`)),
    deletePrice: (model, backend) =>
      wrap("deletePrice")(Effect.asVoid(sql`DELETE FROM sluice_quota_prices WHERE model = ${model} AND backend = ${backend}`))
  })
}

/**
 * The schema of Sluice's database, one numbered migration each, the same for the embedded
 * SQLite file and for PostgreSQL: portable SQL only (TEXT, DOUBLE PRECISION, NULL for
 * "not set"; no booleans, no serials, no dialect functions), so one set of queries serves
 * both. Times are milliseconds since the epoch as DOUBLE PRECISION (exact to 2^53 ms; read
 * back as a JS number by both drivers, where PostgreSQL's int8 would come back as bigint).
 *
 * Migrations are append-only: a new table (the audit ledger when it moves here) is a new
 * entry, never an edit of a shipped one. After the first, an entry's id is the date it was
 * written (YYYYMMDD), not the next counter: a migrator runs only ids above the latest one
 * recorded, so two branches that each took "the next number" would leave one migration
 * silently unapplied on a database that saw the other first. Every statement is
 * idempotent (IF NOT EXISTS) so that a database which ran an equivalent step is left as is. Recorded in `sluice_db_migrations`, apart from the ledger's own
 * `sluice_migrations` (accounting/PgSink.ts), so the two never collide on ids.
 *
 * Owns the DDL. Must never: drop or rewrite a table that holds data.
 */
import { Effect } from "effect"
import { Migrator, SqlClient } from "effect/sql"

export const TABLE = "sluice_db_migrations"

const tenantsAndKeys = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS sluice_tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    disabled_at DOUBLE PRECISION
  )`
  yield* sql`CREATE TABLE IF NOT EXISTS sluice_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES sluice_tenants (id),
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    models TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    last_used_at DOUBLE PRECISION
  )`
  yield* sql`CREATE INDEX IF NOT EXISTS sluice_keys_tenant ON sluice_keys (tenant_id)`
})

/**
 * Limits set through the admin API (scope `tenant`, `key` or `model`: the subject is the
 * tenant or key id, `model` the model id of a tenant's per-model limits, '' otherwise),
 * as a JSON object of limit fields; and prices per model (`backend` '' for every backend).
 */
const limitsAndPrices = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS sluice_quota_limits (
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    model TEXT NOT NULL,
    limits TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, subject, model)
  )`
  yield* sql`CREATE TABLE IF NOT EXISTS sluice_quota_prices (
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    input DOUBLE PRECISION NOT NULL,
    cached_input DOUBLE PRECISION,
    output DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (model, backend)
  )`
})

/** Every migration, by number. */
export const all: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_tenants_and_keys": tenantsAndKeys,
  "20261202_limits_and_prices": limitsAndPrices
}

/** Runs the pending migrations (concurrent starts serialise on PostgreSQL's table lock). */
export const run = Migrator.make({})({ loader: Migrator.fromRecord(all), table: TABLE })

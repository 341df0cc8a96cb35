/**
 * The audit ledger in PostgreSQL (through @effect/sql-pg), on when `DATABASE_URL` is set:
 * every accounting record becomes one row of `sluice_usage`, written in batches behind the
 * request path. Rows are keyed by a record id minted here, so retrying a batch whose fate
 * was uncertain never duplicates a row; a database outage queues records in memory and
 * they are written when it returns (and flushed, within the drain time, on shutdown).
 */
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { NodeServices } from "@effect/platform-node"
import { Array as Arr, Effect, Layer, type Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { type AccountingRecord, makeMemorySink, UsageSink } from "./Accounting.ts"
import * as Batcher from "./Batcher.ts"

export const migrations = PgMigrator.layer({
  loader: PgMigrator.fromRecord({
    "0001_sluice_usage": Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE IF NOT EXISTS sluice_usage (
        record_id uuid PRIMARY KEY,
        request_id text NOT NULL,
        tenant text NOT NULL,
        model text NOT NULL,
        backend text,
        outcome text NOT NULL,
        reserved_tokens integer NOT NULL,
        prompt_tokens integer NOT NULL,
        completion_tokens integer NOT NULL,
        cached_tokens integer NOT NULL,
        reported boolean NOT NULL,
        wasted_prompt_tokens integer NOT NULL,
        attempts jsonb NOT NULL,
        ttft_ms double precision,
        duration_ms double precision NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`
      yield* sql`CREATE INDEX IF NOT EXISTS sluice_usage_request_id ON sluice_usage (request_id)`
      yield* sql`CREATE INDEX IF NOT EXISTS sluice_usage_tenant_time ON sluice_usage (tenant, created_at)`
    })
  }),
  table: "sluice_migrations"
}).pipe(Layer.provide(NodeServices.layer))

const row = (r: AccountingRecord & { readonly recordId: string }): Record<string, unknown> => ({
  record_id: r.recordId,
  request_id: r.requestId,
  tenant: r.tenant,
  model: r.model,
  backend: r.backend ?? null,
  outcome: r.outcome,
  reserved_tokens: r.reservedTokens,
  prompt_tokens: r.charged.promptTokens,
  completion_tokens: r.charged.completionTokens,
  cached_tokens: r.charged.cachedTokens,
  reported: r.reported,
  wasted_prompt_tokens: r.wastedPromptTokens,
  attempts: JSON.stringify(r.attempts),
  ttft_ms: r.ttftMs ?? null,
  duration_ms: r.durationMs
})

/** A usage sink that writes through to Postgres and keeps the in-memory view for /metrics and tests. */
export const layer = (url: Redacted.Redacted<string>, options: { readonly drainMs: number }) =>
  Layer.effect(
    UsageSink,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const memory = makeMemorySink(1000)
      const batcher = yield* Batcher.make<AccountingRecord & { readonly recordId: string }, unknown>({
        write: (batch) => {
          const rows = batch.map(row)
          return Arr.isArrayNonEmpty(rows)
            ? sql`INSERT INTO sluice_usage ${sql.insert(rows)} ON CONFLICT (record_id) DO NOTHING`
            : Effect.void
        },
        maxBatch: 500,
        intervalMs: 200,
        drainMs: options.drainMs,
        onError: (cause, queued) =>
          Effect.logWarning("audit rows could not be written; keeping them queued").pipe(
            Effect.annotateLogs({ queued, cause: String(cause) })
          )
      })
      return UsageSink.of({
        write: (record) =>
          Effect.andThen(memory.write(record), Effect.sync(() => batcher.offer({ ...record, recordId: crypto.randomUUID() }))),
        snapshot: memory.snapshot,
        flushed: batcher.flushed
      })
    })
  ).pipe(
    Layer.provide(migrations),
    Layer.provideMerge(PgClient.layer({ url, maxConnections: 4, connectTimeout: "5 seconds" }))
  )

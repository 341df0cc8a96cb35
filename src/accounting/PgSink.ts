/**
 * The audit ledger in PostgreSQL (through @effect/sql-pg), on when `DATABASE_URL` is set:
 * every accounting record becomes one row of `sluice_usage`, written in batches by the
 * durable Ledger (journal in the data folder). Rows are keyed by the record id minted at
 * admission, so a replay or a retry of a batch whose fate was uncertain never duplicates a
 * row (`ON CONFLICT DO NOTHING`).
 *
 * The database may be down at start: the client is built and the migrations run on the
 * first write that reaches it (and again after a failure), so the gateway starts, serves
 * and journals without it, and writes everything when it returns.
 *
 * Usage reports (`readUsage`) aggregate the rows in SQL, by the UTC day of `created_at`,
 * which is the record's settlement time.
 */
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { NodeServices } from "@effect/platform-node"
import { Array as Arr, Context, Effect, Exit, Layer, type Redacted, Scope, Semaphore } from "effect"
import { SqlClient } from "effect/sql"
import { type AccountingRecord, UsageSink } from "./Accounting.ts"
import type { SettledRecord } from "./Journal.ts"
import * as Ledger from "./Ledger.ts"
import { MAX_GROUPS, type UsageGroup, type UsageQuery, UsageUnavailable } from "./UsageReport.ts"

const loader = PgMigrator.fromRecord({
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
  }),
  "0002_estimated_prompt_tokens": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE sluice_usage ADD COLUMN IF NOT EXISTS estimated_prompt_tokens integer`
  }),
  // Rows written before prices existed keep a NULL cost (read as 0).
  "20261202_cost": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE sluice_usage ADD COLUMN IF NOT EXISTS cost_usd double precision`
  })
})

const migrationOptions = { loader, table: "sluice_migrations" }

/**
 * Columns added since the last numbered migration, ensured (idempotently) after the
 * migrations on every connect. Not a numbered migration because branches developed at the
 * same time against one shared database would record each other's numbers as done; the
 * merge folds it into the next number.
 */
const ensureColumns = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE sluice_usage ADD COLUMN IF NOT EXISTS key_id text`
})

/** Runs the migrations as a layer (tests, tools). */
export const migrations = PgMigrator.layer(migrationOptions).pipe(Layer.provide(NodeServices.layer))

const row = (r: AccountingRecord): Record<string, unknown> => ({
  record_id: r.recordId,
  request_id: r.requestId,
  tenant: r.tenant,
  key_id: r.keyId ?? null,
  model: r.model,
  backend: r.backend ?? null,
  outcome: r.outcome,
  reserved_tokens: r.reservedTokens,
  estimated_prompt_tokens: r.estimatedPromptTokens,
  prompt_tokens: r.charged.promptTokens,
  completion_tokens: r.charged.completionTokens,
  cached_tokens: r.charged.cachedTokens,
  cost_usd: r.costUsd,
  reported: r.reported,
  wasted_prompt_tokens: r.wastedPromptTokens,
  attempts: JSON.stringify(r.attempts),
  ttft_ms: r.ttftMs ?? null,
  duration_ms: r.durationMs,
  // The settlement time, not the insert time: a replay after an outage keeps the row's day.
  created_at: new Date(r.settledAtMs).toISOString()
})

/** Requests and charged tokens per (UTC day, tenant, model) of `query`, at most MAX_GROUPS + 1 groups. */
export const readUsage = (sql: SqlClient.SqlClient, query: UsageQuery) =>
  Effect.map(
    sql<{
      readonly day: string
      readonly tenant: string
      readonly model: string
      readonly requests: number
      readonly prompt_tokens: number
      readonly cached_tokens: number
      readonly completion_tokens: number
    }>`SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, tenant, model,
        count(*)::float8 AS requests, sum(prompt_tokens)::float8 AS prompt_tokens,
        sum(cached_tokens)::float8 AS cached_tokens, sum(completion_tokens)::float8 AS completion_tokens
      FROM sluice_usage
      WHERE created_at >= to_timestamp(${query.fromMs / 1000}) AND created_at < to_timestamp(${query.toMs / 1000})
        ${query.tenant === undefined ? sql`` : sql`AND tenant = ${query.tenant}`}
      GROUP BY 1, 2, 3
      LIMIT ${MAX_GROUPS + 1}`,
    (rows): ReadonlyArray<UsageGroup> =>
      rows.map((r) => ({
        day: r.day,
        tenant: r.tenant,
        model: r.model,
        requests: Number(r.requests),
        promptTokens: Number(r.prompt_tokens),
        cachedTokens: Number(r.cached_tokens),
        completionTokens: Number(r.completion_tokens)
      }))
  )

/**
 * `sluice_usage` as a ledger store. The client and the migrations are built on the first
 * write (in a scope of their own, closed again when that fails), so a database that is down
 * at start only delays the writes.
 */
export const store = (url: Redacted.Redacted<string>): Effect.Effect<Ledger.Store, never, Scope.Scope> =>
  Effect.gen(function*() {
    // The client's scope is made now, before the ledger built on this store adds its
    // final drain: scopes close in reverse, so the drain writes through a client that is
    // still open. (Forked lazily on the first write, it closed first, every final write
    // failed as interrupted and shutdown waited out the whole drain time.)
    const parent = yield* Scope.fork(yield* Effect.scope)
    let client: SqlClient.SqlClient | undefined
    // The writer and usage reads may both find no client: one connects, the other waits for it.
    const connecting = yield* Semaphore.make(1)
    const connected = Effect.suspend(() =>
      client !== undefined
        ? Effect.succeed(client)
        : connecting.withPermits(1)(Effect.suspend(() => client !== undefined ? Effect.succeed(client) : connect))
    )
    const connect = Effect.gen(function*() {
      const scope = yield* Scope.fork(parent)
      const exit = yield* Effect.exit(Effect.gen(function*() {
        const context = yield* Layer.buildWithScope(PgClient.layer({ url, maxConnections: 4, connectTimeout: "5 seconds" }), scope)
        yield* PgMigrator.run(migrationOptions).pipe(Effect.provide(context), Effect.provide(NodeServices.layer))
        yield* Effect.provide(ensureColumns, context)
        return Context.get(context, SqlClient.SqlClient)
      }))
      if (Exit.isFailure(exit)) {
        yield* Scope.close(scope, exit)
        return yield* Effect.failCause(exit.cause)
      }
      yield* Effect.logInfo("audit ledger in postgres: connected and migrated")
      client = exit.value
      return exit.value
    })
    const insert = (sql: SqlClient.SqlClient, batch: ReadonlyArray<SettledRecord>) => {
      const rows = batch.map((r) => row(r.record))
      return Arr.isArrayNonEmpty(rows)
        ? Effect.asVoid(sql`INSERT INTO sluice_usage ${sql.insert(rows)} ON CONFLICT (record_id) DO NOTHING`)
        : Effect.void
    }
    return {
      name: "postgres",
      committedSeq: 0,
      write: (batch) => Effect.flatMap(connected, (sql) => insert(sql, batch)),
      read: (query) =>
        Effect.flatMap(connected, (sql) => readUsage(sql, query)).pipe(
          Effect.mapError((cause) => new UsageUnavailable({ cause }))
        )
    } satisfies Ledger.Store
  })

export const layer = (url: Redacted.Redacted<string>, options: Ledger.LedgerOptions) =>
  Layer.effect(
    UsageSink,
    Effect.gen(function*() {
      const sink = yield* Ledger.make(yield* store(url), options)
      yield* Effect.logInfo("audit ledger in postgres").pipe(Effect.annotateLogs({ journal: options.journalDir ?? "none" }))
      return sink
    })
  )

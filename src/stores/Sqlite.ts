/**
 * The embedded database: an `effect/sql` client over `node:sqlite` (shipped with Node 24),
 * so the key store runs the same queries and migrations on one file in the data folder as
 * on PostgreSQL. One connection, shared through a semaphore (effect's own SQLite
 * acquirers: a statement borrows it, a transaction leases it for its whole scope); WAL
 * journal so a reader in another process (the `sluice keys` command) never blocks the
 * gateway for long; a busy timeout so two processes writing at once wait instead of fail.
 *
 * Owns the file handle (closed with the layer's scope). Must never: hold a statement across
 * connections, or run anything but SQLite (`DATABASE_URL` selects PostgreSQL elsewhere).
 */
import { Effect, Layer, Scope, Semaphore, Stream } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient, SqlError, Statement } from "effect/sql"
import type { SqlConnection } from "effect/sql"
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite"

const failure = (operation: string, message: string) => (cause: unknown) =>
  new SqlError.SqlError({ reason: SqlError.classifySqliteError(cause, { message, operation }) })

/** A bound parameter as node:sqlite takes it (booleans as 0/1, absent as NULL). */
const bind = (value: unknown): SQLInputValue => {
  if (value === undefined || value === null) return null
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "string") return value
  if (typeof value === "boolean") return value ? 1 : 0
  if (value instanceof Uint8Array) return value
  if (value instanceof Date) return value.toISOString()
  return JSON.stringify(value)
}

const open = (filename: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const db = new DatabaseSync(filename, { timeout: 5_000 })
        if (filename !== ":memory:") db.exec("PRAGMA journal_mode = WAL")
        db.exec("PRAGMA foreign_keys = ON")
        return db
      },
      catch: failure("connect", `cannot open the embedded database ${filename}`)
    }),
    (db) => Effect.sync(() => db.isOpen && db.close())
  )

const makeConnection = (db: DatabaseSync): SqlConnection.Connection => {
  // Statements are prepared once per SQL text (the key store has a handful of queries).
  const prepared = new Map<string, StatementSync>()
  const prepare = (sql: string): StatementSync => {
    let statement = prepared.get(sql)
    if (statement === undefined) {
      statement = db.prepare(sql)
      if (prepared.size >= 200) prepared.delete(prepared.keys().next().value!)
      prepared.set(sql, statement)
    }
    return statement
  }
  const rows = (statement: StatementSync, params: ReadonlyArray<unknown>): ReadonlyArray<Record<string, unknown>> => {
    const values = params.map(bind)
    if (statement.columns().length > 0) return statement.all(...values)
    statement.run(...values)
    return []
  }
  const run = (sql: string, params: ReadonlyArray<unknown>, cached: boolean) =>
    Effect.try({
      try: () => rows(cached ? prepare(sql) : db.prepare(sql), params),
      catch: failure("execute", "a statement failed on the embedded database")
    })
  const values = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.map(run(sql, params, true), (rs) => rs.map((r) => Object.values(r)))
  return {
    execute: (sql, params, transform) =>
      transform === undefined ? run(sql, params, true) : Effect.map(run(sql, params, true), transform),
    executeRaw: (sql, params) => run(sql, params, true),
    executeStream: (sql, params, transform) =>
      Stream.fromIterableEffect(transform === undefined ? run(sql, params, true) : Effect.map(run(sql, params, true), transform)),
    executeValues: values,
    executeValuesUnprepared: values,
    executeUnprepared: (sql, params, transform) =>
      transform === undefined ? run(sql, params, false) : Effect.map(run(sql, params, false), transform)
  }
}

/** An SqlClient on the SQLite file `filename` (`:memory:` for a throwaway one), closed with the scope. */
export const make = (filename: string): Effect.Effect<SqlClient.SqlClient, SqlError.SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const db = yield* open(filename)
    const connection = makeConnection(db)
    const semaphore = yield* Semaphore.make(1)
    const acquirers = SqlClient.makeSqliteAcquirers({
      connection: Effect.succeed(connection),
      semaphore,
      isTransaction: () => db.isTransaction
    })
    return yield* SqlClient.make({
      acquirer: acquirers.acquirer,
      borrower: acquirers.borrower,
      transactionAcquirer: acquirers.transactionAcquirer,
      onCommitFailure: acquirers.onCommitFailure,
      isTransaction: acquirers.isTransaction,
      compiler: Statement.makeCompilerSqlite(),
      driver: "node:sqlite",
      spanAttributes: [["db.system.name", "sqlite"]]
    })
  })

export const layer = (filename: string): Layer.Layer<SqlClient.SqlClient, SqlError.SqlError> =>
  Layer.effect(SqlClient.SqlClient, make(filename)).pipe(Layer.provide(Reactivity.layer))

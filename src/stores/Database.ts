/**
 * Which database Sluice keeps its tenants and keys in: PostgreSQL (through @effect/sql-pg)
 * when `DATABASE_URL` is set, so every replica shares them; otherwise the embedded SQLite
 * file `<data dir>/sluice.db` (`SLUICE_DATA_DIR`, default `data/` for the service binary);
 * or, for embedded graphs and tests with no data folder, a throwaway in-memory SQLite.
 * Either way the layer provides a migrated `SqlClient`: the same queries run on both.
 *
 * Owns the connection (closed with the graph). Must never: be read by the request path
 * except through the key store, whose results the authenticator caches.
 */
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { mkdir } from "node:fs/promises"
import { join } from "node:path"
import * as Migrations from "./Migrations.ts"
import * as Sqlite from "./Sqlite.ts"

/** Where the database is, for the start-up line and the CLI (never the password). */
export class Database extends Context.Service<Database, {
  readonly kind: "postgres" | "sqlite"
  readonly location: string
}>()("sluice/stores/Database") {}

export type Location =
  | { readonly kind: "postgres"; readonly url: Redacted.Redacted<string> }
  | { readonly kind: "sqlite"; readonly file: string }

/** The database the environment points at: `DATABASE_URL`, else `SLUICE_DATA_DIR`, else `dataDir`, else memory. */
export const locate = (dataDir: string | undefined) =>
  Effect.gen(function*() {
    const url = yield* Config.option(Config.Redacted("DATABASE_URL")).pipe(Effect.orElseSucceed(() => Option.none()))
    if (Option.isSome(url) && Redacted.value(url.value) !== "") return { kind: "postgres", url: url.value } satisfies Location
    const dir = yield* Config.option(Config.String("SLUICE_DATA_DIR")).pipe(Effect.orElseSucceed(() => Option.none()))
    const folder = Option.getOrUndefined(dir) ?? dataDir
    return { kind: "sqlite", file: folder === undefined || folder === "" ? ":memory:" : join(folder, "sluice.db") } satisfies Location
  })

const redactedHost = (url: Redacted.Redacted<string>): string => {
  const parsed = URL.canParse(Redacted.value(url)) ? new URL(Redacted.value(url)) : undefined
  return parsed === undefined ? "postgres" : `postgres://${parsed.host}${parsed.pathname}`
}

/** A migrated SqlClient on `location`, plus its description. */
export const layer = (location: Location): Layer.Layer<SqlClient.SqlClient | Database, unknown> => {
  if (location.kind === "sqlite") {
    const client = Layer.unwrap(Effect.gen(function*() {
      if (location.file !== ":memory:") {
        const dir = location.file.slice(0, Math.max(0, location.file.lastIndexOf("/")))
        if (dir !== "") yield* Effect.tryPromise(() => mkdir(dir, { recursive: true }))
      }
      return Sqlite.layer(location.file)
    }))
    return migrated(client, Database.of({ kind: "sqlite", location: location.file }))
  }
  // The PostgreSQL driver is loaded only when a database URL is configured.
  const client = Layer.unwrap(Effect.map(
    Effect.promise(() => import("@effect/sql-pg")),
    ({ PgClient }) => PgClient.layer({ url: location.url, maxConnections: 4, connectTimeout: "5 seconds" })
  ))
  return migrated(client, Database.of({ kind: "postgres", location: redactedHost(location.url) }))
}

const migrated = <E>(client: Layer.Layer<SqlClient.SqlClient, E>, description: Database["Service"]) =>
  Layer.mergeAll(Layer.effectDiscard(Migrations.run), Layer.succeed(Database, description)).pipe(
    Layer.provideMerge(client)
  )

/** The database the environment selects (the service binary and the `sluice keys` command). */
export const fromEnvironment = (dataDir: string | undefined): Layer.Layer<SqlClient.SqlClient | Database, unknown> =>
  Layer.unwrap(Effect.map(locate(dataDir), layer))

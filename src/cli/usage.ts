/**
 * `sluice usage [--tenant ID] [--from ..] [--to ..] [--json]`: the usage report straight
 * from the audit ledger the gateway writes, without a running gateway: PostgreSQL's
 * `sluice_usage` when `DATABASE_URL` is set, else the usage files in `SLUICE_DATA_DIR`
 * (default `data/`). The same query bounds and report as `GET /admin/v1/usage`.
 *
 * Exit codes: 0 printed, 1 the ledger could not be read, 2 a bad flag value.
 * Must never: write to the ledger.
 */
import { Clock, Config, Effect, Layer, Option, Redacted, References } from "effect"
import { SqlClient } from "effect/sql"
import * as FileUsage from "../accounting/FileUsage.ts"
import { decodeQuery, InvalidUsageQuery, report, type UsageGroup, type UsageQuery, UsageUnavailable } from "../accounting/UsageReport.ts"
import { TenantId } from "../domain/Ids.ts"
import type { UsageFlags } from "./Command.ts"
import type { Io } from "./keys.ts"

const stdio: Io = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`)
}

const optional = <A>(config: Config.Config<A>) =>
  Effect.map(Config.option(config), Option.getOrUndefined).pipe(Effect.orElseSucceed(() => undefined))

/** The ledger rows of `query`, from where the environment says the ledger is. */
const read = (query: UsageQuery): Effect.Effect<ReadonlyArray<UsageGroup>, UsageUnavailable> =>
  Effect.gen(function*() {
    const url = yield* optional(Config.Redacted("DATABASE_URL"))
    if (url !== undefined && Redacted.value(url) !== "") {
      const { PgClient } = yield* Effect.promise(() => import("@effect/sql-pg"))
      const PgSink = yield* Effect.promise(() => import("../accounting/PgSink.ts"))
      return yield* Effect.flatMap(SqlClient.SqlClient, (sql) => PgSink.readUsage(sql, query)).pipe(
        Effect.provide(Layer.fresh(PgClient.layer({ url, maxConnections: 1, connectTimeout: "5 seconds" }))),
        Effect.mapError((cause) => new UsageUnavailable({ cause }))
      )
    }
    const dir = (yield* optional(Config.String("SLUICE_DATA_DIR"))) || "data"
    const files = yield* FileUsage.reader(dir)
    return yield* files.read(query)
  })

const pad = (text: string, width: number) => text.length >= width ? text : text + " ".repeat(width - text.length)
const num = (n: number, width: number) => {
  const text = n.toLocaleString("en-US")
  return text.length >= width ? text : " ".repeat(width - text.length) + text
}

const print = (io: Io, r: ReturnType<typeof report>) => {
  io.out(`usage of ${r.tenant ?? "every tenant"} from ${r.from} to ${r.to}`)
  const line = (label: string, s: typeof r.totals) =>
    io.out(`  ${pad(label, 28)}${num(s.requests, 10)}${num(s.prompt_tokens, 14)}${num(s.cached_tokens, 14)}${num(s.completion_tokens, 14)}`)
  io.out(`  ${pad("", 28)}${"requests".padStart(10)}${"prompt".padStart(14)}${"cached".padStart(14)}${"completion".padStart(14)}`)
  line("total", r.totals)
  if (r.by_tenant !== undefined) for (const t of r.by_tenant) line(`tenant ${t.tenant}`, t)
  for (const m of r.by_model) line(`model ${m.model}`, m)
  for (const d of r.by_day) line(`day ${d.day}`, d)
  if (r.truncated) io.out("  (truncated: narrow the range or name a tenant)")
}

/** Runs the command; resolves to the exit code. */
export const run = (flags: UsageFlags, io: Io = stdio): Effect.Effect<number> =>
  Effect.gen(function*() {
    const params = new URLSearchParams()
    if (flags.tenant !== undefined) params.set("tenant", flags.tenant)
    if (flags.from !== undefined) params.set("from", flags.from)
    if (flags.to !== undefined) params.set("to", flags.to)
    const decoded = decodeQuery(params, yield* Clock.currentTimeMillis, ["from", "to", "tenant"])
    if (decoded instanceof InvalidUsageQuery) return yield* Effect.fail(decoded)
    const query: UsageQuery = {
      tenant: decoded.tenant === undefined ? undefined : TenantId(decoded.tenant),
      fromMs: decoded.fromMs,
      toMs: decoded.toMs
    }
    const r = report(query, yield* read(query))
    if (flags.json) io.out(JSON.stringify(r))
    else print(io, r)
    return 0
  }).pipe(
    Effect.catch((error) =>
      Effect.sync(() => {
        if (error instanceof InvalidUsageQuery) {
          io.err(`sluice usage: --${error.param}: ${error.message.replaceAll("`", "")}`)
          return 2
        }
        io.err(`sluice usage: the usage ledger could not be read: ${String(error.cause)}`)
        return 1
      })
    ),
    Effect.provideService(References.MinimumLogLevel, "Warn")
  )

export const main = (flags: UsageFlags, io: Io = stdio): Promise<number> => Effect.runPromise(run(flags, io))

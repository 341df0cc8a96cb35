/**
 * Chooses where accounting records go: PostgreSQL when `DATABASE_URL` is set (the shared
 * audit ledger; its driver is loaded only then), else a JSON-lines file in the data
 * directory (`SLUICE_DATA_DIR`, default `data/` for the service binary), else (embedded
 * graphs and tests with no directory) memory only. With a data directory the durable
 * ledger journals into `<data>/journal/<slot>/`, where the slot is this process's cluster
 * worker slot (`SLUICE_WORKER_SLOT`, 0 for a single process): every process has a journal
 * of its own, and a restarted worker takes over the one its predecessor left.
 */
import { Config, Effect, Layer, Option } from "effect"
import { join } from "node:path"
import type { LedgerPlan } from "../config/Plan.ts"
import { UsageSink } from "./Accounting.ts"

const optional = <A>(config: Config.Config<A>) =>
  Effect.map(Config.option(config), Option.getOrUndefined).pipe(Effect.orElseSucceed(() => undefined))

export const fromEnvironment = (
  plan: LedgerPlan,
  drainMs: number,
  defaultDataDir: string | undefined
): Layer.Layer<UsageSink> =>
  Layer.unwrap(
    Effect.gen(function*() {
      const url = yield* optional(Config.Redacted("DATABASE_URL"))
      const dir = (yield* optional(Config.String("SLUICE_DATA_DIR"))) ?? defaultDataDir
      const slot = (yield* optional(Config.Int("SLUICE_WORKER_SLOT"))) ?? 0
      const dataDir = dir === undefined || dir === "" ? undefined : dir
      const options = { ...plan, drainMs }
      if (url === undefined) {
        if (dataDir === undefined) return UsageSink.memory()
        const FileSink = yield* Effect.promise(() => import("./FileSink.ts"))
        return FileSink.layer(dataDir, { ...options, slot }).pipe(Layer.orDie)
      }
      const PgSink = yield* Effect.promise(() => import("./PgSink.ts"))
      return PgSink.layer(url, { ...options, journalDir: dataDir === undefined ? undefined : join(dataDir, "journal", String(slot)) })
        .pipe(Layer.orDie)
    })
  )

/**
 * Chooses where accounting records go: PostgreSQL when `DATABASE_URL` is set (the shared
 * audit ledger; its driver is loaded only then), else a JSON-lines file in the data
 * directory (`SLUICE_DATA_DIR`, default `data/` for the service binary), else (embedded
 * graphs and tests with no directory) memory only.
 */
import { Config, Effect, Layer, Option } from "effect"
import { UsageSink } from "./Accounting.ts"

export const fromEnvironment = (drainMs: number, defaultDataDir: string | undefined): Layer.Layer<UsageSink> =>
  Layer.unwrap(
    Effect.gen(function*() {
      const url = yield* Config.option(Config.Redacted("DATABASE_URL")).pipe(Effect.orElseSucceed(() => Option.none()))
      if (Option.isNone(url)) {
        const dir = Option.getOrUndefined(
          yield* Config.option(Config.String("SLUICE_DATA_DIR")).pipe(Effect.orElseSucceed(() => Option.none()))
        ) ?? defaultDataDir
        if (dir === undefined || dir === "") return UsageSink.memory()
        const FileSink = yield* Effect.promise(() => import("./FileSink.ts"))
        return FileSink.layer(dir, { drainMs })
      }
      const PgSink = yield* Effect.promise(() => import("./PgSink.ts"))
      yield* Effect.logInfo("audit ledger in postgres")
      return PgSink.layer(url.value, { drainMs }).pipe(Layer.orDie)
    })
  )

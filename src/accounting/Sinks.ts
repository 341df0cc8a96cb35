/**
 * Chooses where accounting records go: PostgreSQL when `DATABASE_URL` is set (the shared
 * audit ledger; its driver is loaded only then), otherwise in memory.
 */
import { Config, Effect, Layer, Option } from "effect"
import { UsageSink } from "./Accounting.ts"

export const fromEnvironment = (drainMs: number): Layer.Layer<UsageSink> =>
  Layer.unwrap(
    Effect.gen(function*() {
      const url = yield* Config.option(Config.Redacted("DATABASE_URL")).pipe(Effect.orElseSucceed(() => Option.none()))
      if (Option.isNone(url)) return UsageSink.memory()
      const PgSink = yield* Effect.promise(() => import("./PgSink.ts"))
      yield* Effect.logInfo("audit ledger in postgres")
      return PgSink.layer(url.value, { drainMs }).pipe(Layer.orDie)
    })
  )

/**
 * Logging setup: JSON lines on stdout for everything the gateway logs, at the level from
 * `SLUICE_LOG_LEVEL` (or `LOG_LEVEL`, or `--log-level`), default `info`. The per-request
 * line is written by RequestLog at `info`; it is off when the level is above info.
 */
import { Config, Effect, Layer, Logger, type LogLevel, Option, References } from "effect"
import type { Flags } from "../config/Settings.ts"
import { RequestLog } from "./RequestLog.ts"

const LEVELS: ReadonlyArray<LogLevel.LogLevel> = ["All", "Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"]

/** A level name (any case; `warning` = `warn`); an unknown name is `Info`. */
export const parseLevel = (raw: string | undefined): LogLevel.LogLevel => {
  if (raw === undefined) return "Info"
  const wanted = raw.toLowerCase() === "warning" ? "warn" : raw.toLowerCase()
  return LEVELS.find((l) => l.toLowerCase() === wanted) ?? "Info"
}

/** The log level from flags and environment. */
export const level = (flags: Flags) =>
  Effect.gen(function*() {
    const env = yield* Config.option(Config.String("SLUICE_LOG_LEVEL"))
    const legacy = yield* Config.option(Config.String("LOG_LEVEL"))
    return parseLevel(flags.logLevel ?? Option.getOrUndefined(env) ?? Option.getOrUndefined(legacy))
  })

const enabledAtInfo = (l: LogLevel.LogLevel) => LEVELS.indexOf(l) <= LEVELS.indexOf("Info")

export const layer = (flags: Flags) =>
  Layer.unwrap(Effect.map(Effect.orElseSucceed(level(flags), () => "Info" as const), (l) =>
    Layer.mergeAll(
      Logger.layer([Logger.consoleJson]),
      Layer.succeed(References.MinimumLogLevel, l),
      RequestLog.stdout(enabledAtInfo(l))
    )))

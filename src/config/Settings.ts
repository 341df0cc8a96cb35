/**
 * Settings from the process environment and the command line: where the config file
 * is, the quick-start upstream, listen address and log level overrides.
 * Owns merging the serve command's flags (already parsed and checked by src/cli/) with the
 * environment; flags win. It never parses argv and never reads files.
 */
import { Config, Effect, Option } from "effect"

/** The serve command's flags, as `src/cli/Command.ts` parsed and checked them. */
export interface Flags {
  readonly config?: string | undefined
  readonly upstream?: string | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly logLevel?: string | undefined
  /** `--workers`: a count, or one per core. */
  readonly workers?: number | "auto" | undefined
}

export interface Settings {
  readonly configPath: string | undefined
  readonly upstream: string | undefined
  readonly host: string | undefined
  readonly port: number | undefined
  readonly logLevel: string | undefined
}

const optional = <A>(config: Config.Config<A>) =>
  Effect.map(Config.option(config), Option.getOrUndefined)

/** Reads settings; flags win over environment variables. */
export const load = (flags: Flags) =>
  Effect.gen(function*() {
    const envConfig = yield* optional(Config.String("SLUICE_CONFIG"))
    const envUpstream = yield* optional(Config.String("SLUICE_UPSTREAM"))
    const host = yield* optional(Config.String("HOST"))
    const port = yield* optional(Config.Int("PORT"))
    const logLevel = yield* optional(Config.String("SLUICE_LOG_LEVEL"))
    const legacyLevel = yield* optional(Config.String("LOG_LEVEL"))
    return {
      configPath: flags.config ?? envConfig,
      upstream: flags.upstream ?? envUpstream,
      host: flags.host ?? host,
      port: flags.port ?? port,
      logLevel: flags.logLevel ?? logLevel ?? legacyLevel
    } satisfies Settings
  })

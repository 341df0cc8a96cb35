/**
 * Settings from the process environment and the command line: where the config file
 * is, the quick-start upstream, listen address and log level overrides.
 * Owns argument parsing only; it never reads files.
 */
import { Config, Effect, Option } from "effect"

export interface Settings {
  readonly configPath: string | undefined
  readonly upstream: string | undefined
  readonly host: string | undefined
  readonly port: number | undefined
  readonly logLevel: string | undefined
}

const flag = (argv: ReadonlyArray<string>, name: string): string | undefined => {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === `--${name}`) return argv[i + 1]
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3)
  }
  return undefined
}

const optional = <A>(config: Config.Config<A>) =>
  Effect.map(Config.option(config), Option.getOrUndefined)

/** Reads settings; flags win over environment variables. */
export const load = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const envConfig = yield* optional(Config.String("SLUICE_CONFIG"))
    const envUpstream = yield* optional(Config.String("SLUICE_UPSTREAM"))
    const host = yield* optional(Config.String("HOST"))
    const port = yield* optional(Config.Int("PORT"))
    const logLevel = yield* optional(Config.String("SLUICE_LOG_LEVEL"))
    const legacyLevel = yield* optional(Config.String("LOG_LEVEL"))
    const portFlag = flag(argv, "port")
    return {
      configPath: flag(argv, "config") ?? envConfig,
      upstream: flag(argv, "upstream") ?? envUpstream,
      host: flag(argv, "host") ?? host,
      port: portFlag !== undefined ? Number(portFlag) : port,
      logLevel: flag(argv, "log-level") ?? logLevel ?? legacyLevel
    } satisfies Settings
  })

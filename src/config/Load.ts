/**
 * Loads the plan: read the YAML file (or discover the quick-start upstream), decode it
 * with the file schema (unknown keys rejected), validate it into a Plan, apply the
 * HOST/PORT overrides. Every failure is a `ConfigError` whose message names the file and
 * the path. Never starts anything: engines and servers are started by the graph.
 */
import { Data, Effect, Schema } from "effect"
import { FileSystem } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import * as Yaml from "yaml"
import { summarize } from "../domain/SchemaIssues.ts"
import { ConfigFile } from "./FileSchema.ts"
import * as Plan from "./Plan.ts"
import type { Settings } from "./Settings.ts"

export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly source: string
  readonly message: string
  /** Each problem as `path: message`, when the file had several (the message joins them). */
  readonly issues?: ReadonlyArray<string> | undefined
}> {
  override toString() {
    return `invalid config (${this.source}): ${this.message}`
  }
}

export const DEFAULT_PATH = "config/sluice.yaml"

const decodeFile = Schema.decodeUnknownExit(ConfigFile)

/** Parses YAML text into a plan. Pure except for reading API-key variables from `env`. */
export const parse = (
  text: string,
  source: string,
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<Plan.Plan, ConfigError> =>
  Effect.gen(function*() {
    const lineCounter = new Yaml.LineCounter()
    const doc = Yaml.parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter })
    if (doc.errors.length > 0) {
      const issues = doc.errors.map((e) => {
        const at = lineCounter.linePos(e.pos[0])
        return `YAML at line ${at.line}, column ${at.col}: ${e.message}`
      })
      return yield* new ConfigError({ source, message: issues.join("; "), issues })
    }
    const raw: unknown = doc.toJS()
    const decoded = decodeFile(raw, { onExcessProperty: "error", errors: "all" })
    if (decoded._tag === "Failure") {
      const failure = decoded.cause.reasons.find((r) => r._tag === "Fail")
      if (failure === undefined || failure._tag !== "Fail") return yield* new ConfigError({ source, message: String(decoded.cause) })
      const { message, issues } = summarize(failure.error.issue)
      return yield* new ConfigError({ source, message, issues })
    }
    return yield* Effect.try({
      try: () => Plan.fromFile(decoded.value, env),
      catch: (e) =>
        e instanceof Plan.PlanError
          ? new ConfigError({ source, message: e.toString(), issues: e.issues.map((i) => `${i.path}: ${i.message}`) })
          : new ConfigError({ source, message: String(e) })
    })
  })

/**
 * The quick-start plan: one OpenAI-compatible upstream serving every model it lists.
 * `SLUICE_UPSTREAM_API_KEY`, when set, is sent as the bearer token.
 */
export const fromUpstream = (url: string, env: Readonly<Record<string, string | undefined>>) =>
  Effect.gen(function*() {
    const base = url.replace(/\/+$/, "")
    const client = yield* HttpClient.HttpClient
    const key = env["SLUICE_UPSTREAM_API_KEY"]
    const request = HttpClientRequest.get(`${base}/models`)
    const listed = yield* client.execute(key ? HttpClientRequest.bearerToken(request, key) : request).pipe(
      Effect.flatMap((res) => res.json),
      Effect.timeout("10 seconds"),
      Effect.mapError((e) => new ConfigError({ source: url, message: `cannot list models at ${base}/models: ${e}` }))
    )
    const data = typeof listed === "object" && listed !== null ? (listed as { data?: unknown }).data : undefined
    const names = Array.isArray(data)
      ? data.flatMap((m) => typeof m === "object" && m !== null && typeof m.id === "string" ? [m.id as string] : [])
      : []
    if (names.length === 0) {
      return yield* new ConfigError({ source: url, message: `${base}/models lists no models` })
    }
    return yield* Effect.try({
      try: () =>
        Plan.fromFile({
          backends: [{
            id: "upstream",
            url: base,
            models: names,
            ...(key ? { api_key_env: "SLUICE_UPSTREAM_API_KEY" } : {})
          }]
        }, env),
      catch: (e) => new ConfigError({ source: url, message: String(e) })
    })
  })

const withOverrides = (plan: Plan.Plan, settings: Settings): Plan.Plan =>
  settings.host === undefined && settings.port === undefined ? plan : {
    ...plan,
    server: { ...plan.server, host: settings.host ?? plan.server.host, port: settings.port ?? plan.server.port }
  }

/** Loads the plan the settings point at. */
export const load = (settings: Settings, env: Readonly<Record<string, string | undefined>>) =>
  Effect.gen(function*() {
    if (settings.upstream !== undefined && settings.configPath === undefined) {
      return withOverrides(yield* fromUpstream(settings.upstream, env), settings)
    }
    return withOverrides(yield* loadFile(settings.configPath ?? DEFAULT_PATH, env), settings)
  })

/** Reads and parses one config file (what `serve` does at start and `check-config` checks). */
export const loadFile = (path: string, env: Readonly<Record<string, string | undefined>>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((e) => new ConfigError({ source: path, message: `cannot read the file: ${e.message}` }))
    )
    return yield* parse(text, path, env)
  })

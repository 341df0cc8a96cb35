/**
 * Configuration of the standalone simulator: command-line flags for one instance, or a fleet YAML file with
 * several (config/simulator/fleet.yaml is the example).
 *
 * Owns: the flag names, the fleet file schema (unknown keys rejected, with the offending path in the message),
 * and turning either into `SimulatorOptions`. Must never: start servers (main.ts does).
 *
 * Fleet file:
 *   defaults: { timeScale, jitter, seed, host, dialect, faults }   # optional, applied to every instance
 *   instances: [ { profile, model, port, dialect, host, timeScale, jitter, seed, faults }, … ]
 */
import { Effect, FileSystem, Result, Schema } from "effect"
import { parse as parseYaml } from "yaml"
import { FaultsPatchSchema } from "./faults.ts"
import { PROFILE_NAMES } from "../profiles/Profiles.ts"
import type { SimulatorOptions } from "./Simulator.ts"

const Dialect = Schema.Literals(["openai", "anthropic", "ollama", "sglang"])

const InstanceFields = {
  profile: Schema.optionalKey(Schema.Literals(PROFILE_NAMES)),
  model: Schema.optionalKey(Schema.String),
  dialect: Schema.optionalKey(Dialect),
  host: Schema.optionalKey(Schema.String),
  port: Schema.optionalKey(Schema.Int),
  timeScale: Schema.optionalKey(Schema.Number),
  jitter: Schema.optionalKey(Schema.Number),
  seed: Schema.optionalKey(Schema.Int),
  faults: Schema.optionalKey(FaultsPatchSchema),
  kvTransferGBps: Schema.optionalKey(Schema.Number),
  kvBlocks: Schema.optionalKey(Schema.Int)
}

export const FleetFileSchema = Schema.Struct({
  defaults: Schema.optionalKey(Schema.Struct(InstanceFields)),
  instances: Schema.Array(Schema.Struct(InstanceFields))
})

export type FleetFile = typeof FleetFileSchema.Type

export class FleetConfigError extends Schema.TaggedError<FleetConfigError>()("FleetConfigError", {
  detail: Schema.String
}) {}

type Instance = typeof FleetFileSchema.Type["instances"][number]

const toOptions = (i: Instance, where: string): Result.Result<SimulatorOptions, string> => {
  if (i.profile === undefined) return Result.fail(`${where}: profile is required`)
  if (i.model === undefined) return Result.fail(`${where}: model is required`)
  return Result.succeed({ ...i, profile: i.profile, model: i.model })
}

const decodeFleet = Schema.decodeUnknownResult(FleetFileSchema, { onExcessProperty: "error", errors: "all" })

/** Decodes a parsed fleet document into one `SimulatorOptions` per instance. */
export const fleetOptions = (doc: unknown): Result.Result<ReadonlyArray<SimulatorOptions>, string> => {
  const decoded = decodeFleet(doc)
  if (Result.isFailure(decoded)) return Result.fail(decoded.failure.message)
  const defaults = decoded.success.defaults ?? {}
  const out: Array<SimulatorOptions> = []
  for (const [k, inst] of decoded.success.instances.entries()) {
    const faults = { ...defaults.faults, ...inst.faults }
    const r = toOptions({ ...defaults, ...inst, faults }, `instances[${k}]`)
    if (Result.isFailure(r)) return Result.fail(r.failure)
    out.push(r.success)
  }
  return Result.succeed(out)
}

export const loadFleetFile = Effect.fn("Simulator.loadFleetFile")(function*(path: string) {
  const fs = yield* FileSystem.FileSystem
  const text = yield* fs.readFileString(path).pipe(
    Effect.mapError((e) => new FleetConfigError({ detail: `${path}: ${e.message}` }))
  )
  const doc = yield* Effect.try({
    try: () => parseYaml(text) as unknown,
    catch: (e) => new FleetConfigError({ detail: `${path}: ${e instanceof Error ? e.message : String(e)}` })
  })
  const options = fleetOptions(doc)
  if (Result.isFailure(options)) return yield* new FleetConfigError({ detail: `${path}: ${options.failure}` })
  return options.success
})

export const USAGE = `Usage: sluice simulate [flags]   (from a checkout: npm run simulate -- [flags])
  --profile <name>     ${PROFILE_NAMES.join(" | ")}
  --model <name>       served model name (default: llama-3.1-8b)
  --dialect <d>        openai | anthropic | ollama | sglang (default openai)
  --host <h>           default 127.0.0.1
  --port <n>           default 0 (ephemeral)
  --time-scale <x>     default 1 (real time); 10 = ten times faster
  --jitter <x>         default 0.05
  --seed <n>           default 1
  --faults <json>      initial faults, e.g. '{"errorRate":0.1,"errorStatus":429}'
  --fleet <file.yaml>  start every instance of a fleet file instead (see config/simulator/fleet.yaml)`

export type CliCommand =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Fleet"; readonly path: string }
  | { readonly _tag: "Single"; readonly options: SimulatorOptions }

const FLAGS = new Set(["profile", "model", "dialect", "host", "port", "time-scale", "jitter", "seed", "faults", "fleet"])

/** Parses command-line flags (`--name value` or `--name=value`). */
export const parseCli = (argv: ReadonlyArray<string>): Result.Result<CliCommand, string> => {
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") return Result.succeed({ _tag: "Help" })
    if (!arg.startsWith("--")) return Result.fail(`unexpected argument ${arg}`)
    const eq = arg.indexOf("=")
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq)
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1)
    if (!FLAGS.has(name)) return Result.fail(`unknown flag --${name}`)
    if (value === undefined) return Result.fail(`--${name} needs a value`)
    flags.set(name, value)
  }
  const fleet = flags.get("fleet")
  if (fleet !== undefined) return Result.succeed({ _tag: "Fleet", path: fleet })
  const numberFlag = (name: string): number | undefined => {
    const v = flags.get(name)
    return v === undefined ? undefined : Number(v)
  }
  const faultsText = flags.get("faults")
  let faults: unknown = undefined
  if (faultsText !== undefined) {
    const parsed = Result.try(() => JSON.parse(faultsText) as unknown)
    if (Result.isFailure(parsed)) return Result.fail("--faults must be JSON")
    faults = parsed.success
  }
  const instance = {
    profile: flags.get("profile") ?? "llama-3.1-8b-fp8-h100",
    model: flags.get("model") ?? "llama-3.1-8b",
    dialect: flags.get("dialect"),
    host: flags.get("host"),
    port: numberFlag("port"),
    timeScale: numberFlag("time-scale"),
    jitter: numberFlag("jitter"),
    seed: numberFlag("seed"),
    faults
  }
  const defined = Object.fromEntries(Object.entries(instance).filter(([, v]) => v !== undefined))
  const options = fleetOptions({ instances: [defined] })
  return Result.isFailure(options)
    ? Result.fail(options.failure.replace("instances[0]", "flags"))
    : Result.succeed({ _tag: "Single", options: options.success[0]! })
}

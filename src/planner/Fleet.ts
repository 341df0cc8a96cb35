/**
 * The planner's fleet files, turned into a gateway plan through the gateway's own loader (Load.parse:
 * the same decoding and validation as `serve`), so the planner routes with exactly the routing, health
 * and breaker settings a config would give. Three shapes are accepted:
 * - a gateway config (`models:`, `backends:`, `routing:` …), as it is;
 * - a config's `backends:` section alone (and optionally `routing:`): the models are those the backends
 *   list, and a backend without `url:` or `simulate:` gets a placeholder URL (the planner never calls it);
 * - a simulator fleet file (`instances:` with `profile:` and `model:`, as `sluice simulate --fleet` and
 *   the routing bench use): one backend per instance, scraped like the bench's (`metrics: vllm`).
 * Every backend needs a known engine profile (`profile:` or `simulate.profile`): that is the engine the
 * planner runs for it. Must never: read files (the command line does) or reach a backend.
 */
import { Data, Effect, Option, Schema } from "effect"
import * as Yaml from "yaml"
import * as Load from "../config/Load.ts"
import type { Plan } from "../config/Plan.ts"
import { isProfileName, PROFILE_NAMES, PROFILES } from "../profiles/Profiles.ts"

export class FleetError extends Data.TaggedError("FleetError")<{ readonly source: string; readonly message: string }> {}

const Instance = Schema.Struct({
  profile: Schema.optionalKey(Schema.Literals(PROFILE_NAMES)),
  model: Schema.optionalKey(Schema.String),
  id: Schema.optionalKey(Schema.String)
})
const SimulatorFleet = Schema.Struct({
  defaults: Schema.optionalKey(Instance),
  instances: Schema.Array(Instance)
})
const decodeSimulatorFleet = Schema.decodeUnknownOption(SimulatorFleet)

const isRecord = (v: unknown): v is { readonly [key: string]: unknown } => typeof v === "object" && v !== null && !Array.isArray(v)

/** A simulator fleet file as a gateway config. */
const fromSimulatorFleet = (raw: unknown, source: string): Record<string, unknown> | FleetError => {
  const fleet = decodeSimulatorFleet(raw)
  if (Option.isNone(fleet)) return new FleetError({ source, message: "instances: expected a list of { profile, model }" })
  const models = new Set<string>()
  const backends = fleet.value.instances.map((inst, i) => {
    const profile = inst.profile ?? fleet.value.defaults?.profile ?? "llama-3.1-8b-fp8-h100"
    const p = PROFILES[profile]
    const model = inst.model ?? fleet.value.defaults?.model ?? p.modelPath
    models.add(model)
    return {
      id: inst.id ?? `${profile}-${i + 1}`,
      url: "http://planner.invalid/v1",
      profile,
      models: [model],
      gpu: p.gpuCount > 1 ? `${p.gpuCount}x${p.sku}` : p.sku,
      quantization: p.quantization,
      metrics: "vllm",
      max_concurrency: 4096
    }
  })
  return { models: [...models].map((name) => ({ name })), backends }
}

/** A `backends:` section alone: the models its backends list, placeholder URLs. */
const fromBackends = (raw: { readonly [key: string]: unknown }): Record<string, unknown> => {
  const backends = Array.isArray(raw["backends"]) ? raw["backends"] : []
  const models = new Set<string>()
  const withUrls = backends.map((b: unknown) => {
    if (!isRecord(b)) return b
    const listed = b["models"]
    if (Array.isArray(listed)) for (const m of listed) if (typeof m === "string") models.add(m)
    return b["url"] === undefined && b["simulate"] === undefined ? { ...b, url: "http://planner.invalid/v1" } : b
  })
  return { ...raw, models: [...models].map((name) => ({ name })), backends: withUrls }
}

/** Parses a fleet file's text into a plan (errors name the file and the path that holds the problem). */
export const parse = (text: string, source: string): Effect.Effect<Plan, FleetError> =>
  Effect.gen(function*() {
    const doc = Yaml.parseDocument(text, { prettyErrors: false, uniqueKeys: true })
    if (doc.errors.length > 0) return yield* new FleetError({ source, message: doc.errors.map((e) => e.message).join("; ") })
    const raw: unknown = doc.toJS()
    if (!isRecord(raw)) return yield* new FleetError({ source, message: "expected a mapping (a config, its backends: section, or a simulator fleet)" })
    let config: unknown = raw
    if (raw["instances"] !== undefined) {
      const converted = fromSimulatorFleet(raw, source)
      if (converted instanceof FleetError) return yield* converted
      config = converted
    } else if (raw["models"] === undefined) {
      config = fromBackends(raw)
    }
    const plan = yield* Load.parse(Yaml.stringify(config), source, {}).pipe(
      Effect.mapError((e) => new FleetError({ source, message: e.issues?.join("; ") ?? e.message }))
    )
    const missing = plan.backends.filter((b) => {
      const name = b.profile ?? b.simulate?.profile
      return name === undefined || !isProfileName(name)
    })
    if (missing.length > 0) {
      return yield* new FleetError({
        source,
        message: `backends ${missing.map((b) => b.id).join(", ")}: the planner needs a known engine profile (profile: ${PROFILE_NAMES.join(" | ")})`
      })
    }
    return plan
  })

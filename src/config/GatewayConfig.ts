/**
 * The config actor: loads, validates and publishes the immutable plan. Readers take the
 * current plan per request (`current`); a reload swaps it atomically and in-flight
 * requests keep the plan they started with. A bad reload is reported and the last good
 * plan stays. This service only reads the source (`load`) and swaps the plan (`publish`);
 * checking, diffing and applying a new plan to the fleet is the reloader's (http/Reload.ts).
 */
import { Context, Effect, Layer, SubscriptionRef } from "effect"
import { NodeServices } from "@effect/platform-node"
import { FetchHttpClient } from "effect/http"
import * as Load from "./Load.ts"
import type { Plan } from "./Plan.ts"
import * as Settings from "./Settings.ts"

export class GatewayConfig extends Context.Service<GatewayConfig, {
  /** The plan the gateway started with (listen address, fleet). */
  readonly initial: Plan
  readonly current: Effect.Effect<Plan>
  readonly ref: SubscriptionRef.SubscriptionRef<Plan>
  /** The config file a reload re-reads and the watcher watches (undefined: text, a value or an upstream listing). */
  readonly file: string | undefined
  /** Reads and validates the source again; publishes nothing (the current plan stays until `publish`). */
  readonly load: Effect.Effect<Plan, Load.ConfigError>
  /** Swaps the current plan: requests that start from now on read it. */
  readonly publish: (plan: Plan) => Effect.Effect<void>
}>()("sluice/config/GatewayConfig") {
  /** A fixed plan (tests, embedding). */
  static fromPlan(plan: Plan): Layer.Layer<GatewayConfig> {
    return Layer.effect(GatewayConfig, make(plan, Effect.succeed(plan), undefined))
  }

  /**
   * From YAML text (an embedder's own config; `source` names it in errors). API-key variables
   * are read from the environment, as at start.
   */
  static fromYaml(text: string, source = "config"): Layer.Layer<GatewayConfig, Load.ConfigError> {
    const load = Load.parse(text, source, process.env)
    return Layer.effect(GatewayConfig, Effect.flatMap(load, (plan) => make(plan, load, undefined)))
  }

  /**
   * From a config file (re-read on reload). `adjust` runs on every plan read from it, at
   * start and on each reload (an embedder's listen address, a test's ephemeral port).
   */
  static fromFile(path: string, adjust: (plan: Plan) => Plan = (plan) => plan): Layer.Layer<GatewayConfig, Load.ConfigError | unknown> {
    return GatewayConfig.fromEnvironment({ config: path }, adjust)
  }

  /** Loads from the serve command's flags and the environment (the service binary). */
  static fromEnvironment(
    flags: Settings.Flags,
    adjust: (plan: Plan) => Plan = (plan) => plan
  ): Layer.Layer<GatewayConfig, Load.ConfigError | unknown> {
    return Layer.effect(
      GatewayConfig,
      Effect.gen(function*() {
        const settings = yield* Settings.load(flags)
        const load = Load.load(settings, process.env).pipe(
          Effect.map(adjust),
          Effect.provide(NodeServices.layer),
          Effect.provide(FetchHttpClient.layer)
        )
        const plan = yield* load
        const file = settings.upstream !== undefined && settings.configPath === undefined
          ? undefined
          : settings.configPath ?? Load.DEFAULT_PATH
        return yield* make(plan, load, file)
      })
    )
  }
}

const make = (initial: Plan, load: Effect.Effect<Plan, Load.ConfigError>, file: string | undefined) =>
  Effect.gen(function*() {
    const ref = yield* SubscriptionRef.make(initial)
    return GatewayConfig.of({
      initial,
      current: SubscriptionRef.get(ref),
      ref,
      file,
      load,
      publish: (plan) => SubscriptionRef.set(ref, plan)
    })
  })

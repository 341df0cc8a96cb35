/**
 * The config actor: loads, validates and publishes the immutable plan. Readers take the
 * current plan per request (`current`); a reload swaps it atomically and in-flight
 * requests keep the plan they started with. A bad reload is reported and the last good
 * plan stays.
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
  /** Re-reads the source; keeps the old plan and fails with the reason when the new one is invalid. */
  readonly reload: Effect.Effect<Plan, Load.ConfigError>
}>()("sluice/config/GatewayConfig") {
  /** A fixed plan (tests, embedding). */
  static fromPlan(plan: Plan): Layer.Layer<GatewayConfig> {
    return Layer.effect(GatewayConfig, make(plan, Effect.succeed(plan)))
  }

  /**
   * From YAML text (an embedder's own config; `source` names it in errors). API-key variables
   * are read from the environment, as at start.
   */
  static fromYaml(text: string, source = "config"): Layer.Layer<GatewayConfig, Load.ConfigError> {
    const load = Load.parse(text, source, process.env)
    return Layer.effect(GatewayConfig, Effect.flatMap(load, (plan) => make(plan, load)))
  }

  /** From a config file (re-read on reload). */
  static fromFile(path: string): Layer.Layer<GatewayConfig, Load.ConfigError | unknown> {
    return GatewayConfig.fromEnvironment({ config: path })
  }

  /** Loads from the serve command's flags and the environment (the service binary). */
  static fromEnvironment(flags: Settings.Flags): Layer.Layer<GatewayConfig, Load.ConfigError | unknown> {
    return Layer.effect(
      GatewayConfig,
      Effect.gen(function*() {
        const settings = yield* Settings.load(flags)
        const load = Load.load(settings, process.env).pipe(
          Effect.provide(NodeServices.layer),
          Effect.provide(FetchHttpClient.layer)
        )
        const plan = yield* load
        return yield* make(plan, load)
      })
    )
  }
}

const make = (initial: Plan, load: Effect.Effect<Plan, Load.ConfigError>) =>
  Effect.gen(function*() {
    const ref = yield* SubscriptionRef.make(initial)
    return GatewayConfig.of({
      initial,
      current: SubscriptionRef.get(ref),
      ref,
      reload: Effect.tap(load, (plan) => SubscriptionRef.set(ref, plan))
    })
  })

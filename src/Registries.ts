/**
 * The registries extensions add to, built in, each adding its check of the names a plan
 * uses (dialects, routing plugins, authenticators, policies) to PlanChecks. Kept apart from
 * Gateway.ts so that `check-config` runs the same checks without loading the stores.
 */
import { Effect, Layer } from "effect"
import { Dialects } from "./backends/Dialects.ts"
import { PlanChecks } from "./config/Checks.ts"
import { AUTHENTICATOR } from "./domain/ApiKeys.ts"
import { Authenticators, RequestPolicies, ResponsePolicies } from "./extensions/Registries.ts"
import { RoutingPlugins } from "./routing/Registry.ts"

/** The registries extensions add to. */
export type Registries =
  | RoutingPlugins
  | Dialects
  | Authenticators
  | RequestPolicies
  | ResponsePolicies
  | PlanChecks

export const registries = Layer.mergeAll(
  RoutingPlugins.layer,
  Dialects.layer,
  Authenticators.layer,
  RequestPolicies.layer,
  ResponsePolicies.layer
).pipe(Layer.provideMerge(PlanChecks.layer))

/**
 * The checks a started gateway runs on a plan, without starting anything (`check-config`):
 * the built-in registries, with the `api_key` authenticator's name registered as the key
 * layer does (its verifier needs the key store, which a check never opens).
 */
export const builtInChecks: Layer.Layer<Registries> = Authenticators.add({
  name: AUTHENTICATOR,
  authenticate: () => Effect.die("check-config never authenticates")
}).pipe(Layer.provideMerge(registries))


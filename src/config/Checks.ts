/**
 * Checks of a plan against what the running graph knows, beyond what the file schema and
 * Plan.ts can see: names the config uses that must exist in a registry (routing plugins,
 * dialects, guardrails, ...). Each registry contributes a check when its layer is built;
 * the composition root runs them all on the initial plan before the gateway starts, and a
 * reload runs them on the new plan before swapping it in.
 *
 * Owns the list of checks. Must never: import the registries it checks (they register here).
 */
import { Context, Effect, Layer } from "effect"
import { ConfigError } from "./Load.ts"
import type { Plan, PlanIssue } from "./Plan.ts"

export type { PlanIssue } from "./Plan.ts"

export type PlanCheck = (plan: Plan) => ReadonlyArray<PlanIssue>

export class PlanChecks extends Context.Service<PlanChecks, {
  readonly add: (check: PlanCheck) => void
  readonly run: (plan: Plan) => ReadonlyArray<PlanIssue>
}>()("sluice/config/PlanChecks") {
  static readonly layer: Layer.Layer<PlanChecks> = Layer.sync(PlanChecks, () => {
    const checks: Array<PlanCheck> = []
    return PlanChecks.of({
      add: (check) => void checks.push(check),
      run: (plan) => checks.flatMap((check) => check(plan))
    })
  })

  /** A layer that adds a check when it is built. */
  static register(check: PlanCheck): Layer.Layer<never, never, PlanChecks> {
    return Layer.effectDiscard(Effect.map(PlanChecks, (checks) => checks.add(check)))
  }
}

/** Fails with one ConfigError listing every issue (each as `path: message`), or succeeds. */
export const verify = (plan: Plan, issues: ReadonlyArray<PlanIssue>, source: string): Effect.Effect<void, ConfigError> =>
  issues.length === 0
    ? Effect.void
    : Effect.fail(new ConfigError({ source, message: issues.map((i) => `${i.path}: ${i.message}`).join("; ") }))

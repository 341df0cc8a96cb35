/**
 * The extension registries: request policies (guardrails and transforms), response policies
 * (text filters) and authenticators, each a service of the gateway's graph holding its
 * entries by name. Extension layers add entries (`RequestPolicies.add(policy)`, or an Effect
 * that builds the policy from other services); the pipeline reads the registries when it is
 * built, which seals them. Which policies run is the config's choice (`extensions.request`,
 * `extensions.response`, per model under `models[].extensions`; by default every registered
 * one), and every name it uses is checked against the registry at start and on reload.
 *
 * Owns the tables. Must never: run an entry (the pipeline does, under a deadline).
 */
import { Context, Effect, Layer } from "effect"
import { PlanChecks } from "../config/Checks.ts"
import type { Plan } from "../config/Plan.ts"
import { TenantId } from "../domain/Ids.ts"
import * as NameTable from "../domain/NameTable.ts"
import type { Authenticator, RequestPolicy, ResponsePolicy } from "./Contract.ts"

type Named = { readonly name: string }

/** A layer adding `entry` (or what `entry` builds) to the registry `tag` selects. */
const adder = <Id, A extends Named>(tag: Context.Key<Id, NameTable.NameTable<A>>) =>
  <E = never, R = never>(entry: A | Effect.Effect<A, E, R>): Layer.Layer<never, E, R | Id> =>
    Layer.effectDiscard(Effect.gen(function*() {
      const table = yield* tag
      const built = Effect.isEffect(entry) ? yield* entry : entry
      table.add(built.name, built)
    }))

/** Checks the names a plan selects for one kind of policy. */
const checkNames = (
  what: string,
  table: { readonly has: (name: string) => boolean; readonly names: () => ReadonlyArray<string> },
  select: (p: { readonly request?: ReadonlyArray<string> | undefined; readonly response?: ReadonlyArray<string> | undefined }) =>
    ReadonlyArray<string> | undefined,
  key: "request" | "response"
) =>
(plan: Plan) => {
  const issues: Array<{ path: string; message: string }> = []
  const check = (names: ReadonlyArray<string> | undefined, path: string) =>
    names?.forEach((name, i) => {
      if (!table.has(name)) issues.push({ path: `${path}.${key}[${i}]`, message: NameTable.unknown(what, name, table) })
    })
  check(select(plan.extensions), "extensions")
  ;[...plan.models.values()].forEach((m, i) => check(select(m.extensions ?? {}), `models[${i}].extensions`))
  return issues
}

export class RequestPolicies extends Context.Service<RequestPolicies, NameTable.NameTable<RequestPolicy>>()(
  "sluice/extensions/RequestPolicies"
) {
  static readonly layer: Layer.Layer<RequestPolicies, never, PlanChecks> = Layer.effect(
    RequestPolicies,
    Effect.map(PlanChecks, (checks) => {
      const table = NameTable.make<RequestPolicy>("request policy")
      checks.add(checkNames("request policy", table, (p) => p.request, "request"))
      return table
    })
  )
  static readonly add = adder<RequestPolicies, RequestPolicy>(RequestPolicies)
}

export class ResponsePolicies extends Context.Service<ResponsePolicies, NameTable.NameTable<ResponsePolicy>>()(
  "sluice/extensions/ResponsePolicies"
) {
  static readonly layer: Layer.Layer<ResponsePolicies, never, PlanChecks> = Layer.effect(
    ResponsePolicies,
    Effect.map(PlanChecks, (checks) => {
      const table = NameTable.make<ResponsePolicy>("response policy")
      checks.add(checkNames("response policy", table, (p) => p.response, "response"))
      return table
    })
  )
  static readonly add = adder<ResponsePolicies, ResponsePolicy>(ResponsePolicies)
}

/** Everyone is the `default` tenant: the embedded default on loopback, and `auth: none`. */
export const anonymous: Authenticator = {
  name: "anonymous",
  authenticate: () => Effect.succeed({ tenant: TenantId("default"), keyId: undefined, via: "anonymous" })
}

export class Authenticators extends Context.Service<Authenticators, NameTable.NameTable<Authenticator>>()(
  "sluice/extensions/Authenticators"
) {
  static readonly layer: Layer.Layer<Authenticators, never, PlanChecks> = Layer.effect(
    Authenticators,
    Effect.map(PlanChecks, (checks) => {
      const table = NameTable.make<Authenticator>("authenticator", [[anonymous.name, anonymous]])
      checks.add((plan) =>
        plan.auth.authenticators.flatMap((name, i) =>
          table.has(name) ? [] : [{ path: `auth.authenticators[${i}]`, message: NameTable.unknown("authenticator", name, table) }]
        )
      )
      return table
    })
  )
  static readonly add = adder<Authenticators, Authenticator>(Authenticators)
}

/** The policies that run for a model: its own list, else the gateway's, else every registered one. */
export const selected = <A>(
  table: NameTable.NameTable<A>,
  own: ReadonlyArray<string> | undefined,
  global: ReadonlyArray<string> | undefined
): ReadonlyArray<A> => {
  const names = own ?? global ?? table.names()
  const out: Array<A> = []
  for (const name of names) {
    const entry = table.get(name)
    if (entry !== undefined) out.push(entry)
  }
  return out
}

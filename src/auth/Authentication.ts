/**
 * The authenticate phase: runs the configured authenticators (`auth.authenticators`, names
 * from the registry; `auth: none` is `[anonymous]`) in order on the request's credentials;
 * the first identity wins. None recognising them, or one rejecting them, is a 401 that does
 * not say why; an authenticator that could not decide (its store is down) is a 503. After
 * decode, `mayUse` says whether that identity may call the requested model (else 403).
 *
 * Owns the order of the chain. Must never: look at a credential itself (authenticators do).
 */
import { Cause, Context, Effect, Layer } from "effect"
import type { ModelPlan, Plan } from "../config/Plan.ts"
import type { Identity } from "../domain/Identity.ts"
import * as Deadline from "../domain/Deadline.ts"
import type { AuthRejection, Authenticator, Credentials } from "../extensions/Contract.ts"
import { Authenticators } from "../extensions/Registries.ts"
import { AuthUnavailable, Unauthenticated } from "./Errors.ts"

const toError = (r: AuthRejection) => r.unavailable === true ? new AuthUnavailable() : new Unauthenticated()

/**
 * One authenticator's answer, bounded by `extensions.timeout`: an authenticator that dies,
 * fails with something other than its rejection, or does not answer in time could not
 * decide, which is a 503 (logged with its name), never a crash, a hang or a 401 that would
 * make a client drop a valid key. The client leaving interrupts it like the rest.
 */
const ask = (
  authenticator: Authenticator,
  credentials: Credentials,
  timeoutMs: number
): Effect.Effect<Identity | undefined, Unauthenticated | AuthUnavailable> =>
  // Bounded without Effect.timeoutOrElse's two fibers per request (domain/Deadline.ts): one
  // fork and, when it suspends, one timer; none for an authenticator that bounds itself.
  (authenticator.boundsItself === true
    ? Effect.mapError(authenticator.authenticate(credentials), toError)
    : within(authenticator.name, Effect.mapError(authenticator.authenticate(credentials), toError), timeoutMs, new AuthUnavailable())).pipe(
    Effect.catchCause((cause) => {
      if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
      const typed = cause.reasons.find((r) => r._tag === "Fail")
      if (typed !== undefined && typed._tag === "Fail") return Effect.fail(typed.error)
      return Effect.andThen(
        Effect.logError("authenticator died").pipe(
          Effect.annotateLogs({ authenticator: authenticator.name, cause: Cause.pretty(cause) })
        ),
        Effect.fail(new AuthUnavailable())
      )
    })
  )

/**
 * `effect` bounded by `timeoutMs`: past it, a warning naming the authenticator and `late`.
 * Shared with authenticators that bound their own slow path (`Authenticator.boundsItself`).
 */
export const within = <A, E, L>(
  name: string,
  effect: Effect.Effect<A, E>,
  timeoutMs: number,
  late: L
): Effect.Effect<A, E | L> =>
  Deadline.within(effect, timeoutMs, () =>
    Effect.andThen(
      Effect.logWarning("authenticator timed out").pipe(Effect.annotateLogs({ authenticator: name, timeoutMs })),
      Effect.fail(late)
    ))

const first = (
  chain: ReadonlyArray<Authenticator>,
  credentials: Credentials,
  timeoutMs: number,
  i: number
): Effect.Effect<Identity, Unauthenticated | AuthUnavailable> =>
  i >= chain.length
    ? Effect.fail(new Unauthenticated())
    : Effect.flatMap(
      ask(chain[i]!, credentials, timeoutMs),
      (identity) => identity === undefined ? first(chain, credentials, timeoutMs, i + 1) : Effect.succeed(identity)
    )

export class Authentication extends Context.Service<Authentication, {
  readonly authenticate: (credentials: Credentials, plan: Plan) => Effect.Effect<Identity, Unauthenticated | AuthUnavailable>
}>()("sluice/auth/Authentication") {
  static readonly layer: Layer.Layer<Authentication, never, Authenticators> = Layer.effect(
    Authentication,
    Effect.map(Authenticators, (table) => {
      // Every authenticator is registered by now; later additions would be a defect.
      table.seal()
      let lastPlan: Plan | undefined
      let chain: ReadonlyArray<Authenticator> = []
      return Authentication.of({
        authenticate: (credentials, plan) => {
          if (plan !== lastPlan) {
            // Names were checked against the registry when the plan was accepted.
            chain = plan.auth.authenticators.flatMap((name) => table.get(name) ?? [])
            lastPlan = plan
          }
          return first(chain, credentials, plan.extensions.timeoutMs, 0)
        }
      })
    })
  )
}

/** Whether `identity` may call `model` (asked for by `requested`, the id or an alias). */
export const mayUse = (identity: Identity, model: ModelPlan, requested: string): boolean => {
  const allowed = identity.models
  if (allowed === undefined) return true
  return allowed.includes(model.id) || allowed.includes(requested) || model.aliases.some((a) => allowed.includes(a))
}

/**
 * The admin API's credential: `SLUICE_ADMIN_TOKEN` from the environment, kept `Redacted`.
 * A presented token is compared in constant time (SHA-256 of both, then timingSafeEqual, so
 * neither the content nor the length leaks through timing). With no token configured the
 * admin API does not exist: every admin path answers 404, as an unknown URL would.
 *
 * Owns the token. Must never: log it or echo a presented one.
 */
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"

const sha256 = (text: string) => createHash("sha256").update(text).digest()

export type AdminCheck = "ok" | "wrong" | "disabled"

export class AdminToken extends Context.Service<AdminToken, {
  /** Checks the `Authorization: Bearer <token>` header of an admin request. */
  readonly check: (authorization: string | undefined) => AdminCheck
}>()("sluice/auth/AdminToken") {
  static readonly make = (token: Redacted.Redacted<string> | undefined): AdminToken["Service"] => {
    const expected = token === undefined || Redacted.value(token) === "" ? undefined : sha256(Redacted.value(token))
    return AdminToken.of({
      check: (authorization) => {
        if (expected === undefined) return "disabled"
        if (authorization === undefined || authorization.slice(0, 7).toLowerCase() !== "bearer ") return "wrong"
        return timingSafeEqual(sha256(authorization.slice(7).trim()), expected) ? "ok" : "wrong"
      }
    })
  }

  static readonly fromEnvironment: Layer.Layer<AdminToken> = Layer.effect(
    AdminToken,
    Effect.map(
      Config.option(Config.Redacted("SLUICE_ADMIN_TOKEN")).pipe(Effect.orElseSucceed(() => Option.none())),
      (token) => AdminToken.make(Option.getOrUndefined(token))
    )
  )
}

/**
 * The start-up rule for serving without keys (like Redis's protected mode): a gateway that
 * would let anonymous requests in because no API key exists yet may do so on a loopback
 * address only, and says so; on any other address it refuses to start and says how to fix
 * it. `auth: none` (or `anonymous` in `auth.authenticators`) is the explicit opt-out: it
 * starts anywhere, with a warning.
 *
 * Owns the decision at start. Must never: run per request.
 */
import { Effect, Layer } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import { ConfigError } from "../config/Load.ts"
import type { Plan } from "../config/Plan.ts"
import { ApiKeys, NAME } from "./ApiKeys.ts"

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

export type Posture = "keys" | "anonymous_by_config" | "anonymous_no_keys" | "other"

export const posture = (plan: Plan, keysRequired: boolean): Posture => {
  const chain = plan.auth.authenticators
  if (plan.auth.mode === "none" || chain.includes("anonymous")) return "anonymous_by_config"
  if (!chain.includes(NAME)) return "other"
  return keysRequired ? "keys" : "anonymous_no_keys"
}

export const layer: Layer.Layer<never, ConfigError, GatewayConfig | ApiKeys> = Layer.effectDiscard(
  Effect.gen(function*() {
    const { initial } = yield* GatewayConfig
    const keys = yield* ApiKeys
    const host = initial.server.host
    switch (posture(initial, keys.required(initial))) {
      case "keys":
        return yield* Effect.logInfo("API keys required")
      case "other":
        return yield* Effect.logInfo("authentication by extensions").pipe(
          Effect.annotateLogs({ authenticators: initial.auth.authenticators.join(",") })
        )
      case "anonymous_by_config":
        return yield* Effect.logWarning(
          "authentication is off (auth: none): every request is served as tenant default, whatever key it presents"
        ).pipe(Effect.annotateLogs({ host }))
      case "anonymous_no_keys":
        if (isLoopback(host)) {
          return yield* Effect.logWarning(
            "no API key exists yet: requests are served as tenant default without a key, on this loopback address only; " +
              "the first key (sluice keys create --tenant NAME --name NAME) turns keys on"
          ).pipe(Effect.annotateLogs({ host }))
        }
        return yield* new ConfigError({
          source: "auth",
          message: `refusing to listen on ${host} without API keys: anyone who can reach it could use every backend. ` +
            "Create a key first (sluice keys create --tenant NAME --name NAME, with the same DATABASE_URL or data folder), " +
            "declare one under auth.keys, listen on 127.0.0.1, or set `auth: none` in the config to serve without keys on purpose."
        })
    }
  })
)

/**
 * The cost of the API-key check on the hot path, in CPU per request: the production
 * authenticate phase (Authentication → the `api_key` authenticator, its cache and the key
 * store on an in-memory SQLite) with a cached key, against `auth: none` (the anonymous
 * authenticator), in the same process and run. Each round authenticates N requests with
 * each setup in alternation; the figures are medians over the rounds of CPU time
 * (process.cpuUsage, user + system) per call. It also checks that no Argon2 verification
 * ran after the key's first use.
 *
 *   npm run bench:auth            (ROUNDS=7 N=50000 by default)
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { ApiKeys } from "../../src/auth/ApiKeys.ts"
import { Authentication } from "../../src/auth/Authentication.ts"
import { KeyAdmin } from "../../src/auth/KeyAdmin.ts"
import { Revocations } from "../../src/auth/Revocations.ts"
import { PlanChecks } from "../../src/config/Checks.ts"
import { GatewayConfig } from "../../src/config/GatewayConfig.ts"
import * as Load from "../../src/config/Load.ts"
import type { Plan } from "../../src/config/Plan.ts"
import type { Credentials } from "../../src/extensions/Contract.ts"
import { Authenticators } from "../../src/extensions/Registries.ts"
import * as Database from "../../src/stores/Database.ts"
import { KeyStore } from "../../src/stores/KeyStore.ts"

const ROUNDS = Number(process.env["ROUNDS"] ?? 7)
const N = Number(process.env["N"] ?? 50_000)

const graph = (plan: Plan) => {
  const keys = ApiKeys.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(KeyStore.layer, Revocations.local)),
    Layer.provideMerge(Database.layer({ kind: "sqlite", file: ":memory:" }))
  )
  const registered = ApiKeys.register.pipe(
    Layer.provideMerge(Authenticators.layer),
    Layer.provideMerge(PlanChecks.layer),
    Layer.provideMerge(keys)
  )
  return Layer.mergeAll(Authentication.layer, KeyAdmin.layer).pipe(
    Layer.provideMerge(registered),
    Layer.provideMerge(GatewayConfig.fromPlan(plan))
  )
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const main = Effect.gen(function*() {
  const yaml = (auth: string) => `backends: [{ id: a, url: "http://127.0.0.1:9/v1", models: [m] }]\n${auth}`
  const keysPlan = yield* Load.parse(yaml(""), "bench", {})
  const nonePlan = yield* Load.parse(yaml("auth: none"), "bench", {})
  const withKeys = ManagedRuntime.make(graph(keysPlan))
  const without = ManagedRuntime.make(graph(nonePlan))
  const created = yield* Effect.promise(() => withKeys.runPromise(Effect.flatMap(KeyAdmin, (a) => a.createKey({ tenant: "bench", name: "bench", createTenant: true }))))
  const credentials = (key: string | undefined): Credentials => ({
    headers: { "content-type": "application/json", ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) },
    remoteAddress: "127.0.0.1"
  })
  const loop = (plan: Plan, c: Credentials) =>
    Effect.flatMap(Authentication, (auth) => Effect.repeat(auth.authenticate(c, plan), { times: N - 1 }))
  const measure = (runtime: typeof withKeys, plan: Plan, c: Credentials) =>
    Effect.promise(async () => {
      const before = process.cpuUsage()
      await runtime.runPromise(loop(plan, c))
      const used = process.cpuUsage(before)
      return (used.user + used.system) / N
    })
  // Warm up: the first use verifies with Argon2 and caches.
  yield* Effect.promise(() => withKeys.runPromise(loop(keysPlan, credentials(created.key))))
  yield* Effect.promise(() => without.runPromise(loop(nonePlan, credentials(undefined))))
  const verificationsAfterWarmup = yield* Effect.promise(() => withKeys.runPromise(Effect.map(ApiKeys, (k) => k.verifications())))
  const on: Array<number> = []
  const off: Array<number> = []
  for (let i = 0; i < ROUNDS; i++) {
    on.push(yield* measure(withKeys, keysPlan, credentials(created.key)))
    off.push(yield* measure(without, nonePlan, credentials(undefined)))
  }
  const verifications = yield* Effect.promise(() => withKeys.runPromise(Effect.map(ApiKeys, (k) => k.verifications())))
  yield* Effect.promise(() => withKeys.dispose())
  yield* Effect.promise(() => without.dispose())
  const result = {
    rounds: ROUNDS,
    callsPerRound: N,
    cachedKeyCpuMicrosPerRequest: Number(median(on).toFixed(2)),
    authNoneCpuMicrosPerRequest: Number(median(off).toFixed(2)),
    addedCpuMicrosPerRequest: Number((median(on) - median(off)).toFixed(2)),
    argon2VerificationsAfterFirstUse: verifications - verificationsAfterWarmup
  }
  console.log(JSON.stringify(result, null, 2))
})

Effect.runPromise(main)

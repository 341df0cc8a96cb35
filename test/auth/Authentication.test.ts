/**
 * The authenticator chain's bound (`extensions.timeout`): an answer in time is used, whether the
 * authenticator answers at once or after suspending; one that does not answer in time, or dies,
 * could not decide (503, AuthUnavailable), and the one that hung is interrupted. Deadlines are
 * far (never reached) or zero (reached as soon as the authenticator suspends).
 */
import { Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { ApiKeys } from "../../src/auth/ApiKeys.ts"
import { Authentication } from "../../src/auth/Authentication.ts"
import { Revocations } from "../../src/auth/Revocations.ts"
import { GatewayConfig } from "../../src/config/GatewayConfig.ts"
import { KeyStore } from "../../src/stores/KeyStore.ts"
import type { Plan } from "../../src/config/Plan.ts"
import type { Identity } from "../../src/domain/Identity.ts"
import { TenantId } from "../../src/domain/Ids.ts"
import * as NameTable from "../../src/domain/NameTable.ts"
import type { Authenticator, Credentials } from "../../src/extensions/Contract.ts"
import { Authenticators } from "../../src/extensions/Registries.ts"
import { planFromYaml } from "../support/Gateway.ts"

const identity: Identity = { tenant: TenantId("t"), keyId: undefined, via: "test" }
const credentials = { headers: {}, remoteAddress: undefined }

const run = async (authenticator: Authenticator, timeoutMs: number) => {
  const base = await planFromYaml(`
backends:
  - { id: x, url: "http://127.0.0.1:1/v1", models: [m] }
`)
  const plan: Plan = {
    ...base,
    auth: { ...base.auth, authenticators: [authenticator.name] },
    extensions: { ...base.extensions, timeoutMs }
  }
  const layer = Authentication.layer.pipe(
    Layer.provide(Layer.succeed(Authenticators, NameTable.make<Authenticator>("authenticator", [[authenticator.name, authenticator]])))
  )
  return authenticateWith(layer, credentials, plan)
}

/** One authentication through the chain `layer` builds: the identity, or the failure's tag. */
const authenticateWith = <E>(layer: Layer.Layer<Authentication, E>, with_: Credentials, plan: Plan) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const auth = yield* Authentication
      return yield* auth.authenticate(with_, plan)
    }).pipe(
      Effect.map((id) => ({ ok: id } as const)),
      Effect.catch((e) => Effect.succeed({ error: e._tag } as const)),
      Effect.provide(layer)
    )
  )

describe("Authentication: the authenticator's deadline", () => {
  it("uses an answer given at once, even with a zero deadline", async () => {
    expect(await run({ name: "now", authenticate: () => Effect.succeed(identity) }, 0)).toEqual({ ok: identity })
  })

  it("uses an answer given after suspending, within the deadline", async () => {
    const later = Effect.andThen(Effect.promise(() => new Promise((r) => setImmediate(r))), Effect.succeed(identity))
    expect(await run({ name: "later", authenticate: () => later }, 60_000)).toEqual({ ok: identity })
  })

  it("a hung authenticator could not decide, and is interrupted", async () => {
    let interrupted = false
    const hung = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))))
    expect(await run({ name: "hung", authenticate: () => hung }, 0)).toEqual({ error: "AuthUnavailable" })
    expect(interrupted).toBe(true)
  })

  it("an authenticator that dies could not decide", async () => {
    expect(await run({ name: "dies", authenticate: () => Effect.die("boom") }, 60_000)).toEqual({ error: "AuthUnavailable" })
    expect(await run({ name: "dies", authenticate: () => Effect.die("boom"), boundsItself: true }, 60_000)).toEqual({ error: "AuthUnavailable" })
  })

  it("does not race an authenticator that bounds itself: its late answer is its own to give", async () => {
    const later = Effect.andThen(Effect.promise(() => new Promise((r) => setTimeout(r, 20))), Effect.succeed(identity))
    expect(await run({ name: "own", authenticate: () => later, boundsItself: true }, 0)).toEqual({ ok: identity })
    expect(await run({ name: "raced", authenticate: () => later }, 0)).toEqual({ error: "AuthUnavailable" })
  })
})

/** The API-key authenticator over a key store that never answers a lookup. */
const ApiKeysHarness = {
  hangingStore: async (timeoutMs: number) => {
    const base = await planFromYaml(`
backends:
  - { id: x, url: "http://127.0.0.1:1/v1", models: [m] }
`)
    const plan: Plan = { ...base, extensions: { ...base.extensions, timeoutMs } }
    const store = {
      anyKey: Effect.succeed(true),
      keyForAuth: () => Effect.never,
      touchKeys: () => Effect.void
    } as unknown as KeyStore["Service"]
    const keys = ApiKeys.layer.pipe(
      Layer.provide(Layer.mergeAll(GatewayConfig.fromPlan(plan), Layer.succeed(KeyStore, store), Revocations.local))
    )
    const layer = Authentication.layer.pipe(Layer.provide(ApiKeys.register.pipe(Layer.provideMerge(
      Layer.mergeAll(keys, Layer.succeed(Authenticators, NameTable.make<Authenticator>("authenticator", [])))
    ))))
    const credentials = { headers: { authorization: "Bearer sk-sluice-E3UKTdlwfvsg-NzcPbk0gH2OIe0ibmvXqAKCvuLuMUBPqsangmkt7bFo" }, remoteAddress: undefined }
    return { authenticate: () => authenticateWith(layer, credentials, plan) }
  }
}

describe("the API-key authenticator bounds its own slow path", () => {
  it("a key store that does not answer is a 503 at the deadline, not a hang", async () => {
    const keys = await ApiKeysHarness.hangingStore(50)
    const started = performance.now()
    expect(await keys.authenticate()).toEqual({ error: "AuthUnavailable" })
    expect(performance.now() - started).toBeLessThan(2_000)
  })
})

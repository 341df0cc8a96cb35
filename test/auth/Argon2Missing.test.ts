/**
 * When the native Argon2 module cannot be loaded (a binary for another platform, a pruned
 * node_modules), a right key must not be refused as a wrong one: a gateway with keys stops
 * while it starts, with the reason; a key that first needs checking later is a 503 each time,
 * never a remembered 401. Before, `verify` turned the failed load into "no match".
 */
import { Effect, Exit, Layer } from "effect"
import { describe, expect, it, vi } from "vitest"
import { ApiKeys } from "../../src/auth/ApiKeys.ts"
import { Authentication } from "../../src/auth/Authentication.ts"
import { Revocations } from "../../src/auth/Revocations.ts"
import { GatewayConfig } from "../../src/config/GatewayConfig.ts"
import type { Plan } from "../../src/config/Plan.ts"
import { TenantId } from "../../src/domain/Ids.ts"
import * as NameTable from "../../src/domain/NameTable.ts"
import type { Authenticator } from "../../src/extensions/Contract.ts"
import { Authenticators } from "../../src/extensions/Registries.ts"
import { KeyStore } from "../../src/stores/KeyStore.ts"
import { planFromYaml } from "../support/Gateway.ts"

vi.mock("@node-rs/argon2", () => {
  throw new Error("no native binary for this platform")
})

const KEY = "sk-sluice-E3UKTdlwfvsg-NzcPbk0gH2OIe0ibmvXqAKCvuLuMUBPqsangmkt7bFo"
// Any PHC string: the module that would check it is the thing missing.
const HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

const plan = async (): Promise<Plan> =>
  planFromYaml(`
backends:
  - { id: x, url: "http://127.0.0.1:1/v1", models: [m] }
`)

/** A key store holding the key; `anyKey` says whether it admits to any key at start-up. */
const store = (anyKeyAtStart: boolean) => {
  let lookups = 0
  const service = {
    anyKey: Effect.succeed(anyKeyAtStart),
    keyForAuth: () =>
      Effect.sync(() => {
        lookups++
        return { id: "E3UKTdlwfvsg", tenant: TenantId("t"), hash: HASH, models: undefined, expiresAtMs: undefined, revokedAtMs: undefined, tenantDisabledAtMs: undefined }
      }),
    touchKeys: () => Effect.void
  } as unknown as KeyStore["Service"]
  return { service, lookups: () => lookups }
}

const keysLayer = (p: Plan, s: KeyStore["Service"]) =>
  ApiKeys.layer.pipe(Layer.provide(Layer.mergeAll(GatewayConfig.fromPlan(p), Layer.succeed(KeyStore, s), Revocations.local)))

describe("API keys when the Argon2 module cannot be loaded", () => {
  it("a gateway with keys does not start, and says why", async () => {
    const exit = await Effect.runPromiseExit(Effect.scoped(Layer.build(keysLayer(await plan(), store(true).service))))
    expect(Exit.isFailure(exit)).toBe(true)
    const text = Exit.isFailure(exit) ? String(exit.cause) : ""
    expect(text).toContain("Argon2Unavailable")
    expect(text).toContain("@node-rs/argon2")
    expect(text).toContain("could not be loaded")
  })

  it("a key first checked after the start is a 503 every time, not a remembered 401", async () => {
    const p = await plan()
    const s = store(false)
    const layer = Authentication.layer.pipe(Layer.provide(ApiKeys.register.pipe(Layer.provideMerge(
      Layer.mergeAll(keysLayer(p, s.service), Layer.succeed(Authenticators, NameTable.make<Authenticator>("authenticator", [])))
    ))))
    const results = await Effect.runPromise(
      Effect.gen(function*() {
        const auth = yield* Authentication
        const once = auth.authenticate({ headers: { authorization: `Bearer ${KEY}` }, remoteAddress: undefined }, p).pipe(
          Effect.map(() => "ok"),
          Effect.catch((e) => Effect.succeed(e._tag))
        )
        return [yield* once, yield* once]
      }).pipe(Effect.provide(layer))
    )
    expect(results).toEqual(["AuthUnavailable", "AuthUnavailable"])
    // Both looked the key up again: the failure was not cached as a wrong key.
    expect(s.lookups()).toBe(2)
  })
})

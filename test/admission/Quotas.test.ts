/**
 * The limit table follows a reload: a plan published on the config service brings its
 * `quotas:` and `prices:` to the next request (the database's overrides stay on top), as the
 * reload diff promises for every section it does not list as needing a restart.
 */
import { Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { QuotaTable } from "../../src/admission/Quotas.ts"
import { GatewayConfig } from "../../src/config/GatewayConfig.ts"
import type { ModelId } from "../../src/domain/Ids.ts"
import { QuotaStore } from "../../src/stores/QuotaStore.ts"
import { planFromYaml } from "../support/Gateway.ts"

const yaml = (rpm: number, price: number) => `
backends:
  - { id: a, url: "http://127.0.0.1:1/v1", models: [m] }
quotas:
  tenants:
    acme: { requests_per_minute: ${rpm} }
prices:
  m: { input: ${price}, output: ${price} }
`

const noStore = Layer.succeed(QuotaStore, QuotaStore.of({
  limits: Effect.succeed([]),
  setLimits: () => Effect.void,
  prices: Effect.succeed([]),
  setPrice: () => Effect.void,
  deletePrice: () => Effect.void
}))

describe("quota table", () => {
  it("applies a reloaded plan's limits and prices to the next request", async () => {
    const before = await planFromYaml(yaml(10, 1))
    const after = await planFromYaml(yaml(99, 3))
    const layer = QuotaTable.layer.pipe(Layer.provideMerge(GatewayConfig.fromPlan(before)), Layer.provide(noStore))
    const program = Effect.gen(function*() {
      const config = yield* GatewayConfig
      const table = yield* QuotaTable
      const m = "m" as ModelId
      const first = { rpm: table.limitsOf("tenant", "acme", "")?.requests_per_minute, price: table.price(m, undefined)?.input }
      yield* config.publish(after)
      // The table follows the config's changes on a fiber of its own.
      for (let i = 0; i < 100 && table.price(m, undefined)?.input !== after.prices.get(m)?.input; i++) yield* Effect.sleep("5 millis")
      const second = { rpm: table.limitsOf("tenant", "acme", "")?.requests_per_minute, price: table.price(m, undefined)?.input }
      return { first, second }
    })
    const result = await Effect.runPromise(Effect.scoped(Effect.provide(program, layer)))
    expect(result.first.rpm).toBe(10)
    expect(result.second.rpm).toBe(99)
    expect(result.second.price).toBe(after.prices.get("m" as ModelId)?.input)
    expect(result.second.price).not.toBe(result.first.price)
  })
})

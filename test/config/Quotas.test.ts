/**
 * The `quotas` and `prices` sections: decoded into the plan (model names and aliases
 * resolved to model ids, cached input defaulting to input), and every mistake refused at
 * start with the path that holds it.
 */
import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import * as Load from "../../src/config/Load.ts"
import type { Plan } from "../../src/config/Plan.ts"

const base = `
models: [{ name: m, aliases: [m-alias] }, { name: n }]
backends:
  - { id: a, url: "http://127.0.0.1:1/v1", models: [m, n] }
  - { id: b, url: "http://127.0.0.1:2/v1", models: [m] }
`
const plan = (yaml: string): Plan => {
  const exit = Effect.runSyncExit(Load.parse(base + yaml, "test.yaml", {}))
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}
const error = (yaml: string): string => {
  const exit = Effect.runSyncExit(Load.parse(base + yaml, "test.yaml", {}))
  return Exit.isFailure(exit) ? String(exit.cause) : "accepted"
}

describe("quotas and prices config", () => {
  it("decodes limits per tenant, per tenant and model (aliases resolved) and per key, and prices per model and backend", () => {
    const p = plan(`
quotas:
  tenants:
    acme: { requests_per_minute: 60, spend_per_month: 10, models: { m-alias: { output_tokens_per_day: 1000 } } }
  keys:
    3VwQ8dJk2LmN: { concurrent_requests: 2 }
prices:
  m-alias: { input: 0.5, output: 2, backends: { b: { input: 0.25, cached_input: 0.1, output: 1 } } }
`)
    expect(p.quotas.tenants.get("acme" as never)).toEqual({ requests_per_minute: 60, spend_per_month: 10 })
    expect(p.quotas.models.get("acme" as never)?.get("m" as never)).toEqual({ output_tokens_per_day: 1000 })
    expect(p.quotas.keys.get("3VwQ8dJk2LmN")).toEqual({ concurrent_requests: 2 })
    const price = p.prices.get("m" as never)
    expect({ input: price?.input, cachedInput: price?.cachedInput, output: price?.output }).toEqual({ input: 0.5, cachedInput: 0.5, output: 2 })
    expect(price?.backends.get("b" as never)).toEqual({ input: 0.25, cachedInput: 0.1, output: 1 })
  })

  it("refuses unknown models, backends and limit fields, and negative values, naming the path", () => {
    expect(error("quotas: { tenants: { acme: { models: { nope: { tokens_per_day: 1 } } } } }")).toContain("quotas.tenants.acme.models.nope")
    expect(error("prices: { nope: { input: 1, output: 1 } }")).toContain("prices.nope")
    expect(error("prices: { m: { input: 1, output: 1, backends: { zz: { input: 1, output: 1 } } } }")).toContain("prices.m.backends.zz")
    expect(error("quotas: { tenants: { acme: { requests_per_hour: 5 } } }")).toContain("requests_per_hour")
    expect(error("quotas: { tenants: { acme: { tokens_per_day: -1 } } }")).toContain("tokens_per_day")
    expect(error("prices: { m: { input: 1 } }")).toContain("output")
  })
})

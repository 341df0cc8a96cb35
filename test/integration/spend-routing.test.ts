/**
 * Spend pressure through the gateway: a model served by two backends at different token
 * prices (one engine behind both, so only the price differs). A tenant without a spend
 * limit is routed as configured (the first backend); a tenant near its spend limit is
 * routed to the cheaper backend, and its ledger rows are charged that backend's price.
 */
import { ConfigProvider } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

describe("spend pressure steers routing", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  const keys = new Map<string, string>()

  const call = (tenant: string, text: string) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.get(tenant)}` },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: text }], max_tokens: 10 })
    })

  beforeAll(async () => {
    engine = await Fake.start(() => ({ usage: { prompt_tokens: 5, completion_tokens: 2 } }))
    // The estimate is reserved at the highest price (pricey: ~20 tokens × $40/M ≈ $0.0008), so
    // `tight` (a $0.001 day) is near its limit from its first request.
    gw = await startGateway(`
models: [{ name: m }]
backends:
  - { id: pricey, url: ${engine.url}, models: [m] }
  - { id: cheap, url: ${engine.url}, models: [m] }
quotas:
  tenants:
    tight: { spend_per_day: 0.001 }
prices:
  m: { input: 10, output: 40, backends: { cheap: { input: 1, output: 4 } } }
`, { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({ SLUICE_ADMIN_TOKEN: "spend-routing-admin-token-0123456789" })) })
    for (const tenant of ["roomy", "tight"]) {
      const created = await gw.run(gw.keyAdmin.createKey({ tenant, name: "test", createTenant: true }))
      keys.set(tenant, created.key)
    }
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("a tenant with no spend limit keeps the configured order; one near its limit gets the cheaper backend", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await call("roomy", `roomy request ${i}`)
      expect(res.status).toBe(200)
      expect(res.headers.get("x-sluice-backend")).toBe("pricey")
      await res.text()
    }
    for (let i = 0; i < 3; i++) {
      const res = await call("tight", `tight request ${i}`)
      expect(res.status).toBe(200)
      expect(res.headers.get("x-sluice-backend")).toBe("cheap")
      await res.text()
    }
    const snap = await eventually(
      () => gw.run(gw.sink.snapshot),
      (s) => s.recent.filter((r) => r.tenant === "tight" || r.tenant === "roomy").length === 6
    )
    // 5 input + 2 output tokens: $10/$40 per million on pricey, $1/$4 on cheap.
    for (const r of snap.recent.filter((r) => r.tenant === "roomy")) {
      expect(r.backend).toBe("pricey")
      expect(r.costUsd).toBeCloseTo(0.00013, 12)
    }
    for (const r of snap.recent.filter((r) => r.tenant === "tight")) {
      expect(r.backend).toBe("cheap")
      expect(r.costUsd).toBeCloseTo(0.000013, 12)
    }
  })
})

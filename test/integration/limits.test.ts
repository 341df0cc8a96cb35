/**
 * Limits and prices on the real gateway graph (in-memory limit engine, embedded SQLite):
 * each limit kind refuses the request that would exceed it with a 429 in the OpenAI
 * envelope naming the limit, with `retry-after` and the `x-ratelimit-*` headers; the
 * ledger rows carry the cost at the configured price; a limit set in the database (the
 * admin API) takes effect without a restart; settlement leaves nothing reserved.
 */
import { ConfigProvider } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const ADMIN = "limits-test-admin-token-0123456789"

describe("limits", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  const keys = new Map<string, string>()

  const call = (tenant: string, body: Record<string, unknown> = {}, signal?: AbortSignal) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.get(tenant)}` },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 10, ...body }),
      ...(signal === undefined ? {} : { signal })
    })

  beforeAll(async () => {
    engine = await Fake.start((model) => model === "slow" ? { holdHeaders: true } : { usage: { prompt_tokens: 5, completion_tokens: 2 } })
    gw = await startGateway(`
models: [{ name: m }, { name: slow }]
backends:
  - { id: a, url: ${engine.url}, models: [m, slow] }
quotas:
  tenants:
    rpm: { requests_per_minute: 3 }
    tok: { models: { m: { tokens_per_minute: 100 } } }
    spend: { spend_per_day: 0.05 }
    conc: { concurrent_requests: 1 }
prices:
  m: { input: 1000, output: 1000 }
`, { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({ SLUICE_ADMIN_TOKEN: ADMIN })) })
    for (const tenant of ["rpm", "tok", "spend", "conc", "db"]) {
      const created = await gw.run(gw.keyAdmin.createKey({ tenant, name: "test", createTenant: true }))
      keys.set(tenant, created.key)
    }
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("requests per minute: the fourth request is a 429 naming the limit, with retry-after and x-ratelimit-* headers", async () => {
    // Admitted answers carry the headers too: what is left after each.
    for (let i = 0; i < 3; i++) {
      const res = await call("rpm")
      expect(res.status).toBe(200)
      expect(res.headers.get("x-ratelimit-limit-requests")).toBe("3")
      expect(res.headers.get("x-ratelimit-remaining-requests")).toBe(String(2 - i))
      await res.text()
    }
    const refused = await call("rpm")
    expect(refused.status).toBe(429)
    const body = await refused.json() as { error: { type: string; code: string; message: string } }
    expect(body.error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" })
    expect(body.error.message).toContain("requests_per_minute of tenant rpm is 3")
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    expect(Number(refused.headers.get("retry-after"))).toBeLessThanOrEqual(60)
    expect(refused.headers.get("x-ratelimit-limit-requests")).toBe("3")
    expect(refused.headers.get("x-ratelimit-remaining-requests")).toBe("0")
    expect(refused.headers.get("x-ratelimit-reset-requests")).toMatch(/^\d+(ms|s)$|^\d+m\d+s$/)
  })

  it("tokens per minute of a tenant on a model: the estimate is reserved, actual usage settled", async () => {
    // Each request reserves its prompt estimate + 60; settles 7 (the engine's usage).
    const first = await call("tok", { max_tokens: 60 })
    expect(first.status).toBe(200)
    expect(first.headers.get("x-ratelimit-limit-tokens")).toBe("100")
    expect(first.headers.get("x-ratelimit-limit-requests")).toBeNull()
    await first.text()
    const second = await call("tok", { max_tokens: 60 })
    expect(second.status).toBe(200)
    await second.text()
    // 14 used + the third's estimate (> 86) exceeds 100.
    const third = await call("tok", { max_tokens: 90 })
    expect(third.status).toBe(429)
    expect((await third.json() as { error: { message: string } }).error.message).toContain("tokens_per_minute of tenant tok, model m")
    expect(third.headers.get("x-ratelimit-limit-tokens")).toBe("100")
    expect(Number(third.headers.get("x-ratelimit-remaining-tokens"))).toBe(86)
  })

  it("spend per day: ledger rows carry the cost; the limit refuses once the next estimate would exceed it", async () => {
    let refused: Response | undefined
    let served = 0
    for (let i = 0; i < 20 && refused === undefined; i++) {
      const res = await call("spend")
      if (res.status === 429) refused = res
      else {
        expect(res.status).toBe(200)
        await res.text()
        served++
      }
    }
    expect(refused).toBeDefined()
    expect((await refused!.json() as { error: { message: string } }).error.message).toContain("spend_per_day of tenant spend is $0.05")
    const snap = await eventually(
      () => gw.run(gw.sink.snapshot),
      (s) => s.recent.filter((r) => r.tenant === "spend").length === served
    )
    const rows = snap.recent.filter((r) => r.tenant === "spend")
    // 7 tokens at $1000 per million: $0.007 each.
    for (const r of rows) expect(r.costUsd).toBeCloseTo(0.007, 9)
    expect(rows.reduce((n, r) => n + r.costUsd, 0)).toBeLessThanOrEqual(0.05)
    expect(served).toBeGreaterThan(1)
    // The spend counter, by tenant and model.
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    const line = metrics.split("\n").find((l) => l.startsWith("sluice_spend_total{") && l.includes(`tenant="spend"`))
    expect(line).toContain(`model="m"`)
    expect(Number(line?.split(" ").at(-1))).toBeCloseTo(0.007 * served, 9)
  })

  it("concurrent requests: a second open request is refused, and the slot frees when the first ends", async () => {
    const abort = new AbortController()
    const held = call("conc", { model: "slow" }, abort.signal).catch(() => undefined)
    await eventually(async () => engine.active(), (n) => n > 0)
    const second = await call("conc")
    expect(second.status).toBe(429)
    expect((await second.json() as { error: { message: string } }).error.message).toContain("concurrent_requests of tenant conc is 1")
    abort.abort()
    await held
    const third = await eventually(async () => {
      const res = await call("conc")
      await res.text()
      return res.status
    }, (s) => s === 200, 3000)
    expect(third).toBe(200)
  })

  it("a limit set through the admin API applies at once, and can be read back", async () => {
    const admin = (method: string, path: string, body?: unknown) =>
      fetch(`${gw.url}/admin/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
    const ok = await call("db")
    expect(ok.status).toBe(200)
    await ok.text()
    const set = await admin("PUT", "/tenants/db/limits", { requests_per_minute: 1 })
    expect(set.status).toBe(200)
    expect(await set.json()).toMatchObject({ tenant: "db", limits: { requests_per_minute: 1 } })
    // Counting starts when the limit does: one more request fits, the next does not.
    const fits = await call("db")
    expect(fits.status).toBe(200)
    await fits.text()
    const refused = await call("db")
    expect(refused.status).toBe(429)
    await refused.text()
    expect(await (await admin("GET", "/tenants/db/limits")).json()).toMatchObject({ limits: { requests_per_minute: 1 } })
    // Bad input is a 400 naming the field, never stored.
    const bad = await admin("PUT", "/tenants/db/limits", { requests_per_minute: -1 })
    expect(bad.status).toBe(400)
    const unknown = await admin("PUT", "/tenants/db/limits", { requests_per_hour: 5 })
    expect(unknown.status).toBe(400)
    // Removing it lifts it.
    expect((await admin("PUT", "/tenants/db/limits", { requests_per_minute: null })).status).toBe(200)
    const again = await call("db")
    expect(again.status).toBe(200)
    await again.text()
  })

  it("key and tenant-and-model limits and prices set through the admin API", async () => {
    const admin = (method: string, path: string, body?: unknown) =>
      fetch(`${gw.url}/admin/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
    const created = await gw.run(gw.keyAdmin.createKey({ tenant: "db2", name: "k", createTenant: true }))
    keys.set("db2", created.key)
    // A key's own limit.
    const keyLimit = await admin("PUT", `/keys/${created.record.id}/limits`, { requests_per_minute: 1 })
    expect(await keyLimit.json()).toEqual({ key: created.record.id, limits: { requests_per_minute: 1 } })
    expect((await admin("PUT", "/keys/nosuchkey123/limits", { requests_per_minute: 1 })).status).toBe(404)
    const one = await call("db2")
    expect(one.status).toBe(200)
    await one.text()
    const two = await call("db2")
    expect(two.status).toBe(429)
    expect((await two.json() as { error: { message: string } }).error.message).toContain(`requests_per_minute of key ${created.record.id}`)
    await admin("PUT", `/keys/${created.record.id}/limits`, { requests_per_minute: null })
    // The tenant on one model (an unknown model is a 400).
    expect((await admin("PUT", "/tenants/db2/models/nope/limits", { tokens_per_day: 1 })).status).toBe(400)
    const modelLimit = await admin("PUT", "/tenants/db2/models/m/limits", { output_tokens_per_minute: 5 })
    expect(await modelLimit.json()).toEqual({ tenant: "db2", model: "m", limits: { output_tokens_per_minute: 5 } })
    const over = await call("db2", { max_tokens: 6 })
    expect(over.status).toBe(429)
    expect((await over.json() as { error: { message: string } }).error.message).toContain("output_tokens_per_minute of tenant db2, model m")
    // A price set at run time prices the next ledger rows; deleting it restores the file's.
    const price = await admin("PUT", "/prices/m", { input: 10, output: 20 })
    expect(await price.json()).toEqual({ model: "m", backend: null, input: 10, cached_input: 10, output: 20 })
    expect(await (await admin("GET", "/prices")).json()).toEqual({
      object: "list",
      data: [{ model: "m", backend: null, input: 10, cached_input: 10, output: 20 }]
    })
    const priced = await call("db2", { max_tokens: 2 })
    expect(priced.status).toBe(200)
    await priced.text()
    const snap = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.some((r) => r.tenant === "db2" && r.costUsd > 0.0001))
    // 5 prompt tokens at $10 and 2 output at $20 per million.
    expect(snap.recent.filter((r) => r.tenant === "db2").at(-1)?.costUsd).toBeCloseTo(0.00009, 12)
    expect((await admin("PUT", "/prices/m", { input: 1, output: 1, backend: "zz" })).status).toBe(400)
    expect(await (await admin("DELETE", "/prices/m")).json()).toEqual({
      object: "list",
      data: [{ model: "m", backend: null, input: 1000, cached_input: 1000, output: 1000 }]
    })
  })

  it("holds nothing once every request has settled", async () => {
    const snap = await eventually(() => gw.run(gw.budget.snapshot), (s) => s.openReservations === 0)
    expect({ open: snap.openReservations, reserved: snap.reservedTokens, twice: snap.doubleSettlements }).toEqual({ open: 0, reserved: 0, twice: 0 })
  })
})

/**
 * The tenant on every record of a request, with bounded metric cardinality: through the real
 * gateway graph, an authenticator extension that takes the tenant from a header (as any
 * extension may: its tenants are not bounded by the gateway) serves 1,000 distinct tenants;
 * `/metrics` then holds a `tenant` label only for the tenants the config declares, `default`,
 * `other` and `none`, on the request, token and TTFT series, while each log line and ledger
 * record keeps the tenant and key id by name.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { TenantId } from "../../src/domain/Ids.ts"
import { Authenticators } from "../../src/extensions/Registries.ts"
import { tenantLabel } from "../../src/observability/Metrics.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const TENANTS = 1000

const headerTenant = Authenticators.add({
  name: "header_tenant",
  authenticate: (credentials) => {
    const tenant = credentials.headers["x-tenant"]
    return Effect.succeed(tenant === undefined ? undefined : { tenant: TenantId(tenant), keyId: `key-${tenant}`, via: "header_tenant" })
  }
})

const labelValues = (text: string, metric: string): ReadonlySet<string> => {
  const values = new Set<string>()
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric}_bucket{`) && !line.startsWith(`${metric}_count{`)) continue
    const m = /[{,]tenant="([^"]*)"/.exec(line)
    values.add(m === null ? "(no label)" : m[1]!)
  }
  return values
}

describe("tenant label cardinality", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    engine = await Fake.start()
    gw = await startGateway(
      `
models: [{ name: m }]
backends:
  - { id: a, url: ${engine.url}, models: [m], max_concurrency: 64 }
auth:
  authenticators: [header_tenant]
  tenants: { acme: { name: Acme }, beta: {} }
`,
      { extensions: headerTenant }
    )
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("labels declared tenants by name and the other 1,000 as `other`, however many there are", async () => {
    const tenants = ["acme", "beta", ...Array.from({ length: TENANTS }, (_, i) => `t-${i}-${Math.random().toString(36).slice(2)}`)]
    const send = (tenant: string | undefined, i: number) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(tenant === undefined ? {} : { "x-tenant": tenant }) },
        body: JSON.stringify({ model: "m", stream: i % 2 === 0, messages: [{ role: "user", content: "hi" }] })
      }).then(async (r) => {
        await r.text()
        return r.status
      })
    const statuses: Array<number> = []
    for (let i = 0; i < tenants.length; i += 25) {
      statuses.push(...await Promise.all(tenants.slice(i, i + 25).map((t, j) => send(t, i + j))))
    }
    expect(statuses.every((s) => s === 200)).toBe(true)
    // No credentials at all: refused before a tenant is known.
    expect(await send(undefined, 1)).toBe(401)

    const settled = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.records >= tenants.length, 10_000)
    expect(settled.records).toBe(tenants.length)
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    expect(labelValues(text, "sluice_requests_total")).toEqual(new Set(["acme", "beta", "other", "none"]))
    expect(labelValues(text, "sluice_tokens_total")).toEqual(new Set(["acme", "beta", "other"]))
    expect(labelValues(text, "sluice_time_to_first_token_seconds")).toEqual(new Set(["acme", "beta", "other"]))
    const other = /sluice_requests_total\{[^}]*tenant="other"[^}]*\} (\d+)/.exec(text)
    expect(Number(other?.[1])).toBe(TENANTS)

    // The log line and the ledger record keep the tenant and the key id by name.
    const line = gw.lines.find((l) => l.tenant === tenants[500])
    expect(line?.key_id).toBe(`key-${tenants[500]}`)
    const record = settled.recent.find((r) => r.tenant === tenants[999])
    expect(record?.keyId).toBe(`key-${tenants[999]}`)
  }, 120_000)

  it("maps names without a table lookup per series: declared, default, other, none", () => {
    const declared = new Map([["acme", {}]])
    expect(["acme", "default", "zzz", undefined].map((t) => tenantLabel(declared, t))).toEqual(["acme", "default", "other", "none"])
  })
})

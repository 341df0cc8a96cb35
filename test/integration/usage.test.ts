/**
 * The usage API on the real gateway graph against the machine's real PostgreSQL (keys and
 * the audit ledger both there): a tenant's key reads only its own tenant's usage, by model
 * and by day; no key or a bad key is a 401; the admin reads any tenant or all of them and a
 * wrong admin token is a 401; hostile query parameters get a 400, never another tenant's
 * rows. Fails, not skips, when PostgreSQL is not running. Cleans up only its own rows.
 */
import { ConfigProvider } from "effect"
import { execFileSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway, type TestGateway } from "../support/Gateway.ts"

const DATABASE_URL = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const TOKEN = "usage-admin-token-0123456789abcdef"
const run = `u${process.pid}x${Date.now().toString(36)}`
const A = `${run}-a`
const B = `${run}-b`

const psql = (query: string) => execFileSync("psql", [DATABASE_URL, "-tA", "-c", query]).toString().trim()

interface Sums {
  readonly requests: number
  readonly prompt_tokens: number
  readonly cached_tokens: number
  readonly completion_tokens: number
  readonly total_tokens: number
}
interface Report {
  readonly object: string
  readonly tenant: string | null
  readonly totals: Sums
  readonly by_model: ReadonlyArray<Sums & { readonly model: string }>
  readonly by_day: ReadonlyArray<Sums & { readonly day: string }>
  readonly by_tenant?: ReadonlyArray<Sums & { readonly tenant: string }>
  readonly data: ReadonlyArray<Sums & { readonly day: string; readonly model: string; readonly tenant?: string }>
  readonly error?: { readonly code: string; readonly param: string | null }
}

describe("usage API (PostgreSQL ledger)", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  const keys: Record<string, string> = {}

  const admin = (method: string, path: string, body?: unknown, token: string | null = TOKEN) =>
    fetch(`${gw.url}/admin/v1${path}`, {
      method,
      headers: { "content-type": "application/json", ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
  const usage = (query: string, headers: Record<string, string>) => fetch(`${gw.url}/v1/usage${query}`, { headers })
  const chat = async (key: string, model: string, stream = false) => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model, stream, messages: [{ role: "user", content: "hi" }] })
    })
    await res.text()
    expect(res.status).toBe(200)
  }

  beforeAll(async () => {
    engine = await Fake.start((model) =>
      model === "m"
        ? { usage: { prompt_tokens: 100, completion_tokens: 7, cached_tokens: 40 } }
        : { usage: { prompt_tokens: 30, completion_tokens: 5 } }
    )
    gw = await startGateway(
      `
models: [{ name: m }, { name: other }]
backends:
  - { id: a, url: ${engine.url}, models: [m, other] }
`,
      { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({ SLUICE_ADMIN_TOKEN: TOKEN, DATABASE_URL })) }
    )
    for (const tenant of [A, B]) {
      const res = await admin("POST", `/tenants/${tenant}/keys`, { name: "usage-test" })
      if (res.status === 404) {
        expect((await admin("POST", "/tenants", { id: tenant })).status).toBe(201)
        const again = await admin("POST", `/tenants/${tenant}/keys`, { name: "usage-test" })
        expect(again.status).toBe(201)
        keys[tenant] = ((await again.json()) as { key: string }).key
      } else {
        expect(res.status).toBe(201)
        keys[tenant] = ((await res.json()) as { key: string }).key
      }
    }
    // A: 3 × m (one streamed) and 1 × other; B: 2 × other.
    await chat(keys[A]!, "m")
    await chat(keys[A]!, "m", true)
    await chat(keys[A]!, "m")
    await chat(keys[A]!, "other")
    await chat(keys[B]!, "other")
    await chat(keys[B]!, "other", true)
    // The settlement runs after the client's last byte; then the batch reaches PostgreSQL.
    const deadline = performance.now() + 10_000
    while ((await gw.run(gw.sink.snapshot)).records < 6 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    await gw.run(gw.sink.flushed)
  }, 60_000)

  afterAll(async () => {
    await gw?.close()
    await engine?.close()
    psql(`DELETE FROM sluice_usage WHERE tenant IN ('${A}', '${B}')`)
    psql(`DELETE FROM sluice_keys WHERE tenant_id IN ('${A}', '${B}')`)
    psql(`DELETE FROM sluice_tenants WHERE id IN ('${A}', '${B}')`)
  })

  it("writes the tenant and the key id on every ledger row", () => {
    const rows = psql(`SELECT tenant, key_id FROM sluice_usage WHERE tenant IN ('${A}', '${B}') ORDER BY tenant`).split("\n")
    expect(rows).toHaveLength(6)
    const keyIdOf = (key: string) => key.split("-")[2]
    expect(rows.filter((r) => r === `${A}|${keyIdOf(keys[A]!)}`)).toHaveLength(4)
    expect(rows.filter((r) => r === `${B}|${keyIdOf(keys[B]!)}`)).toHaveLength(2)
  })

  it("gives a tenant's key its own usage only, by model and by day", async () => {
    const res = await usage("", { authorization: `Bearer ${keys[A]}` })
    expect(res.status).toBe(200)
    const r = (await res.json()) as Report
    expect(r.tenant).toBe(A)
    expect(r.totals).toEqual({ requests: 4, prompt_tokens: 330, cached_tokens: 120, completion_tokens: 26, total_tokens: 356 })
    expect(r.by_model).toEqual([
      { model: "m", requests: 3, prompt_tokens: 300, cached_tokens: 120, completion_tokens: 21, total_tokens: 321 },
      { model: "other", requests: 1, prompt_tokens: 30, cached_tokens: 0, completion_tokens: 5, total_tokens: 35 }
    ])
    const today = new Date().toISOString().slice(0, 10)
    expect(r.by_day).toEqual([{ day: today, ...r.totals }])
    expect(r.by_tenant).toBeUndefined()
    expect(JSON.stringify(r)).not.toContain(B)

    // Anthropic-style header, the other tenant: its own figures.
    const b = (await (await usage("", { "x-api-key": keys[B]! })).json()) as Report
    expect(b.tenant).toBe(B)
    expect(b.totals).toEqual({ requests: 2, prompt_tokens: 60, cached_tokens: 0, completion_tokens: 10, total_tokens: 70 })
    expect(JSON.stringify(b)).not.toContain(A)
  })

  it("never lets a key name another tenant (the parameter is refused, nothing is read)", async () => {
    for (const query of [`?tenant=${B}`, `?from=2020-01-01&tenant=${B}`, `?tenant=${B}&tenant=${A}`]) {
      const res = await usage(query, { authorization: `Bearer ${keys[A]}` })
      expect(res.status).toBe(400)
      const body = await res.text()
      expect(body).not.toContain("prompt_tokens")
      expect(JSON.parse(body).error.param).toBe("tenant")
    }
  })

  it("answers 401 without a key, with a malformed one and with another tenant's key id and a wrong secret", async () => {
    const forged = keys[B]!.slice(0, -4) + "AAAA"
    for (const headers of [{}, { authorization: "Bearer garbage" }, { "x-api-key": "nope" }, { authorization: `Bearer ${forged}` }]) {
      const res = await usage("", headers)
      expect(res.status).toBe(401)
      const body = (await res.json()) as Report
      expect(body.error?.code).toBe("invalid_api_key")
    }
  })

  it("refuses hostile or unbounded query parameters with a 400 naming the parameter", async () => {
    const auth = { authorization: `Bearer ${keys[A]}` }
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["?from=yesterday", "from"],
      ["?to=2026-13-45", "to"],
      ["?from=2020-01-01&to=2026-01-01", "from"],
      ["?from=2026-12-02&to=2026-12-01", "from"],
      [`?from=${"9".repeat(10_000)}`, "from"],
      ["?limit=5", "limit"]
    ]
    for (const [query, param] of cases) {
      const res = await usage(query, auth)
      expect(res.status).toBe(400)
      expect(((await res.json()) as Report).error?.param).toBe(param)
    }
    const post = await fetch(`${gw.url}/v1/usage`, { method: "POST", headers: auth, body: "{}" })
    expect([post.status, post.headers.get("allow"), ((await post.json()) as Report).error?.code]).toEqual([405, "GET", "method_not_allowed"])
    // A range that holds nothing of A's.
    const old = (await (await usage("?from=2021-01-01&to=2021-01-31", auth)).json()) as Report
    expect(old.totals.requests).toBe(0)
  })

  it("lets the admin read one tenant or every tenant, and refuses a wrong admin token", async () => {
    const one = (await (await admin("GET", `/usage?tenant=${B}`)).json()) as Report
    expect(one.tenant).toBe(B)
    expect(one.totals.requests).toBe(2)
    const all = (await (await admin("GET", "/usage")).json()) as Report
    expect(all.tenant).toBeNull()
    const mine = all.by_tenant?.filter((t) => t.tenant === A || t.tenant === B).map((t) => [t.tenant, t.requests])
    expect(mine).toEqual([[A, 4], [B, 2]])
    for (const token of [null, "wrong", keys[A]!]) {
      const res = await admin("GET", `/usage?tenant=${B}`, undefined, token)
      expect(res.status).toBe(401)
      expect(await res.text()).not.toContain("prompt_tokens")
    }
  })

  it("reads the ledger rows themselves (figures equal a direct SQL sum)", async () => {
    const [requests, prompt, completion] = psql(
      `SELECT count(*), sum(prompt_tokens), sum(completion_tokens) FROM sluice_usage WHERE tenant = '${A}'`
    ).split("|").map(Number)
    const r = (await (await usage("", { authorization: `Bearer ${keys[A]}` })).json()) as Report
    expect([r.totals.requests, r.totals.prompt_tokens, r.totals.completion_tokens]).toEqual([requests, prompt, completion])
  })
})

describe("usage API when the ledger's PostgreSQL does not answer", () => {
  it("is a 503 in the envelope with retry-after, never a hang or a 500", async () => {
    const engine = await Fake.start()
    const gw = await startGateway(
      `
backends:
  - { id: a, url: ${engine.url}, models: [m] }
auth: none
`,
      { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({ DATABASE_URL: "postgres://postgres@127.0.0.1:1/none" })) }
    )
    try {
      const res = await fetch(`${gw.url}/v1/usage`)
      expect(res.status).toBe(503)
      expect(res.headers.get("retry-after")).toBe("1")
      expect(((await res.json()) as Report).error?.code).toBe("usage_unavailable")
    } finally {
      await gw.close()
      await engine.close()
    }
  }, 30_000)
})

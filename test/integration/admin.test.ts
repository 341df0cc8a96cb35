/**
 * The admin API on the real gateway graph: the token (missing, wrong, right, not configured),
 * tenants and keys end to end (create → use → list without secrets → rotate → expire →
 * revoke → disable the tenant), and its errors in the OpenAI envelope.
 */
import { ConfigProvider } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway, type TestGateway } from "../support/Gateway.ts"

const TOKEN = "admin-token-for-tests-0123456789"

/** The fields these tests read from admin answers (the wire shape is documented in src/http/Admin.ts). */
interface Answer {
  readonly id: string
  readonly key: string
  readonly status: string
  readonly expires_at: string
  readonly replaces: { readonly id: string; readonly expires_at: string }
  readonly error: { readonly code: string; readonly param: string | null; readonly message: string }
}
const read = async (res: Response): Promise<Answer> => await res.json() as Answer
const yaml = (url: string) => `
models: [{ name: m }, { name: other }]
backends:
  - { id: a, url: ${url}, models: [m, other] }
`

describe("admin API", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  let bare: TestGateway

  const admin = (method: string, path: string, body?: unknown, token: string | null = TOKEN, target = () => gw) =>
    fetch(`${target().url}/admin/v1${path}`, {
      method,
      headers: { "content-type": "application/json", ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
  const chat = (key: string, model = "m") =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] })
    }).then(async (r) => {
      await r.text()
      return r.status
    })

  beforeAll(async () => {
    engine = await Fake.start(() => ({}))
    gw = await startGateway(yaml(engine.url), {
      extra: ConfigProvider.layer(ConfigProvider.fromUnknown({ SLUICE_ADMIN_TOKEN: TOKEN }))
    })
    bare = await startGateway(yaml(engine.url), { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({})) })
  })
  afterAll(async () => {
    await gw?.close()
    await bare?.close()
    await engine?.close()
  })

  it("is not there (404, like any unknown URL) when no admin token is configured", async () => {
    const res = await admin("GET", "/tenants", undefined, TOKEN, () => bare)
    expect(res.status).toBe(404)
    expect((await read(res)).error.code).toBe("unknown_url")
  })

  it("refuses requests without the token or with a wrong one (401), and never runs them", async () => {
    for (const token of [null, "wrong", TOKEN.slice(0, -1), `${TOKEN}x`]) {
      const res = await admin("POST", "/tenants", { id: "intruder" }, token)
      expect(res.status).toBe(401)
      expect(await res.json()).toEqual({
        error: { message: expect.stringContaining("admin token"), type: "invalid_request_error", param: null, code: "invalid_admin_token" }
      })
    }
    expect((await admin("GET", "/tenants/intruder")).status).toBe(404)
  })

  it("creates a tenant and a key; the key works at once; lists show no secret and no hash", async () => {
    const tenant = await admin("POST", "/tenants", { id: "acme", name: "ACME" })
    expect(tenant.status).toBe(201)
    expect(await tenant.json()).toMatchObject({ id: "acme", name: "ACME", status: "active", disabled_at: null })
    expect((await admin("POST", "/tenants", { id: "acme" })).status).toBe(409)

    const created = await admin("POST", "/tenants/acme/keys", { name: "ci", models: ["m"], expires_in: "30d" })
    expect(created.status).toBe(201)
    const key = await read(created)
    expect(key.key).toMatch(/^sk-sluice-[0-9A-Za-z]{12}-[0-9A-Za-z]{43}$/)
    expect(key).toMatchObject({ tenant: "acme", name: "ci", models: ["m"], status: "active", revoked_at: null })
    expect(Date.parse(key.expires_at) - Date.now()).toBeGreaterThan(29 * 86_400_000)

    expect(await chat(key.key)).toBe(200)
    expect(await chat(key.key, "other")).toBe(403)

    for (const path of ["/keys", "/tenants/acme/keys", `/keys/${key.id}`]) {
      const listed = await (await admin("GET", path)).text()
      expect(listed).toContain(key.id)
      expect(listed).not.toContain(key.key)
      expect(listed).not.toContain("argon2")
      expect(listed).not.toContain('"key"')
    }
  })

  it("rotates a key: a new key now, the old one valid until the grace ends", async () => {
    const key = await read(await admin("POST", "/tenants/acme/keys", { name: "rotating" }))
    const rotated = await admin("POST", `/keys/${key.id}/rotate`, { grace: "1h" })
    expect(rotated.status).toBe(201)
    const next = await read(rotated)
    expect(next.key).not.toBe(key.key)
    expect(next.replaces.id).toBe(key.id)
    expect(Date.parse(next.replaces.expires_at) - Date.now()).toBeLessThanOrEqual(3_600_000)
    expect(await chat(next.key)).toBe(200)
    expect(await chat(key.key)).toBe(200)
    // Ending the grace now: the old key stops at once (cached or not), the new one goes on.
    const expired = await admin("PATCH", `/keys/${key.id}`, { expires_at: new Date(Date.now() - 1000).toISOString() })
    expect(expired.status).toBe(200)
    expect((await read(expired)).status).toBe("expired")
    expect(await chat(key.key)).toBe(401)
    expect(await chat(next.key)).toBe(200)
    expect((await admin("POST", `/keys/${key.id}/rotate`)).status).toBe(400)
  })

  it("revokes a key (POST …/revoke and DELETE) and disables a tenant (DELETE)", async () => {
    const a = await read(await admin("POST", "/tenants/acme/keys", { name: "a" }))
    const b = await read(await admin("POST", "/tenants/acme/keys", { name: "b" }))
    expect(await chat(a.key)).toBe(200)
    const revoked = await admin("POST", `/keys/${a.id}/revoke`)
    expect((await read(revoked)).status).toBe("revoked")
    expect(await chat(a.key)).toBe(401)
    expect(await chat(b.key)).toBe(200)
    expect((await admin("DELETE", "/tenants/acme")).status).toBe(200)
    expect(await chat(b.key)).toBe(401)
    expect((await read(await admin("GET", "/tenants/acme"))).status).toBe("disabled")
    const enabled = await admin("PATCH", "/tenants/acme", { disabled: false })
    expect((await read(enabled)).status).toBe("active")
    expect(await chat(b.key)).toBe(200)
    expect((await admin("DELETE", `/keys/${b.id}`)).status).toBe(200)
    expect(await chat(b.key)).toBe(401)
  })

  it("answers bad requests with 400/404 in the envelope, never 500", async () => {
    const cases: ReadonlyArray<readonly [string, string, unknown, number, string | null]> = [
      ["POST", "/tenants", { id: "bad id!" }, 400, "tenant"],
      ["POST", "/tenants", { id: "x", color: "red" }, 400, "color"],
      ["POST", "/tenants", "[", 400, null],
      ["POST", "/tenants/nobody/keys", { name: "x" }, 404, "tenant"],
      ["POST", "/tenants/acme/keys", { name: "x", models: ["no-such-model"] }, 400, "models"],
      ["POST", "/tenants/acme/keys", { name: "x", expires_at: "yesterday" }, 400, "expires_at"],
      ["POST", "/tenants/acme/keys", { name: "x", expires_at: "2001-01-01T00:00:00Z" }, 400, "expires_at"],
      ["POST", "/tenants/acme/keys", {}, 400, "name"],
      ["GET", "/keys/nonexistent", undefined, 404, "key"],
      ["POST", "/keys/nonexistent/revoke", undefined, 404, "key"],
      ["PATCH", "/keys/nonexistent", {}, 400, "expires_at"],
      ["GET", "/tenants/nobody", undefined, 404, "tenant"]
    ]
    for (const [method, path, body, status, param] of cases) {
      const res = await fetch(`${gw.url}/admin/v1${path}`, {
        method,
        headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
        ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
      })
      const json = await read(res)
      expect([method, path, res.status], JSON.stringify(json)).toEqual([method, path, status])
      expect(json.error.param).toBe(param)
      expect(typeof json.error.message).toBe("string")
    }
  })
})

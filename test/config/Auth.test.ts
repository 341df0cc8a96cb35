/**
 * The `auth` section of the config file: `auth: none`, declared tenants and keys (hashes
 * only), defaults, and every rule Plan.ts enforces, each failing with the path that holds it.
 */
import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import * as Load from "../../src/config/Load.ts"

const base = `
models: [{ name: m, aliases: [m2] }]
backends: [{ id: a, url: "http://127.0.0.1:9/v1", models: [m] }]
`
const HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

const parse = (auth: string) => Effect.runPromiseExit(Load.parse(`${base}${auth}`, "test.yaml", {}))
const error = async (auth: string) => {
  const exit = await parse(auth)
  return Exit.isFailure(exit) ? String(exit.cause) : "no error"
}

describe("auth config", () => {
  it("defaults to API keys via the api_key authenticator, a 10k / 30 s cache and the default channel", async () => {
    const exit = await parse("")
    expect(Exit.isSuccess(exit) && exit.value.auth).toEqual({
      mode: "keys",
      authenticators: ["api_key"],
      cacheSize: 10_000,
      cacheTtlMs: 30_000,
      revocationChannel: "sluice:auth:revocations",
      tenants: new Map(),
      keys: new Map()
    })
  })

  it("`auth: none` is the anonymous authenticator only", async () => {
    const exit = await parse("auth: none")
    expect(Exit.isSuccess(exit) && [exit.value.auth.mode, exit.value.auth.authenticators]).toEqual(["none", ["anonymous"]])
  })

  it("reads declared tenants and keys", async () => {
    const exit = await parse(`
auth:
  cache_size: 50
  cache_ttl: 5s
  revocation_channel: my:channel
  tenants: { acme: { name: ACME }, globex: {} }
  keys:
    - { id: abcdefABCDEF, tenant: acme, name: ci, hash: "${HASH}", models: [m2], expires_at: "2030-01-01T00:00:00Z" }
`)
    expect(Exit.isSuccess(exit)).toBe(true)
    if (!Exit.isSuccess(exit)) return
    const a = exit.value.auth
    expect([a.cacheSize, a.cacheTtlMs, a.revocationChannel]).toEqual([50, 5000, "my:channel"])
    expect([...a.tenants]).toEqual([["acme", { name: "ACME" }], ["globex", { name: "globex" }]])
    expect(a.keys.get("abcdefABCDEF")).toEqual({
      id: "abcdefABCDEF",
      tenant: "acme",
      name: "ci",
      hash: HASH,
      models: ["m2"],
      expiresAtMs: Date.parse("2030-01-01T00:00:00Z")
    })
  })

  it("rejects what would be wrong, naming the path", async () => {
    const key = (fields: string) => `auth:\n  tenants: { acme: {} }\n  keys: [{ id: abcdefABCDEF, tenant: acme, hash: "${HASH}"${fields} }]`
    expect(await error("auth: some")).toContain("auth")
    expect(await error("auth: { cache_sise: 5 }")).toContain("cache_sise")
    expect(await error(key(", secret: x"))).toContain("secret")
    expect(await error(`auth:\n  keys: [{ id: abcdefABCDEF, tenant: nobody, hash: "${HASH}" }]`)).toContain(
      "auth.keys[0].tenant: tenant \"nobody\" is not declared under auth.tenants"
    )
    expect(await error(key(", models: [gpt-9]"))).toContain("auth.keys[0].models[0]: unknown model \"gpt-9\"")
    expect(await error(key(", expires_at: tomorrow"))).toContain("auth.keys[0].expires_at")
    expect(await error(`auth:\n  tenants: { acme: {} }\n  keys: [{ id: short, tenant: acme, hash: "${HASH}" }]`)).toContain("key id")
    expect(await error(`auth:\n  tenants: { acme: {} }\n  keys: [{ id: abcdefABCDEF, tenant: acme, hash: "sk-sluice-raw" }]`)).toContain(
      "Argon2id"
    )
    expect(await error(`auth:\n  tenants: { acme: {} }\n  keys:\n    - { id: abcdefABCDEF, tenant: acme, hash: "${HASH}" }\n    - { id: abcdefABCDEF, tenant: acme, hash: "${HASH}" }`))
      .toContain("auth.keys[1].id: duplicate key id")
  })
})

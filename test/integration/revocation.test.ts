/**
 * Three gateway replicas sharing the machine's real PostgreSQL (keys) and Redis (key events,
 * on a channel unique to this run): a key created on one works on all three, a revocation
 * on one reaches the other two within 1 s even though each had the key cached, and the
 * database holds only the key's Argon2id hash. Fails, never skips, without PostgreSQL or Redis.
 */
import { ConfigProvider, Effect } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway, type TestGateway } from "../support/Gateway.ts"

const databaseUrl = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const run = `${process.pid}-${Date.now().toString(36)}`

describe("revocation across replicas (PostgreSQL + Redis)", () => {
  let engine: Fake.FakeEngine
  const replicas: Array<TestGateway> = []

  const status = (gw: TestGateway, key: string) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] })
    }).then(async (r) => {
      await r.text()
      return r.status
    })

  beforeAll(async () => {
    engine = await Fake.start(() => ({}))
    for (let i = 0; i < 3; i++) {
      replicas.push(await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [m] }
auth: { revocation_channel: "sluice-test:revocations:${run}" }
`, { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({ DATABASE_URL: databaseUrl, REDIS_URL: redisUrl })) }))
    }
  })
  afterAll(async () => {
    // Only this run's rows: the tables are shared with other runs and never dropped. Best
    // effort and bounded: the rows are unique to this run and harmless if left, and a lock
    // held by some other process on the shared database must not hang the suite.
    const a = replicas[0]
    if (a !== undefined) {
      await a.run(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`DELETE FROM sluice_keys WHERE tenant_id = ${`rev-${run}`}`
        yield* sql`DELETE FROM sluice_tenants WHERE id = ${`rev-${run}`}`
      }).pipe(
        Effect.provide(a.database),
        Effect.timeout("5 seconds"),
        Effect.catchCause((cause) => Effect.sync(() => console.warn(`revocation test: rows of run ${run} left in place`, String(cause))))
      ))
    }
    for (const [i, gw] of replicas.entries()) {
      const t = performance.now()
      await gw.close()
      // A slow close is worth seeing in the log when a run goes over the hook's deadline.
      if (performance.now() - t > 2000) console.warn(`revocation test: replica ${i} took ${Math.round(performance.now() - t)} ms to close`)
    }
    await engine?.close()
  })

  it("revoked on one replica, refused by the two others within 1 s although they had it cached", async () => {
    const [a, b, c] = [replicas[0]!, replicas[1]!, replicas[2]!]
    const { key, record } = await a.run(a.keyAdmin.createKey({ tenant: `rev-${run}`, name: "ci", createTenant: true }))
    for (const gw of replicas) expect(await status(gw, key)).toBe(200)
    for (const gw of [b, c]) expect(gw.apiKeys.cache.get(record.id)).toBeDefined()

    const revokedAt = performance.now()
    await a.run(a.keyAdmin.revokeKey(record.id))
    expect(await status(a, key)).toBe(401)
    const reached: Array<number> = []
    for (const gw of [b, c]) {
      let code = await status(gw, key)
      while (code === 200 && performance.now() - revokedAt < 1000) {
        await new Promise((r) => setTimeout(r, 10))
        code = await status(gw, key)
      }
      expect(code).toBe(401)
      reached.push(performance.now() - revokedAt)
    }
    console.log(`revocation reached the other replicas after ${reached.map((ms) => ms.toFixed(1)).join(" / ")} ms`)
    expect(Math.max(...reached)).toBeLessThan(1000)
  })

  it("keeps only the Argon2id hash in the database: no column holds the key or its secret", async () => {
    const a = replicas[0]!
    const { key, record } = await a.run(a.keyAdmin.createKey({ tenant: `rev-${run}`, name: "stored", createTenant: true }))
    const rows = await a.run(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql`SELECT * FROM sluice_keys WHERE id = ${record.id}`
    }).pipe(Effect.provide(a.database)))
    expect(rows.length).toBe(1)
    const row = JSON.stringify(rows[0])
    expect(row).not.toContain(key)
    expect(row).not.toContain(key.slice(-43))
    expect(rows[0]!["hash"]).toMatch(/^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/)
  })
})

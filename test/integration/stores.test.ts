/**
 * The shared stores switch on with DATABASE_URL and REDIS_URL: a request through the real
 * gateway leaves its audit row in the machine's PostgreSQL and its budget window in the
 * machine's Redis. Fails, not skips, when either service is missing.
 */
import { ConfigProvider } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const databaseUrl = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

describe("shared stores (PostgreSQL audit, Redis budgets)", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })

  beforeAll(async () => {
    await redis.connect()
    engine = await Fake.start(() => ({ usage: { prompt_tokens: 13, completion_tokens: 2 } }))
    gw = await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [m] }
budgets: { tokens_per_window: 1000000, window: 1m }
# With DATABASE_URL the keys live in the shared PostgreSQL too, where other test runs leave
# keys (so keys would be required here); this test is about the audit row and the budget.
auth: none
`, { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({ DATABASE_URL: databaseUrl, REDIS_URL: redisUrl })) })
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
    await redis.quit()
  })

  it("writes the audit row to PostgreSQL and the budget window to Redis", async () => {
    const requestId = `stores-${process.pid}-${Date.now()}`
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": requestId },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true })
    })
    await res.text()
    await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.some((r) => r.requestId === requestId))
    await gw.run(gw.sink.flushed)
    const { execFileSync } = await import("node:child_process")
    const out = execFileSync("psql", [databaseUrl, "-tA", "-c",
      `SELECT outcome, prompt_tokens, completion_tokens FROM sluice_usage WHERE request_id = '${requestId}'`]).toString().trim()
    expect(out).toBe("completed|13|2")
    const window = Math.floor(Date.now() / 60_000)
    const used = await redis.hget(`sluice:budget:default:${window}`, "used")
    expect(Number(used)).toBeGreaterThanOrEqual(15)
  })
})

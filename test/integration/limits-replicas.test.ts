/**
 * Limits across three gateway replicas sharing the machine's real PostgreSQL (keys, ledger)
 * and Redis (every limit counter; tenants and keys unique to this run). The three are
 * driven together until every replica is refused three times in a row. Required, for each global limit:
 * - requests per minute: exactly the limit is admitted over the three;
 * - output tokens per minute and spend per day (the engine produces exactly the reserved
 *   output, so the estimate is exact): exactly the limit is admitted, never more;
 * - total tokens per minute (the estimate is an upper bound): what is charged stays within
 *   the limit and, once all three are refused, less than one request's estimate is left;
 * - the ledger rows in PostgreSQL (with their cost) equal what Redis counted: no double
 *   charge, no leak, nothing left reserved.
 * Fails, never skips, without PostgreSQL or Redis.
 */
import { ConfigProvider, Effect } from "effect"
import { SqlClient } from "effect/sql"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const databaseUrl = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const run = `${process.pid}-${Date.now().toString(36)}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const OUTPUT = 50
const tenants = { rpm: `rpm-${run}`, out: `out-${run}`, tok: `tok-${run}`, usd: `usd-${run}` } as const
const RPM = 25
const OUTPUT_PER_MINUTE = 1000
const TOKENS_PER_MINUTE = 1500
/** $1000 per million output tokens: each request's 50 tokens cost $0.05. */
const SPEND_PER_DAY = 1

describe("limits across three replicas (PostgreSQL + Redis)", () => {
  let engine: Fake.FakeEngine
  const replicas: Array<TestGateway> = []
  const keys = new Map<string, string>()
  let redis: Redis

  beforeAll(async () => {
    // The engine reports 1 prompt token (below any estimate) and exactly the output cap.
    engine = await Fake.start(() => ({ tokens: ["ok"], usage: { prompt_tokens: 1, completion_tokens: OUTPUT } }))
    const yaml = `
backends:
  - { id: a, url: ${engine.url}, models: [m] }
quotas:
  tenants:
    ${tenants.rpm}: { requests_per_minute: ${RPM} }
    ${tenants.out}: { output_tokens_per_minute: ${OUTPUT_PER_MINUTE} }
    ${tenants.tok}: { tokens_per_minute: ${TOKENS_PER_MINUTE} }
    ${tenants.usd}: { spend_per_day: ${SPEND_PER_DAY} }
prices:
  m: { input: 0, output: 1000 }
# Exactness holds while Redis answers: a command that times out on a starved machine (250 ms)
# must refuse (503, retried below), not admit from a local share.
budgets: { redis_down: fail_closed }
`
    const env = ConfigProvider.layer(ConfigProvider.fromUnknown({ DATABASE_URL: databaseUrl, REDIS_URL: redisUrl }))
    for (let i = 0; i < 3; i++) replicas.push(await startGateway(yaml, { extra: env }))
    const a = replicas[0]!
    for (const tenant of Object.values(tenants)) {
      keys.set(tenant, (await a.run(a.keyAdmin.createKey({ tenant, name: "ci", createTenant: true }))).key)
    }
    redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  })
  afterAll(async () => {
    const a = replicas[0]
    if (a !== undefined) {
      await a.run(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        for (const tenant of Object.values(tenants)) {
          yield* sql`DELETE FROM sluice_usage WHERE tenant = ${tenant}`
          yield* sql`DELETE FROM sluice_keys WHERE tenant_id = ${tenant}`
          yield* sql`DELETE FROM sluice_tenants WHERE id = ${tenant}`
        }
      }).pipe(Effect.provide(a.database)))
    }
    for (const gw of replicas) await gw.close()
    await engine?.close()
    if (redis !== undefined) {
      const left = await redis.keys(`sluice:limit:t:*-${run}:*`)
      if (left.length > 0) await redis.del(...left)
      await redis.quit()
    }
  }, 60_000)

  const call = async (gw: TestGateway, tenant: string, tries = 0): Promise<number> => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.get(tenant)}` },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hello there" }], max_tokens: OUTPUT })
    })
    const body = await res.json() as { error?: { code: string } }
    // Redis did not answer in time (fail_closed): neither admitted nor refused by a limit; again.
    if (res.status === 503 && tries < 50) {
      await sleep(100)
      return call(gw, tenant, tries + 1)
    }
    if (res.status !== 200 && res.status !== 429) throw new Error(`unexpected ${res.status}: ${JSON.stringify(body)}`)
    return res.status
  }

  /**
   * One request per replica first (its key's Argon2 check, once per replica, counted like
   * any other); then each replica, four clients each, sends until refused three times in a row.
   */
  const drive = async (tenant: string, warm: number) => {
    let admitted = warm
    await Promise.all(replicas.flatMap((gw) =>
      [0, 1, 2, 3].map(async () => {
        let refusals = 0
        for (let i = 0; i < 200 && refusals < 3; i++) {
          const status = await call(gw, tenant)
          if (status === 200) {
            admitted++
            refusals = 0
          } else refusals++
        }
      })
    ))
    return admitted
  }

  /** Redis counters of a tenant's limit: used and reserved, summed over its live buckets. */
  const counters = async (tenant: string, field: string) => {
    const found = await redis.keys(`sluice:limit:t:${tenant}:${field}:*`)
    let used = 0
    let reserved = 0
    for (const key of found) {
      const [u, r] = await redis.hmget(key, "used", "reserved")
      used += Number(u ?? 0)
      reserved += Number(r ?? 0)
    }
    return { used, reserved }
  }

  /** The tenant's rows in the PostgreSQL ledger, once every replica has flushed. */
  const ledger = async (tenant: string) => {
    for (const gw of replicas) await gw.run(gw.sink.flushed)
    const a = replicas[0]!
    const rows = await a.run(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql`SELECT prompt_tokens, completion_tokens, cost_usd, outcome FROM sluice_usage WHERE tenant = ${tenant}`
    }).pipe(Effect.provide(a.database)))
    return rows.map((r) => ({
      prompt: Number(r["prompt_tokens"]),
      completion: Number(r["completion_tokens"]),
      cost: Number(r["cost_usd"] ?? 0),
      outcome: String(r["outcome"])
    }))
  }

  const settled = () =>
    eventually(
      async () => {
        let open = 0
        for (const gw of replicas) open += (await gw.run(gw.budget.snapshot)).openReservations
        return open
      },
      (open) => open === 0,
      5000
    )

  it("each global limit holds across the three: rpm, output and total tokens per minute, spend per day", async () => {
    // The per-minute limits must be driven within one minute: start early in one.
    const intoMinute = Date.now() % 60_000
    if (intoMinute > 30_000) await sleep(60_000 - intoMinute + 50)

    // Each key's first use on each replica runs Argon2 once: done one at a time, first.
    const warm = new Map<string, number>()
    for (const tenant of Object.values(tenants)) {
      for (const gw of replicas) if (await call(gw, tenant) === 200) warm.set(tenant, (warm.get(tenant) ?? 0) + 1)
    }
    const [rpm, out, tok, usd] = await Promise.all(
      [tenants.rpm, tenants.out, tenants.tok, tenants.usd].map((t) => drive(t, warm.get(t) ?? 0))
    )
    await settled()
    console.log(JSON.stringify({ rpm, out, tok, usd }))

    // Requests and exact-estimate limits: exactly the limit, over all three replicas.
    expect(rpm).toBe(RPM)
    expect(out).toBe(OUTPUT_PER_MINUTE / OUTPUT)
    expect(usd).toBe(SPEND_PER_DAY / 0.05)

    // Total tokens: charged within the limit; less than one estimate left once all are refused.
    const tokRows = await ledger(tenants.tok)
    const tokCharged = tokRows.reduce((n, r) => n + r.prompt + r.completion, 0)
    expect(tokRows.length).toBe(tok)
    expect(tokCharged).toBeLessThanOrEqual(TOKENS_PER_MINUTE)
    const estimate = OUTPUT + 64 // the prompt estimate of one short message is well under 64 tokens
    expect(TOKENS_PER_MINUTE - tokCharged).toBeLessThan(estimate)

    // Redis counted exactly what the ledger holds; nothing stays reserved.
    expect(await counters(tenants.tok, "tokens_per_minute")).toEqual({ used: tokCharged, reserved: 0 })
    expect(await counters(tenants.rpm, "requests_per_minute")).toEqual({ used: RPM, reserved: 0 })
    const outRows = await ledger(tenants.out)
    expect(await counters(tenants.out, "output_tokens_per_minute")).toEqual({
      used: outRows.reduce((n, r) => n + r.completion, 0),
      reserved: 0
    })
    const usdRows = await ledger(tenants.usd)
    for (const r of usdRows) expect(r.cost).toBeCloseTo(0.05, 9)
    const spent = usdRows.reduce((n, r) => n + Math.round(r.cost * 1e6), 0)
    expect(await counters(tenants.usd, "spend_per_day")).toEqual({ used: spent, reserved: 0 })
    expect(spent).toBe(SPEND_PER_DAY * 1e6)
    for (const gw of replicas) expect((await gw.run(gw.budget.snapshot)).doubleSettlements).toBe(0)
  }, 90_000)
})

/**
 * Redis down must not let budgets run open (issue 9, item 12). Three gateway instances
 * share one Redis (a redis-server of this test's own; the shared one is never touched)
 * with a 60,000 tokens/min budget and `redis_down: local_share` for 3 replicas. Redis is
 * frozen (SIGSTOP: it answers nothing, keeps its data) for 10 s under load, then thawed.
 * Required: while it is down each instance spends at most its local share, 429s appear,
 * the window is not overspent by more than one share; every settlement that could not
 * reach Redis is applied when it returns, exactly once (Redis `used` equals what clients
 * were charged, no reservation leaks).
 */
import { ConfigProvider } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"
import * as RedisServer from "../support/RedisServer.ts"

const LIMIT = 60_000
const SHARE = 1 / 3
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Outcome {
  readonly instance: number
  readonly sentAt: number
  readonly doneAt: number
  readonly status: number
  readonly charged: number
}

const call = async (gw: TestGateway, instance: number, i: number): Promise<Outcome> => {
  const sentAt = performance.now()
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: `request ${i}` }], max_tokens: 500 })
  })
  const body = await res.json() as { usage?: { total_tokens: number }; error?: { code: string } }
  return { instance, sentAt, doneAt: performance.now(), status: res.status, charged: res.status === 200 ? body.usage?.total_tokens ?? 0 : 0 }
}

describe("token budgets while Redis is down (three instances)", () => {
  let redis: RedisServer.RedisServer
  let engine: Fake.FakeEngine
  let gateways: Array<TestGateway> = []

  beforeAll(async () => {
    redis = await RedisServer.start()
    engine = await Fake.start(() => ({ tokens: ["ok"], usage: { prompt_tokens: 10, completion_tokens: 490 } }))
    const yaml = `
backends:
  - { id: fake, url: ${engine.url}, models: [m] }
budgets: { tokens_per_window: ${LIMIT}, window: 1m, redis_down: local_share, replicas: 3 }
`
    const env = ConfigProvider.layer(ConfigProvider.fromUnknown({ REDIS_URL: redis.url }))
    gateways = await Promise.all([0, 1, 2].map(() => startGateway(yaml, { extra: env })))
  })
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()))
    await engine?.close()
    await redis?.stop()
  })

  it("spends at most the local share per instance while down and applies every queued settlement once", async () => {
    // The whole scenario must fit in one budget window (a minute): start early in one.
    const intoWindow = Date.now() % 60_000
    if (intoWindow > 38_000) await sleep(60_000 - intoWindow + 50)
    const window = Math.floor(Date.now() / 60_000)

    // Open loop: each instance gets a request every 150 ms whatever the answers take.
    const outcomes: Array<Outcome> = []
    const pending: Array<Promise<void>> = []
    let running = true
    const drivers = gateways.map(async (gw, instance) => {
      for (let i = 0; running; i++) {
        pending.push(call(gw, instance, i).then((o) => void outcomes.push(o)))
        await sleep(150)
      }
    })
    await sleep(2500)
    const frozenAt = performance.now()
    redis.freeze()
    await sleep(10_000)
    const thawedAt = performance.now()
    redis.thaw()
    await sleep(2000)
    running = false
    await Promise.all(drivers)
    await Promise.all(pending)

    const charged = outcomes.reduce((n, o) => n + o.charged, 0)
    const during = outcomes.filter((o) => o.sentAt > frozenAt && o.doneAt < thawedAt)
    const perInstance = [0, 1, 2].map((i) => during.filter((o) => o.instance === i).reduce((n, o) => n + o.charged, 0))
    console.log(JSON.stringify({ charged, perInstance, during: during.length, limited: during.filter((o) => o.status === 429).length }))
    // Each instance alone spends at most its share of the limit while Redis is down ...
    for (const spent of perInstance) expect(spent).toBeLessThanOrEqual(SHARE * LIMIT)
    // ... so the local policy bites (429s) and the window is overspent by at most one share.
    expect(during.filter((o) => o.status === 429).length).toBeGreaterThan(0)
    expect(charged).toBeLessThanOrEqual(LIMIT * (1 + SHARE))
    expect(during.filter((o) => o.status !== 200 && o.status !== 429)).toEqual([])
    // Queued settlements reach Redis once it is back; nothing stays reserved.
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 })
    const key = `sluice:budget:default:${window}`
    const state = await eventually(
      async () => ({ used: Number(await client.hget(key, "used")), reserved: Number(await client.hget(key, "reserved")) }),
      (s) => s.used === charged && s.reserved === 0,
      10_000
    )
    await client.quit()
    expect(state).toEqual({ used: charged, reserved: 0 })

    for (const gw of gateways) {
      const snap = await gw.run(gw.budget.snapshot)
      expect({ reserved: snap.reservedTokens, open: snap.openReservations, twice: snap.doubleSettlements }).toEqual({ reserved: 0, open: 0, twice: 0 })
    }
  }, 60_000)

  it("fail_closed: answers 503 budget_store_unavailable while Redis is down, and serves again when it is back", async () => {
    const gw = await startGateway(`
backends:
  - { id: fake, url: ${engine.url}, models: [m] }
budgets: { tokens_per_window: ${LIMIT}, window: 1h, redis_down: fail_closed }
`, { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({ REDIS_URL: redis.url })) })
    gateways.push(gw)
    const ask = () =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 5 })
      })
    expect((await ask()).status).toBe(200)
    redis.freeze()
    try {
      const refused = await ask()
      expect(refused.status).toBe(503)
      expect(refused.headers.get("retry-after")).toBe("1")
      expect(await refused.json()).toEqual({
        error: { message: expect.stringContaining("budget store is unreachable"), type: "server_error", param: null, code: "budget_store_unavailable" }
      })
    } finally {
      redis.thaw()
    }
    const back = await eventually(async () => (await ask()).status, (status) => status === 200, 5000)
    expect(back).toBe(200)
  })
})

/**
 * Deadlines that the lifecycle property found late, over real sockets: the first-token
 * deadline while an engine withholds its response headers. The headers wait used undici's
 * own headersTimeout, which runs on coarse timers (ticks of about half a second): a 350 ms
 * first-token deadline fired after 1.0–1.5 s, so a retry that followed it could run past
 * the request's total deadline (lifecycle property, seed 1, third run).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { median, streamChat } from "../support/Client.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

const FIRST_TOKEN_MS = 350

describe("deadlines", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    // The headers never come until the gateway leaves.
    engine = await Fake.start(() => ({ holdHeaders: true }))
    gw = await startGateway(`
backends:
  - { id: a, url: "${engine.url}", models: [m], metrics: none }
timeouts: { first_token: ${FIRST_TOKEN_MS}ms }
# Every request here fails the same way; the backend must stay routable.
health: { unhealthy_after: 1000 }
breakers: { min_requests: 1000 }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("ends the wait for withheld headers at the first-token deadline", async () => {
    const elapsed: Array<number> = []
    for (let i = 0; i < 5; i++) {
      const started = performance.now()
      const result = await streamChat(gw.url, { model: "m", stream: true, messages: [{ role: "user", content: "hello" }] })
      elapsed.push(performance.now() - started)
      expect(result.status).toBe(504)
    }
    // The first request also loads the tokenizer; the median is about the deadline.
    expect(median(elapsed)).toBeLessThan(FIRST_TOKEN_MS + 200)
    expect(await eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle))).toEqual(idle)
    expect(await eventually(async () => engine.active(), (n) => n === 0)).toBe(0)
  })
})

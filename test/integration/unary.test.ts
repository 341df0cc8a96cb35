/**
 * The unary request lifecycle where the answer is slow after its headers, over real
 * sockets: the total deadline bounds the whole answer (headers and body), and a client
 * that leaves while the body is still on its way costs nothing but its own request.
 * Both were found by the lifecycle property (test/properties/, seed 1, second run): a
 * unary answer whose headers came but whose body did not hung until the client gave up,
 * and the client giving up then crashed the process with an unhandled 'error' event.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { unaryChat } from "../support/Client.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

const body = { model: "m", messages: [{ role: "user", content: "hello" }], max_tokens: 16 }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("unary lifecycle", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  let seen: Array<() => void> = []
  const engineSaw = () => new Promise<void>((resolve) => seen.push(resolve))

  beforeAll(async () => {
    engine = await Fake.start(() => {
      for (const f of seen) f()
      seen = []
      // The headers go out at once; the body never comes until the gateway leaves.
      return { holdAfter: 0 }
    })
    gw = await startGateway(`
backends:
  - { id: a, url: "${engine.url}", models: [m], metrics: none }
timeouts: { first_token: 300ms, total: 600ms }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("ends an answer whose body does not come by the total deadline (504), releasing everything", async () => {
    const started = performance.now()
    // Bounded wait: a gateway without a deadline on the body would hold the client forever.
    const result = await unaryChat(gw.url, body, { headers: { "x-request-id": "unary-body-stall" }, abortWhen: sleep(5000) })
    const elapsed = performance.now() - started
    expect(result.aborted).toBe(false)
    expect(result.status).toBe(504)
    expect(JSON.parse(result.text)).toMatchObject({ error: { type: "timeout_error", code: "backend_timeout" } })
    expect(elapsed).toBeLessThan(3000)
    const snapshot = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.some((r) => r.requestId === "unary-body-stall"))
    const record = snapshot.recent.find((r) => r.requestId === "unary-body-stall")
    expect(record).toMatchObject({ outcome: "failed", charged: { promptTokens: 0, completionTokens: 0 } })
    expect(record?.attempts.map((a) => a.reason)).toEqual(["TotalTimeout"])
    expect(await eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle))).toEqual(idle)
    expect(await eventually(async () => engine.active(), (n) => n === 0)).toBe(0)
  })

  it("survives a client that leaves while the answer's body is on its way", async () => {
    const uncaught: Array<unknown> = []
    const onUncaught = (e: unknown) => uncaught.push(e)
    process.on("uncaughtException", onUncaught)
    try {
      // Leave once the engine has sent its headers and the gateway is reading the body.
      const leave = engineSaw().then(() => sleep(100))
      const result = await unaryChat(gw.url, body, { headers: { "x-request-id": "unary-leave-mid-body" }, abortWhen: leave })
      expect(result.aborted).toBe(true)
      expect(await eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle))).toEqual(idle)
      expect(await eventually(async () => engine.active(), (n) => n === 0)).toBe(0)
      // Node reports a stream's 'error' event on the next ticks.
      await sleep(50)
      expect(uncaught).toEqual([])
    } finally {
      process.off("uncaughtException", onUncaught)
    }
    const snapshot = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.some((r) => r.requestId === "unary-leave-mid-body"))
    expect(snapshot.recent.find((r) => r.requestId === "unary-leave-mid-body")).toMatchObject({ outcome: "client_aborted" })
  })
})

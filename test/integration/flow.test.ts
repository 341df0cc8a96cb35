/**
 * Flow control through the gateway (issue 15 item 1): a model whose every backend is saturated
 * (here: its only slot is taken) either queues the request in flow control until a request
 * ends (`on_saturation: queue`), or answers 429 with retry-after at once (`reject`); a queued
 * client that goes away leaves the queue at once. Depth and wait are metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const HOLD_MS = 1500

const metric = async (url: string, pattern: RegExp): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(pattern.exec(text)?.[1] ?? 0)
}

describe("flow control: waiting when every backend is saturated", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    // Each stream holds its backend's only slot for HOLD_MS.
    engine = await Fake.start(() => ({ tokens: ["a", "b"], gapMs: HOLD_MS }))
    gw = await startGateway(`
models:
  - { name: q, on_saturation: queue }
  - { name: r, on_saturation: reject }
backends:
  - { id: bq, url: ${engine.url}, models: [q], max_concurrency: 1 }
  - { id: br, url: ${engine.url}, models: [r], max_concurrency: 1 }
flow_control: { max_wait: 20s }
timeouts: { queue: 100ms, first_token: 20s, idle: 10s }
retries: { max_attempts: 1 }
health: { min_tokens_per_second: 0 }
breakers: { min_requests: 100000 }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  const send = (model: string, signal?: AbortSignal) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hold the slot" }], stream: true }),
      ...(signal === undefined ? {} : { signal })
    })

  it("queue: the second request waits for the first to end instead of failing on the slot wait", async () => {
    const first = await send("q")
    expect(first.status).toBe(200)
    const second = send("q")
    // Waiting in flow control (not for a slot: the slot wait is 100 ms and would have failed it).
    await eventually(() => metric(gw.url, /sluice_flow_queue_depth\{[^}]*model="q"[^}]*\} (\d+)/), (n) => n === 1, 5000)
    await first.text()
    const res = await second
    expect(res.status).toBe(200)
    expect(await res.text()).toContain("[DONE]")
    expect(await metric(gw.url, /sluice_flow_queue_wait_seconds_count\{[^}]*model="q"[^}]*\} (\d+)/)).toBeGreaterThanOrEqual(1)
  }, 30_000)

  it("queue: a client that goes away leaves the queue at once", async () => {
    const first = await send("q")
    const abort = new AbortController()
    const gone = send("q", abort.signal).catch(() => undefined)
    await eventually(() => metric(gw.url, /sluice_flow_queue_depth\{[^}]*model="q"[^}]*\} (\d+)/), (n) => n === 1, 5000)
    abort.abort()
    await gone
    await eventually(() => metric(gw.url, /sluice_flow_queue_depth\{[^}]*model="q"[^}]*\} (\d+)/), (n) => n === 0, 2000)
    await first.text()
  }, 30_000)

  it("reject: 429 with retry-after at once while the only backend is saturated", async () => {
    const first = await send("r")
    expect(first.status).toBe(200)
    const started = performance.now()
    const second = await send("r")
    expect(second.status).toBe(429)
    expect(performance.now() - started).toBeLessThan(HOLD_MS)
    expect(second.headers.get("retry-after")).not.toBeNull()
    expect(await second.json()).toMatchObject({ error: { type: "rate_limit_error", code: "saturated_reject" } })
    await first.text()
  }, 30_000)
})

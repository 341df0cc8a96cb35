/**
 * Issue 9, item 13: waiting that nobody sees. With more simultaneous streams than a backend has slots,
 * every request gets its response headers or a clean 503 within `timeouts.queue` (plus slack): the slot
 * wait is the only place a request waits for capacity (the upstream connection pool is never smaller than
 * the slots, so nothing queues inside the HTTP client), and every wait is measured
 * (`sluice_queue_wait_seconds{model,backend}`, `sluice_slot_queue_depth{backend}`).
 *
 * Before: 160 slots over the default pool of 128 connections; 32 streams waited inside undici until the
 * first-token deadline, past the queue timeout and invisible to it.
 */
import { request } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

const SLOTS = 160
const STREAMS = 240
const QUEUE_MS = 500
/** Processing time on top of the queue timeout, as the gateway measures it (request log). */
const GATEWAY_SLACK_MS = 1500
/**
 * How long each stream holds its slot. A stream that waited inside the HTTP client got its headers
 * only when an earlier stream ended, after HOLD_MS. This process is the clients, the gateway and
 * the engine: 240 requests at once cost it seconds of event-loop time on a loaded machine, so the
 * clients' own clocks are only held to "before any stream ended".
 */
const HOLD_MS = 7000

interface Outcome {
  readonly status: number
  readonly headersAfterMs: number
  readonly code: unknown
}

describe("waiting for capacity is queue time, bounded and measured", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    // The first token at once, then a long gap: each stream holds its slot (and its upstream
    // connection) for HOLD_MS, much longer than the queue timeout.
    engine = await Fake.start(() => ({ tokens: ["a", "b", "c"], gapMs: HOLD_MS / 2 }))
    gw = await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [m], max_concurrency: ${SLOTS} }
timeouts: { queue: ${QUEUE_MS}ms, first_token: 20s, idle: 10s }
retries: { max_attempts: 1 }
health: { min_tokens_per_second: 0 }
breakers: { min_requests: 100000 }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  const stream = (): Promise<Outcome> =>
    new Promise((resolve, reject) => {
      const started = performance.now()
      const req = request(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json" }
      }, (res) => {
        const headersAfterMs = performance.now() - started
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (d: string) => (body += d))
        res.on("end", () => {
          const code = res.statusCode === 200 ? undefined : (JSON.parse(body) as { error: { code: unknown } }).error.code
          resolve({ status: res.statusCode ?? 0, headersAfterMs, code })
        })
      })
      req.on("error", reject)
      req.end(JSON.stringify({ model: "m", messages: [{ role: "user", content: "hold the slot" }], stream: true }))
    })

  it("answers every stream with headers or a clean 503 within timeouts.queue, and meters the waits", async () => {
    const all = Array.from({ length: STREAMS }, () => stream())
    // While the excess waits for a slot, the queue shows on the gauge.
    const depth = (async () => {
      const until = performance.now() + HOLD_MS
      let seen = 0
      while (seen === 0 && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 50))
        const text = await (await fetch(`${gw.url}/metrics`)).text()
        seen = Number(/sluice_slot_queue_depth\{backend="a"\} (\d+)/.exec(text)?.[1] ?? 0)
      }
      return seen
    })()
    const outcomes = await Promise.all(all)
    // Seen from the gateway (the time it took to send headers: a stream's first token, or the
    // whole of a refused request), everything is within the queue timeout.
    await eventually(() => Promise.resolve(gw.lines.length), (n) => n >= STREAMS, HOLD_MS + 10_000)
    const inGateway = gw.lines.map((l) => (l.status === 200 ? l.ttft_ms ?? Infinity : l.duration_ms))
    expect(inGateway.filter((ms) => ms > QUEUE_MS + GATEWAY_SLACK_MS)).toEqual([])
    // Seen from the clients, whose event loop this process shares: nobody waited for a stream to end.
    expect(outcomes.filter((o) => o.headersAfterMs >= HOLD_MS - 1000)).toEqual([])
    expect(await depth).toBeGreaterThan(0)
    const served = outcomes.filter((o) => o.status === 200)
    const refused = outcomes.filter((o) => o.status !== 200)
    expect(served.length).toBe(SLOTS)
    expect(refused.every((o) => o.status === 503 && o.code === "backends_overloaded")).toBe(true)
    expect(refused.every((o) => o.headersAfterMs >= QUEUE_MS - 50)).toBe(true)

    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    const count = Number(/sluice_queue_wait_seconds_count\{[^}]*backend="a"[^}]*\} (\d+)/.exec(metrics)?.[1])
    const sum = Number(/sluice_queue_wait_seconds_sum\{[^}]*backend="a"[^}]*\} ([\d.e+-]+)/.exec(metrics)?.[1])
    expect(count).toBe(STREAMS)
    expect(sum).toBeGreaterThanOrEqual(((STREAMS - SLOTS) * (QUEUE_MS - 50)) / 1000)
    expect(metrics).toMatch(/sluice_upstream_queued\{backend="a"\} 0\b/)
    expect(await eventually(() => gw.held(), (h) => h.slots === 0 && h.upstreamOpen === 0, 10_000)).toEqual(idle)
  }, 60_000)
})

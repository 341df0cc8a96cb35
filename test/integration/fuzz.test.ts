/**
 * The seeded fuzz suite (issue 9, "Done when"): 5,000 generated hostile requests over real
 * sockets to the real gateway graph, in front of fake engines behind four dialects
 * (OpenAI, SGLang, Anthropic, Ollama; the last two answer in the wrong dialect, so their
 * answers fail as backend errors). Whatever the request: never a 500, never a hang, every
 * non-2xx in the OpenAI envelope, the process alive and ready afterwards, nothing held once
 * idle, no settlement twice, no prototype polluted.
 */
import { type IncomingMessage, request, Agent } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"
import { generateAll, type Spec } from "../support/Hostile.ts"

const SEED = 20_260_901
const COUNT = 5_000
const CONCURRENCY = 24
/** Every request must be answered within this (its own total timeout is 10 s). */
const ANSWER_WITHIN_MS = 20_000

interface Outcome {
  readonly spec: Spec
  readonly status: number
  readonly body: string
  readonly hung: boolean
  readonly error: string | undefined
  readonly ms: number
}

const send = (base: URL, agent: Agent, spec: Spec): Promise<Outcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    let settled = false
    const finish = (status: number, body: string, hung: boolean, error?: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve({ spec, status, body, hung, error, ms: performance.now() - started })
    }
    const req = request({
      host: base.hostname,
      port: base.port,
      method: spec.method,
      path: spec.path,
      headers: spec.body === undefined ? spec.headers : { ...spec.headers, "content-length": String(spec.body.length) },
      agent
    }, (res: IncomingMessage) => {
      const parts: Array<Buffer> = []
      let size = 0
      if (spec.abortAfterMs !== undefined) {
        setTimeout(() => {
          res.destroy()
          finish(res.statusCode ?? 0, "", false)
        }, spec.abortAfterMs)
      }
      res.on("data", (c: Buffer) => {
        // Keep what an envelope check needs; drain the rest.
        if (size < 64 * 1024) parts.push(c)
        size += c.length
      })
      res.on("end", () => finish(res.statusCode ?? 0, Buffer.concat(parts).toString("utf8"), false))
      res.on("error", (e) => finish(res.statusCode ?? 0, "", false, spec.abortAfterMs === undefined ? String(e) : undefined))
    })
    const timer = setTimeout(() => {
      req.destroy()
      finish(0, "", true)
    }, ANSWER_WITHIN_MS)
    req.on("error", (e) => finish(0, "", false, String(e)))
    if (spec.body !== undefined) req.end(spec.body)
    else req.end()
  })

const isEnvelope = (text: string): boolean => {
  try {
    const json: unknown = JSON.parse(text)
    if (typeof json !== "object" || json === null) return false
    const error = (json as Record<string, unknown>)["error"]
    if (typeof error !== "object" || error === null) return false
    const e = error as Record<string, unknown>
    return typeof e["message"] === "string" && e["message"] !== "" && typeof e["type"] === "string" && "param" in e && "code" in e
  } catch {
    return false
  }
}

describe("fuzz: 5,000 seeded hostile requests", () => {
  const engines: Array<Fake.FakeEngine> = []
  let gw: TestGateway

  beforeAll(async () => {
    for (let i = 0; i < 4; i++) engines.push(await Fake.start())
    const [a, b, c, d] = engines
    gw = await startGateway(`
models:
  - name: m
    aliases: [m-alias]
    max_output_tokens: 4096
    context_window: 32768
    max_n: 4
  - name: m-chars
    tokenizer: chars
  - name: m-sglang
  - name: m-anthropic
  - name: m-ollama
backends:
  - id: a
    url: ${a!.url}
    models: [m, m-chars]
  - id: b
    url: ${b!.url}
    dialect: sglang
    models: [m, m-sglang]
  - id: c
    url: ${c!.url}
    dialect: anthropic
    models: [m-anthropic]
  - id: d
    url: ${d!.url}
    dialect: ollama
    models: [m-ollama]
timeouts: { first_token: 2s, idle: 2s, total: 10s, queue: 2s }
# The Anthropic and Ollama backends fail every answer (wrong dialect): keep them in rotation
# so every request reaches its translator instead of a 503 from an open breaker.
health: { unhealthy_after: 1000000 }
breakers: { min_requests: 1000000 }
`)
  })
  afterAll(async () => {
    await gw?.close()
    for (const e of engines) await e.close()
  })

  it("answers every one: never a 500, never a hang, every error in the envelope; then idle, ready and unpolluted", async () => {
    const specs = generateAll(SEED, COUNT, { names: ["m", "m-alias", "m-chars", "m-sglang", "m-anthropic", "m-ollama", "nope"] })
    const base = new URL(gw.url)
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY })
    const outcomes: Array<Outcome> = []
    const started = performance.now()
    const cpu = process.cpuUsage()
    let next = 0
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < specs.length) {
        const spec = specs[next++]!
        outcomes.push(await send(base, agent, spec))
      }
    }))
    agent.destroy()
    const elapsed = performance.now() - started
    const used = process.cpuUsage(cpu)

    const codes = new Map<string, number>()
    for (const o of outcomes) {
      if (o.status < 400) continue
      const code = /"code":"?([^",}]*)/.exec(o.body)?.[1] ?? "none"
      codes.set(`${o.status}:${code}`, (codes.get(`${o.status}:${code}`) ?? 0) + 1)
    }
    const byStatus = new Map<number, number>()
    const byKind = new Map<string, number>()
    for (const o of outcomes) {
      byStatus.set(o.status, (byStatus.get(o.status) ?? 0) + 1)
      const kind = o.spec.kind.split(":")[0]!
      byKind.set(kind, (byKind.get(kind) ?? 0) + 1)
    }
    console.log(
      `fuzz: ${outcomes.length} requests in ${(elapsed / 1000).toFixed(1)} s (${((used.user + used.system) / 1e6).toFixed(1)} s CPU, client and engines included); statuses ${
        JSON.stringify(Object.fromEntries([...byStatus].sort((x, y) => x[0] - y[0])))
      }; kinds ${JSON.stringify(Object.fromEntries(byKind))}; error codes ${JSON.stringify(Object.fromEntries(codes))}; slowest ${Math.max(...outcomes.map((o) => o.ms)).toFixed(0)} ms`
    )

    const show = (o: Outcome) => `${o.spec.kind} ${o.spec.method} ${o.spec.path.slice(0, 80)} → ${o.status} ${o.error ?? ""} ${o.body.slice(0, 200)}`
    expect(outcomes.length).toBe(COUNT)
    expect(outcomes.filter((o) => o.hung).map(show)).toEqual([])
    expect(outcomes.filter((o) => o.status >= 500 && o.status !== 502 && o.status !== 503 && o.status !== 504).map(show)).toEqual([])
    // A transport error is only expected where the client itself hung up.
    expect(outcomes.filter((o) => o.error !== undefined && o.spec.abortAfterMs === undefined).map(show)).toEqual([])
    const unwrapped = outcomes.filter((o) =>
      o.status >= 400 && o.spec.method !== "HEAD" && o.spec.abortAfterMs === undefined && !isEnvelope(o.body)
    )
    expect(unwrapped.map(show)).toEqual([])
    // Every kind was exercised, and both refusals and successes happened.
    expect(byKind.size).toBeGreaterThanOrEqual(12)
    expect([...byStatus.keys()].some((s) => s >= 200 && s < 300)).toBe(true)
    expect(byStatus.get(400) ?? 0).toBeGreaterThan(1000)
    // The gateway logged no 500 either (what the client saw is what the log says).
    expect(gw.lines.filter((l) => l.status === 500).length).toBe(0)

    // Alive, ready, nothing held, settled once, no prototype touched.
    const ready = await fetch(`${gw.url}/health/ready`)
    expect(ready.status).toBe(200)
    expect(await eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle), 10_000)).toEqual(idle)
    const budget = await gw.run(gw.budget.snapshot)
    expect(budget.doubleSettlements).toBe(0)
    expect(budget.reservedTokens).toBe(0)
    const probe: Record<string, unknown> = {}
    expect(probe["polluted"]).toBeUndefined()
    expect(probe["n"]).toBeUndefined()
    expect(Object.prototype).not.toHaveProperty("polluted")
    // And it still serves.
    const ok = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "still there?" }] })
    })
    expect(ok.status).toBe(200)
  }, 120_000)
})

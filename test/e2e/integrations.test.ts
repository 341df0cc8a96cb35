/**
 * What `npm start` ships, with every optional integration switched on (issue 9, item 14):
 * the built bundle as a child process with `REDIS_URL` (the machine's Redis),
 * `DATABASE_URL` (the machine's PostgreSQL), `OTEL_EXPORTER_OTLP_ENDPOINT` (a tiny
 * OTLP/HTTP receiver in this test) and `--workers 2`, in front of simulated engines. Real
 * traffic through the official `openai` SDK (streamed and unary), then proof that each
 * integration was used: ledger rows in PostgreSQL, the budget window in Redis, spans at the
 * receiver, two worker pids answering; and a clean exit on SIGTERM.
 */
import { execFileSync } from "node:child_process"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Redis } from "ioredis"
import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Sluice from "./support/Sluice.ts"

const databaseUrl = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Collects the span names posted to /v1/traces (OTLP/HTTP JSON). */
const otlpReceiver = async () => {
  const spans: Array<string> = []
  const server: Server = createServer((req, res) => {
    let body = ""
    req.setEncoding("utf8")
    req.on("data", (c: string) => (body += c))
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const parsed = JSON.parse(body) as {
          resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: Array<{ name: string }> }> }>
        }
        for (const rs of parsed.resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push(s.name)
        }
      }
      res.writeHead(200, { "content-type": "application/json" })
      res.end("{}")
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () => new Promise<void>((r) => server.close(() => r()))
  }
}

describe("the bundle with REDIS_URL, DATABASE_URL, OTLP and --workers 2", () => {
  let otlp: Awaited<ReturnType<typeof otlpReceiver>>
  let sluice: Sluice.Sluice
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  const prefix = `e2e-${process.pid}-${Date.now()}`

  beforeAll(async () => {
    await redis.connect()
    otlp = await otlpReceiver()
    sluice = await Sluice.start({
      yaml: `
models:
  - { name: llama-3.1-8b, max_output_tokens: 256 }
backends:
  - id: sim-a
    simulate: { profile: llama-3.1-8b-fp8-h100, time_scale: 20, seed: 1 }
    models: [llama-3.1-8b]
  - id: sim-b
    simulate: { profile: llama-3.1-8b-fp8-h100, time_scale: 20, seed: 2 }
    models: [llama-3.1-8b]
budgets: { tokens_per_window: 50000000, window: 1m }
timeouts: { drain: 5s }
auth: none
`,
      args: ["--workers", "2"],
      env: { REDIS_URL: redisUrl, DATABASE_URL: databaseUrl, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_SERVICE_NAME: "sluice-e2e" }
    })
    // Both workers listen before traffic starts.
    const deadline = performance.now() + 15_000
    while (sluice.lines.filter((l) => l.includes("\"sluice listening\"")).length < 2 && performance.now() < deadline) await sleep(100)
  })
  afterAll(async () => {
    await Sluice.stopAll()
    await otlp?.close()
    await redis.quit()
  })

  it("serves streamed and unary chat through the openai SDK, using every integration, and exits cleanly on SIGTERM", async () => {
    const client = new OpenAI({ baseURL: `${sluice.url}/v1`, apiKey: "unused", maxRetries: 0 })
    const windowKeys = () => {
      const window = Math.floor(Date.now() / 60_000)
      return [window - 1, window, window + 1].map((w) => `sluice:budget:default:${w}`)
    }
    const usedNow = async () => (await Promise.all(windowKeys().map((k) => redis.hget(k, "used")))).reduce((n, v) => n + Number(v ?? 0), 0)
    const usedBefore = await usedNow()
    // The usage API of the bundle reads the Postgres ledger (tenant default under auth: none;
    // other suites may write default rows too, so "at least").
    const defaultRequests = async () =>
      ((await (await fetch(`${sluice.url}/v1/usage`)).json()) as { totals: { requests: number } }).totals.requests
    const requestsBefore = await defaultRequests()
    let charged = 0
    const ids: Array<string> = []
    for (let i = 0; i < 24; i++) {
      const id = `${prefix}-${i}`
      ids.push(id)
      // A fresh connection per request, so the cluster spreads them over both workers.
      const options = { headers: { "x-request-id": id, connection: "close" } }
      if (i % 2 === 0) {
        const res = await client.chat.completions.create({
          model: "llama-3.1-8b",
          messages: [{ role: "user", content: `unary ${i}` }],
          max_tokens: 16
        }, options)
        expect(res.choices[0]!.message.content?.length ?? 0).toBeGreaterThan(0)
        expect(res.usage?.completion_tokens ?? 0).toBeGreaterThan(0)
        charged += res.usage?.total_tokens ?? 0
      } else {
        const stream = await client.chat.completions.create({
          model: "llama-3.1-8b",
          messages: [{ role: "user", content: `stream ${i}` }],
          max_tokens: 16,
          stream: true,
          stream_options: { include_usage: true }
        }, options)
        let text = ""
        let usage: OpenAI.CompletionUsage | null | undefined
        for await (const chunk of stream) {
          text += chunk.choices[0]?.delta.content ?? ""
          if (chunk.usage) usage = chunk.usage
        }
        expect(text.length).toBeGreaterThan(0)
        expect(usage?.completion_tokens ?? 0).toBeGreaterThan(0)
        charged += usage?.total_tokens ?? 0
      }
    }

    // Two worker processes answered (the request log line names its pid).
    const requestPids = new Set(Sluice.jsonLines(sluice.lines)
      .filter((l) => l["msg"] === "request" && typeof l["request_id"] === "string" && l["request_id"].startsWith(prefix))
      .map((l) => l["pid"]))
    expect(requestPids.size).toBe(2)
    expect(requestPids.has(sluice.pid)).toBe(false)

    // The budget window lives in Redis: it was charged at least what these requests used
    // (other suites may share the machine's Redis, so at least, not exactly).
    // Settlement runs after the last byte reaches the client: poll (bounded) for the last one.
    expect(charged).toBeGreaterThan(0)
    const settleBy = performance.now() + 5_000
    let used = (await usedNow()) - usedBefore
    while (used < charged && performance.now() < settleBy) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      used = (await usedNow()) - usedBefore
    }
    expect(used).toBeGreaterThanOrEqual(charged)

    // Spans arrive at the OTLP receiver (exported every 2 s).
    const deadline = performance.now() + 10_000
    while (otlp.spans.filter((s) => s === "Gateway.chat").length < ids.length && performance.now() < deadline) await sleep(200)
    expect(otlp.spans.filter((s) => s === "Gateway.chat").length).toBeGreaterThanOrEqual(ids.length)

    // Once the ledger has written them, the usage API counts them.
    const counted = performance.now() + 10_000
    let reported = (await defaultRequests()) - requestsBefore
    while (reported < ids.length && performance.now() < counted) {
      await sleep(200)
      reported = (await defaultRequests()) - requestsBefore
    }
    expect(reported).toBeGreaterThanOrEqual(ids.length)

    // SIGTERM: workers drain, the ledger is flushed, the process exits 0.
    expect(await sluice.kill("SIGTERM")).toEqual({ code: 0, signal: null })
    const rows = execFileSync("psql", [databaseUrl, "-tA", "-c",
      `SELECT request_id, outcome FROM sluice_usage WHERE request_id LIKE '${prefix}-%'`]).toString().split("\n").filter((l) => l !== "")
    expect(rows.length).toBe(ids.length)
    expect(rows.every((r) => r.endsWith("|completed"))).toBe(true)
  }, 60_000)
})

/**
 * PostgreSQL down at boot and under load (issue 9, item 11), with the shipped bundle:
 * Sluice starts and serves while the database is unreachable (a TCP gate in front of the
 * machine's real server, closed), journals every record, holds at most `ledger.queue` of
 * them in memory (the rest wait in the journal only), retries the database with a bounded
 * backoff (connection attempts per second stay low however many records queue), and when
 * the gate opens it migrates and writes every row exactly once, in order, from memory and
 * from the journal.
 */
import { execFileSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import * as Gate from "./support/Gate.ts"
import * as Sluice from "./support/Sluice.ts"

const databaseUrl = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const target = new URL(databaseUrl)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const rows = (prefix: string) =>
  execFileSync("psql", [databaseUrl, "-tA", "-c",
    `SELECT request_id FROM sluice_usage WHERE request_id LIKE '${prefix}-%'`]).toString().split("\n").filter((l) => l !== "")

const gauge = (text: string, name: string): number => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)
  if (m === null) throw new Error(`no ${name} in /metrics`)
  return Number(m[1])
}

const chat = (url: string, id: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": id },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 8 })
  }).then(async (r) => (await r.text(), r.status))

describe("PostgreSQL down at boot", () => {
  let engine: Fake.FakeEngine
  let gate: Gate.Gate

  beforeAll(async () => {
    engine = await Fake.start(() => ({ tokens: ["ok"], usage: { prompt_tokens: 5, completion_tokens: 1 } }))
    gate = await Gate.start({ host: target.hostname, port: Number(target.port || 5432) })
  })
  afterAll(async () => {
    await Sluice.stopAll()
    await gate?.close()
    await engine?.close()
  })

  it("starts, serves and journals; retries with a bounded backoff; writes every row once when the database returns", async () => {
    const prefix = `pgdown-${process.pid}-${Date.now()}`
    const gatedUrl = new URL(databaseUrl)
    gatedUrl.hostname = "127.0.0.1"
    gatedUrl.port = String(gate.port)
    const sluice = await Sluice.start({
      yaml: `
# The ledger is under test, not keys: with auth: none no key store is opened.
auth: none
backends:
  - { id: fake, url: ${engine.url}, models: [m] }
ledger: { queue: 100, batch: 50, max_backoff: 1s }
`,
      env: { DATABASE_URL: gatedUrl.toString() }
    })
    // More than a batch of records queue while the database is down (the old backoff collapsed here).
    const ids = Array.from({ length: 400 }, (_, i) => `${prefix}-${i}`)
    const t0 = performance.now()
    for (let i = 0; i < ids.length; i += 20) {
      const statuses = await Promise.all(ids.slice(i, i + 20).map((id) => chat(sluice.url, id)))
      expect(new Set(statuses)).toEqual(new Set([200]))
    }
    await sleep(Math.max(0, 3000 - (performance.now() - t0)))
    const window = gate.refused.filter((t) => t >= t0 + 1000)
    const seconds = (performance.now() - (t0 + 1000)) / 1000
    // max_backoff 1s: about one attempt a second (a pool may open a connection or two per attempt).
    console.log(`postgres down: ${window.length} connection attempts in ${seconds.toFixed(1)} s`)
    expect(window.length / seconds).toBeLessThanOrEqual(4)
    expect(gate.refused.length).toBeGreaterThan(0)
    expect(rows(prefix)).toEqual([])
    // Bounded memory: at most ledger.queue records held; the rest wait in the journal only.
    const metrics = await (await fetch(`${sluice.url}/metrics`)).text()
    expect(gauge(metrics, "sluice_ledger_pending_records")).toBe(ids.length)
    expect(gauge(metrics, "sluice_ledger_queued_records")).toBeLessThanOrEqual(100)

    gate.open = true
    const deadline = performance.now() + 10_000
    let written = rows(prefix)
    while (written.length < ids.length && performance.now() < deadline) {
      await sleep(200)
      written = rows(prefix)
    }
    expect(written.length).toBe(ids.length)
    expect(new Set(written).size).toBe(ids.length)
    expect(await sluice.kill("SIGTERM")).toEqual({ code: 0, signal: null })
    expect(rows(prefix).length).toBe(ids.length)
  }, 40_000)
})

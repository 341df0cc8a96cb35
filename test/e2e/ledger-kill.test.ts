/**
 * Ledger durability of the shipped bundle (issue 9, item 11): `kill -9` under load
 * (streams and unary, some clients abandoning their streams), restart on the same data
 * folder, then the ledger holds exactly one record per admitted request: 0 lost,
 * 0 duplicated. Admission is counted from the client side (response headers 200 or a
 * stream cut after them); a request cut before any header may or may not have been
 * admitted, so it may have a record but never two. Run once with the embedded file ledger
 * and once with PostgreSQL (the machine's real server; fails when it is missing).
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import * as Load from "./support/Load.ts"
import * as Sluice from "./support/Sluice.ts"

const databaseUrl = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const yaml = (engineUrl: string) => `
# The ledger is under test, not keys (other tests may leave keys in the shared database).
auth: none
backends:
  - { id: fake, url: ${engineUrl}, models: [m] }
timeouts: { drain: 5s }
`

interface LedgerRow {
  readonly requestId: string
  readonly outcome: string
}

const fileLedger = (dataDir: string): Array<LedgerRow> => {
  const path = join(dataDir, "usage.jsonl")
  if (!existsSync(path)) return []
  return readFileSync(path, "utf8").split("\n").filter((l) => l !== "").map((l) => {
    const r = JSON.parse(l) as { requestId: string; outcome: string }
    return { requestId: r.requestId, outcome: r.outcome }
  })
}

const pgLedger = (prefix: string): Array<LedgerRow> =>
  execFileSync("psql", [databaseUrl, "-tA", "-F", "\t", "-c",
    `SELECT request_id, outcome FROM sluice_usage WHERE request_id LIKE '${prefix}-%'`]).toString()
    .split("\n").filter((l) => l !== "").map((l) => {
      const [requestId, outcome] = l.split("\t")
      return { requestId: requestId!, outcome: outcome! }
    })

/** Drives load, kills -9 mid-load, restarts, and checks the ledger against what clients saw. */
const scenario = async (options: {
  readonly engine: Fake.FakeEngine
  readonly prefix: string
  readonly env: Record<string, string>
  readonly dataDir: string
  readonly ledger: () => Array<LedgerRow>
}) => {
  const dataDir = options.dataDir
  const first = await Sluice.start({ yaml: yaml(options.engine.url), dataDir, env: options.env })
  const load = Load.run({ url: first.url, prefix: options.prefix, clients: 16, model: "m" })
  // Mid-load: enough requests admitted (however busy the machine is), and streams in flight.
  const loaded = performance.now() + 20_000
  while (Load.admitted(load.seen).size < 80 && performance.now() < loaded) await sleep(50)
  const killedAt = performance.now()
  await first.kill("SIGKILL")
  await load.stop()

  const seen = load.seen
  const statuses = new Set([...seen.values()].flatMap((s) => "status" in s ? [s.status] : []))
  expect([...statuses]).toEqual([200])
  const admitted = Load.admitted(seen)
  const ambiguous = Load.ambiguous(seen)
  // Finished well before the kill: their real outcome must be in the ledger, not "interrupted".
  const finishedEarly = new Set([...seen].filter(([, s]) => s.kind === "done" && s.atMs < killedAt - 500).map(([id]) => id))
  const inFlight = [...seen].filter(([, s]) => s.kind === "headers" || s.kind === "cut_after_headers").length
  expect(admitted.size).toBeGreaterThan(50)
  expect(inFlight).toBeGreaterThan(0)

  const second = await Sluice.start({ yaml: yaml(options.engine.url), dataDir, env: options.env })
  const deadline = performance.now() + 15_000
  let rows = options.ledger()
  while (performance.now() < deadline && !covers(rows, admitted)) {
    await sleep(200)
    rows = options.ledger()
  }
  const exit = await second.kill("SIGTERM")
  rows = options.ledger()

  const ids = rows.map((r) => r.requestId)
  const duplicated = ids.filter((id, i) => ids.indexOf(id) !== i)
  const lost = [...admitted].filter((id) => !ids.includes(id))
  const unknown = ids.filter((id) => !admitted.has(id) && !ambiguous.has(id))
  expect({ lost, duplicated, unknown }).toEqual({ lost: [], duplicated: [], unknown: [] })
  const byId = new Map(rows.map((r) => [r.requestId, r.outcome]))
  const wrong = [...finishedEarly].filter((id) => byId.get(id) !== "completed")
  expect(wrong).toEqual([])
  // The requests in flight at the kill are settled as interrupted after the restart.
  expect(rows.filter((r) => r.outcome === "interrupted").length).toBeGreaterThan(0)
  // A drained SIGTERM is a clean exit.
  expect(exit).toEqual({ code: 0, signal: null })
  const summary = {
    admitted: admitted.size,
    ambiguous: ambiguous.size,
    records: rows.length,
    interrupted: rows.filter((r) => r.outcome === "interrupted").length
  }
  console.log(`kill -9 ${options.prefix}: ${JSON.stringify(summary)}`)
  return summary
}

const covers = (rows: ReadonlyArray<LedgerRow>, ids: ReadonlySet<string>) => {
  const have = new Set(rows.map((r) => r.requestId))
  return [...ids].every((id) => have.has(id))
}

describe("ledger durability of the bundle under kill -9", () => {
  let engine: Fake.FakeEngine

  beforeAll(async () => {
    engine = await Fake.start((_model, body) =>
      body["stream"] === true
        ? { tokens: Array.from({ length: 20 }, (_, i) => ` t${i}`), gapMs: 15, usage: { prompt_tokens: 12, completion_tokens: 20 } }
        : { tokens: ["unary", " answer"], firstDelayMs: 150, usage: { prompt_tokens: 12, completion_tokens: 2 } }
    )
  })
  afterAll(async () => {
    await Sluice.stopAll()
    await engine?.close()
  })

  it("file ledger: every admitted request has exactly one record after a restart", async () => {
    const dataDir = Sluice.tempDir("ledger-file")
    await scenario({
      engine,
      prefix: `kill-file-${process.pid}-${Date.now()}`,
      env: {},
      dataDir,
      ledger: () => fileLedger(dataDir)
    })
  }, 60_000)

  it("PostgreSQL ledger: every admitted request has exactly one row after a restart", async () => {
    const prefix = `kill-pg-${process.pid}-${Date.now()}`
    await scenario({
      engine,
      prefix,
      env: { DATABASE_URL: databaseUrl },
      dataDir: Sluice.tempDir("ledger-pg"),
      ledger: () => pgLedger(prefix)
    })
  }, 60_000)
})

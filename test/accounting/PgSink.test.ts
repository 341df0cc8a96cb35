/**
 * The audit ledger against the machine's real PostgreSQL (127.0.0.1:5432, database
 * `test`). Fails, not skips, when PostgreSQL is not running.
 */
import { Effect, ManagedRuntime, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type AccountingRecord, UsageSink } from "../../src/accounting/Accounting.ts"
import * as PgSink from "../../src/accounting/PgSink.ts"
import { defaults } from "../../src/config/Plan.ts"
import { BackendId, ModelId, RequestId, TenantId } from "../../src/domain/Ids.ts"

const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

const record = (requestId: string, outcome: AccountingRecord["outcome"]): AccountingRecord => ({
  recordId: crypto.randomUUID(),
  requestId: RequestId(requestId),
  tenant: TenantId("acme"),
  model: ModelId("llama-3.1-8b"),
  backend: BackendId("h100-a"),
  outcome,
  reservedTokens: 300,
  estimatedPromptTokens: 18,
  charged: { promptTokens: 20, completionTokens: 7, cachedTokens: 16 },
  costUsd: 0,
  reported: true,
  attempts: [{
    backend: BackendId("a100"),
    reason: "Unavailable",
    message: "refused",
    wastedPromptTokens: 0,
    wastedCompletionTokens: 0,
    afterResponse: false
  }],
  wastedPromptTokens: 0,
  ttftMs: 42,
  durationMs: 120,
  settledAtMs: Date.now()
})

const psql = (query: string) => execFileSync("psql", [url, "-tA", "-F", "|", "-c", query]).toString().trim()

describe("audit ledger in PostgreSQL", () => {
  const run = `pg-${process.pid}-${Date.now()}`
  const runtime = ManagedRuntime.make(PgSink.layer(Redacted.make(url), { ...defaults.ledger, drainMs: 5000, journalDir: undefined }))

  beforeAll(async () => {
    await runtime.runPromise(Effect.asVoid(UsageSink))
  })
  afterAll(async () => {
    await runtime.dispose()
  })

  it("writes one row per accounting record, batched behind the request path", async () => {
    const records = Array.from({ length: 25 }, (_, i) => record(`${run}-${i}`, i % 5 === 0 ? "partial" : "completed"))
    await runtime.runPromise(Effect.gen(function*() {
      const sink = yield* UsageSink
      for (const r of records) yield* sink.write(r)
      yield* sink.flushed
    }))
    const rows = psql(`SELECT outcome, prompt_tokens, estimated_prompt_tokens, attempts FROM sluice_usage WHERE request_id LIKE '${run}-%'`)
      .split("\n").map((l) => l.split("|"))
    expect(rows.length).toBe(25)
    expect(rows.filter((r) => r[0] === "partial").length).toBe(5)
    expect(rows[0]!.slice(1, 3)).toEqual(["20", "18"])
    expect(JSON.parse(rows[0]![3]!)).toEqual([{
      backend: "a100",
      reason: "Unavailable",
      message: "refused",
      wastedPromptTokens: 0,
      wastedCompletionTokens: 0,
      afterResponse: false
    }])
  })

  it("writes a record once however often it is replayed (keyed by its record id)", async () => {
    const again = record(`${run}-replayed`, "completed")
    await runtime.runPromise(Effect.gen(function*() {
      const sink = yield* UsageSink
      yield* sink.write(again)
      yield* sink.write(again)
      yield* sink.flushed
    }))
    expect(psql(`SELECT count(*) FROM sluice_usage WHERE request_id = '${run}-replayed'`)).toBe("1")
  })
})

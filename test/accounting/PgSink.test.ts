/**
 * The audit ledger against the machine's real PostgreSQL (127.0.0.1:5432, database
 * `test`). Fails, not skips, when PostgreSQL is not running.
 */
import { Effect, ManagedRuntime, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type AccountingRecord, UsageSink } from "../../src/accounting/Accounting.ts"
import * as PgSink from "../../src/accounting/PgSink.ts"
import { BackendId, ModelId, RequestId, TenantId } from "../../src/domain/Ids.ts"

const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

const record = (requestId: string, outcome: AccountingRecord["outcome"]): AccountingRecord => ({
  requestId: RequestId(requestId),
  tenant: TenantId("acme"),
  model: ModelId("llama-3.1-8b"),
  backend: BackendId("h100-a"),
  outcome,
  reservedTokens: 300,
  charged: { promptTokens: 20, completionTokens: 7, cachedTokens: 16 },
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
  durationMs: 120
})

describe("audit ledger in PostgreSQL", () => {
  const run = `pg-${process.pid}-${Date.now()}`
  const runtime = ManagedRuntime.make(
    PgSink.layer(Redacted.make(url), { drainMs: 5000 })
  )

  beforeAll(async () => {
    // Connects and migrates; a missing PostgreSQL fails here.
    await runtime.runPromise(Effect.asVoid(UsageSink))
  })
  afterAll(async () => {
    await runtime.dispose()
  })

  it("writes one row per accounting record, batched behind the request path", async () => {
    const rows = await runtime.runPromise(Effect.gen(function*() {
      const sink = yield* UsageSink
      for (let i = 0; i < 25; i++) yield* sink.write(record(`${run}-${i}`, i % 5 === 0 ? "partial" : "completed"))
      yield* sink.flushed
      const sql = yield* SqlClient.SqlClient
      return yield* sql<{ request_id: string; outcome: string; prompt_tokens: number; attempts: unknown }>`
        SELECT request_id, outcome, prompt_tokens, attempts FROM sluice_usage WHERE request_id LIKE ${`${run}-%`}`
    }))
    expect(rows.length).toBe(25)
    expect(rows.filter((r) => r.outcome === "partial").length).toBe(5)
    expect(rows[0]!.prompt_tokens).toBe(20)
    expect(rows[0]!.attempts).toEqual([{
      backend: "a100",
      reason: "Unavailable",
      message: "refused",
      wastedPromptTokens: 0,
      wastedCompletionTokens: 0,
      afterResponse: false
    }])
  })
})

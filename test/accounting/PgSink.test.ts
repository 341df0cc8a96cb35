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

describe("audit ledger in PostgreSQL at shutdown", () => {
  it("writes what is pending through a client that is still open: no interrupted writes, no waiting out the drain", async () => {
    // Regression: the client's scope was forked on the first write, after the ledger's final
    // drain was registered, so it closed first; the last records failed as interrupted and
    // shutdown waited the whole drain time (the journal kept them for the next start).
    const run = `pg-close-${process.pid}-${Date.now()}`
    // A batch interval longer than the test: the second record is written only by the final drain.
    const options = { ...defaults.ledger, drainMs: 20_000, intervalMs: 60_000, journalDir: undefined }
    const runtime = ManagedRuntime.make(PgSink.layer(Redacted.make(url), options))
    await runtime.runPromise(Effect.gen(function*() {
      const sink = yield* UsageSink
      yield* sink.write(record(`${run}-0`, "completed"))
      yield* sink.write(record(`${run}-1`, "completed"))
      // A usage read connects the client while both records are still pending.
      yield* Effect.orDie(sink.read({ tenant: TenantId("acme"), fromMs: 0, toMs: 1 }))
    }))
    expect(psql(`SELECT count(*) FROM sluice_usage WHERE request_id LIKE '${run}-%'`)).toBe("0")
    const t0 = performance.now()
    await runtime.dispose()
    expect(performance.now() - t0).toBeLessThan(5_000)
    expect(psql(`SELECT count(*) FROM sluice_usage WHERE request_id LIKE '${run}-%'`)).toBe("2")
  }, 30_000)
})

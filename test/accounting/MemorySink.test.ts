/**
 * The memory sink (no data dir, no database): counts every record, keeps the last `keep` in
 * the order they were written, and sums usage for the reports.
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { type AccountingRecord, makeMemorySink } from "../../src/accounting/Accounting.ts"

const record = (i: number): AccountingRecord => ({
  recordId: `rec_${i}`,
  requestId: `req_${i}`,
  tenant: "t",
  model: "m",
  backend: "b",
  outcome: i % 2 === 0 ? "completed" : "client_aborted",
  reservedTokens: 10,
  estimatedPromptTokens: 5,
  charged: { promptTokens: 5, completionTokens: 1, cachedTokens: 0 },
  costUsd: 0,
  reported: true,
  attempts: [],
  wastedPromptTokens: 0,
  ttftMs: 1,
  durationMs: 2,
  settledAtMs: Date.UTC(2026, 11, 2)
} as unknown as AccountingRecord)

const writeAll = (keep: number, n: number) => {
  const sink = makeMemorySink(keep)
  return Effect.runSync(Effect.gen(function*() {
    for (let i = 0; i < n; i++) yield* sink.write(record(i))
    return yield* sink.snapshot
  }))
}

describe("memory sink", () => {
  it("keeps the last `keep` records, oldest first, across many wraps", () => {
    for (const n of [0, 2, 3, 4, 7, 9, 10]) {
      const s = writeAll(3, n)
      expect(s.records).toBe(n)
      const from = Math.max(0, n - 3)
      expect(s.recent.map((r) => r.recordId)).toEqual(Array.from({ length: n - from }, (_, k) => `rec_${from + k}`))
    }
  })

  it("counts outcomes and keeps nothing with keep 0", () => {
    const s = writeAll(0, 5)
    expect(s.records).toBe(5)
    expect(s.recent).toEqual([])
    expect(s.byOutcome).toEqual({ completed: 3, client_aborted: 2 })
  })
})

/**
 * Journal entries written before prices existed (no `costUsd`) still replay, as cost 0;
 * entries written now carry the cost and read back unchanged.
 */
import { Option } from "effect"
import { describe, expect, it } from "vitest"
import * as JournalEntry from "../../src/accounting/JournalEntry.ts"

const old = `{"t":"s","sq":7,"r":{"recordId":"r1","requestId":"q1","tenant":"acme","model":"m","outcome":"completed",` +
  `"reservedTokens":100,"estimatedPromptTokens":10,"charged":{"promptTokens":10,"completionTokens":20,"cachedTokens":0},` +
  `"reported":true,"attempts":[],"wastedPromptTokens":0,"durationMs":12}}`

describe("journal entries and cost", () => {
  it("reads a settled entry without a cost as cost 0", () => {
    const entry = Option.getOrThrow(JournalEntry.decode(old))
    expect(entry.t).toBe("s")
    if (entry.t !== "s") return
    expect(JournalEntry.recordOf(entry.r, 0).costUsd).toBe(0)
  })

  it("keeps the cost of a new entry", () => {
    const entry0 = Option.getOrThrow(JournalEntry.decode(old))
    if (entry0.t !== "s") throw new Error("not a settled entry")
    const record = { ...JournalEntry.recordOf(entry0.r, 0), costUsd: 0.000123 }
    const line = JournalEntry.settled(8, JSON.stringify(record)).trimEnd()
    const entry = Option.getOrThrow(JournalEntry.decode(line))
    expect(entry.t === "s" && JournalEntry.recordOf(entry.r, 0).costUsd).toBe(0.000123)
    // A negative cost is not a record.
    expect(Option.isNone(JournalEntry.decode(line.replace("0.000123", "-1")))).toBe(true)
  })
})

import { Effect, ManagedRuntime } from "effect"
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type AccountingRecord, UsageSink } from "../../src/accounting/Accounting.ts"
import * as FileSink from "../../src/accounting/FileSink.ts"
import { defaults } from "../../src/config/Plan.ts"
import { ModelId, RequestId, TenantId } from "../../src/domain/Ids.ts"

const record = (id: string): AccountingRecord => ({
  recordId: crypto.randomUUID(),
  requestId: RequestId(id),
  tenant: TenantId("default"),
  model: ModelId("m"),
  backend: undefined,
  outcome: "completed",
  reservedTokens: 10,
  estimatedPromptTokens: 3,
  charged: { promptTokens: 3, completionTokens: 4, cachedTokens: 0 },
  costUsd: 0,
  reported: true,
  attempts: [],
  wastedPromptTokens: 0,
  ttftMs: 5,
  durationMs: 9,
  settledAtMs: Date.now()
})

const options = { ...defaults.ledger, drainMs: 2000 }
const lines = (dir: string) =>
  readFileSync(join(dir, "usage.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { requestId: string; seq: number })

describe("embedded audit ledger (JSON lines)", () => {
  const dirs: Array<string> = []
  const tmp = () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-usage-"))
    dirs.push(dir)
    return dir
  }
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it("appends one line per record and flushes what is left on shutdown", async () => {
    const dir = tmp()
    const runtime = ManagedRuntime.make(FileSink.layer(dir, options))
    await runtime.runPromise(Effect.gen(function*() {
      const sink = yield* UsageSink
      for (let i = 0; i < 5; i++) yield* sink.write(record(`r${i}`))
      yield* sink.flushed
    }))
    await runtime.runPromise(Effect.flatMap(UsageSink, (sink) => sink.write(record("last"))))
    await runtime.dispose()
    const written = lines(dir)
    expect(written.map((l) => l.requestId)).toEqual(["r0", "r1", "r2", "r3", "r4", "last"])
    expect(written.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5, 6])
    expect(written[0]).toMatchObject({ outcome: "completed", charged: { promptTokens: 3, completionTokens: 4 } })
  })

  it("cuts a torn last line at start and continues after the last whole one", async () => {
    const dir = tmp()
    writeFileSync(join(dir, "usage.jsonl"), `{"at":"x","seq":7,"requestId":"old"}\n`)
    appendFileSync(join(dir, "usage.jsonl"), `{"at":"x","seq":8,"requestId":"to`)
    const runtime = ManagedRuntime.make(FileSink.layer(dir, options))
    await runtime.runPromise(Effect.gen(function*() {
      const sink = yield* UsageSink
      yield* sink.write(record("new"))
      yield* sink.flushed
    }))
    await runtime.dispose()
    expect(lines(dir).map((l) => [l.requestId, l.seq])).toEqual([["old", 7], ["new", 8]])
  })
})

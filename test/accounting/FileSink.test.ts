import { Effect, ManagedRuntime } from "effect"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type AccountingRecord, UsageSink } from "../../src/accounting/Accounting.ts"
import * as FileSink from "../../src/accounting/FileSink.ts"
import { ModelId, RequestId, TenantId } from "../../src/domain/Ids.ts"

const record = (id: string): AccountingRecord => ({
  requestId: RequestId(id),
  tenant: TenantId("default"),
  model: ModelId("m"),
  backend: undefined,
  outcome: "completed",
  reservedTokens: 10,
  charged: { promptTokens: 3, completionTokens: 4, cachedTokens: 0 },
  reported: true,
  attempts: [],
  wastedPromptTokens: 0,
  ttftMs: 5,
  durationMs: 9
})

describe("embedded audit ledger (JSON lines)", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-usage-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("appends one line per record and flushes what is left on shutdown", async () => {
    const runtime = ManagedRuntime.make(FileSink.layer(dir, { drainMs: 2000 }))
    await runtime.runPromise(Effect.gen(function*() {
      const sink = yield* UsageSink
      for (let i = 0; i < 5; i++) yield* sink.write(record(`r${i}`))
      yield* sink.flushed
    }))
    await runtime.runPromise(Effect.flatMap(UsageSink, (sink) => sink.write(record("last"))))
    await runtime.dispose()
    const lines = readFileSync(join(dir, "usage.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    expect(lines.map((l) => l.requestId)).toEqual(["r0", "r1", "r2", "r3", "r4", "last"])
    expect(lines[0]).toMatchObject({ outcome: "completed", charged: { promptTokens: 3, completionTokens: 4 } })
  })
})

/**
 * The durable ledger on a real journal folder with an in-test store that can go down:
 * bounded memory with spill and in-order replay, recovery of what a dead process left
 * (replay of unacknowledged records, `interrupted` for admissions never settled, torn and
 * damaged lines), and segments that roll, carry open admissions, and are deleted.
 */
import { Effect, Exit, Scope } from "effect"
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import type { AccountingRecord, Admission, UsageSink } from "../../src/accounting/Accounting.ts"
import type { SettledRecord } from "../../src/accounting/Journal.ts"
import * as Entry from "../../src/accounting/JournalEntry.ts"
import * as Ledger from "../../src/accounting/Ledger.ts"
import { defaults } from "../../src/config/Plan.ts"
import { ModelId, RequestId, TenantId } from "../../src/domain/Ids.ts"

const admission = (id: string): Admission => ({
  recordId: `rec-${id}`,
  requestId: RequestId(id),
  tenant: TenantId("t"),
  model: ModelId("m"),
  reservedTokens: 100,
  estimatedPromptTokens: 20,
  admittedAtMs: 1
})

const record = (id: string): AccountingRecord => ({
  ...Entry.interrupted(admission(id)),
  outcome: "completed",
  backend: undefined,
  charged: { promptTokens: 20, completionTokens: 30, cachedTokens: 0 },
  costUsd: 0,
  reported: true,
  durationMs: 5
})

/** A store the test can take down; it keeps what it got, in order. */
const testStore = () => {
  const rows: Array<SettledRecord> = []
  let down = false
  let attempts = 0
  const store: Ledger.Store = {
    name: "test",
    committedSeq: 0,
    write: (batch) =>
      Effect.suspend(() => {
        attempts++
        if (down) return Effect.fail("down")
        rows.push(...batch)
        return Effect.void
      })
  }
  return {
    store,
    rows,
    ids: () => rows.map((r) => String(r.record.requestId)),
    setDown: (d: boolean) => void (down = d),
    attempts: () => attempts
  }
}

const dirs: Array<string> = []
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "sluice-ledger-"))
  dirs.push(d)
  return d
}

const open = (store: Ledger.Store, journalDir: string, overrides: Partial<Ledger.LedgerOptions> = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const sink: UsageSink["Service"] = yield* Ledger.make(store, {
      ...defaults.ledger,
      intervalMs: 10,
      maxBackoffMs: 50,
      syncIntervalMs: 5,
      drainMs: 2000,
      journalDir,
      ...overrides
    }).pipe(Scope.provide(scope))
    return { sink, close: Scope.close(scope, Exit.void) }
  })

const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)

describe("durable ledger", () => {
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it("holds at most `queue` records in memory while the store is down, and replays all of them in order once", async () => {
    const t = testStore()
    t.setDown(true)
    const dir = tmp()
    await run(Effect.gen(function*() {
      const { sink, close } = yield* open(t.store, dir, { queueRecords: 20, batchRecords: 10 })
      for (let i = 0; i < 300; i++) yield* sink.write(record(`r${i}`))
      yield* Effect.sleep(100)
      const down = (yield* sink.snapshot).ledger!
      expect(down.queued).toBeLessThanOrEqual(20)
      expect(down.pending).toBe(300)
      t.setDown(false)
      yield* sink.flushed
      const up = (yield* sink.snapshot).ledger!
      expect({ queued: up.queued, pending: up.pending, written: up.written }).toEqual({ queued: 0, pending: 0, written: 300 })
      yield* close
    }))
    expect(t.ids()).toEqual(Array.from({ length: 300 }, (_, i) => `r${i}`))
    expect(t.rows.map((r) => r.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1))
  })

  it("after a crash: replays what the store did not acknowledge and settles open admissions as interrupted", async () => {
    const dir = tmp()
    // What a process killed mid-flight leaves: two admissions settled (one acknowledged by
    // the store), two never settled, a damaged line, and a torn last line.
    writeFileSync(join(dir, "0000000001.jsonl"), [
      Entry.header(1, 0),
      Entry.admitted(admission("a")),
      Entry.admitted(admission("b")),
      Entry.settled(1, JSON.stringify(record("a"))),
      Entry.acked(1),
      Entry.admitted(admission("c")),
      Entry.settled(2, JSON.stringify(record("b"))),
      "{\"t\":\"s\",\"sq\":\"garbage\n",
      Entry.admitted(admission("d")),
      Entry.settled(3, JSON.stringify(record("c"))).slice(0, 40)
    ].join(""))
    const t = testStore()
    await run(Effect.gen(function*() {
      const { sink, close } = yield* open(t.store, dir)
      yield* sink.flushed
      const snap = yield* sink.snapshot
      expect(snap.ledger!.recoveredInterrupted).toBe(2)
      yield* close
    }))
    // "b" replayed (not acknowledged); "c" (its settlement torn off) and "d" interrupted; "a" not again.
    expect(t.rows.map((r) => [String(r.record.requestId), r.record.outcome])).toEqual([
      ["b", "completed"],
      ["c", "interrupted"],
      ["d", "interrupted"]
    ])
    expect(t.rows.map((r) => r.seq)).toEqual([2, 3, 4])
    const interrupted = t.rows[1]!.record
    expect(interrupted).toMatchObject({ recordId: "rec-c", reservedTokens: 100, estimatedPromptTokens: 20, charged: { promptTokens: 0, completionTokens: 0 } })

    // A second start finds nothing left to do.
    const again = testStore()
    await run(Effect.gen(function*() {
      const { sink, close } = yield* open(again.store, dir)
      yield* sink.flushed
      yield* close
    }))
    expect(again.rows).toEqual([])
  })

  it("rolls segments, deletes those the store holds, and carries open admissions into the new one", async () => {
    const dir = tmp()
    const crashed = tmp()
    const t = testStore()
    await run(Effect.gen(function*() {
      const { sink, close } = yield* open(t.store, dir, { segmentBytes: 2048 })
      // One request stays open across many rolls.
      yield* sink.admit(admission("long"))
      for (let i = 0; i < 200; i++) {
        yield* sink.admit(admission(`r${i}`))
        yield* sink.write(record(`r${i}`))
        if (i % 20 === 0) yield* sink.flushed
      }
      yield* sink.flushed
      yield* Effect.sleep(50)
      const { ledger } = yield* sink.snapshot
      // 200 records of ~600 bytes went through 2 KiB segments; only the last few remain.
      expect(ledger!.journalSegments).toBeLessThanOrEqual(3)
      expect(ledger!.journalBytes).toBeLessThan(3 * 4096)
      // The process dies here (kill -9 leaves the files as they are): "long" is never settled.
      yield* Effect.sync(() => cpSync(dir, crashed, { recursive: true }))
      yield* close
    }))
    const segments = readdirSync(crashed).filter((n) => n.endsWith(".jsonl"))
    expect(segments.length).toBeLessThanOrEqual(3)
    const after = testStore()
    await run(Effect.gen(function*() {
      const { sink, close } = yield* open(after.store, crashed)
      yield* sink.flushed
      yield* close
    }))
    expect(after.rows.filter((r) => r.record.outcome === "interrupted").map((r) => String(r.record.requestId))).toEqual(["long"])
  })

  it("keeps store attempts per second bounded while the store is down, whatever the load", async () => {
    const t = testStore()
    t.setDown(true)
    await run(Effect.gen(function*() {
      const { sink, close } = yield* open(t.store, tmp(), { batchRecords: 10, queueRecords: 10, intervalMs: 20, maxBackoffMs: 400 })
      for (let i = 0; i < 40; i++) yield* sink.write(record(`warm${i}`))
      yield* Effect.sleep(500)
      const before = t.attempts()
      for (let i = 0; i < 200; i++) {
        yield* sink.write(record(`r${i}`))
        yield* Effect.sleep(5)
      }
      const during = t.attempts() - before
      // One attempt per 400 ms at the cap: about 3 over the trickle, never one per record.
      expect(during).toBeLessThanOrEqual(6)
      t.setDown(false)
      yield* sink.flushed
      yield* close
    }))
    expect(t.rows.length).toBe(240)
  })

  it("refuses a journal folder another live process holds", async () => {
    const dir = tmp()
    mkdirSync(dir, { recursive: true })
    // pid 1 is always alive.
    writeFileSync(join(dir, "LOCK"), "1")
    const exit = await Effect.runPromiseExit(Effect.scoped(Ledger.make(testStore().store, {
      ...defaults.ledger,
      drainMs: 0,
      journalDir: dir
    })))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("in use by process 1")
    appendFileSync(join(dir, "LOCK"), "")
  })
})

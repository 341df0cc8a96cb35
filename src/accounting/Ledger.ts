/**
 * The durable usage sink (the "ledger actor"): every admission and every accounting record
 * is journaled first (Journal), then written to a store (a file, PostgreSQL) in batches by
 * a bounded write-behind queue (Batcher) that reads back from the journal what it does not
 * hold in memory. Nothing accepted is lost to a store outage (the queue spills, the writer
 * backs off, and the journal is replayed in order when the store returns) or to a crash
 * (a restart replays what the store did not acknowledge, and settles every admission that
 * was never settled as `interrupted`). The store deduplicates (record id, sequence
 * number), so replay writes each record once.
 *
 * Ordering that makes this hold: a record reaches the store only after its journal entry
 * is fdatasync'ed, and the journal acknowledges a record only after the store has it.
 *
 * It owns the sequence numbers of records and the set of open admissions; it must never
 * block a request (admission and settlement are synchronous appends).
 */
import { Cause, Effect, type Scope } from "effect"
import type { LedgerPlan } from "../config/Plan.ts"
import { type AccountingRecord, type LedgerStats, makeMemorySink, UsageSink } from "./Accounting.ts"
import * as Batcher from "./Batcher.ts"
import * as Journal from "./Journal.ts"
import * as Entry from "./JournalEntry.ts"
import type { UsageGroup, UsageQuery, UsageUnavailable } from "./UsageReport.ts"

/** Where records end up. */
export interface Store {
  /** For logs: "file", "postgres". */
  readonly name: string
  /** Records up to this sequence number are already in the store (0: the store deduplicates by record id). */
  readonly committedSeq: number
  /** Writes a batch durably; a retry of a batch whose fate was uncertain must not duplicate. */
  readonly write: (batch: ReadonlyArray<Journal.SettledRecord>) => Effect.Effect<void, unknown>
  /**
   * The usage reports read from the store (what it holds; records still on their way are not
   * counted yet). A store without it: reports come from what this process settled.
   */
  readonly read?: (query: UsageQuery) => Effect.Effect<ReadonlyArray<UsageGroup>, UsageUnavailable>
}

export interface LedgerOptions extends LedgerPlan {
  /** The journal folder; none: no journal (memory queue only, lost on a crash: embedded test graphs). */
  readonly journalDir: string | undefined
  readonly drainMs: number
}

export const make = (store: Store, options: LedgerOptions): Effect.Effect<UsageSink["Service"], Journal.JournalError, Scope.Scope> =>
  Effect.gen(function*() {
    const memory = makeMemorySink(1000, { sums: store.read === undefined })
    /** Admitted and not yet settled: record id → its journal line (carried into each new segment). */
    const open = new Map<string, string>()
    const journal = options.journalDir === undefined ? undefined : yield* Journal.open({
      dir: options.journalDir,
      segmentBytes: options.segmentBytes,
      syncIntervalMs: options.syncIntervalMs
    }, () => open.values())
    const recovered = journal?.recovered
    let nextSeq = Math.max(recovered?.nextSeq ?? 1, store.committedSeq + 1)
    const firstUnwritten = Math.min(nextSeq, Math.max(recovered?.acked ?? 0, store.committedSeq) + 1)

    const batcher = yield* Batcher.make<Journal.SettledRecord, unknown>({
      // The journal entries of a batch are on disk before the store sees it.
      write: (batch) => journal === undefined ? store.write(batch) : Effect.andThen(journal.sync, store.write(batch)),
      maxBatch: options.batchRecords,
      intervalMs: options.intervalMs,
      maxBackoffMs: options.maxBackoffMs,
      drainMs: options.drainMs,
      onError: (cause, pending) =>
        Effect.logWarning(`ledger records could not be written to the ${store.name} store; they stay journaled and are retried`).pipe(
          Effect.annotateLogs({ pending, cause: Cause.pretty(cause) })
        ),
      ...(journal === undefined ? {} : {
        maxQueued: options.queueRecords,
        spill: {
          from: firstUnwritten,
          first: nextSeq,
          read: (from, to, max) => Effect.map(journal.readSettled(from, to, max), ({ records, next }) => ({ items: records, next }))
        },
        onWritten: (upTo) => Effect.sync(() => journal.ack(upTo - 1))
      })
    })

    const settle = (record: AccountingRecord) => {
      const seq = nextSeq++
      const json = JSON.stringify(record)
      open.delete(record.recordId)
      journal?.append(Entry.settled(seq, json), seq)
      batcher.offer({ seq, record, json })
    }

    // Admitted by a process that died, never settled: settled now, as interrupted.
    for (const admission of recovered?.open ?? []) {
      const record = Entry.interrupted(admission)
      yield* memory.write(record)
      settle(record)
    }
    if (recovered !== undefined && (recovered.open.length > 0 || recovered.invalidLines > 0 || nextSeq > firstUnwritten)) {
      yield* Effect.logWarning("ledger journal recovered").pipe(Effect.annotateLogs({
        interrupted: recovered.open.length,
        replaying: nextSeq - firstUnwritten,
        invalidLines: recovered.invalidLines,
        store: store.name
      }))
    }

    const stats = (): LedgerStats => {
      const b = batcher.stats()
      const j = journal?.stats()
      return {
        queued: b.queued,
        pending: b.pending,
        written: b.written,
        failedWrites: b.failedBatches,
        journalSegments: j?.segments ?? 0,
        journalBytes: j?.bytes ?? 0,
        recoveredInterrupted: recovered?.open.length ?? 0
      }
    }

    return UsageSink.of({
      admit: (admission) =>
        Effect.sync(() => {
          if (journal === undefined) return
          const line = Entry.admitted(admission)
          open.set(admission.recordId, line)
          journal.append(line)
        }),
      write: (record) => Effect.andThen(memory.write(record), Effect.sync(() => settle(record))),
      snapshot: Effect.map(memory.snapshot, (s) => ({ ...s, ledger: stats() })),
      flushed: batcher.flushed,
      read: store.read ?? memory.read
    })
  })

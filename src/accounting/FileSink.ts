/**
 * The embedded audit ledger of a single process: accounting records appended as JSON
 * lines to `<data dir>/usage.jsonl`, batched behind the request path by the same
 * never-dropping batcher as the PostgreSQL ledger (a failed append stays queued and is
 * retried; the queue is flushed on shutdown). Keeps the in-memory view for metrics.
 */
import { Effect, Layer } from "effect"
import { appendFile, mkdir } from "node:fs/promises"
import { join } from "node:path"
import { type AccountingRecord, makeMemorySink, UsageSink } from "./Accounting.ts"
import * as Batcher from "./Batcher.ts"

export const layer = (dir: string, options: { readonly drainMs: number }) =>
  Layer.effect(
    UsageSink,
    Effect.gen(function*() {
      const path = join(dir, "usage.jsonl")
      yield* Effect.promise(() => mkdir(dir, { recursive: true }))
      const memory = makeMemorySink(1000)
      const batcher = yield* Batcher.make<AccountingRecord, unknown>({
        write: (batch) =>
          Effect.tryPromise({
            try: () => appendFile(path, batch.map((r) => JSON.stringify({ at: new Date().toISOString(), ...r }) + "\n").join("")),
            catch: (e) => e
          }),
        maxBatch: 1000,
        intervalMs: 200,
        drainMs: options.drainMs,
        onError: (cause, queued) =>
          Effect.logWarning("usage records could not be appended; keeping them queued").pipe(
            Effect.annotateLogs({ path, queued, cause: String(cause) })
          )
      })
      yield* Effect.logInfo("audit ledger in a local file").pipe(Effect.annotateLogs({ path }))
      return UsageSink.of({
        write: (record) => Effect.andThen(memory.write(record), Effect.sync(() => batcher.offer(record))),
        snapshot: memory.snapshot,
        flushed: batcher.flushed
      })
    })
  )

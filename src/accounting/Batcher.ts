/**
 * A write-behind batcher that never drops what it accepted, in bounded memory. Items get
 * consecutive positions as they are offered; one writer fiber writes them to the store
 * in order, in batches. A failed batch is retried with exponential backoff (the interval
 * doubling up to `maxBackoffMs`); the store deduplicates (by record id or position), so a
 * retry after an uncertain failure cannot double-write.
 *
 * Memory: with a `spill` (the journal, where every item was written before it was
 * offered) at most `maxQueued` items are held; beyond that the oldest are dropped from
 * memory and read back from the spill, in order, when their turn comes. Without a spill
 * nothing may be dropped, so the queue is unbounded.
 *
 * Backoff holds: while the writer backs off, nothing wakes it early, however many items
 * arrive. (It used to be woken by every offer once `maxBatch` items were queued, which
 * collapsed the backoff to one store attempt per record.) On scope close it writes what
 * is left for up to `drainMs`. Offering is synchronous and never blocks a request.
 */
import { Cause, Clock, Deferred, Duration, Effect, Scope } from "effect"

export interface BatcherStats {
  /** Items held in memory. */
  readonly queued: number
  /** Positions not yet written (memory and spill). */
  readonly pending: number
  /** Items written since start. */
  readonly written: number
  readonly failedBatches: number
  /** Items dropped from memory (still in the spill) since start. */
  readonly spilled: number
}

export interface Batcher<A> {
  readonly offer: (item: A) => void
  readonly stats: () => BatcherStats
  /** Resolves once everything offered so far is written. */
  readonly flushed: Effect.Effect<void>
}

export interface Spill<A, E> {
  /** The first position not yet written when this batcher starts. */
  readonly from: number
  /** The position of the first item offered to this batcher (positions in between live only in the spill). */
  readonly first: number
  /**
   * Items at positions `from ≤ p < to`, at most `max`, in order, and the first position
   * not covered (`to` when the spill holds nothing more below it: gaps are skipped).
   */
  readonly read: (from: number, to: number, max: number) => Effect.Effect<{
    readonly items: ReadonlyArray<A>
    readonly next: number
  }, E>
}

export const make = <A, E>(options: {
  readonly write: (batch: ReadonlyArray<A>) => Effect.Effect<void, E>
  readonly maxBatch: number
  readonly intervalMs: number
  readonly drainMs: number
  readonly onError: (error: Cause.Cause<E>, pending: number) => Effect.Effect<void>
  /** The longest wait between two attempts while the store fails (default 30 s). */
  readonly maxBackoffMs?: number
  /** Items held in memory at most (only with a spill). */
  readonly maxQueued?: number
  readonly spill?: Spill<A, E>
  /** After each written batch: every position below `upTo` is written. */
  readonly onWritten?: (upTo: number) => Effect.Effect<void>
}): Effect.Effect<Batcher<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxBackoffMs = options.maxBackoffMs ?? 30_000
    const maxQueued = options.spill === undefined ? Infinity : Math.max(options.maxBatch, options.maxQueued ?? Infinity)
    /** Items at positions [memoryStart, next). */
    let memory: Array<A> = []
    let next = options.spill?.first ?? 0
    let memoryStart = next
    /** Every position below this is written. */
    let writtenUpTo = options.spill?.from ?? next
    let written = 0
    let failedBatches = 0
    let spilled = 0
    let backingOff = false
    /** A batch read back from the spill and not yet written (kept across retries). */
    let spillBatch: { readonly from: number; readonly items: ReadonlyArray<A>; readonly next: number } | undefined
    let waiters: Array<{ readonly upTo: number; readonly done: Deferred.Deferred<void> }> = []
    let wake: (() => void) | undefined

    const notify = () => {
      const ready = waiters.filter((w) => w.upTo <= writtenUpTo)
      if (ready.length === 0) return Effect.void
      waiters = waiters.filter((w) => w.upTo > writtenUpTo)
      return Effect.forEach(ready, (w) => Deferred.succeed(w.done, undefined), { discard: true })
    }

    /** The next batch in position order: from the spill while the oldest pending items live only there. */
    type Batch = { readonly items: ReadonlyArray<A>; readonly next: number }
    const nextBatch: Effect.Effect<Batch, E> = Effect.suspend((): Effect.Effect<Batch, E> => {
      if (writtenUpTo < memoryStart && options.spill !== undefined) {
        if (spillBatch !== undefined && spillBatch.from === writtenUpTo) return Effect.succeed(spillBatch)
        const from = writtenUpTo
        return Effect.map(options.spill.read(from, memoryStart, options.maxBatch), (batch) => {
          // A spill that returns nothing must still advance, or the writer would spin.
          const read = { from, items: batch.items, next: Math.min(memoryStart, Math.max(batch.next, from + 1)) }
          spillBatch = read
          return read
        })
      }
      const count = Math.min(options.maxBatch, memory.length)
      return Effect.succeed({ items: memory.slice(0, count), next: memoryStart + count })
    })

    const failed = (cause: Cause.Cause<E>) =>
      Effect.suspend(() => {
        failedBatches++
        return Effect.as(options.onError(cause, next - writtenUpTo), false)
      })

    /** Writes batches until nothing is pending; a failure leaves everything where it was. */
    const drainOnce: Effect.Effect<boolean> = Effect.gen(function*() {
      while (writtenUpTo < next) {
        const batch = yield* Effect.exit(nextBatch)
        if (batch._tag === "Failure") return yield* failed(batch.cause)
        const { items, next: upTo } = batch.value
        if (items.length > 0) {
          const exit = yield* Effect.exit(options.write(items))
          if (exit._tag === "Failure") return yield* failed(exit.cause)
        }
        written += items.length
        writtenUpTo = upTo
        spillBatch = undefined
        if (writtenUpTo > memoryStart) {
          memory.splice(0, writtenUpTo - memoryStart)
          memoryStart = writtenUpTo
        }
        if (options.onWritten !== undefined) yield* options.onWritten(writtenUpTo)
        yield* notify()
      }
      return true
    })

    const loop = Effect.gen(function*() {
      let delay = options.intervalMs
      while (true) {
        yield* Effect.callback<void>((resume) => {
          const timer = setTimeout(() => resume(Effect.void), delay)
          wake = () => {
            clearTimeout(timer)
            resume(Effect.void)
          }
          return Effect.sync(() => clearTimeout(timer))
        })
        wake = undefined
        const ok = yield* drainOnce
        backingOff = !ok
        delay = ok ? options.intervalMs : Math.min(maxBackoffMs, delay * 2)
      }
    })
    yield* Effect.forkScoped(loop)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const deadline = (yield* Clock.currentTimeMillis) + options.drainMs
        while (writtenUpTo < next && (yield* Clock.currentTimeMillis) < deadline) {
          if (!(yield* drainOnce)) yield* Effect.sleep(Duration.millis(200))
        }
      })
    )

    return {
      offer: (item) => {
        memory.push(item)
        next++
        if (memory.length > maxQueued) {
          // Bounded memory: the oldest half goes; the spill has it.
          const drop = memory.length >> 1
          memory = memory.slice(drop)
          memoryStart += drop
          spilled += drop
        }
        if (!backingOff && memory.length >= options.maxBatch) wake?.()
      },
      stats: () => ({ queued: memory.length, pending: next - writtenUpTo, written, failedBatches, spilled }),
      flushed: Effect.suspend(() => {
        if (writtenUpTo >= next) return Effect.void
        return Effect.flatMap(Deferred.make<void>(), (done) => {
          waiters.push({ upTo: next, done })
          if (!backingOff) wake?.()
          return Deferred.await(done)
        })
      })
    }
  })

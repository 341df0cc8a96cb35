/**
 * A write-behind batcher that never drops what it accepted: records queue in memory and
 * a single writer fiber flushes them in batches; a failed batch stays at the head of the
 * queue and is retried with backoff (the store deduplicates by record id, so a retry
 * after an uncertain failure cannot double-write). On scope close it flushes what is
 * left, waiting up to `drainMs`. Accepting is synchronous and never blocks a request.
 */
import { Cause, Clock, Deferred, Duration, Effect, Scope } from "effect"

export interface BatcherStats {
  readonly queued: number
  readonly written: number
  readonly failedBatches: number
}

export interface Batcher<A> {
  readonly offer: (item: A) => void
  readonly stats: () => BatcherStats
  /** Resolves once everything offered so far is written. */
  readonly flushed: Effect.Effect<void>
}

export const make = <A, E>(options: {
  readonly write: (batch: ReadonlyArray<A>) => Effect.Effect<void, E>
  readonly maxBatch: number
  readonly intervalMs: number
  readonly drainMs: number
  readonly onError: (error: Cause.Cause<E>, queued: number) => Effect.Effect<void>
}): Effect.Effect<Batcher<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue: Array<A> = []
    let written = 0
    let failedBatches = 0
    let offered = 0
    let waiters: Array<{ readonly upTo: number; readonly done: Deferred.Deferred<void> }> = []
    let wake: (() => void) | undefined

    const notify = () => {
      const ready = waiters.filter((w) => w.upTo <= written)
      if (ready.length === 0) return Effect.void
      waiters = waiters.filter((w) => w.upTo > written)
      return Effect.forEach(ready, (w) => Deferred.succeed(w.done, undefined), { discard: true })
    }

    /** Writes batches until the queue is empty; a failure leaves the batch queued. */
    const drainOnce: Effect.Effect<boolean> = Effect.gen(function*() {
      while (queue.length > 0) {
        const batch = queue.slice(0, options.maxBatch)
        const exit = yield* Effect.exit(options.write(batch))
        if (exit._tag === "Failure") {
          failedBatches++
          yield* options.onError(exit.cause as Cause.Cause<E>, queue.length)
          return false
        }
        queue.splice(0, batch.length)
        written += batch.length
        yield* notify()
      }
      return true
    })

    const loop = Effect.gen(function*() {
      let backoff = options.intervalMs
      while (true) {
        yield* Effect.callback<void>((resume) => {
          const timer = setTimeout(() => resume(Effect.void), backoff)
          wake = () => {
            clearTimeout(timer)
            resume(Effect.void)
          }
          return Effect.sync(() => clearTimeout(timer))
        })
        wake = undefined
        const ok = yield* drainOnce
        backoff = ok ? options.intervalMs : Math.min(30_000, backoff * 2)
      }
    })
    yield* Effect.forkScoped(loop)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const deadline = (yield* Clock.currentTimeMillis) + options.drainMs
        while (queue.length > 0 && (yield* Clock.currentTimeMillis) < deadline) {
          if (!(yield* drainOnce)) yield* Effect.sleep(Duration.millis(200))
        }
      })
    )

    return {
      offer: (item) => {
        queue.push(item)
        offered++
        if (queue.length >= options.maxBatch) wake?.()
      },
      stats: () => ({ queued: queue.length, written, failedBatches }),
      flushed: Effect.suspend(() => {
        if (written >= offered) return Effect.void
        return Effect.flatMap(Deferred.make<void>(), (done) => {
          waiters.push({ upTo: offered, done })
          wake?.()
          return Deferred.await(done)
        })
      })
    }
  })

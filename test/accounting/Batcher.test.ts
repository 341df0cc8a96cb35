import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Batcher from "../../src/accounting/Batcher.ts"

describe("Batcher", () => {
  it.live("keeps a failed batch queued and writes it when the store is back, without duplicates", () =>
    Effect.gen(function*() {
      const stored: Array<number> = []
      let down = true
      const scope = yield* Scope.make()
      const batcher = yield* Batcher.make<number, string>({
        write: (batch) => down ? Effect.fail("store down") : Effect.sync(() => void stored.push(...batch)),
        maxBatch: 3,
        intervalMs: 10,
        drainMs: 1000,
        onError: () => Effect.void
      }).pipe(Scope.provide(scope))
      for (let i = 0; i < 7; i++) batcher.offer(i)
      yield* Effect.sleep(60)
      assert.strictEqual(stored.length, 0)
      assert.isTrue(batcher.stats().failedBatches > 0)
      assert.strictEqual(batcher.stats().queued, 7)
      down = false
      yield* batcher.flushed
      assert.deepStrictEqual(stored, [0, 1, 2, 3, 4, 5, 6])
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("flushes what is left when its scope closes", () =>
    Effect.gen(function*() {
      const stored: Array<number> = []
      const scope = yield* Scope.make()
      const batcher = yield* Batcher.make<number, never>({
        write: (batch) => Effect.sync(() => void stored.push(...batch)),
        maxBatch: 100,
        intervalMs: 60_000,
        drainMs: 1000,
        onError: () => Effect.void
      }).pipe(Scope.provide(scope))
      batcher.offer(1)
      batcher.offer(2)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(stored, [1, 2])
    }))
})

describe("Batcher backoff while the store is down", () => {
  // Reproducer (issue 9, item 11): with more than `maxBatch` records queued, every new
  // record woke the writer at once, so the retry backoff collapsed to one attempt per
  // offered record (40-48 a second at the load of the report).
  it.live("keeps attempts per second bounded however many records arrive", () =>
    Effect.gen(function*() {
      let attempts = 0
      const scope = yield* Scope.make()
      const batcher = yield* Batcher.make<number, string>({
        write: () => Effect.sync(() => void attempts++).pipe(Effect.andThen(Effect.fail("store down"))),
        maxBatch: 50,
        intervalMs: 20,
        drainMs: 0,
        onError: () => Effect.void
      }).pipe(Scope.provide(scope))
      // More than a batch queued, then a steady trickle: one record every 5 ms for 2 s.
      for (let i = 0; i < 60; i++) batcher.offer(i)
      yield* Effect.sleep(300)
      const before = attempts
      for (let i = 0; i < 400; i++) {
        batcher.offer(i)
        yield* Effect.sleep(5)
      }
      const during = attempts - before
      yield* Scope.close(scope, Exit.void)
      // Backoff from 20 ms doubling: at most a handful of attempts in two seconds, not one per record.
      assert.isAtMost(during, 8, `attempts during 2 s of trickle: ${during}`)
      assert.isAtLeast(during, 1)
    }))
})

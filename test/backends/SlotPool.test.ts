import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { SlotPool } from "../../src/backends/SlotPool.ts"

describe("SlotPool", () => {
  it.effect("holds a slot until the scope closes", () =>
    Effect.gen(function*() {
      const pool = new SlotPool(2)
      const scope = yield* Scope.make()
      yield* pool.acquire(1000).pipe(Scope.provide(scope))
      assert.strictEqual(pool.inUse, 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(pool.inUse, 0)
    }))

  it.effect("queues FIFO and times out with SlotsExhausted", () =>
    Effect.gen(function*() {
      const pool = new SlotPool(1)
      const first = yield* Scope.make()
      yield* pool.acquire(1000).pipe(Scope.provide(first))
      const waiter = yield* Effect.forkChild(Effect.scoped(Effect.as(pool.acquire(500), "got")))
      yield* Effect.yieldNow
      assert.strictEqual(pool.queued, 1)
      yield* TestClock.adjust(600)
      const exit = yield* Fiber.await(waiter)
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(pool.queued, 0)
      assert.strictEqual(pool.inUse, 1)
      // A waiter is handed the slot on release.
      const second = yield* Effect.forkChild(Effect.scoped(Effect.as(pool.acquire(500), "got")))
      yield* Effect.yieldNow
      yield* Scope.close(first, Exit.void)
      assert.strictEqual(yield* Fiber.join(second), "got")
      assert.strictEqual(pool.inUse, 0)
    }))

  it.effect("reports the time each acquisition waited: 0 when a slot was free", () =>
    Effect.gen(function*() {
      const pool = new SlotPool(1)
      const first = yield* Scope.make()
      assert.strictEqual(yield* pool.acquire(1000).pipe(Scope.provide(first)), 0)
      const waiter = yield* Effect.forkChild(Effect.scoped(pool.acquire(1000)))
      yield* Effect.yieldNow
      yield* TestClock.adjust(300)
      yield* Scope.close(first, Exit.void)
      assert.strictEqual(yield* Fiber.join(waiter), 300)
    }))

  // Random holders: some hold for a while, some are interrupted while queued or while
  // holding, some time out. Whatever the interleaving: never above capacity, all back at the end.
  it.effect("never leaks or over-grants under random interruption", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 4 }),
          fc.array(
            fc.record({
              startAt: fc.integer({ min: 0, max: 50 }),
              hold: fc.integer({ min: 0, max: 40 }),
              wait: fc.integer({ min: 1, max: 60 }),
              interruptAt: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined })
            }),
            { minLength: 1, maxLength: 25 }
          ),
          (capacity, holders) =>
            Effect.runPromise(Effect.gen(function*() {
              const pool = new SlotPool(capacity)
              let maxSeen = 0
              const fibers = yield* Effect.forEach(holders, (h) =>
                Effect.forkChild(
                  Effect.gen(function*() {
                    yield* Effect.sleep(h.startAt)
                    yield* Effect.scoped(Effect.gen(function*() {
                      yield* pool.acquire(h.wait)
                      maxSeen = Math.max(maxSeen, pool.inUse)
                      yield* Effect.sleep(h.hold)
                    }))
                  }).pipe(Effect.ignore)
                ))
              const interrupts = holders.flatMap((h, i) =>
                h.interruptAt === undefined ? [] : [Effect.forkChild(Effect.andThen(Effect.sleep(h.interruptAt), Fiber.interrupt(fibers[i]!)))]
              )
              yield* Effect.all(interrupts)
              for (let t = 0; t < 200; t++) yield* TestClock.adjust(1)
              yield* Effect.forEach(fibers, Fiber.await)
              if (maxSeen > capacity) throw new Error(`over-granted: ${maxSeen} > ${capacity}`)
              if (pool.inUse !== 0 || pool.queued !== 0) throw new Error(`leak: inUse=${pool.inUse} queued=${pool.queued}`)
            }).pipe(Effect.provide(TestClock.layer())))
        ),
        { numRuns: 150 }
      )
    ))
})

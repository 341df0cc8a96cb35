import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { TestClock } from "effect/testing"
import { BackendId } from "../../src/domain/Ids.ts"
import * as Affinity from "../../src/routing/Affinity.ts"

const a = BackendId("a")
const b = BackendId("b")

describe("Affinity (KV pins)", () => {
  it.effect("holds a pin while the scope is open, then keeps a soft hint until the TTL", () =>
    Effect.gen(function*() {
      const index = Affinity.make(10, 1000)
      const scope = yield* Scope.make()
      yield* index.pin("s:1", a).pipe(Scope.provide(scope))
      assert.strictEqual((yield* index.snapshot).heldPins, 1)
      yield* TestClock.adjust(5000)
      assert.strictEqual(yield* index.lookup("s:1"), a) // held pins never expire
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* index.snapshot).heldPins, 0)
      yield* TestClock.adjust(999)
      assert.strictEqual(yield* index.lookup("s:1"), a)
      yield* TestClock.adjust(2)
      assert.strictEqual(yield* index.lookup("s:1"), undefined)
    }))

  it.effect("is bounded: evicts soft hints, never held pins", () =>
    Effect.gen(function*() {
      const index = Affinity.make(3, 60_000)
      const held = yield* Scope.make()
      yield* index.pin("held", a).pipe(Scope.provide(held))
      for (let i = 0; i < 10; i++) yield* Effect.scoped(index.pin(`soft:${i}`, b))
      const snap = yield* index.snapshot
      assert.isTrue(snap.entries <= 3)
      assert.strictEqual(yield* index.lookup("held"), a)
      assert.strictEqual(yield* index.lookup("soft:9"), b)
    }))

  it.effect("forgets hints to a backend that turned unhealthy", () =>
    Effect.gen(function*() {
      const index = Affinity.make(10, 60_000)
      yield* Effect.scoped(index.pin("s:1", a))
      yield* index.forget(a)
      assert.strictEqual(yield* index.lookup("s:1"), undefined)
    }))
})
